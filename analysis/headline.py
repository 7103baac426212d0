"""Which fit the report's headline answer trusts, and how biased approach 2's parabolas are here.

Legend (paper symbols, fitting code only): N parameters (the fit's convention), D tokens, C
FLOPs, L loss (nats/token); E, A, B, alpha, beta of L(N, D) = E + A/N^alpha + B/D^beta
(Hoffmann et al. 2022, Eq. 2); a = the exponent of N_opt ~ C^a.

``HEADLINE_RULE`` is the written rule (issue 22, item 8). It was decided from simulations with
a known truth and from published data (``benchmarks/headline_rule.py``; docs/LOG.md,
2026-12-03, issue 22), never from the sweep being reported. ``headline_choice`` applies it.
The issue's candidate ("approach 2 for N_opt only when approach 3 is unidentified") was tested
and not kept: the flag did not predict which approach was closer, while approach 2's N_opt was
as good or better in every case.

``parabola_bias`` measures, for the sweep's OWN grid, the bias of approach 2's parabola
vertices that Czech et al. 2026 (arXiv:2603.22339, "Problems with Chinchilla approach 2")
describe: a parabola in log N fitted to a loss curve that is not a parabola is biased by the
grid's width, by sampling off-centre around the optimum and by alpha != beta. We simulate it at
the fitted approach-3 law: the law's loss, without noise, at every run's own (N, D); approach 2
fitted to that exactly as to the runs; each vertex compared with the law's own minimum along
the budget's line (log D linear in log N through the runs, as ``d_opt_method="tokens"``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

HEADLINE_RULE = (
    "Headline rule (decided from simulations and published data, not from this sweep; "
    "docs/LOG.md, issue 22): N_opt and D_opt come from approach 2 whenever it is fitted with "
    "at least 3 usable budgets, else from approach 3; the loss comes from approach 3's "
    "L(N, D) at that (N_opt, D_opt) whenever approach 3 is fitted, identified or not. A "
    "parameter approach 3 leaves unidentified is stated; it does not switch the choice."
)
MIN_USABLE_BUDGETS = 3  # approach 2's exponent from fewer optima was not tested


def headline_choice(fits: dict[str, Any]) -> dict[str, Any]:
    """Apply ``HEADLINE_RULE`` to the fitted approaches.

    Evidence (``benchmarks/headline_rule.py``): median |log(N_opt / truth)| at 10x the largest
    budget, approach 2 against approach 3, was no worse by more than 0.7 points in any
    simulated case and far better under a misspecified form (a Kaplan-law truth) and on a
    main-job-like narrow grid; on the Epoch data approach 2's N_opt moved 18% when one budget
    was dropped, approach 3's 61%. Approach 3's loss at approach 2's (N, D) was within ~1% of
    the truth wherever the form was right, where approach 2's own L_opt(C) power law missed by
    2-7%; approach 3's identifiability flag did not predict which approach was closer.

    Args:
        fits: approach name (``"parametric"``, ``"isoflop"``, ``"envelope"``) -> fit, for the
            approaches that could be fitted.

    Returns:
        ``{"allocation": approach for N_opt and D_opt, "loss": approach whose L(N, D) gives
        the loss, "why": one sentence}``; both None when no approach is fitted.
    """
    p3, p2 = fits.get("parametric"), fits.get("isoflop")
    flags = list(getattr(p3, "flags", ()) or ()) if p3 is not None else []
    unidentified = [f.split(":")[0] for f in flags]
    state = (
        f"approach 3 leaves {', '.join(unidentified)} unidentified"
        if unidentified
        else "approach 3 identifies every parameter"
        if p3 is not None
        else "approach 3 could not be fitted"
    )
    usable = getattr(p2, "n_optima_used", 0) if p2 is not None else 0
    if p2 is not None and usable >= MIN_USABLE_BUDGETS:
        loss = "parametric" if p3 is not None else "isoflop"
        return {"allocation": "isoflop", "loss": loss, "why": f"{state}; approach 2 has "
                f"{usable} usable budgets"}  # fmt: skip
    if p3 is not None:
        two = (
            f"approach 2 has only {usable} usable budget(s)" if p2 is not None
            else "approach 2 could not be fitted"
        )  # fmt: skip
        return {"allocation": "parametric", "loss": "parametric", "why": f"{state}; {two}"}
    for appr in ("isoflop", "envelope"):
        if appr in fits:
            return {"allocation": appr, "loss": appr, "why": state}
    return {"allocation": None, "loss": None, "why": "no approach could be fitted"}


def parabola_bias(
    law: Any,
    N: np.ndarray,
    D: np.ndarray,
    C: np.ndarray,
    budget: np.ndarray | None,
    *,
    n_convention: str,
    flop_formula: str,
    window: int | None = None,
) -> dict[str, Any]:
    """Approach 2's vertex bias on this grid, simulated at ``law`` (Czech et al. 2026).

    Args:
        law: a fit with ``predict_loss(N, D)`` (approach 3), the simulation's truth.
        N: parameters per run (n,), in ``n_convention``.
        D: tokens per run (n,).
        C: FLOPs per run (n,), following ``flop_formula``.
        budget: IsoFLOP label per run (n,), or None (then C is binned, as approach 2 does).
        n_convention: N convention of ``N`` (recorded by the approach-2 fit).
        flop_formula: C formula of ``C``.
        window: approach 2's points per parabola, as in the reported fit.

    Returns:
        ``{"rows": [{"C", "N_vertex", "N_true", "N_bias" (N_vertex / N_true - 1),
        "L_bias" (L_vertex - L_true, nats), "used"}], "a_vertex", "a_true", "a_bias"}``
        (a_* NaN with fewer than 2 used budgets).

    Raises:
        ValueError: approach 2 cannot be fitted to the simulated losses (see ``fit_isoflop``).
    """
    from scipy.optimize import minimize_scalar

    from analysis.fits import budget_groups, fit_isoflop

    N, D, C = (np.asarray(x, dtype=float) for x in (N, D, C))
    L = np.asarray(law.predict_loss(N, D), dtype=float)
    f2 = fit_isoflop(N, D, C, L, n_convention=n_convention, flop_formula=flop_formula,
                     budget=budget, window=window, d_opt_method="tokens")  # fmt: skip
    groups = budget_groups(C, budget, f2.meta["bin_dex"])
    rows = []
    for o in f2.optima:
        members = np.isclose(groups, o["flops_budget"], rtol=1e-9)
        logn, logd = np.log(N[members]), np.log(D[members])
        if len(np.unique(logn)) < 2:
            continue
        s, i = np.polyfit(logn, logd, 1)  # log D = i + s log N along this budget

        def along(x: float, s: float = s, i: float = i) -> float:
            return float(law.predict_loss(math.exp(x), math.exp(i + s * x)))

        lo, hi = logn.min() - 3.0, logn.max() + 3.0
        res = minimize_scalar(along, bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
        rows.append(
            {
                "C": o["C"],
                "N_vertex": o["N_opt"],
                "N_true": math.exp(res.x),
                "N_bias": o["N_opt"] / math.exp(res.x) - 1,
                "L_bias": o["L_opt"] - float(res.fun),
                "used": bool(o["used"]),
            }
        )
    used = [r for r in rows if r["used"]]
    a_v = a_t = math.nan
    if len(used) >= 2:
        lc = np.log([r["C"] for r in used])
        a_v = float(np.polyfit(lc, np.log([r["N_vertex"] for r in used]), 1)[0])
        a_t = float(np.polyfit(lc, np.log([r["N_true"] for r in used]), 1)[0])
    return {"rows": rows, "a_vertex": a_v, "a_true": a_t, "a_bias": a_v - a_t}
