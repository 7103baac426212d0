"""Loss at any (N, D) with a confidence and a prediction interval (``predict_loss``).

Two intervals answer two questions:

- ``ci``: where the MEAN loss L(N, D) of the fitted law lies: the percentile interval of
  L(N, D) evaluated at every bootstrap parameter set of the fit (bootstrap over runs).
- ``pi``: where ONE new run's loss will land. Method: Davison & Hinkley 1997, Sec. 6.3.3,
  Algorithm 6.4 ("prediction in linear regression"), applied to log L (approach 3 fits log L,
  Besiroglu et al. 2024, so the noise is treated as multiplicative). With yhat = log L_hat(N, D)
  of the full-data fit and yhat*_b its value under bootstrap parameter set b, the prediction
  errors are

      d*_bi = yhat*_b - (yhat + r_i - rbar)

  over every pair (b, i), where r_i are the fit's MODIFIED residuals and rbar their mean (the
  algorithm resamples centred modified residuals), and the (1 - 2 alpha) limits are the
  REFLECTED quantiles

      [yhat - d*_(1 - alpha), yhat - d*_(alpha)],   i.e. quantiles of 2 yhat - yhat*_b + r_i - rbar.

  Percentiles of (yhat*_b + r_i) instead (the construction used before issue 22) agree only
  when the bootstrap distribution of yhat* is symmetric about yhat; with E at its bound it is
  strongly skewed. Two deviations from the book, both stated: (1) the yhat*_b come from the
  fit's own bootstrap, which resamples cases (or WSD trunk clusters), not residuals as in the
  algorithm's step 1; (2) the modified residual r_i = e_i / sqrt(1 - h_i) (D&H Eq. 6.9) uses the
  average leverage h_i = p / n (p fitted parameters), since a nonlinear fit's leverages are
  not stored. A row that is the mean of k_i seeds (``meta["n_seeds"]``) has residual variance
  sigma^2 / k_i, so its residual is scaled by sqrt(k_i) to stand for ONE run's noise (the PI is
  for one run).

Without a bootstrap the CI is empty (NaN) and the PI holds the residual spread alone around the
point prediction. ``benchmarks/pi_coverage.py`` measures the PI's coverage of a fresh run at 10x
the largest budget on simulated sweeps in four cases (well specified, misspecified form, E near
0, WSD-clustered); docs/LOG.md (issue 22) has the numbers, misses included.
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
    "PI: Davison & Hinkley 1997 Alg. 6.4 (reflected bootstrap prediction errors with centred "
    "modified log-residuals, one-run scale); CI: bootstrap of the mean prediction"
)


def prediction_interval(
    log_draws: Sequence[float] | np.ndarray,
    residuals: Sequence[float] | np.ndarray,
    n_free: int,
    level: float = 0.95,
    *,
    log_point: float,
    n_seeds: Sequence[float] | np.ndarray | None = None,
) -> tuple[float, float]:
    """One-run prediction interval of Davison & Hinkley 1997, Algorithm 6.4 (module docstring).

    Args:
        log_draws: log predictions yhat*_b at the query, one per bootstrap parameter set,
            shape (B,); non-finite entries are dropped. Empty (or only ``log_point``): no
            estimation error, the PI is the residual spread around ``log_point``.
        residuals: log-space residuals e_i of the full-data fit, shape (n,).
        n_free: fitted parameters p (average leverage p/n; needs n > p).
        level: coverage 1 - 2 alpha, e.g. 0.95.
        log_point: yhat, the full-data fit's log prediction at the query.
        n_seeds: seeds averaged into each residual's row, shape (n,), or None (one run each).

    Returns:
        (lo, hi) in loss units: exp of the reflected quantiles of
        2 yhat - yhat*_b + r_i - rbar over all (b, i); (nan, nan) with a non-finite
        ``log_point`` or with n <= p residuals.

    Raises:
        ValueError: ``n_seeds`` of another length than ``residuals``.
    """
    r = np.asarray(residuals, dtype=float)
    k = np.ones_like(r) if n_seeds is None else np.asarray(n_seeds, dtype=float)
    if k.shape != r.shape:
        raise ValueError(f"n_seeds needs one entry per residual ({r.size}), got {k.size}")
    ok = np.isfinite(r) & np.isfinite(k) & (k >= 1)
    r, k = r[ok], k[ok]
    n = r.size
    if not math.isfinite(log_point) or n <= n_free:
        return (math.nan, math.nan)
    # D&H Eq. 6.9 with h_i = p/n, and one run's noise for a k-seed mean (variance sigma^2/k)
    r = r * np.sqrt(k / (1.0 - n_free / n))
    r = r - r.mean()  # Algorithm 6.4 resamples CENTRED modified residuals
    c = np.asarray(log_draws, dtype=float)
    c = c[np.isfinite(c)]
    if c.size == 0:
        c = np.array([log_point])
    # prediction errors d* = yhat*_b - (yhat + r_i); limits yhat - d*_(1-alpha), yhat - d*_(alpha)
    d = (c[:, None] - log_point - r[None, :]).ravel()
    d_lo, d_hi = percentile_ci(d, level)
    return (math.exp(log_point - d_hi), math.exp(log_point - d_lo))


def fit_n_seeds(fit: Any) -> list[float] | None:
    """Seeds averaged into each fitted row (``meta["n_seeds"]``), or None when not recorded."""
    seeds = (getattr(fit, "meta", None) or {}).get("n_seeds")
    if seeds is None or len(seeds) != len(getattr(fit, "residuals", ())):
        return None
    return [float(x) for x in seeds]


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
        centres = np.log(draws[draws > 0])
    pi = prediction_interval(
        centres,
        fit.residuals,
        n_free_params(fit),
        level,
        log_point=math.log(value) if value > 0 else math.nan,
        n_seeds=fit_n_seeds(fit),
    )
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
