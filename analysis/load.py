"""Read run directories (and exported tables) into pandas DataFrames. No torch.

A run directory is any folder holding ``config.json`` (the run-directory contract in DESIGN.md);
``summary.json`` marks it ended. ``load_runs`` gives one row per run, ``load_curves`` one row per
logged step, ``select_points`` picks one row per (shape, budget) point for fitting (best learning
rate, mean over seeds), and ``load_table`` reads a CSV/JSONL of published runs.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.inputs import check_convention
from analysis.runs_table import TableError, load_table  # noqa: F401  (re-exported: the table reader)
from scaling.rundir import CONFIG, read_metrics, read_summary, read_sweep, run_state


class RunsWarning(UserWarning):
    """Some runs are incomplete, failed or diverged; they are listed, never silently dropped."""


# ---------------------------------------------------------------------------------------------
# Low-level readers (the file contract; the rest comes from scaling.rundir, torch-free)
# ---------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path} is not valid JSON ({e}); the run directory is damaged: delete it and "
            "relaunch the sweep to train it again"
        ) from None


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every folder under ``root`` (recursively, ``root`` included) that holds ``config.json``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"runs directory {root} does not exist")
    return sorted(p.parent for p in root.rglob(CONFIG))


# ---------------------------------------------------------------------------------------------
# load_runs / load_curves
# ---------------------------------------------------------------------------------------------

_SUMMARY_KEYS = (
    "step",
    "n_steps",
    "n_tokens",
    "train/loss",
    "val/loss",
    "val/bpb",
    "n_params_total",
    "n_params_non_embedding",
    "n_params_embedding",
    "flops",
    "flops_with_embedding",
    "flops_6nd",
    "flops_6nd_non_embedding",
    "flops_kaplan",
    "flops_marginal",
    "flops_budget",
    "tokens_per_param",
    "wall_time_s",
    "tokens_per_sec",
    "diverged_step",
    "epochs",
)


def _row_from_dir(run_dir: Path) -> dict[str, Any]:
    """The run's row; a run whose files cannot be read is ``damaged``, with the reason."""
    try:
        return _row_from_files(run_dir)
    except (ValueError, TypeError, AttributeError) as e:  # AttributeError: JSON of wrong shape
        problem = str(e) if isinstance(e, ValueError) else f"{run_dir}: unexpected JSON ({e})"
        return {
            "run_name": run_dir.name,
            "run_dir": str(run_dir),
            "status": "damaged",
            "problem": problem,
        }


def _row_from_files(run_dir: Path) -> dict[str, Any]:
    cfg_file = _read_json(run_dir / CONFIG) or {}
    cfg = cfg_file.get("config", {})
    model = cfg.get("model", {})
    optim = cfg.get("optim", {})
    row: dict[str, Any] = {
        "run_name": cfg_file.get("run_name", run_dir.name),
        "run_dir": str(run_dir),
        "status": run_state(run_dir),
        "sweep_name": cfg.get("sweep_name"),
        "point_key": cfg.get("point_key"),
        "seed": cfg.get("seed"),
        "lr": optim.get("lr"),
        "n_layers": model.get("n_layers"),
        "d_model": model.get("d_model"),
        "n_heads": model.get("n_heads"),
        "d_mlp": model.get("d_mlp"),
        "vocab_size": model.get("vocab_size"),
        "seq_len": model.get("seq_len"),
        "flops_budget": cfg.get("flops_budget"),
        "n_tokens_planned": cfg.get("n_tokens"),
    }
    # WSD lineage (sweeps.branching): branches of one trunk form one bootstrap cluster
    parent = cfg.get("branch_from") or {}
    row["role"] = "branch" if parent else "trunk" if cfg.get("keep_checkpoint_steps") else "run"
    row["parent_run"] = parent.get("run_name")
    row["parent_step"] = parent.get("step")
    row["cluster"] = parent.get("run_name") or row["run_name"]
    summary = read_summary(run_dir)
    if summary is not None:
        for k in _SUMMARY_KEYS:
            if k in summary and not (k == "flops_budget" and summary[k] is None):
                row[k] = summary[k]
        n_train = (cfg_file.get("data") or {}).get("n_train_tokens")
        if row.get("epochs") is None and n_train and summary.get("n_tokens") is not None:
            row["epochs"] = summary["n_tokens"] / n_train  # summaries older than `epochs`
    else:  # not ended: parameter counts from the config (pure counting), losses unknown
        try:
            from scaling.config import ModelConfig
            from scaling.counting import param_counts

            pc = param_counts(ModelConfig(**model))
            row["n_params_total"] = pc.total
            row["n_params_non_embedding"] = pc.non_embedding
        except (TypeError, ValueError):
            pass
        metrics = read_metrics(run_dir, problems=[])  # damaged lines: load_curves warns
        row["step"] = metrics[-1].get("step") if metrics else None
    return row


