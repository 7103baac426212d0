"""Backtests: forecasts scored on held-out data; how well does each approach predict the unseen?

IsoFLOP data (runs labelled with their IsoFLOP budget, ``flops_budget``, and >= 3 usable
budgets): leave-one-budget-out. For each usable budget in turn, every approach (1: envelope,
when curves exist; 2: IsoFLOP; 3: parametric) is refitted WITHOUT that budget's runs (with a
bootstrap), by the same estimator as the reported fit (``run_fit`` on the same ``FitData``:
approach 1 keeps the WSD trunk curves, cut at the last branch point a kept branch needs), and
predicts the held-out budget's compute-optimal N and loss at its C
(``analysis.query.compute_optimal``).

What is compared with what (issue 22: the same kind on both sides):

- ``N_obs``/``L_obs`` are the held-out budget's own parabola vertex (approach 2's per-budget
  optimum): an estimate of the MEAN frontier, smoothed over the budget's runs. They are
  checked against the prediction's bootstrap CI of the mean widened by the vertex's own
  standard error (delta method on the parabola's least-squares covariance; the two
  half-widths add in quadrature): ``N_iv``/``N_in_iv``, ``L_iv``/``L_in_iv``.
- Approach 3 predicts L at any (N, D), so each held-out RUN is also checked against its own
  one-run prediction interval (``analysis.forecast``; a k-seed mean against the interval of a
  k-seed mean): ``runs_in_pi`` = [inside, runs]. This is the coverage estimate.

The largest-budget row is the classic backtest. It holds out the largest USABLE budget (convex
parabola, vertex inside its N grid) and, when larger budgets were rejected, drops their runs
too, so that it extrapolates (``kind``); every other row is an interpolation. A WSD trunk
serves every budget of its (shape, LR, seed): ``shared`` counts the held-out runs whose trunk
also has fitted branches (shared initialisation, data order and trunk prefix).

The loss-curve law (issue 21; opt-in, ``curve_law=True``, the report's ``--curve-law``) is one
more method in the leave-one-budget-out design: the multi-power law (Luo et al. 2025,
``analysis.curves``) fitted jointly over N to the kept points' whole curves (WSD branches spliced
onto their trunks, ``analysis.curve_data``) predicts each held-out run's final loss on its own
planned schedule, with a one-run PI (``analysis.curve_predict``; ``CURVE_BOOTSTRAP`` resamples
over trunk clusters at most). It names no N_opt, so its rows carry only ``runs_in_pi``,
``run_L_err`` (mean of predicted - actual over the held-out runs, nats) and ``run_rel_errs``
(each held-out run's predicted / actual - 1). A held-out branch's curve is never fitted, but
its trunk's rows up to the branch step may be (in another budget's branch): the ``shared``
count says how many.

Grid or ladder data (no budget labels: binning C would turn a grid's diagonals into false
budgets), or fewer than 3 usable budgets: the runs with the largest N are held out, approach 3 is
refitted on the rest, and each held-out run's loss is predicted at its (N, D) with a PI.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from analysis.fit_inputs import FitData, fits_quietly
from analysis.fits import budget_groups
from analysis.parametric import IdentifiabilityWarning

LEVEL = 0.95
#: most bootstrap resamples per curve-law refit (each a joint fit; cost measured in docs/LOG.md)
CURVE_BOOTSTRAP = 20


def _subset(data: FitData, keep: np.ndarray) -> FitData:
    """The fit inputs of the sweep as if only the ``keep`` rows had been run.

    Curves: the kept points' own curves and, as in ``data_from_runs``, the WSD trunks their
    branches start from, each trunk cut at the last branch point a kept branch needs (a sweep
    without the held-out branches would not have trained the trunk further).
    """
    points = data.points[keep].reset_index(drop=True)
    curves = data.curves
    if curves is not None and len(curves) and "run_name" in points:
        own = curves["run_name"].isin(set(points["run_name"]))
        trunk = pd.Series(False, index=curves.index)
        if "parent_run" in points and "parent_step" in points:
            kids = points[points["parent_run"].notna()]
            last = kids.groupby("parent_run")["parent_step"].max()
            for name, step in last.items():
                trunk |= (curves["run_name"] == name) & (curves["step"] <= step)
        curves = curves[own | trunk]
    return FitData(points, curves, data.loss_col, data.selection, data.meta)


def _inside(x: float, iv: tuple[float, float] | list[float]) -> bool | None:
    lo, hi = iv
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return None
    return bool(lo <= x <= hi)


def backtest_forecasts(
    data: FitData,
    *,
    n_convention: str,
    flop_formula: str,
    n_bootstrap: int = 100,
    seed: int = 0,
    window: int | None = None,
    workers: int | None = None,
    curve_law: bool = False,
) -> dict[str, Any]:
    """Score every approach's forecasts on held-out budgets (or the largest-N runs).

    Args:
        data: fit inputs (``analysis.fit_inputs``); curves enable approach 1.
        n_convention: N convention for every refit.
        flop_formula: C formula for every refit.
        n_bootstrap: resamples per refit (for the CI and PI; 0 = intervals from residuals only).
        seed: bootstrap seed.
        window: approach 2's points per parabola (as in the full fit), or None.
        workers: processes for the approach-3 bootstrap.
        curve_law: add the loss-curve law as a method (leave-one-budget-out only; needs
            ``data.meta["source"]``, the runs directory the curves are read from).

    Returns:
        ``{"design": "isoflop" | "largest_n", "rows": [...], "summary": {approach: {...}},
        "note"}`` or ``{"error": reason}``. Each row: ``approach``, ``held_out`` (label),
        ``C``, ``largest`` (the largest-usable-budget row), ``kind`` ("extrapolation" or
        "interpolation"), ``shared`` ([held-out runs whose WSD trunk has fitted branches,
        held-out runs]), then ``N_obs``, ``N_pred``, ``N_ci``, ``N_iv``, ``N_err``,
        ``N_in_iv``, ``L_obs``, ``L_pred``, ``L_ci``, ``L_iv``, ``L_err``, ``L_in_iv``
        (vertex vs CI of the mean widened by the vertex's se; see the module docstring) and,
        for approach 3, ``runs_in_pi``; largest-N rows: ``L_obs``, ``L_pred``, ``L_pi``,
        ``L_err``, ``L_in_pi``, ``runs_in_pi``; curve-law rows (``approach`` ``"curves"``):
        ``runs_in_pi``, ``run_L_err``, ``run_rel_errs``, ``n_fitted_curves``,
        ``n_held_without_curve``, ``fit_seconds``; or ``approach``,
        ``held_out`` and ``error`` when the refit failed.
    """
    kw = dict(n_convention=n_convention, flop_formula=flop_formula)
    budget = data.points.get("flops_budget")
    labelled = budget is not None and bool(np.all(np.isfinite(budget.to_numpy(float))))
    full, err = fits_quietly("isoflop", data, window=window, **kw) if labelled else (None, None)
    usable = [o for o in full.optima if o["used"]] if full is not None else []
    if not labelled:
        err = "no IsoFLOP budget labels (flops_budget)"
    if len(usable) >= 3:
        out = _leave_one_budget_out(data, full, usable, kw, n_bootstrap, seed, window, workers)
        if curve_law:
            out["rows"] += _curve_rows(data, full, usable, kw, min(n_bootstrap, CURVE_BOOTSTRAP))
            out["note"] += (
                "; the curve law (multi-power, joint over N) predicts each held-out run's final "
                "loss from the kept points' whole curves, with its one-run 95% PI "
                f"({min(n_bootstrap, CURVE_BOOTSTRAP)} bootstrap resamples)"
            )
    else:
        out = _largest_n_out(data, kw, n_bootstrap, seed, workers)
        if "error" in out:
            why = err or f"{len(usable)} usable IsoFLOP budget(s)"
            out["error"] = f"no budget to hold out ({why}); largest-N hold-out: {out['error']}"
            return out
    out["summary"] = _summary(out["rows"])
    return out


def _vertex_se(logN: np.ndarray, L: np.ndarray, window: int | None) -> tuple[float, float]:
    """Standard errors of a budget's parabola vertex (log N_opt, L_opt), delta method.

    The parabola L = p2 x^2 + p1 x + p0 (x = log N) is fitted as in ``fits._isoflop_optima``
    (``window`` points around the lowest loss, or all); its coefficient covariance is
    s^2 (X^T X)^-1 with s^2 = RSS / (n - 3). Vertex x* = -p1 / (2 p2), L* = p0 - p1^2 / (4 p2).

    Returns:
        (se of log N_opt, se of L_opt), NaN with fewer than 4 distinct points (no residual dof).
    """
    order = np.argsort(logN)
    x, y = logN[order], L[order]
    if window is not None and window < len(x):
        imin = int(np.argmin(y))
        lo = min(max(imin - window // 2, 0), len(x) - window)
        x, y = x[lo : lo + window], y[lo : lo + window]
    if len(np.unique(x)) < 4:
        return (math.nan, math.nan)
    X = np.column_stack([x**2, x, np.ones_like(x)])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    p2, p1, _ = coef
    if not p2 > 0:
        return (math.nan, math.nan)
    cov = np.linalg.inv(X.T @ X) * float(np.sum((y - X @ coef) ** 2)) / (len(x) - 3)
    gx = np.array([p1 / (2 * p2**2), -1 / (2 * p2), 0.0])
    gl = np.array([p1**2 / (4 * p2**2), -p1 / (2 * p2), 1.0])
    return (float(math.sqrt(gx @ cov @ gx)), float(math.sqrt(gl @ cov @ gl)))


def _widened(value: float, ci: Any, se: float, log: bool) -> list[float]:
    """The CI of a predicted mean widened by an observed estimate's own se (in quadrature)."""
    z = 1.959963984540054  # N(0, 1) 97.5% quantile: a 95% interval
    f = math.log if log else float
    lo, hi = (float(c) if c is not None else math.nan for c in ci)
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(se)) or (log and value <= 0):
        return [math.nan, math.nan]
    v = f(value)
    dlo = math.hypot(v - f(lo), z * se)
    dhi = math.hypot(f(hi) - v, z * se)
    g = math.exp if log else float
    return [g(v - dlo), g(v + dhi)]


