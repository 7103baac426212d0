"""Figures for scaling-law fits.

Each function takes data (+ an optional ``ax``) and returns the ``matplotlib.figure.Figure``;
figures are built with ``matplotlib.figure.Figure`` directly (Agg rendering on save), so no pyplot
state is touched and nothing is ever shown.
"""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from analysis.fits import FrontierFit, ParametricFit, budget_groups


def _logx(ax: Axes) -> None:
    """Log x axis without minor tick labels (they collide on short ranges)."""
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.5)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def plot_isoflop(
    fit: FrontierFit, N: Any, L: Any, C: Any, budget: Any = None, ax: Axes | None = None
) -> Figure:
    """IsoFLOP curves: loss vs N per budget, the fitted parabolas and their minima.

    Args:
        fit: an approach-2 ``FrontierFit`` (its optima carry the parabola coefficients).
        N: parameters per run (n,), the fit's inputs.
        L: loss (n,), nats/token.
        C: training FLOPs C (n,), following ``flop_formula``.
        budget: per-run budget labels (n,), or None to bin log10 C like the fit did.
        ax: axes to draw on; a new Figure when None.
    """
    fig, ax = _axes(ax)
    N, L, C = (np.asarray(x, dtype=float) for x in (N, L, C))
    budget = None if budget is None else np.asarray(budget, dtype=float)
    groups = budget_groups(C, budget, float(fit.meta.get("bin_dex", 0.1)))
    norm = LogNorm(
        vmin=min(o["C"] for o in fit.optima), vmax=max(o["C"] for o in fit.optima) * 1.01
    )
    cmap = matplotlib.colormaps["viridis"]
    for o in fit.optima:
        color = cmap(norm(o["C"]))
        sel = np.isclose(groups, o["flops_budget"], rtol=1e-9)
        ax.scatter(N[sel], L[sel], color=color, s=18, zorder=3)
        p2, p1, p0 = o["coeffs"]
        x = np.linspace(*o["logN_range"], 100)
        ax.plot(np.exp(x), p2 * x**2 + p1 * x + p0, color=color, lw=1.2, label=f"C={o['C']:.2g}")
        # a filled star with a black edge for a used minimum; an unfilled "x" takes no edge
        style = {"marker": "*", "edgecolor": "k"} if o["used"] else {"marker": "x"}
        ax.scatter([o["N_opt"]], [o["L_opt"]], color=color, s=120, zorder=4, **style)
    _logx(ax)
    ax.set_xlabel(f"N ({fit.n_convention} parameters)")
    ax.set_ylabel("final loss (nats/token)")
    ax.set_title("IsoFLOP profiles (approach 2); * = parabola minimum, x = not used")
    ax.legend(fontsize=7, ncol=2)
    return fig


