"""Regime check: is the per-budget minimum loss one power law in compute, and where does it bend?

Every law this toolkit fits (approaches 1-3, Kaplan) assumes one exponent over the swept range.
When the smallest budgets sit in another regime (e.g. 1-layer models, which cannot form induction
heads: Olsson et al. 2022; Kaplan et al. 2020 Fig. 6), they drag every extrapolation. This module
measures that, torch-free, from the fit inputs alone.

Legend: C = training FLOPs of a budget (geometric mean of its runs' C), L_k = the minimum final
loss among budget k's runs (nats/token), y_k = log L_k, x_k = log C_k.

- **Local exponent** between adjacent budgets k, k+1: ``-(y_{k+1} - y_k) / (x_{k+1} - x_k)``,
  the slope of the per-budget minimum loss against compute on log-log axes (positive when the
  loss falls). A constant exponent is the pure power law L = G C^(-gamma).
- **Bootstrap CI**: runs are resampled with replacement within each budget (the budget's
  minimum is recomputed from the resample); percentile intervals (``analysis.estimates``).
- **Noise of one budget's minimum** (var_k, in log L): the larger of its bootstrap variance and
  the pooled residual variance of a quadratic in log N fitted within each budget with >= 4 runs
  (the scatter of one run about its IsoFLOP profile, Hoffmann et al. 2022 approach 2), so a
  budget whose best run was lucky is not treated as exact.
- **Lack-of-fit test** for one constant exponent: weighted least squares of y on x (weights
  1/var_k), statistic ``chi2 = sum r_k^2 / var_k`` against a chi-square with K - 2 degrees of
  freedom (the goodness-of-fit chi-square test with known variances: Bevington & Robinson 2003,
  "Data Reduction and Error Analysis", Sec. 11.1; Press et al. 2007, Numerical Recipes, Sec. 15.1
  and 15.2). p < ``alpha_test`` (0.05) rejects a constant exponent.
- **Off-trend budgets**: each budget's deleted residual, y_k minus the WLS line fitted to the
  other budgets, divided by its standard error (sqrt(var_k + var of the line's prediction)), is
  compared with the Bonferroni normal quantile z_{1 - alpha_test / (2K)} (Cook & Weisberg 1982,
  "Residuals and Influence in Regression", Sec. 2.2: the externally studentised residual as an
  outlier test). Budgets are named one at a time, the most extreme first, each removed before
  the next is judged among the rest (the sequential procedure of Rosner 1983, Technometrics
  25(2)), so one far-off head does not also get its neighbour named (swamping); at least three
  budgets always remain.

The **head-drop rule** (opt-in, ``drop_off_trend_head``): drop the smallest budget while the
lack-of-fit test on the remaining budgets rejects AND that smallest budget is itself named off
trend; stop as soon as either fails. A drop that would leave fewer than three budgets is refused
(``ValueError`` naming the budgets), since two budgets cannot show a trend. The rule was fixed
from simulations with a known break and from the published Chinchilla data, never from the main
job: ``benchmarks/regime_rule.py`` and ``docs/LOG.md`` (issue 25).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from analysis.estimates import percentile_ci
from analysis.fits import budget_groups

MIN_BUDGETS = 3  # a line through two points has no lack of fit to test
ALPHA_TEST = 0.05
UNLABELLED_BIN_DEX = 0.25  # grids and ladders: C binned to quarter decades (stated in the result)


def _groups(C: np.ndarray, budget: np.ndarray | None) -> tuple[np.ndarray, str]:
    if budget is not None and np.all(np.isfinite(np.asarray(budget, dtype=float))):
        return np.asarray(budget, dtype=float), "IsoFLOP budgets (flops_budget)"
    return (
        budget_groups(C, None, UNLABELLED_BIN_DEX),
        f"no budget labels: runs grouped by C in {UNLABELLED_BIN_DEX}-decade bins",
    )


def _pooled_profile_var(N: np.ndarray | None, L: np.ndarray, groups: np.ndarray) -> float:
    """Pooled residual variance of log L about a quadratic in log N, per budget (>= 4 runs)."""
    if N is None:
        return math.nan
    ss, dof = 0.0, 0
    for g in np.unique(groups):
        m = groups == g
        if m.sum() < 4 or len(np.unique(N[m])) < 4:
            continue
        x, y = np.log(N[m]), np.log(L[m])
        coef = np.polyfit(x, y, 2)
        ss += float(np.sum((y - np.polyval(coef, x)) ** 2))
        dof += int(m.sum()) - 3
    return ss / dof if dof > 0 else math.nan


def _wls(x: np.ndarray, y: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares line: (coefficients [slope, intercept], their covariance)."""
    X = np.column_stack([x, np.ones_like(x)])
    W = 1.0 / var
    cov = np.linalg.inv(X.T @ (X * W[:, None]))
    beta = cov @ (X.T @ (W * y))
    return beta, cov


