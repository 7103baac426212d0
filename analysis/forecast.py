"""Loss at any (N, D) with a confidence and a prediction interval (``predict_loss``).

Two intervals answer two questions:

- ``ci``: where the MEAN loss L(N, D) of the fitted law lies: the percentile interval of
  L(N, D) evaluated at every bootstrap parameter set of the fit (bootstrap over runs).
- ``pi``: where ONE new run's loss will land. Method (bootstrap + residual resampling, the
  construction of Davison & Hinkley 1997, Sec. 6.3.3, the same idea as OLMo-core's model ladder
  which adds the fit's residual spread to its prediction): every bootstrap prediction
  log L_b(N, D) is combined with every residual r_i = log L_i - log L_hat(N_i, D_i) of the
  full-data fit, inflated by sqrt(n / (n - p)) (n rows, p free parameters: fitted residuals
  are smaller than the noise they estimate), and the interval is the percentile interval of
  exp(log L_b + r_i) over all (b, i) pairs. Residuals live in log space because approach 3
  fits log L (Besiroglu et al. 2024), i.e. the noise is treated as multiplicative.

Without a bootstrap the CI is empty (NaN) and the PI holds the residual spread alone around the
point prediction. ``benchmarks/pi_coverage.py`` measures the PI's coverage of a fresh draw on
simulated sweeps with a known truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.estimates import percentile_ci
from analysis.inputs import check_level
from analysis.parametric import ParametricFit

PI_METHOD = (
    "PI: bootstrap predictions x resampled log-residuals of the fit (inflated by "
    "sqrt(n/(n-p))), percentile interval; CI: bootstrap of the mean prediction"
)


def prediction_interval(
    log_centres: Sequence[float] | np.ndarray,
    residuals: Sequence[float] | np.ndarray,
    n_free: int,
    level: float = 0.95,
) -> tuple[float, float]:
    """Prediction interval: percentiles of exp(log_centre_b + r_i * sqrt(n/(n-p))), all pairs.

    Args:
        log_centres: log predictions, one per bootstrap parameter set (or the point
            prediction alone), shape (B,); non-finite entries are dropped.
        residuals: log-space residuals of the fit, shape (n,).
        n_free: fitted parameters p (the inflation uses n - p; needs n > p).
        level: coverage, e.g. 0.95.

    Returns:
        (lo, hi) in loss units; (nan, nan) without finite centres or with n <= p residuals.
    """
    c = np.asarray(log_centres, dtype=float)
    c = c[np.isfinite(c)]
    r = np.asarray(residuals, dtype=float)
    r = r[np.isfinite(r)]
    n = r.size
    if c.size == 0 or n <= n_free:
        return (math.nan, math.nan)
    r = r * math.sqrt(n / (n - n_free))
    lo, hi = percentile_ci((c[:, None] + r[None, :]).ravel(), level)
    return (math.exp(lo), math.exp(hi))


def n_free_params(fit: ParametricFit) -> int:
    """Fitted (not pinned) parameters of an approach-3 fit."""
    return 5 - len(fit.fixed)


def _law(p: dict[str, float], N: float, D: float) -> float:
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def predict_loss(
    fit: ParametricFit | dict[str, Any], n_params: float, n_tokens: float, level: float = 0.95
) -> dict[str, Any]:
    """Predicted final loss of a run with ``n_params`` parameters trained on ``n_tokens`` tokens.

    L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, Eq. 2) with the fit's parameters;
    intervals as in the module docstring.

    Args:
        fit: an approach-3 fit (``ParametricFit``, or its ``to_dict()``, e.g. a loaded fit.json).
        n_params: N in the fit's ``n_convention``.
        n_tokens: D, training tokens.
        level: coverage of both intervals, in (0, 1).

    Returns:
        ``{"value", "ci": [lo, hi], "pi": [lo, hi], "level"}``; loss in nats/token; interval
        ends are NaN where they cannot be formed (no bootstrap for ``ci``; no stored residuals
        for ``pi``).

    Raises:
        ValueError: ``n_params`` or ``n_tokens`` not finite and positive, a bad ``level``, or a
            fit that is not approach 3 (approaches 1 and 2 only describe the compute-optimal
            frontier, not L at any (N, D)).
    """
    if isinstance(fit, dict):
        from analysis.fits import fit_from_dict

        fit = fit_from_dict(fit)
    if not isinstance(fit, ParametricFit):
        approach = getattr(fit, "approach", type(fit).__name__)
        raise ValueError(
            f"loss at any (N, D) needs an approach-3 fit (`scaling fit --approach parametric`); "
            f"this fit's approach is {approach!r}, which only describes the compute-optimal "
            "frontier (ask it with --flops)"
        )
    check_level(level)
    N, D = _positive("n_params", n_params), _positive("n_tokens", n_tokens)
    point = {"E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta}
    value = _law(point, N, D)
    with np.errstate(all="ignore"):
        draws = np.array([_law(p, N, D) for p in fit.sample_params()], dtype=float)
    ci = percentile_ci(draws, level) if draws.size else (math.nan, math.nan)
    with np.errstate(all="ignore"):
        centres = np.log(draws[draws > 0]) if draws.size else np.array([math.log(value)])
    pi = prediction_interval(centres, fit.residuals, n_free_params(fit), level)
    return {"value": float(value), "ci": list(ci), "pi": list(pi), "level": level}


def _positive(name: str, x: float) -> float:
    x = float(x)
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite positive number, got {x}")
    return x


def extrapolation_note(fit: ParametricFit, n_params: float, n_tokens: float) -> str:
    """Say how far (N, D) lies outside the fitted runs' N and D range ("" when inside)."""
    rng = (fit.meta or {}).get("fitted_range")
    if not rng:
        return ""
    parts = []
    for sym, x in (("N", n_params), ("D", n_tokens)):
        lo, hi = rng[sym]
        if x > hi:
            parts.append(f"{sym} is {x / hi:.3g}x above the largest fitted {sym} ({hi:.3g})")
        elif x < lo:
            parts.append(f"{sym} is {lo / x:.3g}x below the smallest fitted {sym} ({lo:.3g})")
    return "; ".join(parts)


