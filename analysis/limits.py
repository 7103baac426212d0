"""The report's "forecasts that know their limits" part: regime check, calibration, collapse.

Computes, for ``analysis.report`` (which only composes), from the fit inputs and the fits:
the regime check (``analysis.regime``), the forward-backtest calibration of approaches 2 and 3
with each answer's calibrated interval and headline interval (``analysis.calibration``), the
opt-in head-drop refit (``--drop-off-trend``), and the scaling collapse
(``analysis.collapse``). Torch-free.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from analysis.calibration import (
    calibrate,
    calibrated_interval,
    forward_backtests,
    headline_interval,
)
from analysis.fit_inputs import FitData
from analysis.regime import drop_off_trend_head, regime_check


def regime_for(data: FitData, n_convention: str, flop_formula: str, seed: int = 0) -> dict:
    """``regime_check`` on the fit inputs (budget labels when every run has one)."""
    arr = data.arrays(n_convention, flop_formula)
    budget = arr["budget"]
    if budget is not None and not np.all(np.isfinite(budget)):
        budget = None
    return regime_check(arr["C"], arr["L"], budget=budget, N=arr["N"], seed=seed)


def without_head(data: FitData, check: dict[str, Any]) -> tuple[FitData | None, list[float]]:
    """The fit inputs without the budgets the head-drop rule leaves out (None: nothing dropped).

    Raises:
        ValueError: the rule cannot be applied or would keep fewer than three budgets.
    """
    drop = drop_off_trend_head(check)
    if not drop:
        return None, []
    p = data.points
    if "flops_budget" not in p or not np.all(np.isfinite(p["flops_budget"].to_numpy(float))):
        raise ValueError("--drop-off-trend needs IsoFLOP budget labels (flops_budget) on every run")
    keep = ~np.isin(p["flops_budget"].to_numpy(float), drop)
    points = p[keep].reset_index(drop=True)
    curves = data.curves
    if curves is not None and len(curves):
        names = set(points["run_name"]) | set(points.get("parent_run", []).dropna())
        curves = curves[curves["run_name"].isin(names)]
    sel = f"{data.selection}; off-trend head dropped: C = " + ", ".join(f"{b:.3g}" for b in drop)
    return FitData(points, curves, data.loss_col, sel, data.meta), drop


def calibration_for(
    data: FitData, n_convention: str, flop_formula: str, optimal: dict[str, Any], target: float
) -> dict[str, Any]:
    """Forward backtests of approaches 2 and 3, and every answer's calibrated/headline interval.

    Returns:
        ``{"backtests", "by_approach": {approach: calibrate(...) + "x", "interval",
        "headline", "headline_source"}}`` or ``{"error": why}``.
    """
    arr = data.arrays(n_convention, flop_formula)
    budget = arr["budget"]
    if budget is None or not np.all(np.isfinite(budget)):
        bt: dict[str, Any] = {
            "error": "no calibration possible: no IsoFLOP budget labels to backtest forward",
            "rows": [],
        }
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bt = forward_backtests(
                arr["N"],
                arr["D"],
                arr["C"],
                arr["L"],
                budget,
                n_convention=n_convention,
                flop_formula=flop_formula,
            )
    out: dict[str, Any] = {"backtests": bt, "by_approach": {}}
    if bt.get("error"):
        out["error"] = bt["error"]
    else:
        labels = np.unique(budget)
        c_max = max(float(np.exp(np.mean(np.log(arr["C"][budget == g])))) for g in labels)
        out["x"] = target / c_max
    for appr in ("isoflop", "parametric"):
        cal = calibrate(bt, appr)
        opt = optimal.get(appr)
        if opt is not None:
            iv = None if "error" in cal else calibrated_interval(cal, opt.loss.value, out["x"])
            cal["interval"] = list(iv) if iv else None
            head, src = headline_interval(opt.loss.pi, iv)
            if "error" in cal:
                src = f"model PI only: {cal['error']}"
            cal["headline"] = list(head) if head else None
            cal["headline_source"] = src
        out["by_approach"][appr] = cal
    return out


def fmt_interval(iv: Any) -> str:
    """``[lo, hi]`` to 4 significant digits, or a dash."""
    if not iv or iv[0] is None or not math.isfinite(iv[0]):
        return "–"
    return f"[{iv[0]:.4g}, {iv[1]:.4g}]"


def limits_paragraphs(
    check: dict[str, Any],
    cal: dict[str, Any],
    collapse: dict[str, Any] | None,
    dropped: dict[str, Any] | None,
) -> list[str]:
    """The report section's paragraphs (markdown), in order: calibration, collapse, dropped.

    The regime check itself is preformatted text (``format_regime``): the report shows it as
    the section's ``pre`` block, so both pages keep its line breaks.
    """
    paras: list[str] = []
    if cal.get("error"):
        paras.append(f"Backtest calibration: {cal['error']}; the headline uses the model PI.")
    if not cal.get("error"):
        paras.append(
            "Backtest-calibrated 95% intervals (forward backtests: fit on budgets up to k, "
            "predict every larger budget's best run; sd(log error) = s ln(1 + x), Student-t "
            f"quantile; query at x = {cal['x']:.3g} times the largest budget). The headline "
            "interval is the wider of this and the model PI."
        )
        for appr, c in cal["by_approach"].items():
            if "error" in c:
                paras.append(f"- {appr}: {c['error']}.")
                continue
            errs = ", ".join(f"x={x:.3g}: {e:+.3f}" for x, e in c["errors"])
            paras.append(
                f"- {appr}: {c['n']} backtests (log errors {errs}), s = {c['scale']:.4f}; "
                f"calibrated interval {fmt_interval(c.get('interval'))}; headline "
                f"{fmt_interval(c.get('headline'))} ({c.get('headline_source', '–')})."
            )
    if collapse is not None:
        if collapse.get("error"):
            paras.append(f"Scaling collapse: not drawn ({collapse['error']}).")
        else:
            paras.append(
                f"Scaling collapse (Qiu et al. 2025): collapse spread {collapse['spread']:.4f} "
                f"(s.d. across budgets of the normalised reducible loss, mean over compute "
                f"fractions 0.2-1; L0 = {collapse['L0']:.4g}, {collapse['L0_source']})."
            )
    if dropped is not None:
        paras.append(dropped["text"])
    return paras


def headline_for(lim: dict[str, Any] | None, approach: str | None) -> tuple[Any, str] | None:
    """(interval, source) the headline shows for ``approach``, or None (no calibration ran)."""
    if not lim or approach is None:
        return None
    c = ((lim.get("calibration") or {}).get("by_approach") or {}).get(approach)
    if c is None or "headline_source" not in c:
        return None
    return c["headline"], c["headline_source"]


def other_fit_text(
    alt: dict[str, Any],
    alt_err: dict[str, str],
    target: float,
    dropped: list[float],
    optimal: dict[str, Any],
) -> dict[str, Any]:
    """Both fits side by side when the head-drop rule dropped budgets: text and numbers."""
    from analysis.query import compute_optimal

    rows, parts = {}, []
    for appr in ("parametric", "isoflop"):
        if appr not in alt or appr not in optimal:
            continue
        o_all = compute_optimal(target, alt[appr])
        o_cut = optimal[appr]
        rows[appr] = {
            "all_budgets": {
                "N_opt": o_all.n_params.value,
                "loss": o_all.loss.value,
                "a": alt[appr].estimate("a").value,
            },
            "head_dropped": {"N_opt": o_cut.n_params.value, "loss": o_cut.loss.value},
        }
        parts.append(
            f"{appr}: all budgets N_opt {o_all.n_params.value:.3g}, loss "
            f"{o_all.loss.value:.4f}; without the head N_opt {o_cut.n_params.value:.3g}, loss "
            f"{o_cut.loss.value:.4f}"
        )
    text = (
        "--drop-off-trend left out C = "
        + ", ".join(f"{b:.3g}" for b in dropped)
        + f" (every fit above is without them). Both fits at C = {target:.3g}: "
        + ("; ".join(parts) or "no approach fitted on all budgets")
        + (f" (not fitted on all budgets: {alt_err})" if alt_err else "")
        + "."
    )
    return {"dropped": dropped, "rows": rows, "text": text}


def jsonable(lim: dict[str, Any]) -> dict[str, Any]:
    """``limits.json``'s content: the collapse curves as lists, the rest as is."""
    out = dict(lim)
    col = lim.get("collapse")
    if col and not col.get("error"):
        out["collapse"] = {
            **{k: v for k, v in col.items() if k != "curves"},
            "grid": list(col["grid"]),
            "curves": {
                str(b): {"run_name": c["run_name"], "x": list(c["x"]), "y": list(c["y"])}
                for b, c in col["curves"].items()
            },
        }
    return out


