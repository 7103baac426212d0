"""The report's loss-curve figure: each curve, the curve law's fit, and its early prediction.

One panel per model size (up to ``max_panels``, the largest sizes kept when there are more):
every complete run's validation curve of that size (dots), the joint multi-power fit to all
curves (solid lines), and, for the size's longest run, the prediction made from its first 30% of
steps (``analysis.curve_eval.early_predictions``: dashed line from the cut on, the predicted
final loss with its 95% PI as an error bar, and the cut as a vertical line). No torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.curve_predict import curve_loss
from analysis.curves import Curve, CurveFit, fit_curves


def plot_curve_predictions(
    curves: Sequence[Curve],
    fit: CurveFit,
    early: dict[str, tuple[CurveFit, int, dict[str, Any]]],
    ax_cols: int = 3,
) -> Any:
    """Figure: per size, curves, the fit and the early predictions.

    Args:
        curves: the curves (``analysis.curve_data.run_curves``).
        fit: the law fitted to all of them.
        early: run name -> (fit on what the run had seen at its cut, cut step, answer).
        ax_cols: panels per row.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({c.n_params for c in curves})
    n_rows = -(-len(sizes) // ax_cols)
    fig, axes = plt.subplots(
        n_rows, min(ax_cols, len(sizes)), figsize=(4.2 * min(ax_cols, len(sizes)), 3.3 * n_rows),
        squeeze=False,
    )  # fmt: skip
    for ax, n in zip(axes.flat, sizes, strict=False):
        group = sorted((c for c in curves if c.n_params == n), key=lambda c: c.planned_steps)
        for i, c in enumerate(group):
            color = f"C{i % 10}"
            ax.plot(c.steps, c.loss, ".", ms=3, color=color)
            grid = np.unique(np.geomspace(c.steps[0], c.planned_steps, 200).astype(int))
            ax.plot(grid, curve_loss(fit, c.lrs, grid, c.n_params), "-", lw=1, color=color)
            if c.run in early:
                efit, cut, ans = early[c.run]
                g2 = grid[grid >= max(cut, 1)]
                ax.plot(g2, curve_loss(efit, c.lrs, g2, c.n_params), "--", lw=1.2, color="k")
                lo, hi = ans["pi"]
                err = [[ans["value"] - lo], [hi - ans["value"]]] if lo == lo else None
                ax.errorbar([c.planned_steps], [ans["value"]], yerr=err, fmt="kx", capsize=3)
                ax.axvline(cut, color="0.6", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"N = {n:.3g}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("val/loss (nats/token)")
    for ax in list(axes.flat)[len(sizes) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def curve_figure(
    runs_dir: str | Path, fraction: float = 0.3, max_panels: int = 9, loss_col: str = "val/loss"
) -> Any:
    """Fit the law to ``runs_dir``'s curves, make the early predictions, return the Figure.

    Raises:
        ValueError: no usable curve (``analysis.curve_data.run_curves`` skips short ones).
    """
    from analysis.curve_data import run_curves
    from analysis.curve_eval import early_inputs

    curves, _ = run_curves(runs_dir, loss_col)
    if not curves:
        raise ValueError(f"no complete run under {runs_dir} has a curve of >= 5 {loss_col} points")
    sizes = sorted({c.n_params for c in curves})[-max_panels:]
    curves = [c for c in curves if c.n_params in sizes]
    fit = fit_curves(curves)
    early = {}
    for n in sizes:
        longest = max((c for c in curves if c.n_params == n), key=lambda c: c.planned_steps)
        seen, cut = early_inputs(curves, longest, fraction)
        try:
            efit = fit_curves(seen, joint=fit.joint)
        except ValueError:
            continue
        from analysis.curve_predict import predict_final

        ans = predict_final(efit, longest.lrs, n_params=longest.n_params if efit.joint else None)
        early[longest.run] = (efit, cut, ans)
    return plot_curve_predictions(curves, fit, early)
