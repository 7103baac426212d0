"""Held-out checks of a loss-curve law (``analysis.curves``) on a family of runs. No torch.

Each check hides part of the data, fits on the rest, and predicts a final loss that was really
measured; the benchmark (``benchmarks/curve_law.py``) and the report use them.

- ``early_predictions``: each run's final loss from its first ``fraction`` of steps plus its
  planned schedule. The fit sees the curves of every other size in full, and the run's own
  lineage (its WSD trunk and the trunk's other branches) and the other seeds of its size only up
  to the run's cut step: nothing the run could not have seen when it reached the cut, had every
  run of its size been launched with it. Baseline: the last loss observed by the cut.
- ``size_predictions``: a held-out shape's final losses from the curves of every other shape
  (the held-out shape's runs are removed whole, trunk and all its branches). Baseline: approach 3
  fitted to the other shapes' final losses (``analysis.parametric.fit_parametric``).
- ``schedule_predictions``: one size's runs under one schedule family predict the final losses
  of the same size under another (e.g. WSD branches -> cosine runs). Baseline: the other
  family's final loss at the same planned length ("copy": the guess that ignores the schedule).

Every function returns one dict per prediction: ``run``, ``actual``, ``predicted``, ``rel_error``
(predicted / actual - 1), ``baseline``, ``baseline_rel_error`` and the details used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.curve_data import truncate
from analysis.curve_predict import predict_final
from analysis.curves import Curve, fit_curves


def _row(run: str, actual: float, predicted: float, baseline: float, **extra: Any):
    return {
        "run": run,
        "actual": actual,
        "predicted": predicted,
        "rel_error": predicted / actual - 1.0,
        "baseline": baseline,
        "baseline_rel_error": baseline / actual - 1.0,
        **extra,
    }


def early_inputs(curves: Sequence[Curve], target: Curve, fraction: float) -> tuple[list, int]:
    """The curves a fit may see when ``target`` has run ``fraction`` of its steps, and the cut.

    The target's lineage (its cluster) and every run of its size (other seeds) are cut at the
    target's cut step; a sibling branch of the same trunk is kept only if it had begun its
    decay by then (before, its rows are the trunk's, already in the target's own curve).
    """
    cut = int(fraction * target.planned_steps)
    seen = []
    for c in curves:
        related = c.cluster == target.cluster or c.n_params == target.n_params
        if not related:
            seen.append(c)
            continue
        t = truncate(c, cut)
        if not t.steps.size:
            continue
        decayed = bool(np.any(np.diff(c.lrs[: t.steps[-1]]) < 0))
        if c.run == target.run or c.cluster != target.cluster or decayed:
            seen.append(t)
    return seen, cut


def early_predictions(
    curves: Sequence[Curve],
    fraction: float = 0.3,
    law: str = "multi_power",
    targets: Sequence[str] | None = None,
    **fit_kw: Any,
) -> list[dict[str, Any]]:
    """Each target run's final loss predicted from its first ``fraction`` of steps.

    Args:
        curves: the family's curves (complete runs; ``analysis.curve_data.run_curves``).
        fraction: share of the planned steps seen, in (0, 1).
        law: ``"multi_power"`` or ``"tissue"``.
        targets: run names to predict (default: every curve).
        **fit_kw: passed to ``fit_curves``.

    Returns:
        One row per target (module docstring), plus ``cut_step``; a target with no point at or
        before its cut gets ``baseline`` NaN.

    Raises:
        ValueError: ``fraction`` outside (0, 1).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    out = []
    for c in curves:
        if targets is not None and c.run not in targets:
            continue
        seen, cut = early_inputs(curves, c, fraction)
        fit = fit_curves(seen, law, **fit_kw)
        pred = predict_final(fit, c.lrs, n_params=c.n_params if fit.joint else None)
        before = c.loss[c.steps <= cut]
        last = float(before[-1]) if before.size else math.nan
        out.append(_row(c.run, float(c.loss[-1]), pred["value"], last, cut_step=cut, answer=pred))
    return out


