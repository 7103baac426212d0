"""Benchmark: the multi-power loss-curve law (``analysis.curves``) predicts final losses.

Three measures, each the median |relative error| of a final validation loss (issue 21):

- ``early_err``: every branch of the main job's IsoFLOP sweep (``sweeps/defs/cpu_isoflop.py``,
  WSD trunks and cooldown branches) predicted from its first 30% of steps plus its planned
  schedule. The fit is the family's joint fit (coefficients as power laws in N) on every
  other trunk's curves, complete, plus the predicted run's own lineage (its trunk and the
  trunk's other branches) cut at that run's 30% step: nothing it could not have seen at 30%.
  Baseline: the last observed validation loss at the cut.
- ``schedule_err``: per shape of the WSD benchmark (``benchmarks/wsd_vs_cosine.py``: 2 layers,
  d_model 32/48/64, 4 token counts a factor 2 apart), the law fitted to that shape's WSD
  curves (trunk + branches) predicts each cosine run's final loss, and fitted to its cosine
  curves predicts each WSD branch's. Baseline: the same fit's prediction from the other
  schedule family's final loss at the same D (no baseline of that kind is given by the papers;
  we print "copy": the other schedule's final loss at the same (N, D), which is what a user
  who ignores the schedule would guess).
- ``size_err``: at each budget of the main job, the largest-N point predicted from the curves of
  every other shape (the held-out shape's trunk and branches at every budget excluded). Baseline:
  approach 3 (``analysis.parametric.fit_parametric``) on the final losses of the same other
  shapes' points.

Design fixed before any result was seen (2026-12-03): validation losses are evaluated every 25
steps on 16,384 validation tokens in the main-job sweep (the main job evaluates every 256 steps
on 65,536, too sparse for a curve) and every 12 steps on 8,192 in the WSD set; everything else
is the sweeps' own configuration. The law, its Huber delta and its start grid are the defaults
of ``analysis.curves``.

Last line: ``curve_law: early_err=X schedule_err=Y size_err=Z`` (targets 1%, 1%, 2%).

Usage: python benchmarks/curve_law.py [--quick] [--runs-dir DIR] [--train-only] [--out DIR]
``--quick``: the main sweep's two smallest budgets with one seed and one WSD shape (CI-sized;
with cpu_isoflop's third edition 16 + 9 runs, a tenth of the default's FLOPs); the default
trains the main sweep in full (44 runs in the third edition; the numbers in docs/LOG.md are from
the second edition's 49) and the WSD benchmark's ``--quick`` token counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

MAIN_EVAL_STEPS = 25
MAIN_VAL_TOKENS = 16_384
WSD_EVAL_STEPS = 12
WSD_VAL_TOKENS = 8_192
EARLY_FRACTION = 0.3


def main_sweep(quick: bool):
    """The main job's sweep, with validation every 25 steps (see the module docstring)."""
    from sweeps.defs import cpu_isoflop

    spec = cpu_isoflop.sweep()
    base = spec.base
    base = dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, val_tokens=MAIN_VAL_TOKENS),
        eval_interval_tokens=MAIN_EVAL_STEPS * base.batch_size_tokens,
        wandb_mode="disabled",
    )
    kw = {"name": "curve_main", "base": base}
    if quick:
        kw["budgets"] = spec.budgets[:2]
        kw["seeds_by_budget"] = ()  # one seed
        kw["seeds"] = (0,)
    return dataclasses.replace(spec, **kw)


