"""Benchmark: coverage of ``predict_loss``'s 95% prediction interval on simulated sweeps.

Four cases (``analysis.synthetic.coverage_case``; design fixed before any outcome was seen,
issue 22): ``well`` (the Chinchilla law, Hoffmann et al. 2022 Eq. 10), ``misspecified`` (the
truth is Kaplan et al. 2020 Eq. 1.5, not of the fitted form), ``e_near_zero`` (E = 0.05,
below the start grid: a skewed bootstrap) and ``clustered`` (WSD trunks: branches of one
trunk share a noise effect; the bootstrap resamples trunks). Each simulated sweep is an IsoFLOP
design (4 budgets 1e18-1e21 x 7 models, 1% log-normal noise per run), fitted with approach 3
exactly as ``scaling fit`` fits (screened 4500-start grid, bootstrap); ONE fresh run drawn from
the truth at its compute-optimal (N, D) at 10x the largest budget is inside the 95% PI or not.
Each coverage is printed with its Wilson 95% interval. The issue's bar: 90-99% in every case.

Usage: python benchmarks/pi_coverage.py [--sweeps 200] [--bootstrap 100] [--noise 0.01]
       [--cases well,misspecified,e_near_zero,clustered] [--quick]
``--quick`` = 40 sweeps and 40 resamples per case (same fit path). Timings are wall-clock on a
shared machine. Last line: ``pi_coverage: well=... misspecified=... e_near_zero=...
clustered=...`` (coverage and its Wilson interval).
"""

from __future__ import annotations

import argparse
import os
import time

from analysis.synthetic import COVERAGE_CASES, pi_coverage


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=200, help="simulated sweeps per case")
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default=",".join(COVERAGE_CASES))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.sweeps, args.bootstrap = 40, 40
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    print(f"load average at start: {os.getloadavg()} (shared 2-core machine)")
    print(
        f"{args.sweeps} sweeps per case, {args.bootstrap} bootstrap resamples, noise "
        f"{args.noise}, full fit path (4500-start grid)"
    )
    summary, all_ok = [], True
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        r = pi_coverage(
            args.sweeps, case=case, noise=args.noise, n_bootstrap=args.bootstrap, seed=args.seed + i
        )
        dt = time.perf_counter() - t0
        lo, hi = r["coverage_target_ci"]
        ok = 0.90 <= r["coverage_target"] <= 0.99
        all_ok &= ok
        print(
            f"{case:13s} target: {r['hits_target']}/{r['n_sweeps']} = "
            f"{r['coverage_target']:.1%} (Wilson 95% [{lo:.1%}, {hi:.1%}]) "
            f"{'PASS' if ok else 'MISS'}; interior {r['coverage_interior']:.1%}; mean PI width "
            f"target {r['mean_pi_width_target']:.2%}, interior {r['mean_pi_width_interior']:.2%} "
            f"of the true loss; mean log(L_hat/L_true) at target {r['mean_bias_target']:+.4f}; "
            f"diagnostic: the pre-issue-22 percentile PI covers "
            f"{r['hits_target_percentile_form']}/{r['n_sweeps']}; {dt:.0f} s"
        )
        summary.append(f"{case}={r['coverage_target']:.1%}[{lo:.1%},{hi:.1%}]")
    print("pi_coverage: " + " ".join(summary))
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