def loss_query(
    fit: ParametricFit | dict[str, Any], n_params: float, n_tokens: float, level: float = 0.95
) -> dict[str, Any]:
    """``scaling optimal --params N --tokens D --json``: query, loss with CI and PI, and a note.

    Returns:
        ``{"query": {"n_params", "n_tokens"}, "loss": predict_loss(...), "note"}``.

    Raises:
        ValueError: as ``predict_loss``.
    """
    loss = predict_loss(fit, n_params, n_tokens, level)
    if isinstance(fit, dict):
        from analysis.fits import fit_from_dict

        fit = fit_from_dict(fit)
    notes = [PI_METHOD, f"N = {fit.n_convention} params"]
    if not fit.n_bootstrap:
        notes.append("no bootstrap in this fit: CI empty, PI = residual spread only")
    if not fit.residuals:
        notes.append("this fit.json has no residuals (older version): PI empty")
    if fit.fixed:
        notes.append("fixed: " + ", ".join(f"{k}={v:g}" for k, v in fit.fixed.items()))
    extra = extrapolation_note(fit, n_params, n_tokens)
    if extra:
        notes.append(extra)
    notes += list(fit.flags)
    return {
        "query": {"n_params": float(n_params), "n_tokens": float(n_tokens)},
        "loss": loss,
        "note": "; ".join(notes),
    }


def format_loss_query(ans: dict[str, Any]) -> str:
    """Human-readable form of ``loss_query``'s answer."""
    q, loss = ans["query"], ans["loss"]
    lvl = f"{100 * loss['level']:g}%"

    def iv(x: list[float]) -> str:
        return "n/a" if x[0] is None or math.isnan(x[0]) else f"[{x[0]:.4g}, {x[1]:.4g}]"

    return "\n".join(
        [
            f"Predicted loss at N = {q['n_params']:.4g}, D = {q['n_tokens']:.4g} tokens:",
            f"  loss = {loss['value']:.4f} nats/token",
            f"  {lvl} CI of the mean: {iv(loss['ci'])}",
            f"  {lvl} prediction interval (one run): {iv(loss['pi'])}",
            f"  note: {ans['note']}",
        ]
    )
