"""Benchmark: the regime check and the head-drop rule on simulated breaks and published data.

Decides (and documents) the head-drop rule of ``analysis.regime``, never from the main job:

1. Simulated IsoFLOP sweeps, 5 budgets 1e18-1e20 x 7 models from the Chinchilla law (Hoffmann
   et al. 2022 Eq. 10; E > 0, so the true local exponent itself drifts a little), log-normal
   noise, and a known break: the smallest budget's losses times (C / 3.16e18)^shift. For each
   shift: how often the constant exponent is rejected, the head is named off trend, and the
   rule drops exactly the head (shift > 0: the right call; shift = 0: a false drop).
2. Published data: Chinchilla's IsoFLOP runs (Besiroglu et al. 2024's digitisation of Hoffmann
   et al. 2022 Fig. 4, ``../shared/data/chinchilla-epoch``), C binned to quarter decades:
   the local exponents, the test, and what the rule drops.

Usage: python benchmarks/regime_rule.py [--sweeps 200] [--noise 0.01]
The last line is ``regime_rule: false_drop=... drop_at_shift_0.06=...``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.regime import drop_off_trend_head, format_regime, regime_check
from analysis.synthetic import CHINCHILLA_LAW, isoflop_arrays_with_break

BUDGETS = (1e18, 10**18.5, 1e19, 10**19.5, 1e20)
CHINCHILLA = (
    Path(__file__).resolve().parents[1] / "../shared/data/chinchilla-epoch/svg_extracted_data.csv"
)


def _rule(chk):
    try:
        return drop_off_trend_head(chk)
    except ValueError:
        return "refused"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    rates = {}
    for shift in (0.0, 0.02, 0.04, 0.06, 0.1):
        rej = head = drop = other = 0
        for _ in range(args.sweeps):
            N, D, C, L = isoflop_arrays_with_break(
                CHINCHILLA_LAW,
                BUDGETS,
                break_flops=BUDGETS[1],
                head_shift=shift,
                noise=args.noise,
                rng=rng,
            )
            chk = regime_check(
                C, L, budget=C, N=N, n_bootstrap=100, seed=int(rng.integers(1 << 30))
            )
            rej += chk["constant_exponent"]["rejected"]
            head += chk["budgets"][0]["off_trend"]
            d = _rule(chk)
            drop += d == [BUDGETS[0]]
            other += d not in ([], [BUDGETS[0]])
        n = args.sweeps
        head_pct = 100 * (1 - 10 ** (-0.5 * shift))
        print(
            f"shift {shift:.2f} (head {head_pct:.1f}% below trend): constant exponent rejected "
            f"{rej / n:.2f}, head named off trend {head / n:.2f}, rule drops the head "
            f"{drop / n:.2f}, drops more / refuses {other / n:.2f}"
        )
        rates[shift] = drop / n
    if CHINCHILLA.exists():
        df = pd.read_csv(CHINCHILLA)
        C = df["Training FLOP"].to_numpy(float)
        N = df["Model Size"].to_numpy(float)
        L = df["loss"].to_numpy(float)
        chk = regime_check(C, L, N=N, n_bootstrap=200)  # no labels: quarter-decade bins
        print("Chinchilla (Hoffmann et al. 2022 Fig. 4, 245 digitised runs):")
        print(format_regime(chk))
        print(f"  rule drops: {_rule(chk)}")
    else:
        print(f"published data not found at {CHINCHILLA}; skipped")
    print(f"regime_rule: false_drop={rates[0.0]:.3f} drop_at_shift_0.06={rates[0.06]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