def _run_pi(fit: Any, n: float, d: float, k: float) -> tuple[float, float]:
    """95% PI of one run (k = 1) or of a k-seed mean at (N, D) (``analysis.forecast``)."""
    from analysis.forecast import _law, fit_n_seeds, n_free_params, prediction_interval

    point = float(fit.predict_loss(n, d))
    with np.errstate(all="ignore"):
        draws = np.log([_law(p, n, d) for p in fit.sample_params()])
    # a k-seed mean's noise is 1/sqrt(k) of one run's: shrink the residuals to match
    return prediction_interval(
        draws,
        np.asarray(fit.residuals, dtype=float) / math.sqrt(k),
        n_free_params(fit),
        LEVEL,
        log_point=math.log(point) if point > 0 else math.nan,
        n_seeds=fit_n_seeds(fit),
    )


def _runs_in_pi(fit: Any, arr: dict[str, np.ndarray], held: np.ndarray, seeds: np.ndarray):
    """[inside, runs]: held-out points inside their own one-run (k-seed-mean) 95% PI."""
    inside = total = 0
    for n, d, loss, k in zip(
        arr["N"][held], arr["D"][held], arr["L"][held], seeds[held], strict=True
    ):
        lo, hi = _run_pi(fit, n, d, k)
        if math.isfinite(lo):
            total += 1
            inside += bool(lo <= loss <= hi)
    return [inside, total]


