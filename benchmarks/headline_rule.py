"""Evidence for the report's headline rule: which approach to trust when approach 3 is unidentified.

Issue 22, item 8. Decided from simulations with a known truth and from published data, never
from the sweep being reported. Design fixed before any outcome was seen:

- Simulations (``analysis.synthetic.coverage_case``: ``well``, ``e_near_zero`` where E = 0.05
  lies below the start grid so E is flagged, ``misspecified`` where the truth is Kaplan et al.
  2020 Eq. 1.5): 4 IsoFLOP budgets 1e18-1e21 x 7 models, 1% noise; approach 2 (all points per
  parabola) and approach 3 (4500-start grid, ``--bootstrap`` resamples for the identifiability
  flags, threshold 10%). At C = 10x the largest budget: |log(N_hat / N_true)| for each
  approach; the error of the headline loss of the run it recommends (approach 3's L at its own
  optimum; approach 3's L at approach 2's (N, D); approach 2's own L_opt(C) power law), each
  against the truth's loss at that (N, D); and the regret L_true(N_rec, D_rec) / L_true(N_opt,
  D_opt) - 1. Sweeps are split by whether approach 3 flagged a parameter. A fourth case,
  ``narrow`` (the Chinchilla law on a main-job-like grid: 1.5 decades of budgets x 5 models),
  was added after the first three were seen, because none of them left a parameter
  unidentified for lack of range.
- Published data (``../shared/data/chinchilla-epoch``, Besiroglu et al. 2024's digitisation of
  Hoffmann et al. 2022 Fig. 4, 5 highest-loss points dropped): each usable budget dropped in
  turn (Open-Athena's Delphi check), approaches 2 and 3 refitted, and N_opt at the Gopher budget
  C = 5.76e23 compared across the drops (max / min - 1); approach 3's flags on all the data.

Usage: python benchmarks/headline_rule.py [--sweeps 60] [--bootstrap 50] [--quick]
Last line: ``headline_rule: ...`` (the medians the rule is read from).
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

from analysis.fits import fit_isoflop
from analysis.parametric import IdentifiabilityWarning, closed_form_optimum, fit_parametric
from analysis.synthetic import coverage_case, simulated_sweep

BUDGETS = (1e18, 1e19, 1e20, 1e21)
EPOCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "chinchilla-epoch"


def _fit3(N, D, L, n_bootstrap, seed, clusters=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        return fit_parametric(
            N, D, L, n_convention="total", flop_formula="6nd", n_bootstrap=n_bootstrap,
            seed=seed, workers=1, clusters=clusters, **kw,
        )  # fmt: skip


# ``narrow``: the Chinchilla law on a main-job-like grid, 1.5 decades of budgets x 5 models
# over N_opt/4..4 N_opt (added after the first three cases: none of them left a parameter
# unidentified for lack of range, the failure the rule is for)
NARROW = {"budgets": (1e18, 3e18, 1e19, 3e19), "n_models": 5, "spread": 4.0}


def simulate(case: str, n_sweeps: int, n_bootstrap: int, seed: int) -> dict[str, list]:
    """Per sweep: flagged, N errors (2, 3), loss errors (3@3, 3@2, 2@2), regrets (2, 3)."""
    design = NARROW if case == "narrow" else {"budgets": BUDGETS, "n_models": 7, "spread": 8.0}
    cc = coverage_case("well" if case == "narrow" else case)
    rng = np.random.default_rng(seed)
    c_t = 10 * design["budgets"][-1]
    n_true, d_true = cc["optimum"](c_t)
    l_best = float(cc["loss"](n_true, d_true))
    out: dict[str, list] = {k: [] for k in ("flag", "n2", "n3", "l33", "l32", "l22", "r2", "r3")}
    for _ in range(n_sweeps):
        N, D, L, cl = simulated_sweep(
            "well" if case == "narrow" else case, cc, design["budgets"], design["n_models"],
            design["spread"], 0.01, rng,
        )  # fmt: skip
        f3 = _fit3(N, D, L, n_bootstrap, int(rng.integers(1 << 31)), cl)
        f2 = fit_isoflop(N, D, 6 * N * D, L, n_convention="total", flop_formula="6nd",
                         budget=6 * N * D)  # fmt: skip
        n3, d3 = (float(x) for x in closed_form_optimum(c_t, f3.E, f3.A, f3.B, f3.alpha, f3.beta))
        n2, d2 = float(f2.n_opt(c_t)), float(f2.d_opt(c_t))
        t3, t2 = float(cc["loss"](n3, d3)), float(cc["loss"](n2, d2))
        out["flag"].append(bool(f3.flags))
        out["n2"].append(abs(math.log(n2 / n_true)))
        out["n3"].append(abs(math.log(n3 / n_true)))
        out["l33"].append(abs(math.log(float(f3.predict_loss(n3, d3)) / t3)))
        out["l32"].append(abs(math.log(float(f3.predict_loss(n2, d2)) / t2)))
        out["l22"].append(abs(math.log(float(f2.loss_opt(c_t)) / t2)))
        out["r2"].append(t2 / l_best - 1)
        out["r3"].append(t3 / l_best - 1)
    return out


def epoch_drop_one(n_bootstrap: int) -> dict[str, object]:
    """Approaches 2 and 3 on the Epoch data, each usable budget dropped in turn."""
    import pandas as pd

    df = pd.read_csv(EPOCH / "svg_extracted_data.csv")
    df = df.sort_values("loss").iloc[: len(df) - 5]  # Epoch's procedure: drop the 5 worst
    N, C, L = (df[k].to_numpy(float) for k in ("Model Size", "Training FLOP", "loss"))
    D = C / (6 * N)
    c_t = 5.76e23
    full2 = fit_isoflop(N, D, C, L, n_convention="total", flop_formula="6nd")
    full3 = _fit3(N, D, L, n_bootstrap, 0)
    from analysis.fits import budget_groups

    groups = budget_groups(C, None, full2.meta["bin_dex"])
    n2, n3 = [], []
    for o in (o for o in full2.optima if o["used"]):
        keep = ~np.isclose(groups, o["flops_budget"], rtol=1e-9)
        try:
            f2 = fit_isoflop(N[keep], D[keep], C[keep], L[keep], n_convention="total",
                             flop_formula="6nd")  # fmt: skip
            n2.append(float(f2.n_opt(c_t)))
        except ValueError:
            pass
        f3 = _fit3(N[keep], D[keep], L[keep], 0, 0)
        n3.append(float(closed_form_optimum(c_t, f3.E, f3.A, f3.B, f3.alpha, f3.beta)[0]))
    return {
        "n2_full": float(full2.n_opt(c_t)),
        "n3_full": float(
            closed_form_optimum(c_t, full3.E, full3.A, full3.B, full3.alpha, full3.beta)[0]
        ),  # fmt: skip
        "flags3": list(full3.flags),
        "E3": full3.E,
        "spread2": max(n2) / min(n2) - 1,
        "spread3": max(n3) / min(n3) - 1,
        "n_drops": (len(n2), len(n3)),
    }


def _med(x, mask=None, digits: int = 1) -> str:
    a = np.asarray(x, dtype=float)
    if mask is not None:
        a = a[np.asarray(mask, dtype=bool)]
    if a.size == 0:
        return "  n/a "
    return f"{np.median(a):6.{digits}%}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=60)
    ap.add_argument("--bootstrap", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default="well,e_near_zero,misspecified,narrow")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.sweeps, args.bootstrap = 12, 30
    print(f"load average at start: {os.getloadavg()} (shared 2-core machine)")
    print(
        f"{args.sweeps} sweeps per case, {args.bootstrap} resamples; medians at 10x the largest "
        "budget; |log| errors shown as %"
    )
    print(
        f"{'case':13s} {'A3 flagged':>10s} | {'N err A2':>8s} {'N err A3':>8s} | "
        f"{'L err 3@3':>9s} {'L err 3@2':>9s} {'L err 2@2':>9s} | {'regret A2':>9s} "
        f"{'regret A3':>9s}"
    )
    last = []
    for i, case in enumerate(c.strip() for c in args.cases.split(",")):
        t0 = time.perf_counter()
        r = simulate(case, args.sweeps, args.bootstrap, args.seed + i)
        flag = np.asarray(r["flag"])
        for label, mask in (("all", None), ("flagged", flag), ("not flagged", ~flag)):
            n = len(flag) if mask is None else int(mask.sum())
            print(
                f"{case:13s} {label + f' ({n})':>10s} | {_med(r['n2'], mask):>8s} "
                f"{_med(r['n3'], mask):>8s} | {_med(r['l33'], mask):>9s} "
                f"{_med(r['l32'], mask):>9s} {_med(r['l22'], mask):>9s} | "
                f"{_med(r['r2'], mask, 3):>9s} {_med(r['r3'], mask, 3):>9s}"
            )
        print(f"  ({time.perf_counter() - t0:.0f} s)")
        last.append(
            f"{case} (A3 flagged {int(flag.sum())}/{len(flag)}): N err A2 "
            f"{_med(r['n2']).strip()} vs A3 {_med(r['n3']).strip()}, L err 3@2 "
            f"{_med(r['l32']).strip()} vs 2@2 {_med(r['l22']).strip()}"
        )
    if (EPOCH / "svg_extracted_data.csv").exists():
        e = epoch_drop_one(args.bootstrap)
        print(
            f"Epoch (Hoffmann Fig. 4) data: N_opt at 5.76e23: A2 {e['n2_full']:.3g}, A3 "
            f"{e['n3_full']:.3g} (E = {e['E3']:.3f}, flags: {e['flags3'] or 'none'}); one usable "
            f"budget dropped in turn ({e['n_drops'][0]} / {e['n_drops'][1]} refits): max/min - 1 "
            f"of N_opt = {e['spread2']:.1%} (A2), {e['spread3']:.1%} (A3)"
        )
        last.append(f"epoch drop-one N_opt spread A2 {e['spread2']:.1%} vs A3 {e['spread3']:.1%}")
    else:
        print(f"Epoch data not found at {EPOCH}: published-data check skipped")
    print("headline_rule: " + "; ".join(last))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
