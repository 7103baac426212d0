"""Backtest-calibrated forecast intervals: how wrong was each approach when it extrapolated?

A model prediction interval (``analysis.forecast``) trusts the fitted law's form and its
in-sample residuals. When the law is wrong (a change of regime across the range, see
``analysis.regime``), the extrapolation error grows with the distance extrapolated and the model
interval does not. Here each approach is backtested **forward** on the sweep itself: fitted on
the budgets up to k (k >= 2), it predicts the minimum loss of every larger budget j. Each
backtest gives a log error and an extrapolation factor:

    e = log(L_pred / L_obs),   x = C_j / C_k   (x > 1),

with L_obs the budget's best run (one run, as a forecast's check is) and L_pred the approach's
compute-optimal loss at C_j (``analysis.query.compute_optimal``).

**Construction** (a scale model with a Student-t quantile). Split-conformal and jackknife+
intervals (Barber et al. 2021, "Predictive inference with the jackknife+", Ann. Statist. 49(1))
need n >= 1/(1 - level) - 1 = 19 scores for a finite 95% quantile, and a sweep of 4-5 budgets
gives 3-6 forward backtests, so their 95% interval is unbounded. We instead assume the log error
is normal with a standard deviation that grows with the log extrapolation distance,

    sd(e | x) = s * ln(1 + x),

(a slope error delta gives delta * ln x; the 1 keeps an offset error at x -> 1), estimate
s^2 = mean((e_i / ln(1 + x_i))^2) over the n backtests (not centred: a systematic bias counts as
error), and give the interval of a new forecast at the query's own factor x_q:

    L_pred * exp(+/- t_{n, (1 + level) / 2} * s * ln(1 + x_q)),

the normal-theory prediction interval for one new draw with an estimated scale (Hahn & Meeker
1991, "Statistical Intervals", Sec. 4.7; Geisser 1993, "Predictive Inference", Ch. 2). The n
backtests of one sweep share fits and budgets, so they are not independent and t_n is
optimistic; its coverage is measured, not assumed (``benchmarks/calibration_coverage.py``).

Fewer than three budgets: no calibration is possible (a forward backtest needs two budgets to
fit and one to predict). Fewer than ``MIN_BACKTESTS`` backtests: the result says so and the
headline falls back to the model interval, labelled as such.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

MIN_TRAIN_BUDGETS = 2
MIN_BACKTESTS = 3
APPROACHES = ("isoflop", "parametric")


def _fit(approach: str, N, D, C, L, budget, n_convention: str, flop_formula: str) -> Any:
    from analysis.fits import fit_isoflop
    from analysis.parametric import fit_parametric

    kw = dict(n_convention=n_convention, flop_formula=flop_formula)
    with warnings.catch_warnings():  # a refit's flags are not the report's warnings
        warnings.simplefilter("ignore")
        if approach == "isoflop":
            return fit_isoflop(N, D, C, L, budget=budget, **kw)
        if approach == "parametric":
            return fit_parametric(N, D, L, workers=1, **kw)
    raise ValueError(f"calibration: approach must be one of {APPROACHES}, got {approach!r}")


def forward_backtests(
    N: Any,
    D: Any,
    C: Any,
    L: Any,
    budget: Any,
    *,
    approaches: tuple[str, ...] = APPROACHES,
    n_convention: str,
    flop_formula: str,
) -> dict[str, Any]:
    """Fit on the budgets up to k, predict every larger budget's minimum loss; for k >= 2.

    Args:
        N: parameters per run (n,), in ``n_convention``.
        D: tokens per run (n,).
        C: FLOPs per run (n,), following ``flop_formula``.
        L: final loss per run (n,), nats/token.
        budget: IsoFLOP budget label per run (n,).
        approaches: ``"isoflop"`` (approach 2) and/or ``"parametric"`` (approach 3, no
            bootstrap: only its point prediction is scored).
        n_convention: N convention of the refits.
        flop_formula: C formula of the refits.

    Returns:
        ``{"budgets": [...], "rows": [{"approach", "train_upto", "budget", "x", "L_pred",
        "L_obs", "log_err"} or {"approach", "train_upto", "error"}]}``, or ``{"error": why}``
        with fewer than three budgets.
    """
    arrs = [np.asarray(v, dtype=float) for v in (N, D, C, L, budget)]
    N, D, C, L, budget = arrs
    labels = np.unique(budget)
    if len(labels) < MIN_TRAIN_BUDGETS + 1:
        return {
            "error": (
                f"no calibration possible with {len(labels)} budget(s): a forward backtest "
                f"needs {MIN_TRAIN_BUDGETS} budgets to fit and one larger budget to predict"
            ),
            "rows": [],
        }
    from analysis.query import compute_optimal

    c_of = {g: float(np.exp(np.mean(np.log(C[budget == g])))) for g in labels}
    l_of = {g: float(L[budget == g].min()) for g in labels}
    rows: list[dict[str, Any]] = []
    for k in range(MIN_TRAIN_BUDGETS, len(labels)):
        m = np.isin(budget, labels[:k])
        for appr in approaches:
            try:
                fit = _fit(appr, N[m], D[m], C[m], L[m], budget[m], n_convention, flop_formula)
            except (ValueError, RuntimeError, np.linalg.LinAlgError) as e:
                rows.append({"approach": appr, "train_upto": float(labels[k - 1]), "error": str(e)})
                continue
            for g in labels[k:]:
                pred = float(compute_optimal(c_of[g], fit).loss.value)
                if not (math.isfinite(pred) and pred > 0):
                    continue
                rows.append(
                    {
                        "approach": appr,
                        "train_upto": float(labels[k - 1]),
                        "budget": float(g),
                        "x": c_of[g] / c_of[labels[k - 1]],
                        "L_pred": pred,
                        "L_obs": l_of[g],
                        "log_err": math.log(pred / l_of[g]),
                    }
                )
    return {"budgets": [float(g) for g in labels], "rows": rows}


def calibrate(
    backtests: dict[str, Any], approach: str, *, min_backtests: int = MIN_BACKTESTS
) -> dict[str, Any]:
    """The scale model of one approach's forward-backtest errors.

    Returns:
        ``{"approach", "n", "scale", "dof", "errors": [(x, log_err)], "method"}``, or
        ``{"approach", "error": why}`` (no calibration possible / too few backtests).
    """
    if backtests.get("error"):
        return {"approach": approach, "error": backtests["error"]}
    ok = [r for r in backtests["rows"] if r["approach"] == approach and "log_err" in r]
    if len(ok) < min_backtests:
        return {
            "approach": approach,
            "error": (
                f"too few forward backtests ({len(ok)} < {min_backtests}) to calibrate "
                f"{approach}: using the model interval"
            ),
        }
    z = np.array([r["log_err"] / math.log1p(r["x"]) for r in ok])
    return {
        "approach": approach,
        "n": len(ok),
        "scale": float(math.sqrt(np.mean(z**2))),
        "dof": len(ok),
        "errors": [(r["x"], r["log_err"]) for r in ok],
        "method": (
            "scale model sd(log err) = s ln(1 + x) on forward backtests, Student-t quantile "
            "(Hahn & Meeker 1991 Sec. 4.7)"
        ),
    }


def calibrated_interval(
    cal: dict[str, Any], prediction: float, x: float, level: float = 0.95
) -> tuple[float, float] | None:
    """The calibrated interval for a forecast ``prediction`` at extrapolation factor ``x``.

    Args:
        cal: a ``calibrate`` result (None is returned when it holds an ``error``).
        prediction: the forecast loss (nats/token).
        x: the query's C over the largest fitted C (>= 1 for an extrapolation; smaller values are
            treated as 1).
        level: interval level.

    Raises:
        ValueError: a non-positive prediction or x.
    """
    if "error" in cal:
        return None
    if not (prediction > 0 and x > 0):
        raise ValueError(f"calibrated_interval: prediction {prediction} and x {x} must be > 0")
    half = stats.t.ppf((1 + level) / 2, cal["dof"]) * cal["scale"] * math.log1p(max(x, 1.0))
    return (prediction * math.exp(-half), prediction * math.exp(half))


def headline_interval(
    model_pi: Any, calibrated: tuple[float, float] | None
) -> tuple[tuple[float, float] | None, str]:
    """The wider of the model PI and the calibrated interval, and which one it is."""
    mpi = None
    if model_pi is not None and model_pi[0] is not None and math.isfinite(model_pi[0]):
        mpi = (float(model_pi[0]), float(model_pi[1]))
    if calibrated is None:
        return mpi, "model PI (no backtest calibration)"
    if mpi is None or calibrated[1] - calibrated[0] >= mpi[1] - mpi[0]:
        return calibrated, "backtest-calibrated interval (wider)"
    return mpi, "model PI (wider than the backtest-calibrated interval)"
