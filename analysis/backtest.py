"""Backtests: forecasts scored on held-out data; how well does each approach predict the unseen?

IsoFLOP data (runs labelled with their IsoFLOP budget, ``flops_budget``, and >= 3 usable
budgets): leave-one-budget-out. For each usable budget in turn, every
approach (1: envelope, when curves exist; 2: IsoFLOP; 3: parametric) is refitted WITHOUT that
budget's runs (with a bootstrap) and predicts the held-out budget's compute-optimal N and loss at
its C (``analysis.query.compute_optimal``). The observed values are the held-out budget's own
parabola vertex (approach 2's per-budget optimum, which uses that budget's runs only). Each row
gives the signed errors (N_pred / N_obs - 1; L_pred - L_obs in nats), whether N_obs lies in the
prediction's 95% bootstrap CI, and whether L_obs lies in its 95% prediction interval
(``analysis.forecast``). The row that holds out the largest budget is the classic backtest.

Grid or ladder data (no budget labels: binning C would turn a grid's diagonals into false
budgets), or fewer than 3 usable budgets: the runs with the largest N are held out, approach 3 is
refitted on the rest, and each held-out run's loss is predicted at its (N, D) with a PI.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from analysis.fit_inputs import FitData, fits_quietly
from analysis.fits import budget_groups
from analysis.parametric import IdentifiabilityWarning

LEVEL = 0.95


def _subset(data: FitData, keep: np.ndarray) -> FitData:
    points = data.points[keep].reset_index(drop=True)
    curves = data.curves
    if curves is not None and len(curves) and "run_name" in points:
        curves = curves[curves["run_name"].isin(set(points["run_name"]))]
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

    Returns:
        ``{"design": "isoflop" | "largest_n", "rows": [...], "summary": {approach: {...}},
        "note"}`` or ``{"error": reason}``. Each row: ``approach``, ``held_out`` (label),
        ``C``, ``largest`` (the largest-budget row), ``N_obs``, ``N_pred``, ``N_ci``,
        ``N_err``, ``N_in_ci``, ``L_obs``, ``L_pred``, ``L_pi``, ``L_err``, ``L_in_pi``, or
        ``approach``, ``held_out`` and ``error`` when the refit failed.
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
    else:
        out = _largest_n_out(data, kw, n_bootstrap, seed, workers)
        if "error" in out:
            why = err or f"{len(usable)} usable IsoFLOP budget(s)"
            out["error"] = f"no budget to hold out ({why}); largest-N hold-out: {out['error']}"
            return out
    out["summary"] = _summary(out["rows"])
    return out


def _leave_one_budget_out(data, full, usable, kw, n_bootstrap, seed, window, workers):
    from analysis.query import compute_optimal

    arr = data.arrays(kw["n_convention"], kw["flop_formula"])
    budget = arr["budget"]
    if budget is not None and not np.all(np.isfinite(budget)):
        budget = None
    groups = budget_groups(arr["C"], budget, full.meta.get("bin_dex", 0.1))
    approaches = ["isoflop", "parametric"]
    if data.curves is not None and len(data.curves):
        approaches.insert(0, "envelope")
    largest = max(o["C"] for o in usable)
    rows: list[dict[str, Any]] = []
    for o in sorted(usable, key=lambda o: o["C"]):
        sub = _subset(data, ~np.isclose(groups, o["flops_budget"], rtol=1e-9))
        label = f"C = {o['C']:.3g}" + (" (largest budget)" if o["C"] == largest else "")
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
            row["largest"] = o["C"] == largest
            if fit is None:
                rows.append({**row, "error": err})
                continue
            pred = compute_optimal(o["C"], fit)
            n_ci, l_pi = pred.n_params.ci, pred.loss.pi or (math.nan, math.nan)
            rows.append(
                {
                    **row,
                    "N_obs": o["N_opt"],
                    "N_pred": pred.n_params.value,
                    "N_ci": list(n_ci),
                    "N_err": pred.n_params.value / o["N_opt"] - 1,
                    "N_in_ci": _inside(o["N_opt"], n_ci),
                    "L_obs": o["L_opt"],
                    "L_pred": pred.loss.value,
                    "L_pi": list(l_pi),
                    "L_err": pred.loss.value - o["L_opt"],
                    "L_in_pi": _inside(o["L_opt"], l_pi),
                    "flags": list(getattr(fit, "flags", ())),
                }
            )
    return {
        "design": "isoflop",
        "rows": rows,
        "note": (
            "leave-one-budget-out: each approach refitted without the held-out budget's runs "
            f"({n_bootstrap} bootstrap resamples); observed = that budget's own parabola vertex; "
            "N_err = N_pred/N_obs - 1, L_err = L_pred - L_obs (nats); CI/PI at 95%"
        ),
    }


def _largest_n_out(data, kw, n_bootstrap, seed, workers):
    from analysis.forecast import predict_loss

    arr = data.arrays(kw["n_convention"], kw["flop_formula"])
    N = arr["N"]
    held = np.isclose(N, N.max(), rtol=1e-9)
    if held.all() or len(np.unique(N)) < 3:
        return {"error": "needs >= 3 distinct N", "rows": []}
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
    for n, d, loss in zip(N[held], arr["D"][held], arr["L"][held], strict=True):
        p = predict_loss(fit, n, d, LEVEL)
        rows.append(
            {
                "approach": "parametric",
                "held_out": f"N = {n:.3g}, D = {d:.3g}",
                "C": float(arr["C"][held][0]),
                "largest": True,
                "L_obs": float(loss),
                "L_pred": p["value"],
                "L_pi": p["pi"],
                "L_err": p["value"] - float(loss),
                "L_in_pi": _inside(float(loss), p["pi"]),
            }
        )
    return {
        "design": "largest_n",
        "rows": rows,
        "note": (
            f"no IsoFLOP budgets: the {int(held.sum())} run(s) with the largest N "
            f"({N.max():.3g}) held out, approach 3 refitted on the rest ({n_bootstrap} bootstrap "
            "resamples); each held-out run's loss predicted at its (N, D); PI at 95%"
        ),
    }


def _summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per approach: refits, mean errors, held-out values inside CI / PI, refits without a PI.

    Keys: ``n``, ``failed``, ``mean_abs_N_err``, ``N_in_ci``, ``mean_abs_L_err``, ``L_in_pi``,
    ``L_pi_na``.
    """
    out: dict[str, dict[str, Any]] = {}
    for appr in dict.fromkeys(r["approach"] for r in rows):
        ok = [r for r in rows if r["approach"] == appr and "error" not in r]
        s: dict[str, Any] = {
            "n": len(ok),
            "failed": sum(r["approach"] == appr for r in rows) - len(ok),
        }
        if ok and "N_err" in ok[0]:
            s["mean_abs_N_err"] = float(np.mean([abs(r["N_err"]) for r in ok]))
            s["N_in_ci"] = sum(bool(r["N_in_ci"]) for r in ok)
        if ok:
            s["mean_abs_L_err"] = float(np.mean([abs(r["L_err"]) for r in ok]))
            s["L_in_pi"] = sum(bool(r["L_in_pi"]) for r in ok)
            s["L_pi_na"] = sum(r["L_in_pi"] is None for r in ok)
        out[appr] = s
    return out
