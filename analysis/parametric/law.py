"""Chinchilla approach 3, the law and its result: L(N, D) = E + A/N^alpha + B/D^beta.

Legend (paper symbols, used only in this fitting code):
    N      parameters (convention stated by the caller: ``"total"`` for Chinchilla)
    D      training tokens
    C      training FLOPs (``"counted"`` App. F count or ``"6nd"`` = 6*N*D)
    L      final loss, nats/token
    E, A, B, alpha, beta   Hoffmann et al. 2022, Eq. 2: L(N, D) = E + A/N^alpha + B/D^beta
    a, b, e                log A, log B, log E (Hoffmann et al. 2022, App. D.2, Eq. 3 context)
    G      (alpha A / (beta B))^(1/(alpha+beta)) (Hoffmann et al. 2022, Eq. 4 / App. D.2)
    a_N, b_D  compute-optimal exponents N_opt ~ C^a_N, D_opt ~ C^b_D, a_N = beta/(alpha+beta),
           b_D = alpha/(alpha+beta) (the paper calls them a and b; renamed here only to avoid the
           clash with a = log A)

This module holds the law's parameters (pinned ones included), the compute-optimal allocation
(closed form and with counted FLOPs), the ``ParametricFit`` result and the identifiability check
of its bootstrap. The solver that finds theta is ``analysis.parametric.solver``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.estimates import (
    Estimate,
    add_cis,
    bootstrap_record,
    cis_from_json,
    estimate_of,
    sample_dicts,
    samples_from_json,
    to_jsonable,
)

MIN_POINTS = 6  # 5 free parameters: need more points than parameters
PARAM_NAMES = ("a", "b", "e", "alpha", "beta")


# Pinned parameters and identifiability. theta = (a, b, e, alpha, beta) with a = log A, b = log B,
# e = log E; users pin in paper names (E, A, B, alpha, beta).
PARAM_THETA = {
    "A": (0, True),
    "B": (1, True),
    "E": (2, True),
    "alpha": (3, False),
    "beta": (4, False),
}
# The start grid's range per theta entry (Hoffmann et al. 2022 App. D.2); a refit at or beyond
# its edge (within EDGE_MARGIN of the range) is counted by ``identifiability``: the published grid
# is where a sensible optimum lives (E in [0.37, 2.72] nats, exponents in [0, 2]).
GRID_RANGE = ((0.0, 25.0), (0.0, 25.0), (-1.0, 1.0), (0.0, 2.0), (0.0, 2.0))
EDGE_MARGIN = 0.02
IDENTIFIABILITY_THRESHOLD = 0.1  # warn when more than 10% of refits sit at an edge


class IdentifiabilityWarning(UserWarning):
    """Approach 3: a parameter's bootstrap refits often sit at the edge of the start grid."""


def pinned_theta(fixed: dict[str, float] | None) -> np.ndarray | None:
    """(5,) theta with the pinned parameters' values and NaN for free ones, or None.

    Args:
        fixed: paper name (``E``, ``A``, ``B``, ``alpha``, ``beta``) -> value.

    Raises:
        ValueError: an unknown name, a non-finite value, E/A/B <= 0, or all five pinned.
    """
    if not fixed:
        return None
    theta = np.full(5, np.nan)
    for name, value in fixed.items():
        if name not in PARAM_THETA:
            raise ValueError(
                f"cannot fix {name!r}: approach 3 parameters are {', '.join(PARAM_THETA)} "
                "(e.g. --fix E=1.69)"
            )
        value = float(value)
        idx, logged = PARAM_THETA[name]
        if not math.isfinite(value) or (logged and value <= 0):
            raise ValueError(f"fixed {name}={value} must be finite{' and > 0' if logged else ''}")
        theta[idx] = math.log(value) if logged else value
    if not np.isnan(theta).any():
        raise ValueError("all five parameters are fixed; leave at least one free to fit")
    return theta