def _leave_one_budget_out(data, full, usable, kw, n_bootstrap, seed, window, workers):
    from analysis.query import compute_optimal

    arr = data.arrays(kw["n_convention"], kw["flop_formula"])
    budget = arr["budget"]
    if budget is not None and not np.all(np.isfinite(budget)):
        budget = None
    groups = budget_groups(arr["C"], budget, full.meta.get("bin_dex", 0.1))
    seeds = (
        data.points["n_seeds"].fillna(1).to_numpy(float)
        if "n_seeds" in data.points
        else np.ones(len(groups))
    )
    cluster = arr["cluster"] if arr["cluster"] is not None else data.points.index.astype(str)
    approaches = ["isoflop", "parametric"]
    if data.curves is not None and len(data.curves):
        approaches.insert(0, "envelope")
    largest = max(o["C"] for o in usable)
    above = [o for o in full.optima if not o["used"] and o["C"] > largest]
    logN = np.log(arr["N"])
    rows: list[dict[str, Any]] = []
    for o in sorted(usable, key=lambda o: o["C"]):
        held = np.isclose(groups, o["flops_budget"], rtol=1e-9)
        drop = held.copy()
        is_top = o["C"] == largest
        label = f"C = {o['C']:.3g}"
        if is_top:
            label += " (largest usable budget"
            for u in above:  # rejected larger budgets would make the backtest interpolate
                drop |= np.isclose(groups, u["flops_budget"], rtol=1e-9)
            label += f"; {len(above)} larger rejected budget(s) dropped too)" if above else ")"
        sub = _subset(data, ~drop)
        n_shared = int(np.isin(cluster[held], cluster[~drop]).sum())
        se_logn, se_l = _vertex_se(logN[held], arr["L"][held], window)
        for appr in approaches:
            extra: dict[str, Any] = {"window": window} if appr == "isoflop" else {}
            if appr == "parametric":
                extra["workers"] = workers
            with warnings.catch_warnings():  # a refit's flags go into its row, not stderr
                warnings.simplefilter("ignore", IdentifiabilityWarning)
                fit, err = fits_quietly(
                    appr, sub, n_bootstrap=n_bootstrap, seed=seed, **kw, **extra
                )
            row: dict[str, Any] = {"approach": appr, "held_out": label, "C": o["C"]}
            row["largest"] = is_top
            row["kind"] = "extrapolation" if is_top else "interpolation"
            row["shared"] = [n_shared, int(held.sum())]
            if fit is None:
                rows.append({**row, "error": err})
                continue
            pred = compute_optimal(o["C"], fit)
            n_iv = _widened(pred.n_params.value, pred.n_params.ci, se_logn, log=True)
            l_iv = _widened(pred.loss.value, pred.loss.ci, se_l, log=False)
            rows.append(
                {
                    **row,
                    "N_obs": o["N_opt"],
                    "N_pred": pred.n_params.value,
                    "N_ci": list(pred.n_params.ci),
                    "N_iv": n_iv,
                    "N_err": pred.n_params.value / o["N_opt"] - 1,
                    "N_in_iv": _inside(o["N_opt"], n_iv),
                    "L_obs": o["L_opt"],
                    "L_pred": pred.loss.value,
                    "L_ci": list(pred.loss.ci),
                    "L_iv": l_iv,
                    "L_err": pred.loss.value - o["L_opt"],
                    "L_in_iv": _inside(o["L_opt"], l_iv),
                    "flags": list(getattr(fit, "flags", ())),
                }
            )
            if appr == "parametric":
                rows[-1]["runs_in_pi"] = _runs_in_pi(fit, arr, held, seeds)
    return {
        "design": "isoflop",
        "rows": rows,
        "note": (
            "leave-one-budget-out: each approach refitted by the reported estimator without "
            f"the held-out budget's runs ({n_bootstrap} bootstrap resamples); observed = that "
            "budget's own parabola vertex (a smoothed mean), checked against the prediction's "
            "95% CI of the mean widened by the vertex's own standard error (delta method); "
            "approach 3 also checks each held-out run against its one-run 95% PI (runs in PI); "
            "N_err = N_pred/N_obs - 1, L_err = L_pred - L_obs (nats); the largest usable "
            "budget's row extrapolates (larger rejected budgets dropped too), the others "
            "interpolate; 'shared' = held-out runs whose WSD trunk also has fitted branches"
        ),
    }


