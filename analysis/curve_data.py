"""Loss curves for ``analysis.curves``: from run directories or from a published table. No torch.

From run directories (``run_curves``): each run's ``metrics.jsonl`` rows with a finite loss
(``val/loss`` by default) and its planned schedule rebuilt from ``config.json`` (``n_tokens /
batch_size_tokens`` steps of ``scaling.optim.lr_at``, the same pure function training used). A
WSD branch's curve is its trunk's rows up to the branch step followed by its own rows: the
curve of the WSD run of its length trained alone (they are equal, DESIGN.md). A trunk with
branches is not a curve of its own (its rows are in its branches); a trunk's branches form one
bootstrap ``cluster``.

From a table (``table_curves``): CSV or JSONL with a run column, a step (or tokens) column,
an LR column, a loss column and optionally N. The LR is known only at logged rows, so the
schedule is rebuilt on a grid of one logging interval (the smallest step gap of the run): the
law's sums then run over intervals instead of steps, which rescales A and C but not the
predictions (for a constant logging interval), and the LR between rows is interpolated linearly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.curves import MIN_POINTS, Curve, CurveError, make_curve


def planned_lrs(config: dict[str, Any]) -> np.ndarray:
    """Per-step LRs of a run's planned schedule from its ``config.json`` ``"config"`` record.

    Raises:
        CurveError: the record lacks ``n_tokens``, ``batch_size_tokens`` or ``optim``.
    """
    from scaling.config import OptimConfig
    from scaling.optim import lr_at

    try:
        n_steps = int(config["n_tokens"]) // int(config["batch_size_tokens"])
        optim = dict(config["optim"])
        if "betas" in optim:
            optim["betas"] = tuple(optim["betas"])
        cfg = OptimConfig(**optim)
    except (KeyError, TypeError, ValueError) as e:
        raise CurveError(f"config.json cannot give the planned schedule: {e}") from None
    return np.array([lr_at(i, n_steps, cfg) for i in range(n_steps)])


def _read_config(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "config.json").read_text())


def run_curves(
    root: str | Path,
    loss_col: str = "val/loss",
    n_convention: str = "non_embedding",
    statuses: tuple[str, ...] = ("complete",),
    min_points: int = MIN_POINTS,
) -> tuple[list[Curve], list[str]]:
    """Curves of the runs under ``root`` whose status is in ``statuses``.

    Args:
        root: a sweep folder or a folder of sweeps (``analysis.load.load_runs``).
        loss_col: the metrics column to fit (``val/loss`` or ``train/loss``).
        n_convention: ``non_embedding`` or ``total``: each curve's N.
        statuses: run states to include (``("complete", "incomplete")`` for running runs).
        min_points: fewest points a curve needs; shorter ones are skipped and listed.

    Returns:
        (curves, skipped): skipped runs, each ``"name: reason"``.

    Raises:
        FileNotFoundError, ValueError: as ``load_runs``.
    """
    from analysis.load import load_runs
    from scaling.rundir import read_metrics

    runs = load_runs(root, warn=False)
    runs = runs[runs["status"] != "damaged"]
    by_name = {r["run_name"]: r for _, r in runs.iterrows()}
    # (no such column when every run is damaged)
    has_branches = set(runs["parent_run"].dropna()) if "parent_run" in runs else set()
    rows_cache: dict[str, list[dict[str, Any]]] = {}

    def rows(name: str) -> list[dict[str, Any]]:
        if name not in rows_cache:
            rows_cache[name] = read_metrics(by_name[name]["run_dir"], problems=[])
        return rows_cache[name]

    curves, skipped = [], []
    for name, r in sorted(by_name.items()):
        if r["status"] not in statuses or (r.get("role") == "trunk" and name in has_branches):
            continue
        own = rows(name)
        parent, pstep = r.get("parent_run"), r.get("parent_step")
        if isinstance(parent, str):
            if parent not in by_name:
                skipped.append(f"{name}: its trunk {parent} is not under {root}")
                continue
            own = [x for x in rows(parent) if x.get("step", 0) <= pstep] + own
        pts = [(x["step"], x[loss_col]) for x in own if _finite(x.get(loss_col))]
        try:
            lrs = planned_lrs(_read_config(r["run_dir"])["config"])
            n = float(r.get(f"n_params_{n_convention}", math.nan))
            steps = [p[0] for p in pts]
            curves.append(
                make_curve(name, steps, [p[1] for p in pts], lrs, n, r["cluster"], min_points)
            )
        except (CurveError, OSError, ValueError, KeyError) as e:
            skipped.append(f"{name}: {e}")
    return curves, skipped


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def truncate(curve: Curve, last_step: int) -> Curve:
    """The curve's points up to ``last_step`` (the planned schedule is kept)."""
    keep = curve.steps <= last_step
    return Curve(
        curve.run, curve.steps[keep], curve.loss[keep], curve.lrs, curve.n_params, curve.cluster
    )


