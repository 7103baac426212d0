"""Predictions of a fitted loss-curve law (``analysis.curves``): loss at any step of a schedule.

``predict_final`` answers ``{"value", "ci", "pi", "level", "note"}`` as every query of the
toolkit: ``ci`` the percentile interval of the bootstrap fits' predictions, ``pi`` those
predictions combined with the fit's log residuals (``analysis.forecast.prediction_interval``;
the method is in ``analysis.curves``' docstring). No torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.curves import (
    MIN_POINTS,
    Curve,
    CurveFit,
    _design,
    _evaluate,
    _layout,
    _pack,
    make_curve,
)
from analysis.estimates import percentile_ci
from analysis.inputs import check_level


def curve_loss(
    fit: CurveFit, lrs: Sequence[float], steps: Sequence[int], n_params: float | None = None
) -> np.ndarray:
    """The fitted law's loss at ``steps`` under the schedule ``lrs`` (point estimate).

    Args:
        fit: a ``CurveFit``.
        lrs: per-step LR of the schedule, shape (T,).
        steps: steps to evaluate (1 <= step <= T), shape (P,).
        n_params: N of the run (needed by a joint fit; ignored by a one-size fit).

    Returns:
        Loss at each step, shape (P,), nats/token.

    Raises:
        CurveError: a schedule the law cannot represent (``make_curve``'s checks).
        ValueError: a joint fit without ``n_params``.
    """
    return _predict(fit, [fit.params], lrs, steps, n_params)[0]


def _predict(fit, param_sets, lrs, steps, n_params):
    steps = np.asarray(steps, dtype=np.int64)
    eta = np.asarray(lrs, dtype=float)
    if fit.joint and (n_params is None or not math.isfinite(float(n_params))):
        raise ValueError("this curve fit is joint over N: give n_params of the run to predict")
    dummy = np.ones(max(MIN_POINTS, steps.size))
    c = make_curve("prediction", np.arange(1, dummy.size + 1), dummy, eta, min_points=1)
    n = float(n_params) if n_params is not None else math.nan
    c = Curve(c.run, c.steps, c.loss, c.lrs, n, "prediction")
    if steps.size and (steps.min() < 1 or steps.max() > eta.size):
        raise ValueError(f"steps must lie in [1, {eta.size}] (the schedule's length)")
    d = _design([c], fit.n_ref if fit.joint else 0.0, 64, fit.lam, upto=[steps])
    names = _layout(fit.law, fit.joint)
    out = []
    for p in param_sets:
        pred, _ = _evaluate(fit.law, names, _pack(fit.law, names, p), d, grad=False)
        out.append(pred)
    return np.array(out)


def predict_final(
    fit: CurveFit | dict[str, Any],
    lrs: Sequence[float],
    n_params: float | None = None,
    step: int | None = None,
    level: float | None = None,
) -> dict[str, Any]:
    """Predicted loss at ``step`` (default: the schedule's last step) of a run on ``lrs``.

    Answers the three questions of issue 21 with one call: a running run's final loss (its own
    planned schedule), the same shape under another schedule (another ``lrs``), and an unseen
    size (``n_params`` with a joint fit).

    Args:
        fit: a ``CurveFit`` or its ``to_dict()``.
        lrs: per-step LR of the planned schedule, shape (T,) (``schedule_lrs``).
        n_params: N of the run (joint fits).
        step: the step to predict (1 <= step <= T).
        level: interval coverage (default: the fit's level).

    Returns:
        ``{"value", "ci": [lo, hi], "pi": [lo, hi], "level", "note"}``, loss in nats/token;
        ``ci`` NaN without a bootstrap; ``note`` says how far the prediction lies past the
        longest fitted curve and outside the fitted N range.

    Raises:
        CurveError: a schedule the law cannot represent.
        ValueError: a bad step or level, or a joint fit without ``n_params``.
    """
    from analysis.forecast import prediction_interval

    if isinstance(fit, dict):
        fit = CurveFit.from_dict(fit)
    lvl = fit.level if level is None else level
    check_level(lvl)
    T = len(lrs)
    t = T if step is None else int(step)
    if not 1 <= t <= T:
        raise ValueError(f"step must be in [1, {T}] (the schedule's length), got {step}")
    value = float(_predict(fit, [fit.params], lrs, [t], n_params)[0, 0])
    with np.errstate(all="ignore"):
        draws = (
            _predict(fit, fit.boot_params, lrs, [t], n_params)[:, 0]
            if fit.boot_params
            else np.zeros(0)
        )
    ci = percentile_ci(draws, lvl) if draws.size else (math.nan, math.nan)
    log_point = math.log(value) if value > 0 else math.nan
    centres = np.log(draws[draws > 0]) if draws.size else np.zeros(0)
    pi = prediction_interval(centres, fit.residuals, fit.n_free, lvl, log_point=log_point)
    notes = [horizon_note(fit, t, n_params)] if horizon_note(fit, t, n_params) else []
    if fit.residual_kind == "every point":
        notes.append("PI from every point's residual (fewer runs than coefficients)")
    return {"value": value, "ci": list(ci), "pi": list(pi), "level": lvl, "note": "; ".join(notes)}


def horizon_note(fit: CurveFit, step: int, n_params: float | None = None) -> str:
    """How far ``step`` lies past the longest fitted curve, and N outside the fitted range."""
    parts = []
    if step > fit.max_fitted_step > 0:
        parts.append(
            f"step {step} is {step / fit.max_fitted_step:.3g}x past the fitted horizon (the "
            f"longest fitted curve ends at step {fit.max_fitted_step})"
        )
    lo, hi = fit.n_range
    if fit.joint and n_params is not None and math.isfinite(lo):
        if n_params > hi:
            parts.append(f"N = {n_params:.3g} is {n_params / hi:.3g}x above the largest fitted N")
        elif n_params < lo:
            parts.append(f"N = {n_params:.3g} is {lo / n_params:.3g}x below the smallest fitted N")
    return "; ".join(parts)