def _lack_of_fit(x: np.ndarray, y: np.ndarray, var: np.ndarray) -> dict[str, Any]:
    beta, _ = _wls(x, y, var)
    resid = y - (beta[0] * x + beta[1])
    chi2 = float(np.sum(resid**2 / var))
    dof = len(x) - 2
    return {
        "exponent": float(-beta[0]),
        "chi2": chi2,
        "dof": dof,
        "p_value": float(stats.chi2.sf(chi2, dof)),
    }


def _deleted_z(x: np.ndarray, y: np.ndarray, var: np.ndarray) -> np.ndarray:
    z = np.empty(len(x))
    for k in range(len(x)):
        keep = np.arange(len(x)) != k
        beta, cov = _wls(x[keep], y[keep], var[keep])
        xk = np.array([x[k], 1.0])
        z[k] = (y[k] - xk @ beta) / math.sqrt(var[k] + xk @ cov @ xk)
    return z


def _sequential_off_trend(
    x: np.ndarray, y: np.ndarray, var: np.ndarray, alpha: float
) -> set[int]:
    """Indices named off trend, the most extreme first, each removed before the next test."""
    left = list(range(len(x)))
    named: set[int] = set()
    while len(left) > MIN_BUDGETS:
        idx = np.array(left)
        z = _deleted_z(x[idx], y[idx], var[idx])
        k = int(np.argmax(np.abs(z)))
        if abs(z[k]) <= stats.norm.ppf(1 - alpha / (2 * len(idx))):
            break
        named.add(left.pop(k))
    return named