def table_curves(
    path: str | Path,
    *,
    run_col: str,
    loss_col: str,
    lr_col: str,
    step_col: str | None = None,
    tokens_col: str | None = None,
    n_col: str | None = None,
    min_points: int = MIN_POINTS,
) -> list[Curve]:
    """Curves of a published table: one per value of ``run_col`` (module docstring).

    Args:
        path: CSV, or JSONL (``.jsonl``), one row per logged point.
        run_col: the run's name column.
        loss_col: loss column (nats/token).
        lr_col: learning-rate column (the LR of the row's step).
        step_col: optimizer-step column (give this or ``tokens_col``).
        tokens_col: tokens-seen column (give this or ``step_col``).
        n_col: N of each run (constant within a run); needed for a joint fit.
        min_points: fewest points per curve.

    Raises:
        CurveError: a missing column, both or neither of step/tokens, N varying within a run,
            and every ``make_curve`` check (naming the run and the row).
    """
    path = Path(path)
    if (step_col is None) == (tokens_col is None):
        raise CurveError("give exactly one of --step-col or --tokens-col")
    try:
        df = pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise CurveError(f"{path}: cannot read the table ({e})") from None
    x_col = step_col or tokens_col
    for name, col in (
        ("run", run_col),
        ("loss", loss_col),
        ("lr", lr_col),
        ("step", x_col),
        ("N", n_col),
    ):
        if col is not None and col not in df:
            raise CurveError(f"{path}: no {name} column {col!r}; columns: {list(df.columns)}")
    out = []
    for run, g in df.groupby(run_col, sort=True):
        x = pd.to_numeric(g[x_col], errors="coerce").to_numpy(float)
        if not np.all(np.isfinite(x)) or np.any(x <= 0):
            i = int(np.argmax(~np.isfinite(x) | (x <= 0)))
            raise CurveError(f"run {run}, row {i}: {x_col} {x[i]} is not finite and positive")
        gaps = np.diff(x)
        if np.any(gaps <= 0):
            i = int(np.argmax(gaps <= 0)) + 1
            raise CurveError(
                f"run {run}, row {i}: {x_col} {x[i]:g} is not above the previous row's "
                f"{x[i - 1]:g}; steps must increase"
            )
        unit = float(gaps.min()) if gaps.size else float(x[0])
        steps = np.maximum(1, np.round(x / unit)).astype(np.int64)
        lr = pd.to_numeric(g[lr_col], errors="coerce").to_numpy(float)
        bad = ~(np.isfinite(lr) & (lr > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise CurveError(f"run {run}, row {i}: lr {lr[i]} is not finite and positive")
        grid = np.arange(1, steps[-1] + 1)
        lrs = np.interp(grid, steps, lr)
        n = math.nan
        if n_col is not None:
            nv = pd.to_numeric(g[n_col], errors="coerce").unique()
            if nv.size != 1:
                raise CurveError(f"run {run}: {n_col} takes {nv.size} values; N must be constant")
            n = float(nv[0])
        loss = pd.to_numeric(g[loss_col], errors="coerce").to_numpy(float)
        out.append(make_curve(str(run), steps, loss, lrs, n, str(run), min_points))
    if not out:
        raise CurveError(f"{path}: no rows")
    return out