def size_predictions(
    curves: Sequence[Curve],
    held_out: dict[str, Sequence[str]],
    law: str = "multi_power",
    n_tokens: dict[str, float] | None = None,
    **fit_kw: Any,
) -> list[dict[str, Any]]:
    """Held-out runs' final losses from the curves of every other size.

    Args:
        curves: the family's curves, each with ``n_params``.
        held_out: label (e.g. the budget) -> run names of one point (its seeds); the point's
            actual loss is their mean, and every curve with the same N is removed from the fit.
        law: the curve law.
        n_tokens: run name -> D, for the approach-3 baseline (omitted: no baseline).
        **fit_kw: passed to ``fit_curves``.

    Returns:
        One row per label: ``run`` (the label), ``n_params``, ``runs`` and the module's fields.
    """
    by_name = {c.run: c for c in curves}
    out = []
    for label, names in held_out.items():
        targets = [by_name[n] for n in names]
        n = targets[0].n_params
        seen = [c for c in curves if c.n_params != n]
        fit = fit_curves(seen, law, joint=True, **fit_kw)
        preds = [predict_final(fit, t.lrs, n_params=n)["value"] for t in targets]
        actual = float(np.mean([t.loss[-1] for t in targets]))
        base = math.nan
        if n_tokens is not None:
            base = _approach3(seen, n_tokens, n, float(np.mean([n_tokens[t.run] for t in targets])))
        out.append(_row(label, actual, float(np.mean(preds)), base, n_params=n, runs=list(names)))
    return out


def _approach3(seen: Sequence[Curve], n_tokens: dict[str, float], n: float, d: float) -> float:
    """Approach 3 (Hoffmann et al. 2022 Eq. 2, Besiroglu et al. 2024) on the seen final losses."""
    from analysis.parametric import fit_parametric

    points: dict[tuple[float, float], list[float]] = {}
    for c in seen:
        points.setdefault((c.n_params, n_tokens[c.run]), []).append(float(c.loss[-1]))
    keys = sorted(points)
    N = np.array([k[0] for k in keys])
    D = np.array([k[1] for k in keys])
    L = np.array([np.mean(points[k]) for k in keys])
    fit = fit_parametric(N, D, L, n_convention="non_embedding", flop_formula="counted")
    return float(fit.E + fit.A / n**fit.alpha + fit.B / d**fit.beta)


def schedule_predictions(
    fit_on: Sequence[Curve],
    targets: Sequence[Curve],
    law: str = "multi_power",
    **fit_kw: Any,
) -> list[dict[str, Any]]:
    """Final losses of ``targets`` (one size, another schedule) from a fit to ``fit_on``.

    The baseline for a target is the final loss of the ``fit_on`` curve with the same planned
    length (NaN when there is none).
    """
    fit = fit_curves(fit_on, law, joint=False, **fit_kw)
    same_len = {c.planned_steps: float(c.loss[-1]) for c in fit_on}
    out = []
    for t in targets:
        pred = predict_final(fit, t.lrs)
        base = same_len.get(t.planned_steps, math.nan)
        out.append(_row(t.run, float(t.loss[-1]), pred["value"], base, answer=pred))
    return out


def median_abs(rows: Sequence[dict[str, Any]], key: str = "rel_error") -> float:
    """Median |``key``| over rows (NaN rows skipped; NaN when none)."""
    v = np.abs([r[key] for r in rows], dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def running_predictions(
    sweep_dir: str | Path,
    run_names: Sequence[str],
    law: str = "multi_power",
    loss_col: str = "val/loss",
) -> dict[str, dict[str, Any] | str]:
    """Predicted final loss of each named (running or incomplete) run, for ``sweep status``.

    One fit of ``law`` to every curve in ``sweep_dir`` (complete runs in full, the others as far
    as they got; jointly over N when there are several sizes), then each run's planned schedule
    to its last step. No bootstrap (a status must be quick): the PI is the fit's residual spread
    around the point prediction.

    Returns:
        run name -> ``predict_final``'s answer, or a one-line reason why there is none.
    """
    from analysis.curve_data import run_curves
    from analysis.curves import CurveError

    curves, skipped = run_curves(
        sweep_dir, loss_col, statuses=("complete", "incomplete"), min_points=2
    )
    reasons = {s.split(":", 1)[0]: s.split(":", 1)[1].strip() for s in skipped}
    by_name = {c.run: c for c in curves}
    out: dict[str, dict[str, Any] | str] = {}
    wanted = [n for n in run_names if n in by_name]
    for n in run_names:
        if n not in by_name:
            out[n] = reasons.get(n, f"fewer than 2 {loss_col} points yet")
    if not wanted:
        return out
    try:
        fit = fit_curves(curves, law)
    except (ValueError, CurveError) as e:
        return {**out, **{n: f"no fit: {e}" for n in wanted}}
    for n in wanted:
        c = by_name[n]
        out[n] = predict_final(fit, c.lrs, n_params=c.n_params if fit.joint else None)
    return out