def regime_check(
    C: Any,
    L: Any,
    *,
    budget: Any = None,
    N: Any = None,
    n_bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
    alpha_test: float = ALPHA_TEST,
) -> dict[str, Any]:
    """Local exponents of the per-budget minimum loss, their CIs, and the constant-exponent test.

    Args:
        C: training FLOPs per run (n,).
        L: final loss per run (n,), nats/token.
        budget: IsoFLOP budget label per run (n,), or None (grids, ladders: C is binned to
            quarter decades instead, and the result says so).
        N: parameters per run (n,), any convention; gives the one-run noise (quadratic profile
            residuals). Without it, only the bootstrap variance is used.
        n_bootstrap: resamples of runs within budgets for the CIs and variances.
        seed: bootstrap seed.
        level: CI level.
        alpha_test: level of the lack-of-fit test and (Bonferroni-corrected) of the off-trend
            test.

    Returns:
        ``{"judged": True, "grouping", "budgets": [{"budget", "C", "L_min", "n_runs",
        "sd_log_L", "z_off_trend", "off_trend"}], "local": [{"from", "to", "exponent", "ci"}],
        "constant_exponent": {"exponent", "chi2", "dof", "p_value", "test", "rejected"},
        "off_trend": [budget labels], "warning": str or None, "level"}``; or, with fewer than
        three budgets, ``{"judged": False, "reason": ...}`` (a regime needs three points to
        bend).

    Raises:
        ValueError: C and L of different lengths, or a non-finite / non-positive C or L.
    """
    C = np.asarray(C, dtype=float)
    L = np.asarray(L, dtype=float)
    if C.shape != L.shape or C.ndim != 1:
        raise ValueError(f"regime check: C {C.shape} and L {L.shape} must be 1-D of one length")
    if not (np.all(np.isfinite(C)) and np.all(C > 0) and np.all(np.isfinite(L)) and np.all(L > 0)):
        raise ValueError("regime check: every C and L must be finite and > 0; drop failed runs")
    N = None if N is None else np.asarray(N, dtype=float)
    groups, grouping = _groups(C, None if budget is None else np.asarray(budget, dtype=float))
    labels = np.unique(groups)
    if len(labels) < MIN_BUDGETS:
        return {
            "judged": False,
            "grouping": grouping,
            "reason": (
                f"cannot judge the regime from {len(labels)} budget(s): a change of exponent "
                f"needs at least {MIN_BUDGETS} budgets (two points always lie on a power law)"
            ),
        }
    idx = [np.flatnonzero(groups == g) for g in labels]
    x = np.array([np.mean(np.log(C[i])) for i in idx])
    y = np.array([np.log(L[i].min()) for i in idx])
    rng = np.random.default_rng(seed)
    boot = np.empty((n_bootstrap, len(idx)))
    for b in range(n_bootstrap):
        boot[b] = [np.log(L[rng.choice(i, size=len(i))].min()) for i in idx]
    var_boot = boot.var(axis=0, ddof=1) if n_bootstrap > 1 else np.zeros(len(idx))
    var_one = _pooled_profile_var(N, L, groups)
    floor = var_one if math.isfinite(var_one) else 0.0
    var = np.maximum(var_boot, floor)
    if np.any(var <= 0):  # no noise estimate at all: a test would treat the minima as exact
        var = np.where(var > 0, var, np.nan)
    dx = np.diff(x)
    local = -np.diff(y) / dx
    local_boot = -np.diff(boot, axis=1) / dx if n_bootstrap > 1 else np.empty((0, len(dx)))
    out_local = [
        {
            "from": float(labels[k]),
            "to": float(labels[k + 1]),
            "exponent": float(local[k]),
            "ci": list(percentile_ci(local_boot[:, k], level)) if len(local_boot) else None,
        }
        for k in range(len(dx))
    ]
    rows = [
        {
            "budget": float(labels[k]),
            "C": float(math.exp(x[k])),
            "L_min": float(math.exp(y[k])),
            "n_runs": len(idx[k]),
            "sd_log_L": float(math.sqrt(var[k])) if math.isfinite(var[k]) else None,
        }
        for k in range(len(idx))
    ]
    result: dict[str, Any] = {
        "judged": True,
        "grouping": grouping,
        "budgets": rows,
        "local": out_local,
        "level": level,
        "noise": (
            f"var of each minimum = max(bootstrap var, one-run profile var {var_one:.3g})"
            if math.isfinite(var_one)
            else "var of each minimum = bootstrap var (no budget with >= 4 runs for a profile)"
        ),
    }
    if not np.all(np.isfinite(var)):
        result["constant_exponent"] = None
        result["off_trend"] = []
        result["warning"] = (
            "no noise estimate for budget(s) "
            + ", ".join(f"{labels[k]:.3g}" for k in np.flatnonzero(~np.isfinite(var)))
            + " (one run each, no profile): the constant-exponent test is not run"
        )
        return result
    lof = _lack_of_fit(x, y, var)
    lof["test"] = (
        "chi-square lack-of-fit of log L_min linear in log C (Bevington & Robinson 2003, "
        "Sec. 11.1), K - 2 degrees of freedom"
    )
    lof["rejected"] = bool(lof["p_value"] < alpha_test)
    z = _deleted_z(x, y, var)
    crit = float(stats.norm.ppf(1 - alpha_test / (2 * len(x))))
    named = _sequential_off_trend(x, y, var, alpha_test)
    for k, r in enumerate(rows):
        r["z_off_trend"] = float(z[k])
        r["off_trend"] = k in named
    off = [float(labels[k]) for k in sorted(named)]
    result.update(constant_exponent=lof, off_trend=off, z_critical=crit)
    warning = None
    if lof["rejected"] or off:
        named = ", ".join(f"C = {b:.3g}" for b in off) or "none singly"
        warning = (
            f"the per-budget minimum loss is not one power law in C (lack-of-fit p = "
            f"{lof['p_value']:.3g}); budgets off the trend: {named}. Local exponents: "
            + ", ".join(f"{r['from']:.3g}->{r['to']:.3g}: {r['exponent']:.3f}" for r in out_local)
            + ". Every law fitted here assumes one exponent."
        )
    result["warning"] = warning
    return result