def _curve_rows(data, full, usable, kw, n_bootstrap):
    """The curve law's leave-one-budget-out rows (module docstring), one per usable budget."""
    import time

    from analysis.curve_data import run_curves
    from analysis.curve_predict import predict_final
    from analysis.curves import CurveError, fit_curves

    arr = data.arrays(kw["n_convention"], kw["flop_formula"])
    groups = budget_groups(arr["C"], arr["budget"], full.meta.get("bin_dex", 0.1))
    names = data.points["run_name"].to_numpy(str)
    cluster = arr["cluster"] if arr["cluster"] is not None else names
    source = (data.meta or {}).get("source")
    try:
        curves, _ = run_curves(source, data.loss_col, n_convention=kw["n_convention"])
    except (OSError, TypeError, ValueError) as e:
        return [{"approach": "curves", "held_out": "every budget", "error": f"no curves: {e}"}]
    by_name = {c.run: c for c in curves}
    largest = max(o["C"] for o in usable)
    above = [o["flops_budget"] for o in full.optima if not o["used"] and o["C"] > largest]
    rows: list[dict[str, Any]] = []
    for o in sorted(usable, key=lambda o: o["C"]):
        held = np.isclose(groups, o["flops_budget"], rtol=1e-9)
        drop = held.copy()
        if o["C"] == largest:
            for b in above:
                drop |= np.isclose(groups, b, rtol=1e-9)
        row: dict[str, Any] = {"approach": "curves", "held_out": f"C = {o['C']:.3g}", "C": o["C"]}
        row["largest"] = o["C"] == largest
        row["kind"] = "extrapolation" if row["largest"] else "interpolation"
        row["shared"] = [int(np.isin(cluster[held], cluster[~drop]).sum()), int(held.sum())]
        fitted = [by_name[n] for n in names[~drop] if n in by_name]
        targets = [by_name[n] for n in names[held] if n in by_name]
        t0 = time.perf_counter()
        try:
            fit = fit_curves(fitted, "multi_power", n_bootstrap=n_bootstrap, level=LEVEL)
            preds = [predict_final(fit, c.lrs, n_params=c.n_params, level=LEVEL) for c in targets]
        except (CurveError, ValueError) as e:
            rows.append({**row, "error": f"curve-law refit failed: {e}"})
            continue
        actual = [float(c.loss[-1]) for c in targets]  # the run's final val/loss, one run
        pairs = list(zip(preds, actual, strict=True))
        inside = [
            bool(p["pi"][0] <= a <= p["pi"][1])
            for p, a in pairs
            if all(math.isfinite(x) for x in p["pi"])
        ]
        rows.append(
            {
                **row,
                "runs_in_pi": [sum(inside), len(inside)],
                "run_L_err": float(np.mean([p["value"] - a for p, a in pairs]))
                if pairs
                else math.nan,
                "run_rel_errs": [p["value"] / a - 1 for p, a in pairs],
                "n_fitted_curves": len(fitted),
                "n_held_without_curve": int(held.sum()) - len(targets),  # < MIN_POINTS points
                "fit_seconds": time.perf_counter() - t0,
            }
        )
    return rows


