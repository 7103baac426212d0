"""Per-run overhead of the local executor: a fresh interpreter per run vs forks of a warm server.

Launches the same sweep of tiny runs (d_model 16, one layer, 2 optimizer steps, wandb offline as
in the main job, the standard-library corpus) twice on the local executor, once per start path
(``sweeps.workers``): ``fresh`` (``python -m sweeps.execute`` per run, the first release) and
``forkserver`` (the default). A run's overhead is its process wall time minus the run's own
``wall_time_s`` (the training loop): interpreter start, imports, data loading, model build and
wandb start-up. The forkserver path's figure includes starting its server (once per launch).

Both paths run in this one process, one after the other, so the ratio is meaningful on a shared
machine even where the absolute seconds are noisy. The result line is printed last.

    python benchmarks/launcher_overhead.py            # 12 runs per path, 2 at a time
    python benchmarks/launcher_overhead.py --quick    # 6 runs per path
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from sweeps.launch import launch
from sweeps.spec import GridSweep


def tiny_sweep(n_runs: int) -> GridSweep:
    """``n_runs`` runs of 2 steps each (one per seed), wandb offline."""
    base = RunConfig(
        model=ModelConfig(n_layers=1, d_model=16, n_heads=1, d_mlp=64, seq_len=32),
        data=DataConfig(source="stdlib", val_tokens=512),
        optim=OptimConfig(lr=1e-2),
        batch_size_tokens=256,
        micro_batch_size=8,
        eval_interval_tokens=512,
        log_interval_steps=1,
        checkpoint_interval_steps=2,
        device="cpu",
        n_threads=1,
        wandb_mode="offline",
    )
    return GridSweep(
        name="overhead",
        base=base,
        widths=(16,),
        depths=(1,),
        d_head=16,
        n_tokens=(512,),
        seeds=tuple(range(n_runs)),
    )


def measure(start: str, n_runs: int, parallel: int, root: Path) -> dict[str, float]:
    """Launch the tiny sweep with one start path; overhead and wall per run (seconds)."""
    t0 = time.perf_counter()
    result = launch(
        tiny_sweep(n_runs), root / start, "local", parallel, progress=False, local_start=start
    )
    wall = time.perf_counter() - t0
    if not result.ok:
        bad = [o for o in result.outcomes if o.status != "complete"]
        raise SystemExit(f"{start}: {len(bad)} runs did not complete: {bad[0]}")
    over = [o.wall_s - o.run_wall_time_s for o in result.outcomes]
    return {
        "overhead_mean": statistics.fmean(over),
        "overhead_median": statistics.median(over),
        "overhead_max": max(over),
        "wall_per_run": wall / n_runs,
    }


def main() -> None:
    """Run both start paths and print the comparison; the result line last."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 runs per path instead of 12")
    ap.add_argument("--runs", type=int, help="runs per path (overrides --quick)")
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time (default 2)")
    args = ap.parse_args()
    n_runs = args.runs or (6 if args.quick else 12)
    with tempfile.TemporaryDirectory() as tmp:
        rows = {s: measure(s, n_runs, args.parallel, Path(tmp)) for s in ("fresh", "forkserver")}
    print(f"{n_runs} runs of 2 steps per path, {args.parallel} at a time (wandb offline)")
    print(f"{'start':<11} {'overhead mean':>14} {'median':>8} {'max':>8} {'wall/run':>9}")
    for name, r in rows.items():
        print(
            f"{name:<11} {r['overhead_mean']:>13.2f}s {r['overhead_median']:>7.2f}s "
            f"{r['overhead_max']:>7.2f}s {r['wall_per_run']:>8.2f}s"
        )
    old, new = rows["fresh"]["overhead_mean"], rows["forkserver"]["overhead_mean"]
    print(
        f"launcher overhead per run: fresh {old:.2f} s -> forkserver {new:.2f} s "
        f"({old / new:.1f}x less; target <= 1 s per run)"
    )


if __name__ == "__main__":
    main()