def wsd_sweeps(quick: bool):
    """The WSD benchmark's cosine and WSD sweeps (its ``--quick`` size), denser evaluation."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import wsd_vs_cosine

    out = []
    for spec in wsd_vs_cosine.sweeps(quick=True):
        base = spec.base
        base = dataclasses.replace(
            base,
            data=dataclasses.replace(base.data, val_tokens=WSD_VAL_TOKENS),
            eval_interval_tokens=WSD_EVAL_STEPS * base.batch_size_tokens,
        )
        kw = {"name": f"curve_{spec.name}", "base": base}
        if quick:
            kw["widths"] = spec.widths[:1]
        out.append(dataclasses.replace(spec, **kw))
    return out


def train_all(runs_dir: Path, quick: bool, parallel: int) -> dict[str, float]:
    """Launch every sweep the benchmark needs (finished runs are reused); wall seconds each."""
    from sweeps.launch import launch

    walls = {}
    for spec in (main_sweep(quick), *wsd_sweeps(quick)):
        t0 = time.perf_counter()
        res = launch(spec, runs_dir, executor="local", parallel=parallel, progress=False)
        walls[spec.name] = time.perf_counter() - t0
        if not res.ok:
            bad = [(o.run_name, o.status) for o in res.outcomes if o.status != "complete"]
            raise SystemExit(f"{spec.name}: runs did not finish: {bad}")
        print(f"trained {spec.name}: {len(res.outcomes)} runs in {walls[spec.name]:.0f} s")
    return walls


def _table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'run':<52} {'actual':>7} {'pred':>7} {'err':>8} {'baseline':>8} {'b_err':>8}")
    for r in rows:
        print(
            f"{str(r['run'])[:52]:<52} {r['actual']:>7.4f} {r['predicted']:>7.4f} "
            f"{100 * r['rel_error']:>+7.2f}% {r['baseline']:>8.4f} "
            f"{100 * r['baseline_rel_error']:>+7.2f}%"
        )


def evaluate(runs_dir: Path, quick: bool, laws: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """The three measures per law (median |relative error|) and their baselines."""
    from analysis.curve_data import run_curves
    from analysis.curve_eval import (
        early_predictions,
        median_abs,
        schedule_predictions,
        size_predictions,
    )
    from analysis.load import load_runs

    main = main_sweep(quick)
    main_dir = runs_dir / main.name
    curves, skipped = run_curves(main_dir)
    if skipped:
        print(f"skipped curves: {skipped}")
    runs = load_runs(main_dir, warn=False).set_index("run_name")
    n_tokens = {c.run: float(runs.loc[c.run, "n_tokens"]) for c in curves}
    budget = {c.run: float(runs.loc[c.run, "flops_budget"]) for c in curves}
    held: dict[str, list[str]] = {}
    for b in sorted(set(budget.values())):
        at_b = [c for c in curves if budget[c.run] == b]
        n_max = max(c.n_params for c in at_b)
        held[f"C={b:.0e} N={n_max:.3g}"] = [c.run for c in at_b if c.n_params == n_max]
    cos_wsd = {}
    for spec in wsd_sweeps(quick):
        cos_wsd[spec.name], sk = run_curves(runs_dir / spec.name)
        if sk:
            print(f"skipped curves: {sk}")
    results: dict[str, dict[str, float]] = {}
    for law in laws:
        t0 = time.perf_counter()
        early = early_predictions(curves, EARLY_FRACTION, law)
        t_early = time.perf_counter() - t0
        _table(
            f"[{law}] early: final loss from the first {EARLY_FRACTION:.0%} of steps "
            "(baseline: last observed)",
            early,
        )
        t0 = time.perf_counter()
        size = size_predictions(curves, held, law, n_tokens=n_tokens)
        t_size = time.perf_counter() - t0
        _table(
            f"[{law}] size: largest N of each budget from the other sizes' curves "
            "(baseline: approach 3 on the other sizes' final losses)",
            size,
        )
        sched = []
        t0 = time.perf_counter()
        cos, wsd = cos_wsd["curve_cosine"], cos_wsd["curve_wsd"]
        for n in sorted({c.n_params for c in cos}):
            c_n = [c for c in cos if c.n_params == n]
            w_n = [c for c in wsd if c.n_params == n]
            sched += [dict(r, direction="wsd->cosine") for r in schedule_predictions(w_n, c_n, law)]
            sched += [dict(r, direction="cosine->wsd") for r in schedule_predictions(c_n, w_n, law)]
        t_sched = time.perf_counter() - t0
        _table(
            f"[{law}] schedule: cosine runs from WSD fits and back (baseline: the other "
            "schedule's final loss at the same length)",
            sched,
        )
        results[law] = {
            "early_err": median_abs(early),
            "early_base": median_abs(early, "baseline_rel_error"),
            "schedule_err": median_abs(sched),
            "schedule_base": median_abs(sched, "baseline_rel_error"),
            "size_err": median_abs(size),
            "size_base": median_abs(size, "baseline_rel_error"),
        }
        print(
            f"[{law}] fit time: early {t_early:.0f} s ({len(early)} fits), size {t_size:.0f} s "
            f"({len(size)} fits), schedule {t_sched:.0f} s"
        )
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized: 2 budgets, 1 WSD shape")
    ap.add_argument("--runs-dir", help="where the runs go or are reused (default: a temp folder)")
    ap.add_argument("--out", default=".", help="folder for the figure (curve_law.png)")
    ap.add_argument("--parallel", type=int, default=2, help="local workers")
    ap.add_argument("--train-only", action="store_true", help="train, do not fit")
    ap.add_argument(
        "--laws",
        default="multi_power,tissue",
        help="laws to score, comma-separated; the first gives the last line",
    )
    args = ap.parse_args()
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="curve_law-"))
    print(f"load average at start: {os.getloadavg()}  (2 cores; other jobs may be running)")
    train_all(runs_dir, args.quick, args.parallel)
    if args.train_only:
        return 0
    laws = tuple(args.laws.split(","))
    res = evaluate(runs_dir, args.quick, laws)
    from analysis.curve_plots import curve_figure

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curve_figure(runs_dir / main_sweep(args.quick).name).savefig(out / "curve_law.png", dpi=80)
    print(f"figure: {out / 'curve_law.png'}")
    print()
    for law, r in res.items():
        print(
            f"{law}: early {100 * r['early_err']:.2f}% (last observed {100 * r['early_base']:.2f}%)"
            f"; schedule {100 * r['schedule_err']:.2f}% (other schedule's final "
            f"{100 * r['schedule_base']:.2f}%); size {100 * r['size_err']:.2f}% (approach 3 "
            f"{100 * r['size_base']:.2f}%)"
        )
    r = res[laws[0]]
    print(
        f"baselines: last_observed={r['early_base']:.4f} "
        f"other_schedule={r['schedule_base']:.4f} approach3={r['size_base']:.4f}"
    )
    print(
        f"curve_law: early_err={r['early_err']:.4f} schedule_err={r['schedule_err']:.4f} "
        f"size_err={r['size_err']:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