def _largest_n_out(data, kw, n_bootstrap, seed, workers):
    arr = data.arrays(kw["n_convention"], kw["flop_formula"])
    N = arr["N"]
    held = np.isclose(N, N.max(), rtol=1e-9)
    if held.all() or len(np.unique(N)) < 3:
        return {"error": "needs >= 3 distinct N", "rows": []}
    seeds = (
        data.points["n_seeds"].fillna(1).to_numpy(float)
        if "n_seeds" in data.points
        else np.ones(len(N))
    )
    cluster = arr["cluster"] if arr["cluster"] is not None else data.points.index.astype(str)
    n_shared = int(np.isin(cluster[held], cluster[~held]).sum())
    with warnings.catch_warnings():  # flags are reported in the note, not on stderr
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        fit, err = fits_quietly(
            "parametric",
            _subset(data, ~held),
            n_bootstrap=n_bootstrap,
            seed=seed,
            workers=workers,
            **kw,
        )
    if fit is None:
        return {"error": err, "rows": []}
    rows = []
    for n, d, loss, k in zip(N[held], arr["D"][held], arr["L"][held], seeds[held], strict=True):
        pred = float(fit.predict_loss(n, d))
        pi = list(_run_pi(fit, n, d, k))
        inside = _inside(float(loss), pi)
        rows.append(
            {
                "approach": "parametric",
                "held_out": f"N = {n:.3g}, D = {d:.3g}" + (f" ({k:g} seeds)" if k > 1 else ""),
                "C": float(arr["C"][held][0]),
                "largest": True,
                "kind": "extrapolation",
                "shared": [n_shared, int(held.sum())],
                "L_obs": float(loss),
                "L_pred": pred,
                "L_pi": pi,
                "L_err": pred - float(loss),
                "L_in_pi": inside,
                "runs_in_pi": [int(bool(inside)), int(inside is not None)],
            }
        )
    return {
        "design": "largest_n",
        "rows": rows,
        "note": (
            f"no IsoFLOP budgets: the {int(held.sum())} run(s) with the largest N "
            f"({N.max():.3g}) held out, approach 3 refitted on the rest ({n_bootstrap} bootstrap "
            "resamples); each held-out run's loss predicted at its (N, D) with its one-run 95% "
            "PI (a k-seed mean with the PI of a k-seed mean)"
        ),
    }