def load_runs(root: str | Path, warn: bool = True) -> pd.DataFrame:
    """One row per run directory under ``root`` (recursively).

    Columns: ``run_name, run_dir, status`` (complete | diverged | incomplete | failed), ``role``
    (``run``, or ``trunk`` / ``branch`` of a WSD sweep), ``parent_run``, ``parent_step``,
    ``cluster`` (a branch's trunk, else the run itself: the bootstrap's resampling unit), shape
    (``n_layers, d_model, n_heads, d_mlp, vocab_size, seq_len``), ``lr, seed, point_key,
    sweep_name, flops_budget``, and from ``summary.json``: ``n_params_total,
    n_params_non_embedding, n_tokens, flops, flops_6nd, flops_6nd_non_embedding, flops_kaplan,
    tokens_per_param, train/loss, val/loss, val/bpb, diverged_step, wall_time_s, epochs, ...``
    (NaN for runs that have not ended; ``epochs`` = ``n_tokens`` over the training split's
    tokens, from ``config.json``'s data record for summaries that predate the field).

    Args:
        root: a sweep folder, a folder of sweeps, or one run directory.
        warn: emit a ``RunsWarning`` listing runs that are not complete.

    Raises:
        FileNotFoundError: ``root`` is missing.
        ValueError: no run directory under ``root``.
    """
    dirs = find_run_dirs(root)
    if not dirs:
        raise ValueError(f"no run directories (folders with {CONFIG}) under {root}")
    df = pd.DataFrame([_row_from_dir(d) for d in dirs])
    for col in (
        "val/loss",
        "train/loss",
        "val/bpb",
        "n_tokens",
        "flops",
        "flops_6nd",
        "n_params_total",
        "n_params_non_embedding",
        "tokens_per_param",
        "epochs",
    ):
        if col not in df:
            df[col] = np.nan
        df[col] = pd.to_numeric(df[col], errors="coerce")
    if warn:
        warn_not_complete(df)
        warn_not_in_plan(df)
    return df


def warn_not_in_plan(df: pd.DataFrame) -> None:
    """Warn (``RunsWarning``) about runs their sweep's ``sweep.json`` no longer plans.

    A sweep definition edited after a launch (other sizes, LRs or budgets) leaves the old runs on
    disk. They are real data and stay in the fits (an older LR becomes one more LR variant of
    its point), but the user should know that the fitted set is not the current plan.
    """
    stale: list[str] = []
    plans: dict[Path, set[str] | None] = {}
    for run_dir, name in zip(df["run_dir"], df["run_name"], strict=True):
        sweep_dir = Path(run_dir).parent
        if sweep_dir not in plans:
            try:
                plan = (read_sweep(sweep_dir) or {})["plan"]
                plans[sweep_dir] = {r["run_name"] for r in plan}
            except (OSError, ValueError, KeyError, TypeError):
                plans[sweep_dir] = None  # no (readable) sweep.json: nothing to compare with
        planned = plans[sweep_dir]
        if planned is not None and name not in planned:
            stale.append(name)
    if stale:
        warnings.warn(
            f"{len(stale)} of {len(df)} runs are not in their sweep's current plan (sweep.json) "
            f"and are still fitted: {', '.join(sorted(stale))}",
            RunsWarning,
            stacklevel=2,
        )


def warn_not_complete(df: pd.DataFrame) -> None:
    """Warn (``RunsWarning``) listing every run whose status is not ``complete``.

    A ``damaged`` run (its files cannot be read) is listed with what is wrong.
    """
    bad = df[df["status"] != "complete"]
    if len(bad):
        if "problem" in bad:
            names = bad["run_name"].where(
                bad["problem"].isna(), bad["run_name"] + " (" + bad["problem"].astype(str) + ")"
            )
            bad = bad.assign(run_name=names)
        groups = {s: sorted(g["run_name"]) for s, g in bad.groupby("status")}
        listing = "; ".join(f"{s} ({len(v)}): {', '.join(v)}" for s, v in groups.items())
        warnings.warn(
            f"{len(bad)} of {len(df)} runs are not complete and are excluded from fits: {listing}",
            RunsWarning,
            stacklevel=2,
        )