def _band(fit: Any, C: np.ndarray, which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Central curve and percentile band of N_opt or D_opt over a C grid from bootstrap samples."""
    from analysis.query import _frontier_point, _param_optimum

    k = 0 if which == "N" else 1
    if isinstance(fit, ParametricFit):
        ratio = fit.meta.get("flop_ratio")  # counted FLOPs: numerical optimum per C
        p0 = {"E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta}
        centre = np.array([_param_optimum(p0, c, ratio)[k] for c in C])
        samples = fit.sample_params()[:200]  # the band's percentiles need no more
        draws = [[_param_optimum(p, c, ratio)[k] for c in C] for p in samples]
    else:
        centre = fit.n_opt(C) if which == "N" else fit.d_opt(C)
        draws = [[_frontier_point(p, c)[k] for c in C] for p in fit.sample_params()]
    if not draws:
        return centre, centre, centre
    arr = np.asarray(draws, dtype=float)
    lo, hi = np.nanpercentile(arr, [50 * (1 - fit.ci_level), 50 * (1 + fit.ci_level)], axis=0)
    return centre, lo, hi


def plot_optimal_allocation(
    fits: dict[str, Any],
    which: str = "N",
    c_range: tuple[float, float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """N_opt(C) (``which="N"``) or D_opt(C) (``"D"``) for several approaches side by side.

    Each approach is drawn with its bootstrap CI band and (for approaches 1 and 2) the per-budget
    optima it was fitted to.

    Args:
        fits: label -> ParametricFit | FrontierFit.
        which: ``"N"`` or ``"D"``.
        c_range: (C_min, C_max) of the curves; default spans the fits' optima and 10x beyond.
        ax: axes to draw on; a new Figure when None.
    """
    if which not in ("N", "D"):
        raise ValueError(f"which must be 'N' or 'D', got {which!r}")
    fig, ax = _axes(ax)
    if c_range is None:
        cs = [o["C"] for f in fits.values() if isinstance(f, FrontierFit) for o in f.optima]
        cs += [f.meta.get("max_flops") for f in fits.values() if f.meta.get("max_flops")]
        c_range = (min(cs) / 2, max(cs) * 10) if cs else (1e15, 1e20)
    C = np.geomspace(*c_range, 60)
    colors = ["C0", "C1", "C2", "C3"]
    for (label, fit), color in zip(fits.items(), colors, strict=False):
        band = _band(fit, C, which)
        centre, lo, hi = band
        exp = fit.a if which == "N" else fit.b
        ax.plot(
            C, centre, color=color, label=f"{label}: {'a' if which == 'N' else 'b'} = {exp:.3f}"
        )
        ax.fill_between(C, lo, hi, color=color, alpha=0.2, lw=0)
        if isinstance(fit, FrontierFit):
            used = [o for o in fit.optima if o["used"]]
            ax.scatter(
                [o["C"] for o in used],
                [o[f"{which}_opt"] for o in used],
                color=color,
                s=14,
                zorder=3,
            )
    _logx(ax)
    ax.set_yscale("log")
    ax.set_xlabel("C (training FLOPs)")
    ax.set_ylabel("N_opt (parameters)" if which == "N" else "D_opt (tokens)")
    ax.set_title(
        f"compute-optimal {'model size' if which == 'N' else 'tokens'} (bands: bootstrap CI)"
    )
    ax.legend(fontsize=8)
    return fig


def plot_loss_curves(
    curves: Any,
    n_col: str = "n_params_total",
    loss_col: str = "val/loss",
    envelope: FrontierFit | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Loss vs FLOPs for every run, coloured by N (log scale), with the envelope points.

    WSD sweeps (``role``/``parent_run`` columns from ``load_curves``): each trunk is a thick
    solid line and each of its branches a dashed line of the same colour that starts from the
    trunk's point at the branch step (FLOPs count from the trunk's start, so they line up).
    """
    fig, ax = _axes(ax)
    cur = curves[np.isfinite(curves[loss_col].astype(float))]
    norm = LogNorm(vmin=float(cur[n_col].min()), vmax=float(cur[n_col].max()))
    cmap = matplotlib.colormaps["plasma"]
    roles = cur["role"] if "role" in cur else None
    by_run = {name: g for name, g in cur.groupby("run_name")}
    for g in by_run.values():
        color = cmap(norm(float(g[n_col].iloc[0])))
        role = roles[g.index[0]] if roles is not None else "run"
        x, y = g["flops"].to_numpy(float), g[loss_col].to_numpy(float)
        if role == "branch" and g["parent_run"].iloc[0] in by_run:
            trunk = by_run[g["parent_run"].iloc[0]]
            before = trunk[trunk["flops"] < x[0]]
            if len(before):  # join the branch to the trunk's last evaluation before it
                x = np.concatenate([[float(before["flops"].iloc[-1])], x])
                y = np.concatenate([[float(before[loss_col].iloc[-1])], y])
        style = {"trunk": ("-", 2.0), "branch": ("--", 1.0)}.get(role, ("-", 0.8))
        ax.plot(x, y, color=color, ls=style[0], lw=style[1], alpha=0.8, marker=".", ms=3)
    if roles is not None and (roles == "trunk").any():
        ax.plot([], [], color="gray", ls="-", lw=2.0, label="WSD trunk")
        ax.plot([], [], color="gray", ls="--", lw=1.0, label="cooldown branch")
        ax.legend(fontsize=8)
    if envelope is not None:
        ax.scatter(
            [o["C"] for o in envelope.optima],
            [o["L_opt"] for o in envelope.optima],
            s=10,
            color="k",
            zorder=3,
            label="envelope minima",
        )
        ax.legend(fontsize=8)
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label=f"N ({n_col})")
    _logx(ax)
    ax.set_xlabel("C (training FLOPs so far)")
    ax.set_ylabel(f"{loss_col} (nats/token)")
    ax.set_title("loss curves coloured by model size")
    return fig


