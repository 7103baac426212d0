"""Fit inputs from files, and running any approach on them: ``FitData`` and ``run_fit``.

Shared by ``scaling fit`` and ``analysis.report``: one place turns a runs directory or a table
into fit inputs (``data_from_runs``, ``data_from_table``) and runs any approach (``run_fit``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import fits
from analysis.inputs import check_convention
from analysis.load import RunsWarning, fit_columns, load_curves, load_runs, select_points
from scaling.rundir import SWEEP, read_sweep

APPROACHES = ("parametric", "isoflop", "envelope", "kaplan")


@dataclass
class FitData:
    """Fit inputs: one row per point (``points``), optional curves, and provenance.

    Attributes:
        points: selected rows (one per point) with ``n_params_*``, ``n_tokens``, C columns and
            the loss column.
        curves: per-logged-step rows of the selected runs (runs directories only), or None.
        loss_col: the loss column (``val/loss``).
        selection: the selection note.
        meta: shape rule, vocab_size, seq_len, source, max_flops.
    """

    points: pd.DataFrame
    curves: pd.DataFrame | None
    loss_col: str
    selection: str
    meta: dict[str, Any] = field(default_factory=dict)

    def arrays(self, n_convention: str, flop_formula: str) -> dict[str, np.ndarray]:
        """N, D, C, L (and budget labels) under the stated conventions."""
        n_col, c_col = fit_columns(self.points, n_convention, flop_formula)
        p = self.points
        return {
            "N": p[n_col].to_numpy(float),
            "D": p["n_tokens"].to_numpy(float),
            "C": p[c_col].to_numpy(float),
            "L": p[self.loss_col].to_numpy(float),
            "budget": p["flops_budget"].to_numpy(float) if "flops_budget" in p else None,
            "cluster": p["cluster"].astype(str).to_numpy() if "cluster" in p else None,
        }


def find_sweep_json(runs_dir: str | Path) -> dict[str, Any] | None:
    """The ``sweep.json`` at ``runs_dir`` or, if there is exactly one, in a folder above a run.

    A damaged ``sweep.json`` (not a JSON object) is skipped with a ``RunsWarning`` naming it:
    it only adds the shape rule, and the runs are still fitted.
    """
    runs_dir = Path(runs_dir)
    direct = runs_dir / SWEEP
    found = [direct] if direct.exists() else sorted(runs_dir.rglob(SWEEP))
    if len(found) != 1:
        return None
    try:
        return read_sweep(found[0].parent)
    except ValueError as e:
        warnings.warn(
            f"{e}; fitting without its shape rule (no architectures)", RunsWarning, stacklevel=2
        )
        return None


def data_from_runs(
    runs_dir: str | Path, loss_col: str = "val/loss", with_curves: bool = True
) -> FitData:
    """Load, warn about unfinished runs (``RunsWarning``), select best LR per point.

    Raises:
        FileNotFoundError, ValueError: see ``load_runs`` and ``select_points``.
    """
    runs = load_runs(runs_dir)
    points, note = select_points(runs, loss_col)
    meta: dict[str, Any] = {"source": str(runs_dir)}
    sweep = find_sweep_json(runs_dir)
    if sweep and sweep.get("shape_rule"):
        meta["shape_rule"] = sweep["shape_rule"]
    for k in ("vocab_size", "seq_len"):
        if k in points and points[k].notna().any():
            meta[k] = int(points[k].mode().iloc[0])
    curves = None
    if with_curves:
        curves = load_curves(runs_dir)
        if len(curves):  # the selected runs, and the WSD trunks their branches start from
            keep = set(points["run_name"])
            if "parent_run" in points:
                keep |= set(points["parent_run"].dropna())
            curves = curves[curves["run_name"].isin(keep)]
    return FitData(points, curves, loss_col, note, meta)


def data_from_table(path: str | Path, **kwargs: Any) -> FitData:
    """Wrap ``load_table(path, **kwargs)`` (one row = one run; no curves)."""
    from analysis.runs_table import load_table

    points = load_table(path, **kwargs)
    return FitData(points, None, "val/loss", f"{len(points)} rows of {path}", {"source": str(path)})


def run_fit(
    approach: str,
    data: FitData,
    *,
    n_convention: str,
    flop_formula: str,
    n_bootstrap: int = 0,
    seed: int = 0,
    huber_delta: float = 1e-3,
    budget_dex: float = fits.BUDGET_BIN_DEX,
    workers: int | None = None,
    window: int | None = None,
    fixed: dict[str, float] | None = None,
) -> Any:
    """Run one approach on ``data`` under explicit conventions.

    ``fixed`` pins approach-3 parameters (``analysis.parametric.fit_parametric``).

    Raises:
        ValueError: unknown approach, negative ``n_bootstrap``, missing curves for
            ``envelope``, ``fixed`` with another approach, or the fit's own errors.
    """
    check_convention(n_convention, flop_formula)
    if not (isinstance(n_bootstrap, int) and n_bootstrap >= 0):
        raise ValueError(f"n_bootstrap must be an integer >= 0 (0 = no CIs), got {n_bootstrap!r}")
    arr = data.arrays(n_convention, flop_formula)
    meta = dict(data.meta)
    finite_c = arr["C"][np.isfinite(arr["C"])]
    if finite_c.size:
        meta["max_flops"] = float(finite_c.max())
    common = dict(
        n_convention=n_convention,
        flop_formula=flop_formula,
        n_bootstrap=n_bootstrap,
        seed=seed,
        selection=data.selection,
        meta=meta,
    )
    if fixed and approach != "parametric":
        raise ValueError(f"fixed parameters apply to approach 3 (parametric), not {approach!r}")
    if approach == "parametric":
        if flop_formula == "counted" and np.all(np.isfinite(arr["C"])):
            # the closed form assumes C = 6 N D; record the runs' counted/6ND ratio so queries
            # allocate counted FLOPs (analysis.parametric.optimum)
            from analysis.parametric import fit_flop_ratio

            common["meta"]["flop_ratio"] = fit_flop_ratio(arr["N"], arr["D"], arr["C"])
        return fits.fit_parametric(
            arr["N"],
            arr["D"],
            arr["L"],
            huber_delta=huber_delta,
            workers=workers,
            fixed=fixed,
            clusters=arr["cluster"],
            **common,
        )
    if approach == "isoflop":
        budget = arr["budget"]
        if budget is not None and not np.all(np.isfinite(budget)):
            budget = None
        # window: parabola through that many points around each minimum (None = all)
        return fits.fit_isoflop(
            arr["N"],
            arr["D"],
            arr["C"],
            arr["L"],
            budget=budget,
            bin_dex=budget_dex,
            window=window,
            **common,
        )
    if approach == "kaplan":
        return fits.fit_kaplan(arr["N"], arr["D"], arr["C"], arr["L"], **common)
    if approach == "envelope":
        cur = data.curves
        if cur is None or cur.empty or data.loss_col not in cur:
            raise ValueError("approach 1 (envelope) needs loss curves: use --runs-dir, not a table")
        cur = cur[np.isfinite(cur[data.loss_col].astype(float))]
        n_col = f"n_params_{n_convention}"
        N = cur[n_col].to_numpy(float)
        D = cur["tokens"].to_numpy(float)
        C = cur["flops"].to_numpy(float) if flop_formula == "counted" else 6.0 * N * D
        return fits.fit_envelope(
            cur["run_name"].to_numpy(), N, D, C, cur[data.loss_col].to_numpy(float), **common
        )
    raise ValueError(f"approach must be one of {APPROACHES}, got {approach!r}")


def fits_quietly(*args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """``run_fit`` returning (fit, None) or (None, error message) instead of raising ValueError."""
    try:
        return run_fit(*args, **kwargs), None
    except ValueError as e:
        return None, str(e)


def fit_all(
    data: FitData, workers: int | None = None, **kw: Any
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Fit approaches 3, 2, 1 and Kaplan (``run_fit``); what failed is reported, not raised.

    Approach 2's retry policy lives here: asymmetric IsoFLOP profiles can put a parabola
    through all points of a budget with its vertex off the grid; then it is refitted near the
    minimum (``window=5`` points per budget) and a note says so.

    Args:
        data: the runs (``data_from_runs``).
        workers: processes for the approach-3 bootstrap.
        **kw: ``run_fit`` keywords shared by every approach (``n_convention``,
            ``flop_formula``, ``n_bootstrap``, ``seed``).

    Returns:
        ``(fits by approach, error message by approach not fitted, notes for the report)``.
    """
    fitted: dict[str, Any] = {}
    errors: dict[str, str] = {}
    notes: list[str] = []
    for appr in ("parametric", "isoflop", "envelope", "kaplan"):
        fit, err = (
            fits_quietly(appr, data, workers=workers, **kw)
            if appr == "parametric"
            else fits_quietly(appr, data, **kw)
        )
        if fit is None and appr == "isoflop":
            fit, _ = fits_quietly(appr, data, window=5, **kw)
            if fit is not None:
                notes.append(
                    f"isoflop: all-points parabolas failed ({err}); used 5 points per budget"
                )
            err = err if fit is None else None
        if fit is None:
            errors[appr] = err or "unknown error"
            continue
        fitted[appr] = fit
    return fitted, errors, notes

