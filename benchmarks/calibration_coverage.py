"""Benchmark: coverage of the backtest-calibrated 95% interval on simulated sweeps with a break.

Each simulated sweep: 5 IsoFLOP budgets 1e18-1e20 (half a decade apart) x 7 models from the
Chinchilla law (Hoffmann et al. 2022 Eq. 10), log-normal noise, and a change of regime below
the second budget: the smallest budget's losses are multiplied by (C / 3.16e18)^shift with
shift drawn uniformly from [0, 0.06] (0 = no break; 0.06 puts the head ~7% below the trend).
Each approach (2: IsoFLOP, 3: parametric) is backtested forward on the sweep
(``analysis.calibration``), fitted on all five budgets, and asked for the loss at the true
compute-optimal (N, D) at 10x the largest budget; ONE fresh noisy draw of the true law there is
inside the calibrated interval or not. Coverage is printed with its Clopper-Pearson 95%
interval (scipy ``binomtest``). The issue's target: 90-99%.

Usage: python benchmarks/calibration_coverage.py [--sweeps 60] [--noise 0.01] [--seed 0]
The last line is ``calibration_coverage: isoflop=... parametric=...``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats

from analysis.calibration import calibrate, calibrated_interval, forward_backtests
from analysis.fits import fit_isoflop
from analysis.parametric import closed_form_optimum, fit_parametric
from analysis.query import compute_optimal
from analysis.synthetic import CHINCHILLA_LAW, isoflop_arrays_with_break, law_loss

BUDGETS = (1e18, 10**18.5, 1e19, 10**19.5, 1e20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=60)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    law = CHINCHILLA_LAW
    rng = np.random.default_rng(args.seed)
    target = 10 * BUDGETS[-1]
    nq, dq = closed_form_optimum(target, **law)
    truth = float(law_loss(nq, dq, law))
    hits = {"isoflop": [], "parametric": []}
    widths = {"isoflop": [], "parametric": []}
    t0 = time.perf_counter()
    for _ in range(args.sweeps):
        shift = float(rng.uniform(0, 0.06))
        N, D, C, L = isoflop_arrays_with_break(
            law, BUDGETS, break_flops=BUDGETS[1], head_shift=shift, noise=args.noise, rng=rng
        )
        bt = forward_backtests(N, D, C, L, C, n_convention="total", flop_formula="6nd")
        fresh = truth * math.exp(rng.normal(0.0, args.noise))
        fits = {
            "isoflop": fit_isoflop(N, D, C, L, budget=C, n_convention="total", flop_formula="6nd"),
            "parametric": fit_parametric(
                N, D, L, n_convention="total", flop_formula="6nd", workers=1
            ),
        }
        for appr, fit in fits.items():
            pred = float(compute_optimal(target, fit).loss.value)
            iv = calibrated_interval(calibrate(bt, appr), pred, target / BUDGETS[-1])
            if iv is None:
                continue
            hits[appr].append(iv[0] <= fresh <= iv[1])
            widths[appr].append((iv[1] - iv[0]) / 2 / truth)
    secs = time.perf_counter() - t0
    print(f"{args.sweeps} sweeps, noise {args.noise}, {secs:.0f} s")
    parts = []
    for appr, h in hits.items():
        k, n = int(sum(h)), len(h)
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
        print(
            f"{appr}: coverage {k}/{n} = {k / n:.3f} [{ci.low:.3f}, {ci.high:.3f}], mean "
            f"half-width {np.mean(widths[appr]):.1%} of the true loss"
        )
        parts.append(f"{appr}={k / n:.3f} [{ci.low:.3f}, {ci.high:.3f}]")
    print("calibration_coverage: " + " ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