def identifiability(bs: np.ndarray, pinned: np.ndarray | None = None) -> dict[str, float]:
    """Share of bootstrap refits at or beyond the edge of the start grid, per free parameter.

    A refit counts for a parameter when its theta entry lies within ``EDGE_MARGIN`` of the
    range (or outside) ``GRID_RANGE``, e.g. e < -0.96 (E < 0.38 nats: the asymptote collapsing
    towards 0) or alpha < 0.04. Non-finite entries count as at the edge.

    Args:
        bs: (n_bootstrap, >=5) bootstrap thetas (a, b, e, alpha, beta, ...).
        pinned: from ``pinned_theta``; pinned parameters are left out.

    Returns:
        paper name -> share in [0, 1] (free parameters only).
    """
    out = {}
    for name, (idx, _) in PARAM_THETA.items():
        if pinned is not None and not np.isnan(pinned[idx]):
            continue
        lo, hi = GRID_RANGE[idx]
        m = EDGE_MARGIN * (hi - lo)
        x = bs[:, idx]
        at_edge = ~np.isfinite(x) | (x <= lo + m) | (x >= hi - m)
        out[name] = float(at_edge.mean()) if len(x) else math.nan
    return out


# ---------------------------------------------------------------------------------------------
# Compute-optimal allocation and the result
# ---------------------------------------------------------------------------------------------


def closed_form_optimum(C: Any, E: float, A: float, B: float, alpha: float, beta: float):
    """Compute-optimal N and D under L(N, D) with C = 6 N D (Hoffmann et al. 2022, Eq. 4).

    N_opt = G (C/6)^a, D_opt = (C/6)^b / G, G = (alpha A / (beta B))^(1/(alpha+beta)),
    a = beta/(alpha+beta), b = alpha/(alpha+beta).

    Args:
        C: FLOPs, scalar or array.
        E: irreducible loss (unused by the allocation; kept for a uniform signature).
        A: parameter-term coefficient.
        B: data-term coefficient.
        alpha: parameter exponent.
        beta: data exponent.

    Returns:
        (N_opt, D_opt) with the shape of ``C``; NaN when ``alpha <= 0`` or ``beta <= 0`` (then
        L has no finite compute optimum: more of one resource never helps; noisy bootstrap
        refits can land there).
    """
    C = np.asarray(C, dtype=float)
    if not (alpha > 0 and beta > 0):
        nan = np.full_like(C, np.nan)
        return nan, nan.copy()
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    a = beta / (alpha + beta)
    b = alpha / (alpha + beta)
    return G * (C / 6.0) ** a, (C / 6.0) ** b / G


def optimum(
    C: float,
    E: float,
    A: float,
    B: float,
    alpha: float,
    beta: float,
    flop_ratio: dict[str, float] | None = None,
) -> tuple[float, float]:
    """Compute-optimal (N, D) at FLOPs ``C``, optionally with counted FLOPs instead of 6 N D.

    Without ``flop_ratio`` this is ``closed_form_optimum`` (C = 6 N D). With it, C is taken as
    6 N D r(N) with r(N) = exp(c0) N^c1 (the counted / 6ND ratio fitted on the runs: attention
    and LM-head FLOPs make small models cost more than 6 N per token), and N_opt minimises
    L(N, C / (6 N r(N))) numerically (bounded search within e^4 of the closed form).

    Args:
        C: FLOPs (scalar).
        E: irreducible loss.
        A: parameter-term coefficient.
        B: data-term coefficient.
        alpha: parameter exponent.
        beta: data exponent.
        flop_ratio: ``{"c0", "c1"}`` or None.

    Returns:
        (N_opt, D_opt).
    """
    with np.errstate(all="ignore"):  # a wild bootstrap refit (e.g. A underflowed to 0)
        n0, d0 = closed_form_optimum(C, E, A, B, alpha, beta)
    if not (np.isfinite(n0) and n0 > 0 and np.isfinite(d0) and d0 > 0):
        return math.nan, math.nan
    if not flop_ratio:
        return float(n0), float(d0)
    from scipy.optimize import minimize_scalar

    c0, c1 = flop_ratio["c0"], flop_ratio["c1"]

    def log_tokens(x: float) -> float:  # log D at N = e^x, in logs: no overflow
        return math.log(C / 6.0) - x - (c0 + c1 * x)

    def loss(x: float) -> float:
        # a bootstrap refit can carry wild exponents: an overflow is an infinite loss, not an
        # exception (the optimum is then reported as NaN below)
        with np.errstate(all="ignore"):
            v = A * np.exp(-alpha * x) + B * np.exp(-beta * log_tokens(x))
        return float(v) if np.isfinite(v) else math.inf

    x0 = math.log(float(n0))
    with np.errstate(invalid="ignore", over="ignore"):  # inf losses of wild refits
        r = minimize_scalar(
            loss, bounds=(x0 - 4, x0 + 4), method="bounded", options={"xatol": 1e-9}
        )
    if not (math.isfinite(r.fun) and abs(r.x) < 700 and abs(log_tokens(r.x)) < 700):
        return math.nan, math.nan
    return math.exp(r.x), math.exp(log_tokens(r.x))


