"""Scaling-law fits: Kaplan power laws and Chinchilla approaches 1, 2 (here) and 3 (``parametric``).

Legend (paper symbols, used only in fitting code):
    N      parameters; convention explicit (``"non_embedding"``: Kaplan; ``"total"``: Chinchilla)
    D      training tokens
    C      training FLOPs; formula explicit (``"counted"``: App. F count; ``"6nd"``: 6 N D)
    L      loss, nats/token (final validation loss unless stated)
    N_c, D_c, C_c, alpha_N, alpha_D, alpha_C
           Kaplan et al. 2020 (arXiv:2001.08361) Eqs. 1.1-1.3: L(X) = (X_c / X)^alpha_X; with an
           irreducible term E: L(X) = E + (X_c / X)^alpha_X (Henighan et al. 2020 form)
    a, b   Hoffmann et al. 2022 (arXiv:2203.15556) Sec. 3 / Table 2: N_opt ∝ C^a, D_opt ∝ C^b
    k_N, k_D   coefficients: N_opt = k_N C^a, D_opt = k_D C^b
    k_L, s_L   power law of the minimum loss per budget: L_opt(C) = k_L C^s_L (s_L < 0)
    E, A, B, alpha, beta   approach 3 (``analysis.parametric``), Hoffmann et al. 2022 Eq. 2

Approach 1 (Hoffmann et al. 2022 Sec. 3.1): lower envelope of loss vs FLOPs over every logged
point of every curve; bins of log C, minimum-loss point per bin gives (C, N_opt, D_opt).
Approach 2 (Sec. 3.2): per IsoFLOP budget a parabola of L in log N; its vertex gives N_opt.
Exponents a, b: least squares of log N_opt, log D_opt on log C (Sec. 3.1/3.2).
Uncertainty: nonparametric bootstrap over runs (rows = runs, whole curves for approach 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analysis.common import (
    Estimate,
    add_cis,
    bootstrap_record,
    check_convention,
    check_distinct,
    check_level,
    cis_from_json,
    estimate_of,
    percentile_ci,
    positive_array,
    same_length,
    sample_dicts,
    samples_from_json,
    to_jsonable,
)
from analysis.parametric import ParametricFit, closed_form_optimum, fit_parametric

__all__ = [
    "FrontierFit",
    "KaplanFit",
    "ParametricFit",
    "PowerLawFit",
    "closed_form_optimum",
    "fit_envelope",
    "fit_from_dict",
    "fit_isoflop",
    "fit_kaplan",
    "fit_parametric",
    "fit_power_law",
    "budget_groups",
]

BUDGET_BIN_DEX = 0.1  # without budget labels, IsoFLOP groups = log10 C rounded to 0.1 dex
_FRONTIER_KEYS = ("a", "b", "k_N", "k_D", "k_L", "s_L")  # FrontierFit's fitted constants


def _linfit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of y on x."""
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def _positive_ndcl(
    N: Any, D: Any, C: Any, L: Any, min_points: int, fit: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """N, D, C, L checked by ``positive_array`` (in that order) with the same minimum and name."""
    return (
        positive_array("N", N, min_points, fit),
        positive_array("D", D, min_points, fit),
        positive_array("C", C, min_points, fit),
        positive_array("L", L, min_points, fit),
    )


def budget_groups(
    C: np.ndarray, budget: np.ndarray | None = None, bin_dex: float = BUDGET_BIN_DEX
) -> np.ndarray:
    """IsoFLOP group label per row.

    The budget label when given (all finite), else log10 C rounded to ``bin_dex`` (a group's
    label is then 10 ** (rounded log10 C)).
    """
    if budget is not None:
        budget = np.asarray(budget, dtype=float)
        if np.all(np.isfinite(budget)):
            return budget
    return 10.0 ** (np.round(np.log10(C) / bin_dex) * bin_dex)


# ---------------------------------------------------------------------------------------------
# Compute-frontier fits (approaches 1 and 2) share one result type
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrontierFit:
    """N_opt(C) = k_N C^a, D_opt(C) = k_D C^b and L_opt(C) = k_L C^s_L from per-budget optima.

    Attributes:
        approach: ``"isoflop"`` (approach 2) or ``"envelope"`` (approach 1).
        a, b: exponents of N_opt and D_opt in C.
        k_N, k_D: coefficients (N_opt = k_N C^a, D_opt = k_D C^b).
        k_L, s_L: power law of the per-budget minimum loss (nats/token).
        optima: per budget (approach 2) or per C bin (approach 1): dicts with ``C``, ``N_opt``,
            ``D_opt``, ``L_opt``, ``used`` and diagnostics (``curvature``, ``concave``,
            ``at_edge``, ``extrapolated``, ``n_runs`` for approach 2; ``run_name``,
            ``edge_model`` for approach 1).
        n_points: runs used; n_optima_used: optima entering the exponent fits.
        n_convention: ``"non_embedding"`` or ``"total"``; recorded in the result; the N and C
            conventions.
        flop_formula: ``"counted"`` or ``"6nd"``; recorded in the result.
        d_opt_method: how D_opt was obtained (``"C/(6 N_opt)"`` or ``"tokens"``).
        grouping: how runs were grouped into budgets / bins.
        flags: human-readable warnings (edge minima, concave parabolas, ...).
        seed, n_bootstrap, ci_level, ci, samples: bootstrap over runs.
        selection: note on how rows were selected (recorded); provenance.
        meta: provenance stored with the result (shape rule, source, ...).
    """

    approach: str
    a: float
    b: float
    k_N: float
    k_D: float
    k_L: float
    s_L: float
    optima: tuple[dict[str, Any], ...]
    n_points: int
    n_optima_used: int
    n_convention: str
    flop_formula: str
    d_opt_method: str
    grouping: str
    flags: tuple[str, ...] = ()
    seed: int = 0
    n_bootstrap: int = 0
    ci_level: float = 0.95
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[str, tuple[float, ...]] = field(default_factory=dict, repr=False)
    selection: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def n_opt(self, C: Any) -> np.ndarray:
        """N_opt at FLOPs C."""
        return self.k_N * np.asarray(C, dtype=float) ** self.a

    def d_opt(self, C: Any) -> np.ndarray:
        """D_opt at FLOPs C."""
        return self.k_D * np.asarray(C, dtype=float) ** self.b

    def loss_opt(self, C: Any) -> np.ndarray:
        """Power-law fit of the per-budget minimum loss, L_opt(C) = k_L C^s_L."""
        return self.k_L * np.asarray(C, dtype=float) ** self.s_L

    def estimate(self, name: str) -> Estimate:
        """Point estimate and CI of ``a``, ``b``, ``k_N``, ``k_D``, ``k_L`` or ``s_L``."""
        return estimate_of(self, name)

    def sample_params(self) -> list[dict[str, float]]:
        """Bootstrap parameter sets (a, b, k_N, k_D, k_L, s_L), one dict per resample."""
        return sample_dicts(self.samples, _FRONTIER_KEYS)

    def report(self) -> str:
        """Human-readable multi-line summary."""
        title = {
            "isoflop": "Chinchilla approach 2 (IsoFLOP parabolas)",
            "envelope": "Chinchilla approach 1 (lower envelope of loss curves)",
        }[self.approach]
        lines = [
            title,
            f"  N = {self.n_convention} params, C = {self.flop_formula}; D_opt = "
            f"{self.d_opt_method}",
            f"  {self.grouping}; runs: {self.n_points}; optima used: {self.n_optima_used} of "
            f"{len(self.optima)}",
            f"  a (N_opt ~ C^a) = {self.estimate('a')}",
            f"  b (D_opt ~ C^b) = {self.estimate('b')}",
            f"  L_opt(C) = {self.k_L:.4g} * C^{self.s_L:.4f}",
        ]
        if self.n_bootstrap:
            lines.append(
                f"  CIs: {100 * self.ci_level:g}% percentile bootstrap over runs, "
                f"{self.n_bootstrap} resamples, seed {self.seed}"
            )
        lines.append("  optima:")
        for o in self.optima:
            mark = "" if o.get("used", True) else "  (not used)"
            lines.append(
                f"    C={o['C']:.3e}  N_opt={o['N_opt']:.4g}  D_opt={o['D_opt']:.4g}  "
                f"L_opt={o['L_opt']:.4f}{mark}"
            )
        lines += [f"  flag: {f}" for f in self.flags]
        if self.selection:
            lines.append(f"  selection: {self.selection}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict with ``<name>_ci`` beside each estimate and ``optima`` per budget."""
        d: dict[str, Any] = {
            "approach": self.approach,
            "a": self.a,
            "b": self.b,
            "k_N": self.k_N,
            "k_D": self.k_D,
            "k_L": self.k_L,
            "s_L": self.s_L,
            "optima": list(self.optima),
            "n_points": self.n_points,
            "n_optima_used": self.n_optima_used,
            "n_convention": self.n_convention,
            "flop_formula": self.flop_formula,
            "d_opt_method": self.d_opt_method,
            "grouping": self.grouping,
            "flags": list(self.flags),
            **bootstrap_record(self),
        }
        return to_jsonable(add_cis(d, self.ci))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrontierFit:
        """Inverse of ``to_dict``."""
        ci = cis_from_json(d)
        return cls(
            approach=d["approach"],
            a=float(d["a"]),
            b=float(d["b"]),
            k_N=float(d["k_N"]),
            k_D=float(d["k_D"]),
            k_L=float(d["k_L"]),
            s_L=float(d["s_L"]),
            optima=tuple(d["optima"]),
            n_points=int(d["n_points"]),
            n_optima_used=int(d["n_optima_used"]),
            n_convention=d["n_convention"],
            flop_formula=d["flop_formula"],
            d_opt_method=d["d_opt_method"],
            grouping=d["grouping"],
            flags=tuple(d.get("flags", [])),
            seed=int(d.get("seed", 0)),
            n_bootstrap=int(d.get("n_bootstrap", 0)),
            ci_level=float(d.get("ci_level", 0.95)),
            ci=ci,
            samples=samples_from_json(d),
            selection=d.get("selection", ""),
            meta=d.get("meta", {}),
        )


def _frontier_laws(optima: list[dict[str, Any]]) -> dict[str, float]:
    used = [o for o in optima if o["used"]]
    if len(used) < 2:
        return dict.fromkeys(_FRONTIER_KEYS, math.nan)
    lc = np.log([o["C"] for o in used])
    a, ia = _linfit(lc, np.log([o["N_opt"] for o in used]))
    b, ib = _linfit(lc, np.log([o["D_opt"] for o in used]))
    l_opt = np.array([o["L_opt"] for o in used])
    if np.all(l_opt > 0):
        s, il = _linfit(lc, np.log(l_opt))
    else:  # a vertex below zero loss (wild parabola in a resample): no loss law
        s, il = math.nan, math.nan
    return {"a": a, "b": b, "k_N": _exp(ia), "k_D": _exp(ib), "k_L": _exp(il), "s_L": s}


def _exp(x: float) -> float:
    """``math.exp`` that gives inf instead of OverflowError (extreme optima, wild resamples)."""
    return math.exp(x) if not x > 709.0 else math.inf


def _finite_laws(optima: list[dict[str, Any]], approach: str) -> dict[str, float]:
    """``_frontier_laws`` of the full data; a law that is not finite is a clear ValueError."""
    laws = _frontier_laws(optima)
    bad = {k: laws[k] for k in ("a", "b", "k_N", "k_D") if not math.isfinite(laws[k])}
    if bad:
        raise ValueError(
            f"approach {approach}: the optima give no finite power law ({bad}); the N, D or C "
            "values span an implausible range: check their units"
        )
    return laws


def _bootstrap_summary(fit: FrontierFit, draws: list[dict[str, float]]) -> FrontierFit:
    samples = {k: tuple(float(d[k]) for d in draws) for k in _FRONTIER_KEYS}
    ci = {k: percentile_ci(v, fit.ci_level) for k, v in samples.items()}
    return replace(fit, samples=samples, ci=ci)


# ---- approach 2 ------------------------------------------------------------------------------


def _isoflop_optima(logN, logD, C, L, groups, window, d_method) -> list[dict[str, Any]]:
    optima = []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        idx = idx[np.argsort(logN[idx])]
        if len(np.unique(logN[idx])) < 3:
            continue
        imin = int(np.argmin(L[idx]))
        sel = idx
        if window is not None and window < len(idx):
            lo = min(max(imin - window // 2, 0), len(idx) - window)
            sel = idx[lo : lo + window]
        x = logN[sel]
        if len(np.unique(x)) < 3:  # e.g. a bootstrap resample repeating one model
            continue
        p2, p1, p0 = np.polyfit(x, L[sel], 2)
        concave = not p2 > 0
        x_opt = -p1 / (2 * p2) if not concave else float(x[np.argmin(L[sel])])
        extrapolated = bool(x_opt < x.min() or x_opt > x.max())
        C_g = float(np.exp(np.mean(np.log(C[idx]))))
        N_opt = math.exp(x_opt)
        if d_method == "C/(6 N_opt)":
            D_opt = C_g / (6.0 * N_opt)
        else:  # from the runs' own tokens: log D is linear in log N within a budget
            s, i = _linfit(logN[idx], logD[idx])
            D_opt = math.exp(i + s * x_opt)
        optima.append(
            {
                "flops_budget": float(g),
                "C": C_g,
                "N_opt": N_opt,
                "D_opt": D_opt,
                "L_opt": float(p0 + p1 * x_opt + p2 * x_opt**2),
                "curvature": float(p2),
                "concave": concave,
                "at_edge": imin in (0, len(idx) - 1),
                "extrapolated": extrapolated,
                "n_runs": len(idx),
                "coeffs": [float(p2), float(p1), float(p0)],
                "logN_range": [float(x.min()), float(x.max())],
                "used": not (concave or extrapolated),
            }
        )
    return optima


def fit_isoflop(
    N: Any,
    D: Any,
    C: Any,
    L: Any,
    *,
    n_convention: str,
    flop_formula: str,
    budget: Any = None,
    bin_dex: float = BUDGET_BIN_DEX,
    window: int | None = None,
    d_opt_method: str | None = None,
    n_bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
    selection: str = "",
    meta: dict[str, Any] | None = None,
) -> FrontierFit:
    """Chinchilla approach 2: IsoFLOP parabolas, then N_opt ∝ C^a and D_opt ∝ C^b.

    Per budget (needs >= 3 distinct N), fit L = p2 (log N)^2 + p1 log N + p0 (to the ``window``
    points around the observed minimum, or all points when ``window`` is None); the vertex
    gives N_opt and L_opt. A budget is NOT used for the exponents when the parabola is concave
    (p2 <= 0: no minimum) or its vertex lies outside the sampled N range (extrapolation); a
    budget whose observed minimum is at the edge of its N grid is flagged. C of a budget is the
    geometric mean of its runs' C. D_opt: ``"C/(6 N_opt)"`` (default for ``flop_formula="6nd"``)
    or ``"tokens"`` (default for ``"counted"``: log D of the budget's runs, linear in log N,
    evaluated at N_opt).

    Args:
        N: parameters N (n,), in the ``n_convention`` convention; per run (n,): parameters, tokens,
            FLOPs, final loss (nats/token).
        D: training tokens D (n,).
        C: training FLOPs C (n,), following ``flop_formula``.
        L: loss (n,), nats/token.
        n_convention: ``"non_embedding"`` or ``"total"``; recorded in the result; recorded
            conventions (C must already follow the formula).
        flop_formula: ``"counted"`` or ``"6nd"``; recorded in the result.
        budget: per-run IsoFLOP label (n,), or None to group by log10 C rounded to ``bin_dex``.
        bin_dex: width (dex) of the log10 C bins used when ``budget`` is None.
        window: points around the minimum used for each parabola (>= 3), or None for all.
        d_opt_method: ``"C/(6 N_opt)"`` or ``"tokens"``.
        n_bootstrap: bootstrap resamples over runs (0 = none); bootstrap over runs, resampled within
            each budget.
        seed: bootstrap seed.
        ci_level: CI coverage, e.g. 0.95.
        selection: note on how rows were selected (recorded); provenance.
        meta: provenance stored with the result (shape rule, source, ...).

    Raises:
        ValueError: NaN/non-positive inputs, fewer than 6 distinct (N, D) runs, < 2 usable budgets,
            a bad window or d_opt_method.
    """
    check_convention(n_convention, flop_formula)
    check_level(ci_level)
    N, D, C, L = _positive_ndcl(N, D, C, L, 6, "isoflop")
    same_length(N=N, D=D, C=C, L=L)
    check_distinct(6, "isoflop", N=N, D=D)
    if window is not None and window < 3:
        raise ValueError(
            f"window must be >= 3 points (a parabola has 3 coefficients), got {window}"
        )
    d_opt_method = d_opt_method or ("C/(6 N_opt)" if flop_formula == "6nd" else "tokens")
    if d_opt_method not in ("C/(6 N_opt)", "tokens"):
        raise ValueError(f"d_opt_method must be 'C/(6 N_opt)' or 'tokens', got {d_opt_method!r}")
    budget_arr = None if budget is None else np.asarray(budget, dtype=float)
    groups = budget_groups(C, budget_arr, bin_dex)
    labelled = budget_arr is not None and np.all(np.isfinite(budget_arr))
    grouping = "budgets from labels" if labelled else f"budgets = log10 C rounded to {bin_dex} dex"
    logN, logD = np.log(N), np.log(D)
    optima = _isoflop_optima(logN, logD, C, L, groups, window, d_opt_method)
    used = [o for o in optima if o["used"]]
    if len(used) < 2:
        raise ValueError(
            "approach 2 needs >= 2 usable budgets (>= 3 distinct N, convex parabola, vertex "
            f"inside the N grid); {len(optima)} budget(s) have >= 3 distinct N and "
            f"{len(used)} of them are usable"
        )
    flags = []
    for o in optima:
        if o["concave"]:
            flags.append(
                f"budget C={o['C']:.3g}: concave parabola (curvature {o['curvature']:.3g} <= "
                "0), no minimum; not used"
            )
        elif o["extrapolated"]:
            flags.append(
                f"budget C={o['C']:.3g}: parabola vertex outside the sampled N range; not "
                "used (no extrapolation)"
            )
        if o["at_edge"]:
            flags.append(
                f"budget C={o['C']:.3g}: lowest loss at the edge of its N grid; widen the grid"
            )
    fit = FrontierFit(
        approach="isoflop",
        **_finite_laws(optima, "2 (isoflop)"),
        optima=tuple(optima),
        n_points=len(N),
        n_optima_used=len(used),
        n_convention=n_convention,
        flop_formula=flop_formula,
        d_opt_method=d_opt_method,
        grouping=grouping
        + (f", {window} points around the minimum" if window else ", all points per budget"),
        flags=tuple(flags),
        seed=seed,
        n_bootstrap=n_bootstrap,
        ci_level=ci_level,
        selection=selection,
        meta={**(meta or {}), "bin_dex": bin_dex, "window": window},
    )
    if n_bootstrap <= 0:
        return fit
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    draws = []
    for _ in range(n_bootstrap):
        idx = np.concatenate([rng.choice(m, len(m)) for m in members])
        opt = _isoflop_optima(
            logN[idx], logD[idx], C[idx], L[idx], groups[idx], window, d_opt_method
        )
        draws.append(_frontier_laws(opt))
    return _bootstrap_summary(fit, draws)


# ---- approach 1 ------------------------------------------------------------------------------


def _envelope_optima(run_id, logC, N, D, L, n_bins, drop_edge) -> list[dict[str, Any]]:
    edges = np.linspace(logC.min(), logC.max() + 1e-12, n_bins + 1)
    which = np.clip(np.searchsorted(edges, logC, side="right") - 1, 0, n_bins - 1)
    n_min, n_max = N.min(), N.max()
    optima = []
    for k in range(n_bins):
        idx = np.flatnonzero(which == k)
        if idx.size == 0:
            continue
        i = idx[np.argmin(L[idx])]
        edge = bool(N[i] == n_min or N[i] == n_max)
        optima.append(
            {
                "C": float(np.exp(logC[i])),
                "N_opt": float(N[i]),
                "D_opt": float(D[i]),
                "L_opt": float(L[i]),
                "run_name": str(run_id[i]),
                "edge_model": edge,
                "used": not (drop_edge and edge),
            }
        )
    return optima


def fit_envelope(
    run_id: Any,
    N: Any,
    D: Any,
    C: Any,
    L: Any,
    *,
    n_convention: str,
    flop_formula: str,
    n_bins: int = 30,
    drop_edge_models: bool = True,
    n_bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
    selection: str = "",
    meta: dict[str, Any] | None = None,
) -> FrontierFit:
    """Chinchilla approach 1: lower envelope of loss vs FLOPs over all logged points of all runs.

    ``n_bins`` log-spaced bins of C between the smallest and largest logged C; in each bin the
    minimum-loss point gives (C, N_opt = its run's N, D_opt = tokens seen at that point, L_opt).
    A bin whose winner is the smallest or largest model of the sweep only says "the optimum is
    at least/at most this N" and is not used when ``drop_edge_models`` (the default). Then
    N_opt ∝ C^a, D_opt ∝ C^b by least squares in log-log. Caveat: a point from the middle of a
    run was trained with a schedule longer than that point (Hoffmann et al. 2022 smooth over it).

    Args:
        run_id: run name per logged point (n,), used for the bootstrap over runs.
        N: parameters N (n,), in the ``n_convention`` convention; per logged point (n,): the run's
            parameters, tokens so far, FLOPs so far, loss.
        D: training tokens D (n,).
        C: training FLOPs C (n,), following ``flop_formula``.
        L: loss (n,), nats/token.
        n_convention: ``"non_embedding"`` or ``"total"``; recorded in the result; recorded
            conventions.
        flop_formula: ``"counted"`` or ``"6nd"``; recorded in the result.
        n_bins: log-spaced C bins.
        drop_edge_models: do not use bins won by the smallest or largest model.
        n_bootstrap: bootstrap resamples over runs (0 = none); bootstrap over runs (whole curves
            resampled).
        seed: bootstrap seed.
        ci_level: CI coverage, e.g. 0.95.
        selection: note on how rows were selected (recorded); provenance.
        meta: provenance stored with the result (shape rule, source, ...).

    Raises:
        ValueError: NaN/non-positive inputs, < 2 runs or 10 distinct (N, D) points, < 3 usable
            bins.
    """
    check_convention(n_convention, flop_formula)
    check_level(ci_level)
    N, D, C, L = _positive_ndcl(N, D, C, L, 10, "envelope")
    run_id = np.asarray(run_id).astype(str)
    same_length(run_id=run_id, N=N, D=D, C=C, L=L)
    check_distinct(10, "envelope", N=N, D=D)
    runs = np.unique(run_id)
    if len(runs) < 2:
        raise ValueError(f"approach 1 needs curves from >= 2 runs, got {len(runs)}")
    logC = np.log(C)
    optima = _envelope_optima(run_id, logC, N, D, L, n_bins, drop_edge_models)
    used = [o for o in optima if o["used"]]
    if len(used) < 3:
        raise ValueError(
            f"approach 1 needs >= 3 C bins won by an interior model, got {len(used)}; add "
            "model sizes "
            "or set drop_edge_models=False"
        )
    n_edge = sum(1 for o in optima if o["edge_model"])
    flags = (
        [
            f"{n_edge} of {len(optima)} bins are won by the smallest or largest model"
            + (" and are not used" if drop_edge_models else "")
        ]
        if n_edge
        else []
    )
    fit = FrontierFit(
        approach="envelope",
        **_finite_laws(optima, "1 (envelope)"),
        optima=tuple(optima),
        n_points=len(runs),
        n_optima_used=len(used),
        n_convention=n_convention,
        flop_formula=flop_formula,
        d_opt_method="tokens",
        grouping=f"{n_bins} log-spaced C bins over {len(C)} logged points",
        flags=tuple(flags),
        seed=seed,
        n_bootstrap=n_bootstrap,
        ci_level=ci_level,
        selection=selection,
        meta=dict(meta or {}),
    )
    if n_bootstrap <= 0:
        return fit
    rng = np.random.default_rng(seed)
    rows_of = {r: np.flatnonzero(run_id == r) for r in runs}
    draws = []
    for _ in range(n_bootstrap):
        pick = rng.choice(runs, len(runs))
        idx = np.concatenate([rows_of[r] for r in pick])
        ids = np.concatenate([np.full(len(rows_of[r]), f"{r}#{j}") for j, r in enumerate(pick)])
        opt = _envelope_optima(ids, logC[idx], N[idx], D[idx], L[idx], n_bins, drop_edge_models)
        draws.append(
            _frontier_laws(opt)
            if sum(o["used"] for o in opt) >= 3
            else dict.fromkeys(_FRONTIER_KEYS, math.nan)
        )
    return _bootstrap_summary(fit, draws)


# ---------------------------------------------------------------------------------------------
# Kaplan power laws
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLawFit:
    """L(X) = E + (X_c / X)^alpha (Kaplan et al. 2020 Eqs. 1.1-1.3 with E = 0).

    Attributes:
        x_name: ``"N"``, ``"D"`` or ``"C"``.
        X_c, alpha, E: fitted constants (E = 0 without an irreducible term).
        irreducible: whether E was fitted.
        n_points: points fitted; points: the (X, L) pairs fitted.
        ci, samples: bootstrap over runs.
    """

    x_name: str
    X_c: float
    alpha: float
    E: float
    irreducible: bool
    n_points: int
    points: tuple[tuple[float, float], ...] = ()
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[str, tuple[float, ...]] = field(default_factory=dict, repr=False)

    def predict(self, X: Any) -> np.ndarray:
        """L at X (nats/token)."""
        return self.E + (self.X_c / np.asarray(X, dtype=float)) ** self.alpha

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary; ``from_dict`` inverts it."""
        d = {
            "x_name": self.x_name,
            "X_c": self.X_c,
            "alpha": self.alpha,
            "E": self.E,
            "irreducible": self.irreducible,
            "n_points": self.n_points,
            "points": self.points,
            "samples": {k: list(v) for k, v in self.samples.items()},
        }
        return to_jsonable(add_cis(d, self.ci))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PowerLawFit:
        """Rebuild from ``to_dict()`` output."""
        return cls(
            x_name=d["x_name"],
            X_c=float(d["X_c"]),
            alpha=float(d["alpha"]),
            E=float(d["E"]),
            irreducible=bool(d["irreducible"]),
            n_points=int(d["n_points"]),
            points=tuple(tuple(p) for p in d.get("points", [])),
            ci=cis_from_json(d),
            samples=samples_from_json(d),
        )


def _power_law_params(
    X: np.ndarray, L: np.ndarray, irreducible: bool
) -> tuple[float, float, float]:
    s, i = _linfit(np.log(X), np.log(L))  # log L = alpha log X_c - alpha log X
    alpha = -s
    # alpha <= 0 (loss not falling with X) or an astronomically large X_c: no usable law
    X_c = math.exp(i / alpha) if alpha > 0 and abs(i / alpha) < 700 else math.nan
    if not irreducible:
        return X_c, alpha, 0.0
    from scipy.optimize import least_squares

    lx, ll = np.log(X), np.log(L)

    def resid(p):  # p = (log X_c, alpha, log E); residual in log L
        return np.logaddexp(p[2], p[1] * (p[0] - lx)) - ll

    best = None
    for frac in (0.3, 0.6, 0.9):
        p0 = np.array(
            [
                math.log(X_c) if np.isfinite(X_c) else lx.mean(),
                max(alpha, 0.05),
                math.log(frac * L.min()),
            ]
        )
        r = least_squares(resid, p0, method="lm")
        if best is None or r.cost < best.cost:
            best = r
    return float(math.exp(best.x[0])), float(best.x[1]), float(math.exp(best.x[2]))


def fit_power_law(X: Any, L: Any, x_name: str, irreducible: bool = False) -> PowerLawFit:
    """Fit L = E + (X_c/X)^alpha (least squares in log L; E = 0 unless ``irreducible``).

    Raises:
        ValueError: NaN/non-positive input, fewer than 3 points (4 with ``irreducible``).
    """
    need = 4 if irreducible else 3
    X = positive_array(x_name, X, need, f"L({x_name})")
    L = positive_array("L", L, need, f"L({x_name})")
    same_length(X=X, L=L)
    check_distinct(need, f"L({x_name})", **{x_name: X})
    X_c, alpha, E = _power_law_params(X, L, irreducible)
    return PowerLawFit(
        x_name, X_c, alpha, E, irreducible, len(X), tuple(zip(X.tolist(), L.tolist(), strict=True))
    )


def _frontier_min(X: np.ndarray, L: np.ndarray, dex: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Minimum L per distinct X (or per ``dex``-wide log10 bin).

    With ``dex`` (the compute frontier) only points that beat every smaller X are kept.
    """
    key = X if dex is None else np.round(np.log10(X) / dex)
    xs, ls = [], []
    for k in np.unique(key):
        idx = np.flatnonzero(key == k)
        i = idx[np.argmin(L[idx])]
        xs.append(X[i])
        ls.append(L[i])
    order = np.argsort(xs)
    xs, ls = np.asarray(xs)[order], np.asarray(ls)[order]
    if dex is not None:  # compute frontier: keep only points below every cheaper point
        keep = ls <= np.minimum.accumulate(ls)
        xs, ls = xs[keep], ls[keep]
    return xs, ls


@dataclass(frozen=True)
class KaplanFit:
    """Kaplan et al. 2020 power laws L(N), L(D), L(C) (each may be None with a reason).

    L(N): per distinct N, the lowest final loss (best-trained run) -- Eq. 1.1.
    L(D): per distinct D, the lowest final loss over N -- Eq. 1.2.
    L(C): the compute frontier: per 0.1-dex bin of C the lowest loss, keeping points that beat
    every cheaper one -- Eq. 1.3 (Kaplan fit L(C_min) on the frontier of training curves; here
    final losses of runs).
    """

    L_N: PowerLawFit | None
    L_D: PowerLawFit | None
    L_C: PowerLawFit | None
    n_points: int
    n_convention: str
    flop_formula: str
    irreducible: bool
    reasons: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    n_bootstrap: int = 0
    ci_level: float = 0.95
    selection: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    approach = "kaplan"

    def report(self) -> str:
        """Human-readable summary of the fit with CIs."""
        lines = [
            f"Kaplan et al. 2020 power laws; N = {self.n_convention} params, C = "
            f"{self.flop_formula}; {self.n_points} runs"
        ]
        for name, law in (("L(N)", self.L_N), ("L(D)", self.L_D), ("L(C)", self.L_C)):
            if law is None:
                lines.append(f"  {name}: not fitted ({self.reasons.get(name, '')})")
                continue
            ci = law.ci.get("alpha")
            ci_s = f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci and not math.isnan(ci[0]) else ""
            e_s = f"{law.E:.4g} + " if law.irreducible else ""
            lines.append(
                f"  {name} = {e_s}({law.X_c:.4g}/{law.x_name})^{law.alpha:.4f}{ci_s}  "
                f"({law.n_points} points)"
            )
        if self.selection:
            lines.append(f"  selection: {self.selection}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary; ``from_dict`` inverts it."""
        d = {
            "approach": "kaplan",
            "n_points": self.n_points,
            "n_convention": self.n_convention,
            "flop_formula": self.flop_formula,
            "irreducible": self.irreducible,
            "reasons": self.reasons,
            "seed": self.seed,
            "n_bootstrap": self.n_bootstrap,
            "ci_level": self.ci_level,
            "selection": self.selection,
            "meta": self.meta,
        }
        for key, law in (("L_N", self.L_N), ("L_D", self.L_D), ("L_C", self.L_C)):
            d[key] = None if law is None else law.to_dict()
            if law is not None:  # flat paper names for scripts
                sym = {"L_N": "N", "L_D": "D", "L_C": "C"}[key]
                d[f"alpha_{sym}"] = law.alpha
                d[f"{sym}_c"] = law.X_c
                if "alpha" in law.ci:
                    d[f"alpha_{sym}_ci"] = list(law.ci["alpha"])
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KaplanFit:
        """Rebuild from ``to_dict()`` output."""

        def law(x):
            return None if x is None else PowerLawFit.from_dict(x)

        return cls(
            L_N=law(d.get("L_N")),
            L_D=law(d.get("L_D")),
            L_C=law(d.get("L_C")),
            n_points=int(d["n_points"]),
            n_convention=d["n_convention"],
            flop_formula=d["flop_formula"],
            irreducible=bool(d["irreducible"]),
            reasons=d.get("reasons", {}),
            seed=int(d.get("seed", 0)),
            n_bootstrap=int(d.get("n_bootstrap", 0)),
            ci_level=float(d.get("ci_level", 0.95)),
            selection=d.get("selection", ""),
            meta=d.get("meta", {}),
        )


def _kaplan_laws(N, D, C, L, irreducible):
    out: dict[str, Any] = {}
    for name, X, dex in (("L(N)", N, None), ("L(D)", D, None), ("L(C)", C, 0.1)):
        xs, ls = _frontier_min(X, L, dex)
        try:
            out[name] = fit_power_law(xs, ls, name[2], irreducible)
        except ValueError as e:
            out[name] = str(e)
    return out


def fit_kaplan(
    N: Any,
    D: Any,
    C: Any,
    L: Any,
    *,
    n_convention: str,
    flop_formula: str,
    irreducible: bool = False,
    n_bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
    selection: str = "",
    meta: dict[str, Any] | None = None,
) -> KaplanFit:
    """Kaplan et al. 2020 L(N), L(D) and L(C) power laws from final losses of runs.

    Args:
        N: parameters N (n,), in the ``n_convention`` convention; per run (n,).
        D: training tokens D (n,).
        C: training FLOPs C (n,), following ``flop_formula``.
        L: loss (n,), nats/token.
        n_convention: ``"non_embedding"`` or ``"total"``; recorded in the result; conventions
            (Kaplan used non-embedding N).
        flop_formula: ``"counted"`` or ``"6nd"``; recorded in the result.
        selection: note on how rows were selected (recorded).
        meta: provenance stored with the result.
        irreducible: also fit an irreducible loss E in each law.
        n_bootstrap: bootstrap resamples over runs (0 = none); bootstrap over runs.
        seed: bootstrap seed.
        ci_level: CI coverage, e.g. 0.95.

    Raises:
        ValueError: NaN/non-positive inputs, fewer than 3 distinct (N, D) runs, or none of the
            three laws has enough distinct points (3, or 4 with ``irreducible``).
    """
    check_convention(n_convention, flop_formula)
    check_level(ci_level)
    N, D, C, L = _positive_ndcl(N, D, C, L, 3, "kaplan")
    same_length(N=N, D=D, C=C, L=L)
    check_distinct(3, "kaplan", N=N, D=D)
    laws = _kaplan_laws(N, D, C, L, irreducible)
    if all(isinstance(v, str) for v in laws.values()):
        raise ValueError(f"no Kaplan law could be fitted: {laws}")
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws: dict[str, list[tuple[float, float, float]]] = {k: [] for k in laws}
        for _ in range(n_bootstrap):
            idx = rng.integers(0, len(N), len(N))
            for k in laws:
                xs, ls = _frontier_min(
                    (N, D, C)["NDC".index(k[2])][idx], L[idx], 0.1 if k == "L(C)" else None
                )
                try:
                    if len(xs) < (4 if irreducible else 3):
                        raise ValueError
                    draws[k].append(_power_law_params(xs, ls, irreducible))
                except (ValueError, RuntimeError, OverflowError, np.linalg.LinAlgError):
                    draws[k].append((math.nan, math.nan, math.nan))
        for k, law in laws.items():
            if isinstance(law, str):
                continue
            arr = np.asarray(draws[k])
            samples = {"X_c": tuple(arr[:, 0]), "alpha": tuple(arr[:, 1]), "E": tuple(arr[:, 2])}
            laws[k] = replace(
                law, samples=samples, ci={n: percentile_ci(v, ci_level) for n, v in samples.items()}
            )
    return KaplanFit(
        L_N=None if isinstance(laws["L(N)"], str) else laws["L(N)"],
        L_D=None if isinstance(laws["L(D)"], str) else laws["L(D)"],
        L_C=None if isinstance(laws["L(C)"], str) else laws["L(C)"],
        n_points=len(N),
        n_convention=n_convention,
        flop_formula=flop_formula,
        irreducible=irreducible,
        reasons={k: v for k, v in laws.items() if isinstance(v, str)},
        seed=seed,
        n_bootstrap=n_bootstrap,
        ci_level=ci_level,
        selection=selection,
        meta=dict(meta or {}),
    )


def fit_from_dict(d: dict[str, Any]) -> ParametricFit | FrontierFit | KaplanFit:
    """Rebuild any fit from its ``to_dict()`` (dispatch on ``approach``).

    Raises:
        ValueError: unknown approach.
    """
    approach = d.get("approach")
    if approach == "parametric":
        return ParametricFit.from_dict(d)
    if approach in ("isoflop", "envelope"):
        return FrontierFit.from_dict(d)
    if approach == "kaplan":
        return KaplanFit.from_dict(d)
    raise ValueError(
        f"unknown fit approach {approach!r}; expected parametric, isoflop, envelope or kaplan"
    )
