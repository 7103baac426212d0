"""How much each analysis choice moves the answer: the sensitivity table.

Refits the same runs under every combination of N convention (``non_embedding``, ``total``),
C formula (``counted``, ``6nd``), Huber delta (1e-3, 1e-4; approach 3 only: approach 2 has no
delta) and approach (2: IsoFLOP parabolas, 3: parametric), and reports per combination the
exponents a (N_opt ~ C^a) and b (D_opt ~ C^b) and, at the target budget, N_opt and
tokens/param. Point estimates only (no bootstrap): the spread across rows is the point.
Published results move by ~3x in tokens/param on the N convention alone (Pearce & Song 2024;
Porian et al. 2024), which is why every fit states its conventions.

A combination the data cannot express (e.g. a CSV with one N column has no second convention)
is a row with a reason instead of numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis.fit_inputs import FitData, fits_quietly
from analysis.inputs import FLOP_FORMULAS, N_CONVENTIONS
from analysis.load import fit_columns

HUBER_DELTAS = (1e-3, 1e-4)
APPROACHES = ("isoflop", "parametric")


def default_target(data: FitData) -> float:
    """10x the largest C of the runs (counted FLOPs when present, else 6 N D)."""
    p = data.points
    col = "flops" if "flops" in p and p["flops"].notna().all() else "flops_6nd"
    return 10.0 * float(np.nanmax(p[col].to_numpy(float)))


def sensitivity_table(
    data: FitData,
    target_flops: float | None = None,
    *,
    window: int | None = None,
    deltas: tuple[float, ...] = HUBER_DELTAS,
    done: list[Any] | None = None,
) -> dict[str, Any]:
    """Refit under every (N convention, C formula, Huber delta, approach) combination.

    Args:
        data: fit inputs (``analysis.fit_inputs``).
        target_flops: budget C for N_opt and tokens/param (default ``default_target``); the
            same number of FLOPs in every row, counted under that row's C formula.
        window: approach 2's points per parabola, or None for all.
        deltas: approach 3's Huber deltas.
        done: fits already made on ``data`` (e.g. the report's own); a combination one of
            them matches (approach, N convention, C formula, Huber delta) is not refitted.

    Returns:
        ``{"target_flops", "rows": [...]}``; each row: ``n_convention``, ``flop_formula``,
        ``huber_delta`` (None for approach 2), ``approach``, and ``a``, ``b``, ``n_opt``,
        ``tokens_per_param`` or ``error``.
    """
    from analysis.query import compute_optimal

    target = float(target_flops) if target_flops else default_target(data)
    rows: list[dict[str, Any]] = []
    for n_conv in N_CONVENTIONS:
        for c_form in FLOP_FORMULAS:
            try:
                fit_columns(data.points, n_conv, c_form)
                missing = None
            except ValueError as e:
                missing = str(e)
            for appr in APPROACHES:
                for delta in deltas if appr == "parametric" else (None,):
                    row: dict[str, Any] = {
                        "n_convention": n_conv,
                        "flop_formula": c_form,
                        "huber_delta": delta,
                        "approach": appr,
                    }
                    if missing:
                        rows.append({**row, "error": missing})
                        continue
                    extra = {"huber_delta": delta} if delta else {"window": window}
                    fit = _matching(done or [], appr, n_conv, c_form, delta)
                    if fit is None:
                        fit, err = fits_quietly(
                            appr, data, n_convention=n_conv, flop_formula=c_form, **extra
                        )
                    if fit is None:
                        rows.append({**row, "error": err})
                        continue
                    opt = compute_optimal(target, fit, n_architectures=0)
                    rows.append(
                        {
                            **row,
                            "a": float(fit.a),
                            "b": float(fit.b),
                            "n_opt": opt.n_params.value,
                            "tokens_per_param": opt.tokens_per_param.value,
                        }
                    )
    return {"target_flops": target, "rows": rows}


def _matching(done: list[Any], appr: str, n_conv: str, c_form: str, delta: float | None):
    for f in done:
        if (f.approach, f.n_convention, f.flop_formula) == (appr, n_conv, c_form) and (
            delta is None or getattr(f, "huber_delta", None) == delta
        ):
            return f
    return None


def spread(table: dict[str, Any], key: str) -> tuple[float, float]:
    """(min, max) of ``key`` over the rows that have it (NaN, NaN when none)."""
    vals = [r[key] for r in table["rows"] if key in r and math.isfinite(r[key])]
    return (min(vals), max(vals)) if vals else (math.nan, math.nan)


def format_table(table: dict[str, Any]) -> str:
    """Plain-text table (``scaling fit --sensitivity``)."""
    head = (
        f"Sensitivity at C = {table['target_flops']:.3e} FLOPs (point estimates)\n"
        f"{'N convention':<14}{'C formula':<10}{'approach':<12}{'Huber':<8}"
        f"{'a':>7}{'b':>7}{'N_opt':>11}{'tokens/param':>14}"
    )
    lines = [head]
    for r in table["rows"]:
        appr = {"isoflop": "2 IsoFLOP", "parametric": "3 param."}[r["approach"]]
        delta = "-" if r["huber_delta"] is None else f"{r['huber_delta']:g}"
        lead = f"{r['n_convention']:<14}{r['flop_formula']:<10}{appr:<12}{delta:<8}"
        if "error" in r:
            lines.append(f"{lead}  not fitted: {r['error']}")
        else:
            lines.append(
                f"{lead}{r['a']:>7.3f}{r['b']:>7.3f}{r['n_opt']:>11.3g}"
                f"{r['tokens_per_param']:>14.3g}"
            )
    lo, hi = spread(table, "tokens_per_param")
    if math.isfinite(lo):
        lines.append(
            f"tokens/param spans {lo:.3g} .. {hi:.3g} ({hi / lo:.2g}x) across these choices"
        )
    return "\n".join(lines)