def _summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per approach: refits, mean errors, observed values inside their intervals.

    Keys: ``n``, ``failed``; with N: ``mean_abs_N_err``, ``N_in_iv``; ``mean_abs_L_err``;
    vertex rows: ``L_in_iv``, ``iv_na`` (rows without an interval); approach 3:
    ``runs_in_pi`` ([inside, runs] over every held-out run) and ``runs_in_pi_ci`` (its Wilson
    95% interval; the runs of one budget share a refit, so this understates the spread).
    """
    from analysis.synthetic import wilson_interval

    out: dict[str, dict[str, Any]] = {}
    for appr in dict.fromkeys(r["approach"] for r in rows):
        ok = [r for r in rows if r["approach"] == appr and "error" not in r]
        s: dict[str, Any] = {
            "n": len(ok),
            "failed": sum(r["approach"] == appr for r in rows) - len(ok),
        }
        if ok and "N_err" in ok[0]:
            s["mean_abs_N_err"] = float(np.mean([abs(r["N_err"]) for r in ok]))
            s["N_in_iv"] = sum(bool(r["N_in_iv"]) for r in ok)
            s["L_in_iv"] = sum(bool(r["L_in_iv"]) for r in ok)
            s["iv_na"] = sum(r["L_in_iv"] is None for r in ok)
        if ok and "L_err" in ok[0]:
            s["mean_abs_L_err"] = float(np.mean([abs(r["L_err"]) for r in ok]))
        rel = [abs(x) for r in ok for x in r.get("run_rel_errs", [])]
        if rel:  # the curve law: every held-out run's |relative error| of its final loss
            s["median_abs_run_rel_err"] = float(np.median(rel))
        counts = [r["runs_in_pi"] for r in ok if "runs_in_pi" in r]
        if counts:
            k, m = sum(c[0] for c in counts), sum(c[1] for c in counts)
            s["runs_in_pi"] = [k, m]
            s["runs_in_pi_ci"] = list(wilson_interval(k, m)) if m else [math.nan, math.nan]
        out[appr] = s
    return out
