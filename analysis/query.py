"""Questions a fitted law answers.

Compute-optimal N and D at a budget, tokens for a model size, FLOPs for a target loss; every answer
with a bootstrap CI and, where a shape rule is known, the nearest real architectures.

Conventions: C in FLOPs under the fit's ``flop_formula``; N in the fit's ``n_convention``; D in
tokens; L in nats/token. CIs are percentiles of the answer computed for every bootstrap
parameter set of the fit (empty CI = NaN when the fit has no bootstrap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analysis.estimates import Estimate, percentile_ci, to_jsonable
from analysis.fits import FrontierFit, KaplanFit, ParametricFit
from analysis.forecast import n_free_params, prediction_interval
from analysis.parametric import optimum

Fit = ParametricFit | FrontierFit


@dataclass(frozen=True)
class Architecture:
    """A concrete model shape near the optimal N, exactly counted (``scaling.counting``)."""

    n_layers: int
    d_model: int
    n_heads: int
    d_mlp: int
    n_params_total: int
    n_params_non_embedding: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary (value, CI, level)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class ComputeOptimal:
    """Compute-optimal allocation at ``flops``.

    Attributes:
        flops: the budget C (FLOPs).
        n_params: N_opt (in ``n_convention``), with CI.
        n_tokens: D_opt, with CI.
        tokens_per_param: D_opt / N_opt, with CI.
        loss: predicted loss at the optimum (nats/token), with CI; ``loss_source`` says from what.
        n_convention, flop_formula, approach: the fit's conventions.
        architectures: nearest shapes under the sweep's shape rule (may be empty; see ``note``).
        note: caveats (e.g. extrapolation factor, missing shape rule, and "ARCHITECTURE
            CAPPED" when N_opt lies beyond the shapes the rule makes: ``architecture_capped``).
    """

    flops: float
    n_params: Estimate
    n_tokens: Estimate
    tokens_per_param: Estimate
    loss: Estimate
    loss_source: str
    n_convention: str
    flop_formula: str
    approach: str
    architectures: tuple[Architecture, ...] = ()
    note: str = ""

    @property
    def architecture_capped(self) -> bool:
        """True when N_opt lies outside the shapes the rule makes (see ``note``)."""
        return "ARCHITECTURE CAPPED" in self.note

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary of the answer (``scaling optimal --json``)."""
        return to_jsonable(
            {
                "flops": self.flops,
                "n_params": self.n_params.to_dict(),
                "n_tokens": self.n_tokens.to_dict(),
                "tokens_per_param": self.tokens_per_param.to_dict(),
                "loss": self.loss.to_dict(),
                "loss_source": self.loss_source,
                "n_convention": self.n_convention,
                "flop_formula": self.flop_formula,
                "approach": self.approach,
                "architectures": [a.to_dict() for a in self.architectures],
                "architecture_capped": self.architecture_capped,
                "note": self.note,
            }
        )

    def report(self) -> str:
        """Human-readable answer with CIs."""
        lines = [
            f"Compute-optimal at C = {self.flops:.3e} FLOPs ({self.approach}; N = "
            f"{self.n_convention}, C = {self.flop_formula}):",
            f"  N_opt = {self.n_params}",
            f"  D_opt = {self.n_tokens} tokens",
            f"  tokens/param = {self.tokens_per_param}",
            f"  loss = {self.loss} nats/token ({self.loss_source}; PI: bootstrap x resampled "
            "residuals)",
        ]
        for a in self.architectures:
            lines.append(
                f"  architecture: n_layers={a.n_layers} d_model={a.d_model} n_heads={a.n_heads} "
                f"d_mlp={a.d_mlp} (N_total={a.n_params_total:,}, "
                f"N_non_embedding={a.n_params_non_embedding:,})"
            )
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Answer:
    """A single queried quantity with CI (``optimal_tokens``, ``flops_for_loss``)."""

    query: dict[str, float]
    values: dict[str, Estimate]
    approach: str
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary of the answer (``scaling optimal --json``)."""
        return to_jsonable(
            {
                "query": self.query,
                **{k: v.to_dict() for k, v in self.values.items()},
                "approach": self.approach,
                "note": self.note,
                **self.extra,
            }
        )

    def report(self) -> str:
        """Human-readable answer with CIs."""
        q = ", ".join(f"{k}={v:.4g}" for k, v in self.query.items())
        lines = [f"{self.approach} fit, given {q}:"] + [
            f"  {k} = {v}" for k, v in self.values.items()
        ]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


def _check_fit(fit: Any) -> None:
    if isinstance(fit, KaplanFit):
        raise ValueError(
            "a Kaplan fit has no compute-optimal allocation; use a parametric, isoflop or "
            "envelope fit"
        )
    if not isinstance(fit, (ParametricFit, FrontierFit)):
        raise ValueError(f"expected a ParametricFit or FrontierFit, got {type(fit).__name__}")


def _positive(name: str, x: float) -> float:
    x = float(x)
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite positive number, got {x}")
    return x


def _estimate_from_samples(value: float, samples: list[float], level: float) -> Estimate:
    return Estimate(
        float(value), percentile_ci(samples, level) if samples else (math.nan, math.nan), level
    )


def _param_optimum(
    p: dict[str, float], C: float, ratio: dict[str, float] | None = None
) -> tuple[float, float, float]:
    N, D = optimum(C, p["E"], p["A"], p["B"], p["alpha"], p["beta"], ratio)
    return N, D, p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def _params(fit: ParametricFit) -> dict[str, float]:
    return {"E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta}


def _frontier_point(p: dict[str, float], C: float) -> tuple[float, float, float]:
    return p["k_N"] * C ** p["a"], p["k_D"] * C ** p["b"], p["k_L"] * C ** p["s_L"]


def _frontier_params(fit: FrontierFit) -> dict[str, float]:
    return {k: getattr(fit, k) for k in ("a", "b", "k_N", "k_D", "k_L", "s_L")}


def architectures_for(
    n_params: float, fit: Any, k: int = 3
) -> tuple[tuple[Architecture, ...], str]:
    """Nearest ``k`` shapes under the shape rule stored in ``fit.meta["shape_rule"]``.

    Uses ``scaling.shapes.shape_rule_from_dict(...).candidates(n_params, fit.n_convention,
    vocab_size, seq_len, k)`` with ``vocab_size``/``seq_len`` from ``fit.meta``; each shape is
    counted exactly by ``scaling.counting.param_counts``.

    Returns:
        (architectures, note); empty with a note saying why when no rule is known.
    """
    meta = getattr(fit, "meta", {}) or {}
    rule_d = meta.get("shape_rule")
    if not rule_d:
        return (
            (),
            "no shape rule recorded with this fit (fit a runs directory with sweep.json to "
            "get architectures)",
        )
    try:
        from scaling.counting import param_counts
        from scaling.shapes import shape_rule_from_dict
    except ImportError as e:  # pragma: no cover - both are in this package
        return (), f"cannot name architectures: {e}"
    rule = shape_rule_from_dict(rule_d)
    vocab_size = int(meta.get("vocab_size", 256))
    seq_len = int(meta.get("seq_len", 256))
    try:
        shapes = rule.candidates(float(n_params), fit.n_convention, vocab_size, seq_len, k=k)
    except ValueError as e:
        return (), f"shape rule could not place N={n_params:.3g}: {e}"
    out = []
    for m in shapes:
        pc = param_counts(m)
        out.append(
            Architecture(m.n_layers, m.d_model, m.n_heads, m.d_mlp, pc.total, pc.non_embedding)
        )
    return tuple(out), _range_note(rule, float(n_params), fit.n_convention, vocab_size, seq_len)


def _range_note(rule: Any, n_params: float, convention: str, vocab_size: int, seq_len: int) -> str:
    """A warning when ``n_params`` lies outside the shapes the rule can make ("" inside).

    The rule's candidates are then capped at its largest (or smallest) shape, which is far
    from the N asked for; the answer must say so instead of naming that shape silently.
    """
    from scaling.counting import param_counts

    def count(n: float) -> tuple[float, Any]:
        m = rule.candidates(n, convention, vocab_size, seq_len, k=1)[0]
        pc = param_counts(m)
        return float(pc.total if convention == "total" else pc.non_embedding), m

    largest, m_hi = count(1e30)  # the nearest shape to an absurdly large N is the largest one
    smallest, m_lo = count(1.0)
    if n_params > largest:
        return (
            f"ARCHITECTURE CAPPED: N_opt = {n_params:.3g} is {n_params / largest:.3g}x the largest "
            f"shape the shape rule makes ({largest:.3g} {convention} params at "
            f"n_layers={m_hi.n_layers}, d_model={m_hi.d_model}); the architectures listed are "
            "the largest it makes, not N_opt: extend the rule (e.g. max_layers) for this budget"
        )
    if n_params < smallest:
        return (
            f"ARCHITECTURE CAPPED: N_opt = {n_params:.3g} is below the smallest shape the shape "
            f"rule makes ({smallest:.3g} {convention} params at n_layers={m_lo.n_layers}, "
            f"d_model={m_lo.d_model}); the architectures listed are larger than N_opt"
        )
    return ""


def _extrapolation_note(fit: Any, C: float) -> str:
    cs = [o["C"] for o in getattr(fit, "optima", ()) if o.get("used", True)]
    c_max = max(cs) if cs else fit.meta.get("max_flops") if isinstance(fit.meta, dict) else None
    if c_max and C > c_max:
        return f"extrapolates {C / c_max:.3g}x beyond the largest fitted C ({c_max:.3g})"
    return ""


def compute_optimal(
    flops: float, fit: Fit, *, loss_fit: ParametricFit | None = None, n_architectures: int = 3
) -> ComputeOptimal:
    """Compute-optimal N, D, tokens/param and loss at ``flops`` FLOPs, with CIs.

    Parametric fits use the closed form (Hoffmann et al. 2022 Eq. 4, C = 6 N D). Frontier fits
    (approaches 1 and 2) use N_opt = k_N C^a, D_opt = k_D C^b; their loss comes from
    ``loss_fit`` (a parametric fit, evaluated at (N_opt, D_opt)) when given, else from the
    power law of the per-budget minimum losses L_opt(C) (``loss_source`` says which).

    Raises:
        ValueError: non-positive ``flops`` or a Kaplan fit.
    """
    _check_fit(fit)
    C = _positive("flops", flops)
    if isinstance(fit, ParametricFit):
        ratio = fit.meta.get("flop_ratio")
        N, D, L = _param_optimum(_params(fit), C, ratio)
        draws = [_param_optimum(p, C, ratio) for p in fit.sample_params()]
        source = "parametric L(N, D) at the optimum"
        if ratio:
            source += " (counted C = 6 N D r(N), r fitted on the runs)"
        resid, n_free = fit.residuals, n_free_params(fit)
    else:
        N, D, L = _frontier_point(_frontier_params(fit), C)
        draws = [_frontier_point(p, C) for p in fit.sample_params()]
        source = "power law of per-budget minimum losses L_opt(C)"
        resid, n_free = frontier_loss_residuals(fit), 2
        if loss_fit is not None:
            L = float(loss_fit.predict_loss(N, D))
            draws = [(n, d, float(loss_fit.predict_loss(n, d))) for n, d, _ in draws]
            source = "parametric fit's L(N, D) at this fit's (N_opt, D_opt)"
            resid, n_free = loss_fit.residuals, n_free_params(loss_fit)
    lvl = fit.ci_level
    arr = np.asarray(draws) if draws else np.empty((0, 3))
    with np.errstate(all="ignore"):
        centres = np.log(arr[:, 2]) if len(arr) else np.array([math.log(L)])
    loss_pi = prediction_interval(centres, resid, n_free, lvl)
    archs, note = architectures_for(N, fit, n_architectures)
    extra = _extrapolation_note(fit, C)
    n_degenerate = int(np.sum(~np.isfinite(arr[:, 0]))) if len(arr) else 0
    if n_degenerate:
        extra = "; ".join(
            x
            for x in (
                extra,
                f"{n_degenerate} of {len(arr)} bootstrap fits have no finite optimum "
                "(a non-positive exponent); CIs are over the rest",
            )
            if x
        )
    return ComputeOptimal(
        flops=C,
        n_params=_estimate_from_samples(N, list(arr[:, 0]), lvl),
        n_tokens=_estimate_from_samples(D, list(arr[:, 1]), lvl),
        tokens_per_param=_estimate_from_samples(D / N, list(arr[:, 1] / arr[:, 0]), lvl),
        loss=replace(_estimate_from_samples(L, list(arr[:, 2]), lvl), pi=loss_pi),
        loss_source=source,
        n_convention=fit.n_convention,
        flop_formula=fit.flop_formula,
        approach=fit.approach,
        architectures=archs,
        note="; ".join(x for x in (extra, note) if x),
    )


def frontier_loss_residuals(fit: FrontierFit) -> tuple[float, ...]:
    """Residuals log L_opt - log(k_L C^s_L) of the used per-budget optima (loss scatter)."""
    out = []
    for o in fit.optima:
        if o.get("used", True) and o["L_opt"] > 0 and math.isfinite(fit.s_L):
            out.append(math.log(o["L_opt"]) - math.log(fit.k_L * o["C"] ** fit.s_L))
    return tuple(out)


def _tokens_for_params(
    p: dict[str, float], N: float, parametric: bool, ratio: dict[str, float] | None = None
) -> tuple[float, float]:
    if parametric:  # invert N = G (C/6)^a
        G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1.0 / (p["alpha"] + p["beta"]))
        a = p["beta"] / (p["alpha"] + p["beta"])
        C = 6.0 * (N / G) ** (1.0 / a)
        if ratio:  # N_opt(C) is increasing in C: solve N_opt(C) = N around the 6ND answer
            from scipy.optimize import brentq

            def gap(logc: float) -> float:
                return math.log(_param_optimum(p, math.exp(logc), ratio)[0] / N)

            lo, hi = math.log(C) - 5, math.log(C) + 5
            if gap(lo) < 0 < gap(hi):
                C = math.exp(brentq(gap, lo, hi, xtol=1e-10))
        return _param_optimum(p, C, ratio)[1], C
    C = (N / p["k_N"]) ** (1.0 / p["a"])
    return p["k_D"] * C ** p["b"], C


def optimal_tokens(n_params: float, fit: Fit) -> Answer:
    """Compute-optimal D (and the C at which that N is optimal) for a model of ``n_params``.

    Raises:
        ValueError: non-positive ``n_params`` or a Kaplan fit.
    """
    _check_fit(fit)
    N = _positive("n_params", n_params)
    par = isinstance(fit, ParametricFit)
    p0 = _params(fit) if par else _frontier_params(fit)
    ratio = fit.meta.get("flop_ratio") if par else None
    D, C = _tokens_for_params(p0, N, par, ratio)
    draws = np.asarray(
        [_tokens_for_params(p, N, par, ratio) for p in fit.sample_params()] or np.empty((0, 2))
    )
    lvl = fit.ci_level
    return Answer(
        query={"n_params": N},
        values={
            "n_tokens": _estimate_from_samples(D, list(draws[:, 0]), lvl),
            "tokens_per_param": _estimate_from_samples(D / N, list(draws[:, 0] / N), lvl),
            "flops": _estimate_from_samples(C, list(draws[:, 1]), lvl),
        },
        approach=fit.approach,
        note=f"N = {fit.n_convention} params",
    )


def _flops_for_loss(
    p: dict[str, float], L: float, parametric: bool, ratio: dict[str, float] | None = None
) -> float:
    if not parametric:
        return (L / p["k_L"]) ** (1.0 / p["s_L"]) if p["s_L"] < 0 else math.nan
    if L <= p["E"]:
        return math.nan
    from scipy.optimize import brentq

    def gap(logC):
        return _param_optimum(p, math.exp(logC), ratio)[2] - L

    lo, hi = math.log(1e3), math.log(1e40)
    if gap(lo) < 0 or gap(hi) > 0:
        return math.nan
    return math.exp(brentq(gap, lo, hi, xtol=1e-10))


def flops_for_loss(loss: float, fit: Fit) -> Answer:
    """Least compute C that reaches ``loss`` (nats/token) on the compute-optimal frontier.

    Parametric: solves L_opt(C) = loss (L_opt decreasing in C) by root finding; needs loss > E.
    Frontier fits: inverts L_opt(C) = k_L C^s_L.

    Raises:
        ValueError: non-positive loss, a loss at or below the fitted irreducible loss E, or a
            Kaplan fit.
    """
    _check_fit(fit)
    L = _positive("loss", loss)
    par = isinstance(fit, ParametricFit)
    if par and L <= fit.E:
        raise ValueError(
            f"loss {L} is at or below the fitted irreducible loss E = {fit.E:.4f}; unreachable"
        )
    ratio = fit.meta.get("flop_ratio") if par else None
    C = _flops_for_loss(_params(fit) if par else _frontier_params(fit), L, par, ratio)
    draws = [_flops_for_loss(p, L, par, ratio) for p in fit.sample_params()]
    opt = compute_optimal(C, fit) if math.isfinite(C) else None
    values = {"flops": _estimate_from_samples(C, draws, fit.ci_level)}
    if opt is not None:
        values.update(n_params=opt.n_params, n_tokens=opt.n_tokens)
    n_nan = int(np.sum(~np.isfinite(draws))) if draws else 0
    note = f"{n_nan} bootstrap samples cannot reach this loss (E above it)" if n_nan else ""
    return Answer(query={"loss": L}, values=values, approach=fit.approach, note=note)