def plot_parametric_contours(fit: ParametricFit, N: Any, D: Any, ax: Axes | None = None) -> Figure:
    """Contours of L(N, D) with the data points and the compute-optimal frontier (closed form)."""
    fig, ax = _axes(ax)
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    n_grid = np.geomspace(N.min() / 3, N.max() * 3, 120)
    d_grid = np.geomspace(D.min() / 3, D.max() * 3, 120)
    NN, DD = np.meshgrid(n_grid, d_grid)
    LL = fit.predict_loss(NN, DD)
    cs = ax.contour(NN, DD, LL, levels=15, cmap="viridis", linewidths=0.8)
    ax.clabel(cs, fontsize=6, fmt="%.2f")
    ax.scatter(N, D, s=10, color="k", zorder=3, label="runs")
    C = np.geomspace(6 * N.min() * D.min(), 6 * N.max() * D.max() * 10, 100)
    n_opt, d_opt = fit.optimal_allocation(C)
    ax.plot(n_opt, d_opt, color="C3", lw=2, label=f"compute-optimal (a={fit.a:.3f})")
    ax.set_xlim(n_grid[0], n_grid[-1])
    ax.set_ylim(d_grid[0], d_grid[-1])
    _logx(ax)
    ax.set_yscale("log")
    ax.set_xlabel(f"N ({fit.n_convention} parameters)")
    ax.set_ylabel("D (tokens)")
    ax.set_title("L(N, D) = E + A/N^alpha + B/D^beta")
    ax.legend(fontsize=8)
    return fig


def plot_residuals(fit: ParametricFit, N: Any, D: Any, L: Any, ax: Axes | None = None) -> Figure:
    """Residuals log L - log L_hat of the parametric fit against N, coloured by D."""
    fig, ax = _axes(ax)
    N, D, L = (np.asarray(x, dtype=float) for x in (N, D, L))
    r = np.log(L) - np.log(fit.predict_loss(N, D))
    sc = ax.scatter(N, r, c=D, norm=LogNorm(), s=14, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="D (tokens)")
    ax.axhline(0, color="k", lw=0.8)
    for s in (-1, 1):
        ax.axhline(s * fit.huber_delta, color="grey", lw=0.6, ls="--")
    _logx(ax)
    ax.set_xlabel(f"N ({fit.n_convention} parameters)")
    ax.set_ylabel("log L - log L_hat")
    ax.set_title(
        f"parametric fit residuals (dashed: +/- Huber delta); RMS {np.sqrt(np.mean(r**2)):.3g}"
    )
    return fig


def plot_sensitivity(table: dict[str, Any]) -> Figure:
    """Sensitivity table as dots: tokens/param (log) and the exponent a, one row per choice.

    Args:
        table: ``analysis.sensitivity.sensitivity_table`` output.

    Returns:
        Figure with two panels sharing the row labels.
    """
    rows = [r for r in table["rows"] if "error" not in r]
    labels = [
        f"{r['n_convention']}, {r['flop_formula']}, "
        + ("A2" if r["approach"] == "isoflop" else f"A3 δ={r['huber_delta']:g}")
        for r in rows
    ]
    fig = Figure(figsize=(9.0, 1.2 + 0.32 * max(len(rows), 1)), layout="constrained")
    ax_t, ax_a = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    y = np.arange(len(rows))
    colours = ["tab:blue" if r["approach"] == "isoflop" else "tab:orange" for r in rows]
    tpp = [r["tokens_per_param"] for r in rows]
    ax_t.scatter(tpp, y, c=colours)
    if tpp and max(tpp) > 10 * min(tpp):  # log only when the spread needs it (tick labels)
        _logx(ax_t)
    ax_t.set_xlabel(f"tokens/param at C = {table['target_flops']:.2g}")
    ax_a.scatter([r["a"] for r in rows], y, c=colours)
    ax_a.set_xlabel("a (N_opt ∝ C^a)")
    ax_t.set_yticks(y, labels, fontsize=8)
    ax_t.invert_yaxis()
    for ax in (ax_t, ax_a):
        ax.grid(alpha=0.3)
    return fig


def plot_collapse(collapse: dict[str, Any], ax: Any = None) -> Any:
    """Scaling collapse (Qiu et al. 2025): best-run curves, normalised to 1 at the end.

    Compute and reducible loss of each budget's best run (``analysis.collapse``).
    """
    fig, ax = _axes(ax)
    for budget, c in sorted(collapse["curves"].items()):
        ax.plot(c["x"], c["y"], label=f"C = {budget:.2g}")
    ax.set_xlabel("compute / final compute")
    ax.set_ylabel(f"(L - L0) / (L_final - L0), L0 = {collapse['L0']:.3g}")
    ax.set_xlim(0.0, 1.02)
    ax.set_ylim(0.9, min(3.0, ax.get_ylim()[1]))
    ax.set_title(f"Scaling collapse: spread {collapse['spread']:.3g}")
    ax.legend(fontsize=7)
    return fig