def fit_flop_ratio(N: Any, D: Any, C: Any) -> dict[str, float]:
    """Least-squares fit of log(C / (6 N D)) = c0 + c1 log N over runs (counted-FLOP overhead).

    Args:
        N: parameters per run (n,).
        D: tokens per run (n,).
        C: counted FLOPs per run (n,).

    Returns:
        ``{"c0", "c1", "max_abs_resid"}``.
    """
    N, D, C = (np.asarray(x, dtype=float) for x in (N, D, C))
    y = np.log(C / (6.0 * N * D))
    c1, c0 = np.polyfit(np.log(N), y, 1)
    resid = y - (c0 + c1 * np.log(N))
    return {"c0": float(c0), "c1": float(c1), "max_abs_resid": float(np.max(np.abs(resid)))}


@dataclass(frozen=True)
class ParametricFit:
    """Result of Chinchilla approach 3 (see module docstring for the legend and procedure).

    Attributes:
        E: irreducible loss; fitted L(N, D) = E + A/N^alpha + B/D^beta (L in nats/token).
        A: parameter-term coefficient.
        B: data-term coefficient.
        alpha: parameter exponent.
        beta: data exponent.
        objective: summed Huber objective at the optimum.
        huber_delta: Huber delta.
        n_points: rows fitted.
        n_starts: grid starts.
        method: ``"screened"`` or ``"exhaustive"``.
        best_starts: objectives and (alpha, beta, E) of the best distinct refined optima, best
            first (the spread of the best starts).
        n_convention: which N (``"non_embedding"`` | ``"total"``).
        flop_formula: which C (``"counted"`` | ``"6nd"``); D came from the data or from C/(6N).
        seed: bootstrap seed.
        n_bootstrap: bootstrap resamples (0 = none).
        ci_level: CI coverage.
        ci: parameter name -> (lo, hi) percentile interval (E, A, B, alpha, beta, a, b, G).
        samples: parameter name -> bootstrap samples (for query CIs).
        selection: how rows were chosen (e.g. best LR per point).
        meta: free-form provenance (shape rule, source, ...).
        fixed: pinned parameters (paper name -> value); they were not fitted and the
            bootstrap held them too.
        residuals: log L_i - log L_hat(N_i, D_i) per fitted row (prediction intervals resample
            them; ``analysis.forecast``).
        identifiability: free parameter -> share of bootstrap refits at or beyond the edge of
            the start grid (``identifiability``); empty without bootstrap.
        flags: warnings (a share above ``IDENTIFIABILITY_THRESHOLD``).
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    huber_delta: float
    n_points: int
    n_starts: int
    method: str
    best_starts: tuple[dict[str, float], ...]
    n_convention: str
    flop_formula: str
    seed: int
    n_bootstrap: int
    ci_level: float = 0.95
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[str, tuple[float, ...]] = field(default_factory=dict, repr=False)
    selection: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)
    residuals: tuple[float, ...] = field(default=(), repr=False)
    identifiability: dict[str, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    approach = "parametric"

    @property
    def a(self) -> float:
        """N_opt ~ C^a exponent, beta/(alpha+beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """D_opt ~ C^b exponent, alpha/(alpha+beta)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """(alpha A / (beta B))^(1/(alpha+beta))."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def predict_loss(self, N: Any, D: Any) -> np.ndarray:
        """L(N, D) = E + A/N^alpha + B/D^beta (nats/token); broadcasts N and D."""
        N = np.asarray(N, dtype=float)
        D = np.asarray(D, dtype=float)
        return self.E + self.A / N**self.alpha + self.B / D**self.beta

    def optimal_allocation(self, C: Any) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) at FLOPs ``C``: two arrays of ``C``'s shape (parameters, tokens).

        The bare allocation (no CIs, no architecture); ``analysis.query.compute_optimal`` turns
        it into answers. The closed form (C = 6 N D) unless ``meta["flop_ratio"]`` holds the
        counted/6ND ratio of the runs (counted FLOPs), then a numerical optimum; see ``optimum``.
        """
        ratio = self.meta.get("flop_ratio")
        if not ratio:
            return closed_form_optimum(C, self.E, self.A, self.B, self.alpha, self.beta)
        Cs = np.asarray(C, dtype=float)
        pairs = [
            optimum(c, self.E, self.A, self.B, self.alpha, self.beta, ratio) for c in Cs.ravel()
        ]
        n = np.array([p[0] for p in pairs]).reshape(Cs.shape)
        d = np.array([p[1] for p in pairs]).reshape(Cs.shape)
        return n, d

    def estimate(self, name: str) -> Estimate:
        """Point estimate and CI of a parameter (E, A, B, alpha, beta, a, b, G)."""
        return estimate_of(self, name)

    def sample_params(self) -> list[dict[str, float]]:
        """Bootstrap parameter sets (E, A, B, alpha, beta), one dict per resample."""
        return sample_dicts(self.samples, ("E", "A", "B", "alpha", "beta"))

    def report(self) -> str:
        """Human-readable multi-line summary."""
        lines = [
            "Chinchilla approach 3 (parametric), Besiroglu et al. 2024 procedure",
            f"  L(N, D) = E + A/N^alpha + B/D^beta; N = {self.n_convention} params, C = "
            f"{self.flop_formula}",
            f"  points: {self.n_points}; starts: {self.n_starts} ({self.method}); Huber delta "
            f"= {self.huber_delta:g} (summed)",
            f"  objective: {self.objective:.6e}",
        ]
        for name in ("E", "A", "B", "alpha", "beta", "a", "b"):
            pin = "  (fixed)" if name in self.fixed else ""
            edge = self.identifiability.get(name)
            share = f"  ({edge:.0%} of refits at a grid edge)" if edge else ""
            lines.append(f"  {name:>5} = {self.estimate(name)}{pin}{share}")
        if self.n_bootstrap:
            lines.append(
                f"  CIs: {100 * self.ci_level:g}% percentile bootstrap over "
                + (
                    f"{self.meta['bootstrap_clusters']} clusters (WSD trunks), "
                    if self.meta.get("bootstrap_clusters")
                    else "rows, "
                )
                + f"{self.n_bootstrap} resamples, seed {self.seed}"
            )
        if self.best_starts:
            objs = ", ".join(f"{s['objective']:.6e}" for s in self.best_starts[:5])
            lines.append(f"  best distinct optima (objective): {objs}")
        lines += [f"  flag: {f}" for f in self.flags]
        if self.selection:
            lines.append(f"  selection: {self.selection}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict: paper names, ``<name>_ci`` beside each, ``samples``."""
        d: dict[str, Any] = {
            "approach": self.approach,
            "E": self.E,
            "A": self.A,
            "B": self.B,
            "alpha": self.alpha,
            "beta": self.beta,
            "a": self.a,
            "b": self.b,
            "G": self.G,
            "objective": self.objective,
            "huber_delta": self.huber_delta,
            "n_points": self.n_points,
            "n_starts": self.n_starts,
            "method": self.method,
            "best_starts": list(self.best_starts),
            "n_convention": self.n_convention,
            "flop_formula": self.flop_formula,
            "fixed": self.fixed,
            "identifiability": self.identifiability,
            "flags": list(self.flags),
            "residuals": list(self.residuals),
            **bootstrap_record(self),
        }
        return to_jsonable(add_cis(d, self.ci))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParametricFit:
        """Inverse of ``to_dict``.

        Raises:
            ValueError: if ``d`` is not a parametric fit.
        """
        if d.get("approach") != "parametric":
            raise ValueError(f"not a parametric fit: approach={d.get('approach')!r}")
        ci = cis_from_json(d)
        return cls(
            E=float(d["E"]),
            A=float(d["A"]),
            B=float(d["B"]),
            alpha=float(d["alpha"]),
            beta=float(d["beta"]),
            objective=float(d["objective"]),
            huber_delta=float(d["huber_delta"]),
            n_points=int(d["n_points"]),
            n_starts=int(d["n_starts"]),
            method=str(d["method"]),
            best_starts=tuple(d.get("best_starts", [])),
            n_convention=d["n_convention"],
            flop_formula=d["flop_formula"],
            seed=int(d["seed"]),
            n_bootstrap=int(d["n_bootstrap"]),
            ci_level=float(d.get("ci_level", 0.95)),
            ci=ci,
            samples=samples_from_json(d),
            selection=d.get("selection", ""),
            meta=d.get("meta", {}),
            fixed={k: float(v) for k, v in d.get("fixed", {}).items()},
            residuals=tuple(float(x) for x in d.get("residuals", [])),
            identifiability={k: float(v) for k, v in d.get("identifiability", {}).items()},
            flags=tuple(d.get("flags", [])),
        )
