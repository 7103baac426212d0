"""Scaling collapse (Qiu et al. 2025, arXiv:2507.02119): do the best runs' curves share a shape?

Qiu et al. 2025 (Sec. 2) find that the loss curves of compute-optimally trained models collapse
onto one universal curve when compute and *reducible* loss are both normalised to 1 at the end
of training: x = c / c_final, y = (L(c) - L0) / (L_final - L0), with L0 the irreducible loss;
with learning-rate decay the curves agree within seed noise ("supercollapse"), and a recipe
that is scaled suboptimally (a wrong LR or a wrong allocation at some sizes) breaks it.

Here: each budget's best run (lowest final loss among its points), its curve spliced onto its
WSD trunk's prefix when it is a branch, normalised as above with L0 = approach 3's fitted E
(0 when there is no parametric fit, said in the result). The **collapse spread** is one
number: the standard deviation across budgets of y, interpolated on a grid of x in
[``X_MIN``, 1], averaged over the grid (Qiu et al.'s collapse deviation, averaged over x).
Torch-free.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

X_MIN = 0.2  # below this, warmup dominates every curve (Qiu et al. compare the later part too)
N_GRID = 17


def _curve(curves: pd.DataFrame, run: str, loss_col: str) -> pd.DataFrame:
    own = curves[curves["run_name"] == run]
    parent = own["parent_run"].dropna().iloc[0] if own["parent_run"].notna().any() else None
    if parent is not None:  # a WSD branch: its trunk's steps before the branch point first
        first = own["step"].min()
        trunk = curves[(curves["run_name"] == parent) & (curves["step"] < first)]
        own = pd.concat([trunk, own])
    own = own[np.isfinite(own[loss_col].to_numpy(float)) & (own["flops"] > 0)]
    return own.sort_values("flops")


def scaling_collapse(
    curves: pd.DataFrame, points: pd.DataFrame, loss_col: str, irreducible: float | None
) -> dict[str, Any]:
    """Normalised best-run curves per budget and their collapse spread.

    Args:
        curves: ``analysis.load.load_curves`` rows (``run_name``, ``step``, ``flops``,
            ``parent_run`` and ``loss_col``).
        points: the selected points (one row per point, ``flops_budget``, ``run_name``,
            ``loss_col``).
        loss_col: loss column (``val/loss``, nats/token).
        irreducible: L0 (approach 3's E, nats/token), or None for 0.

    Returns:
        ``{"L0", "L0_source", "curves": {budget: {"run_name", "x", "y"}}, "grid", "spread"}``,
        or ``{"error": why}`` (no budget labels, no curves, or fewer than two budgets with a
        curve of >= 3 logged losses).
    """
    if curves is None or not len(curves) or "flops_budget" not in points:
        return {"error": "no loss curves or no IsoFLOP budget labels"}
    L0 = 0.0 if irreducible is None or not math.isfinite(irreducible) else float(irreducible)
    out: dict[float, dict[str, Any]] = {}
    for budget, grp in points.groupby("flops_budget"):
        run = grp.loc[grp[loss_col].idxmin(), "run_name"]
        c = _curve(curves, run, loss_col)
        if len(c) < 3:
            continue
        x = c["flops"].to_numpy(float) / float(c["flops"].iloc[-1])
        L = c[loss_col].to_numpy(float)
        if L[-1] - L0 <= 0:
            continue
        out[float(budget)] = {"run_name": run, "x": x, "y": (L - L0) / (L[-1] - L0)}
    if len(out) < 2:
        return {"error": f"{len(out)} budget(s) with a usable best-run curve; need 2"}
    grid = np.linspace(X_MIN, 1.0, N_GRID)
    ys = np.array([np.interp(grid, v["x"], v["y"], left=np.nan) for v in out.values()])
    spread = float(np.nanmean(np.nanstd(ys, axis=0, ddof=1)))
    return {
        "L0": L0,
        "L0_source": "approach 3's E" if irreducible is not None else "0 (no parametric fit)",
        "curves": out,
        "grid": grid,
        "spread": spread,
    }