def drop_off_trend_head(check: dict[str, Any]) -> list[float]:
    """The smallest budgets the head-drop rule leaves out (empty when nothing is off trend).

    Rule (module docstring): drop the smallest budget while a constant exponent is rejected on
    the remaining budgets and that smallest budget is itself named off trend. Each step re-runs
    the test on what remains, with the same per-budget minima and variances.

    Args:
        check: a judged ``regime_check`` result.

    Returns:
        Budget labels to leave out, smallest first.

    Raises:
        ValueError: the check could not judge (fewer than three budgets, or no noise estimate),
            or the rule would leave fewer than three budgets (the budgets are named).
    """
    if not check.get("judged") or check.get("constant_exponent") is None:
        why = check.get("reason") or check.get("warning") or "no test"
        raise ValueError(f"--drop-off-trend: cannot apply the rule ({why})")
    rows = check["budgets"]
    x = np.log([r["C"] for r in rows])
    y = np.log([r["L_min"] for r in rows])
    var = np.array([r["sd_log_L"] ** 2 for r in rows])
    alpha = ALPHA_TEST
    dropped: list[float] = []
    start = 0
    while True:
        xs, ys, vs = x[start:], y[start:], var[start:]
        lof = _lack_of_fit(xs, ys, vs)
        z = _deleted_z(xs, ys, vs)
        crit = stats.norm.ppf(1 - alpha / (2 * len(xs)))
        if not (lof["p_value"] < alpha and abs(z[0]) > crit):
            return dropped
        if len(xs) - 1 < MIN_BUDGETS:
            kept = [f"{r['budget']:.3g}" for r in rows[start + 1 :]]
            raise ValueError(
                "--drop-off-trend refused: the rule would drop budgets "
                + ", ".join(f"{r['budget']:.3g}" for r in rows[: start + 1])
                + f" and keep only {', '.join(kept)}; two budgets cannot show a trend. "
                "Fit without the flag, or add budgets"
            )
        dropped.append(rows[start]["budget"])
        start += 1


def format_regime(check: dict[str, Any]) -> str:
    """A few lines for the report and the console."""
    if not check.get("judged"):
        return f"Regime check: {check['reason']}."
    lines = [f"Regime check ({check['grouping']}; {check['noise']}):"]
    for r in check["local"]:
        ci = r["ci"]
        ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and math.isfinite(ci[0]) else ""
        lines.append(
            f"  local exponent {r['from']:.3g} -> {r['to']:.3g}: {r['exponent']:.3f}{ci_s}"
        )
    lof = check.get("constant_exponent")
    if lof:
        lines.append(
            f"  one exponent {lof['exponent']:.3f}: chi2 = {lof['chi2']:.2f} on {lof['dof']} dof, "
            f"p = {lof['p_value']:.3g} ({'rejected' if lof['rejected'] else 'not rejected'})"
        )
    if check.get("warning"):
        lines.append(f"  warning: {check['warning']}")
    return "\n".join(lines)
