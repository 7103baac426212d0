"""Chinchilla approaches 1 and 2: the compute frontier N_opt(C), D_opt(C), L_opt(C).

Legend (paper symbols, used only in fitting code):
    N      parameters; convention explicit (``"non_embedding"``: Kaplan; ``"total"``: Chinchilla)
    D      training tokens
    C      training FLOPs; formula explicit (``"counted"``: App. F count; ``"6nd"``: 6 N D)
    L      loss, nats/token (final validation loss unless stated)
    a, b   Hoffmann et al. 2022 (arXiv:2203.15556) Sec. 3 / Table 2: N_opt ∝ C^a, D_opt ∝ C^b
    k_N, k_D   coefficients: N_opt = k_N C^a, D_opt = k_D C^b
    k_L, s_L   power law of the minimum loss per budget: L_opt(C) = k_L C^s_L (s_L < 0)

Approach 1 (Hoffmann et al. 2022 Sec. 3.1): lower envelope of loss vs FLOPs over every logged
point of every curve; bins of log C, minimum-loss point per bin gives (C, N_opt, D_opt).
Approach 2 (Sec. 3.2): per IsoFLOP budget a parabola of L in log N; its vertex gives N_opt.
Exponents a, b: least squares of log N_opt, log D_opt on log C (Sec. 3.1/3.2).
Uncertainty: nonparametric bootstrap over runs (rows = runs, whole curves for approach 1); both
approaches build their ``FrontierFit`` and its bootstrap in ``build_frontier_fit``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analysis.estimates import (
    Estimate,
    add_cis,
    bootstrap_fields_from_json,
    bootstrap_record,
    cis_from_json,
    estimate_of,
    percentile_ci,
    sample_dicts,
    samples_from_json,
    to_jsonable,
)
from analysis.inputs import (
    check_convention,
    check_distinct,
    check_level,
    positive_ndcl,
    same_length,
)

BUDGET_BIN_DEX = 0.1  # without budget labels, IsoFLOP groups = log10 C rounded to 0.1 dex
_FRONTIER_KEYS = ("a", "b", "k_N", "k_D", "k_L", "s_L")  # FrontierFit's fitted constants


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of y on x (also Kaplan's log-log fits)."""
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


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
            ci=ci,
            samples=samples_from_json(d),
            **bootstrap_fields_from_json(d),
        )


def _frontier_laws(optima: list[dict[str, Any]]) -> dict[str, float]:
    used = [o for o in optima if o["used"]]
    if len(used) < 2:
        return dict.fromkeys(_FRONTIER_KEYS, math.nan)
    lc = np.log([o["C"] for o in used])
    a, ia = linear_fit(lc, np.log([o["N_opt"] for o in used]))
    b, ib = linear_fit(lc, np.log([o["D_opt"] for o in used]))
    l_opt = np.array([o["L_opt"] for o in used])
    if np.all(l_opt > 0):
        s, il = linear_fit(lc, np.log(l_opt))
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


def build_frontier_fit(
    approach: str,
    optima: list[dict[str, Any]],
    resample: Callable[[np.random.Generator], list[dict[str, Any]]],
    *,
    min_used: int,
    seed: int,
    n_bootstrap: int,
    ci_level: float,
    **fields: Any,
) -> FrontierFit:
    """The ``FrontierFit`` of approach 1 or 2 from its optima, with its bootstrap over runs.

    Fits the power laws of the full-data ``optima`` (``_finite_laws``), then for each of
    ``n_bootstrap`` resamples draws new optima with ``resample(rng)``
    (``rng = numpy.random.default_rng(seed)``, shared by all draws) and refits the laws; a draw
    with fewer than ``min_used`` usable optima gives NaNs. CIs are percentile intervals at
    ``ci_level``.

    Args:
        approach: ``"isoflop"`` (approach 2) or ``"envelope"`` (approach 1).
        optima: per-budget (or per-bin) optima of the full data, each with ``"used"``.
        resample: draws the optima of one bootstrap resample over runs.
        min_used: usable optima a resample needs for a law.
        seed: bootstrap seed.
        n_bootstrap: resamples (0 = none).
        ci_level: CI coverage.
        **fields: the other ``FrontierFit`` fields (n_points, conventions, grouping, flags, ...).

    Raises:
        ValueError: the full-data optima give no finite law (``_finite_laws``).
    """
    label = {"isoflop": "2 (isoflop)", "envelope": "1 (envelope)"}[approach]
    fit = FrontierFit(
        approach=approach,
        **_finite_laws(optima, label),
        optima=tuple(optima),
        n_optima_used=sum(1 for o in optima if o["used"]),
        seed=seed,
        n_bootstrap=n_bootstrap,
        ci_level=ci_level,
        **fields,
    )
    if n_bootstrap <= 0:
        return fit
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):
        opt = resample(rng)
        enough = sum(1 for o in opt if o["used"]) >= min_used
        draws.append(_frontier_laws(opt) if enough else dict.fromkeys(_FRONTIER_KEYS, math.nan))
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
            s, i = linear_fit(logN[idx], logD[idx])
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
    N, D, C, L = positive_ndcl(N, D, C, L, 6, "isoflop")
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
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]

    def resample(rng: np.random.Generator) -> list[dict[str, Any]]:  # runs, within each budget
        idx = np.concatenate([rng.choice(m, len(m)) for m in members])
        return _isoflop_optima(
            logN[idx], logD[idx], C[idx], L[idx], groups[idx], window, d_opt_method
        )

    return build_frontier_fit(
        "isoflop",
        optima,
        resample,
        min_used=2,
        seed=seed,
        n_bootstrap=n_bootstrap,
        ci_level=ci_level,
        n_points=len(N),
        n_convention=n_convention,
        flop_formula=flop_formula,
        d_opt_method=d_opt_method,
        grouping=grouping
        + (f", {window} points around the minimum" if window else ", all points per budget"),
        flags=tuple(flags),
        selection=selection,
        meta={**(meta or {}), "bin_dex": bin_dex, "window": window},
    )


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
    N, D, C, L = positive_ndcl(N, D, C, L, 10, "envelope")
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
    rows_of = {r: np.flatnonzero(run_id == r) for r in runs}

    def resample(rng: np.random.Generator) -> list[dict[str, Any]]:  # whole curves
        pick = rng.choice(runs, len(runs))
        idx = np.concatenate([rows_of[r] for r in pick])
        ids = np.concatenate([np.full(len(rows_of[r]), f"{r}#{j}") for j, r in enumerate(pick)])
        return _envelope_optima(ids, logC[idx], N[idx], D[idx], L[idx], n_bins, drop_edge_models)

    return build_frontier_fit(
        "envelope",
        optima,
        resample,
        min_used=3,
        seed=seed,
        n_bootstrap=n_bootstrap,
        ci_level=ci_level,
        n_points=len(runs),
        n_convention=n_convention,
        flop_formula=flop_formula,
        d_opt_method="tokens",
        grouping=f"{n_bins} log-spaced C bins over {len(C)} logged points",
        flags=tuple(flags),
        selection=selection,
        meta=dict(meta or {}),
    )