def rung_intervals(limits_path: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """The forecast rung's calibrated and headline intervals, from the report's ``limits.json``.

    Uses approach 3's calibration (the rung forecasts with approach 3) at the rung's own
    extrapolation factor. Returns ``{}`` when there is no ``limits.json`` in the report folder;
    otherwise ``{"calibrated_interval", "headline_interval", "headline_source",
    "inside_headline"}`` (``inside_headline`` None until the rung is trained).
    """
    path = Path(limits_path)
    if not path.exists():
        return {}
    lim = json.loads(path.read_text(encoding="utf-8"))
    cal = ((lim.get("calibration") or {}).get("by_approach") or {}).get("parametric") or {}
    pred = record["predicted_loss"]
    x = (record.get("fit") or {}).get("extrapolation_factor")
    if not cal or "error" in cal or not x:
        why = cal.get("error") or "no approach-3 calibration in the report"
        iv, src = headline_interval(pred.get("pi"), None)
        src = f"model PI only: {why}"
    else:
        cal = {**cal, "dof": int(cal["dof"])}
        civ = calibrated_interval(cal, pred["value"], float(x))
        iv, src = headline_interval(pred.get("pi"), civ)
    actual = record.get("actual_loss")
    return {
        "calibrated_interval": None if "error" in cal or not cal or not x else list(civ),
        "headline_interval": list(iv) if iv else None,
        "headline_source": src,
        "inside_headline": None if actual is None or iv is None else bool(iv[0] <= actual <= iv[1]),
    }