def load_curves(root: str | Path) -> pd.DataFrame:
    """One row per logged step of every run under ``root``.

    Columns: the ``metrics.jsonl`` keys plus ``run_name, status, point_key, lr, seed,
    n_params_total, n_params_non_embedding, flops_budget``. A torn last line is tolerated.

    Raises:
        FileNotFoundError: ``root`` is missing.
        ValueError: no run directory under ``root``.
    """
    runs = load_runs(root, warn=False)
    frames = []
    keep = [
        "run_name",
        "status",
        "role",
        "parent_run",
        "point_key",
        "lr",
        "seed",
        "n_params_total",
        "n_params_non_embedding",
        "flops_budget",
    ]
    problems: list[str] = []
    for _, run in runs.iterrows():
        if run["status"] == "damaged":
            continue
        bad: list[str] = []
        rows = read_metrics(run["run_dir"], problems=bad)
        if bad:
            more = f" and {len(bad) - 1} more line(s)" if len(bad) > 1 else ""
            problems.append(f"{run['run_name']}: {bad[0]}{more}")
        if not rows:
            continue
        f = pd.DataFrame(rows)
        for k in keep:
            f[k] = run[k]
        frames.append(f)
    if problems:
        warnings.warn(
            f"{len(problems)} run(s) have damaged lines in metrics.jsonl; their curves skip "
            f"them: {'; '.join(problems)}",
            RunsWarning,
            stacklevel=2,
        )
    if not frames:
        return pd.DataFrame(
            columns=["run_name", "step", "tokens", "flops", "train/loss", "val/loss", *keep[1:]]
        )
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Selection: one row per point
# ---------------------------------------------------------------------------------------------


def select_points(runs: pd.DataFrame, loss_col: str = "val/loss") -> tuple[pd.DataFrame, str]:
    """Pick one row per point (``point_key``; the run name when absent) for fitting.

    Only complete runs with a finite ``loss_col`` are used (others are warned about by
    ``load_runs``); WSD trunks are not points (their branches are). Within a point, runs are
    grouped by learning rate; the loss of an LR is the mean over its seeds; the LR with the
    lowest mean wins. The returned row is the winning LR's
    first seed with ``loss_col`` replaced by the seed mean. Extra columns: ``n_seeds``,
    ``n_lrs``, ``lr_at_edge`` (True when the best LR is the smallest or largest of >= 2 LRs: the
    LR grid may be too narrow for that point).

    Returns:
        (DataFrame, selection note stating the rule and listing points with ``lr_at_edge``).

    Raises:
        ValueError: ``loss_col`` missing, or no complete run with a finite loss.
    """
    if loss_col not in runs:
        raise ValueError(
            f"loss column {loss_col!r} not in the runs table; columns: {list(runs.columns)}"
        )
    ok = runs[(runs["status"] == "complete") & np.isfinite(runs[loss_col].astype(float))].copy()
    if "role" in ok:  # a WSD trunk never decays its LR: its branches are the points
        ok = ok[ok["role"] != "trunk"]
    if ok.empty:
        raise ValueError(f"no complete run with a finite {loss_col!r} to fit")
    ok["_point"] = ok["point_key"].where(ok["point_key"].notna(), ok["run_name"])
    ok["_lr"] = ok["lr"].fillna(-1.0)
    rows = []
    for _, g in ok.groupby("_point", sort=True):
        by_lr = g.groupby("_lr")[loss_col].mean()
        best_lr = by_lr.idxmin()
        winners = g[g["_lr"] == best_lr].sort_values("seed", na_position="last")
        row = winners.iloc[0].copy()
        row[loss_col] = float(winners[loss_col].mean())
        row["n_seeds"] = len(winners)
        row["n_lrs"] = len(by_lr)
        row["lr_at_edge"] = bool(
            len(by_lr) >= 2 and best_lr in (by_lr.index.min(), by_lr.index.max())
        )
        rows.append(row)
    sel = pd.DataFrame(rows).drop(columns=["_point", "_lr"]).reset_index(drop=True)
    note = (
        f"{len(sel)} points from {len(ok)} complete runs: best learning rate per point_key "
        f"(lowest seed-mean {loss_col}), mean over seeds"
    )
    keys = sel["point_key"].where(sel["point_key"].notna(), sel["run_name"])
    edge = keys[sel["lr_at_edge"]].tolist()
    if edge:
        names = ", ".join(map(str, edge[:5])) + (
            f", ... ({len(edge) - 5} more)" if len(edge) > 5 else ""
        )
        note += f"; best LR at the edge of its LR grid for {len(edge)} point(s): {names}"
    return sel, note


def fit_columns(df: pd.DataFrame, n_convention: str, flop_formula: str) -> tuple[str, str]:
    """Column names (N, C) under the conventions: ``n_params_<conv>``, ``flops``|``flops_6nd``.

    With ``n_convention="non_embedding"`` and ``flop_formula="6nd"`` the C column is
    ``flops_6nd_non_embedding`` when present (6 * N_non_embedding * D).
    """
    check_convention(n_convention, flop_formula)
    n_col = f"n_params_{n_convention}"
    if flop_formula == "counted":
        c_col = "flops"
    elif n_convention == "non_embedding" and "flops_6nd_non_embedding" in df:
        c_col = "flops_6nd_non_embedding"
    else:
        c_col = "flops_6nd"
    for col in (n_col, c_col, "n_tokens"):
        if col not in df:
            raise ValueError(
                f"column {col!r} is missing; the table cannot be fitted with "
                f"n_convention={n_convention!r}, flop_formula={flop_formula!r}"
            )
    return n_col, c_col
