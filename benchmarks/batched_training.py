"""Batched training (``scaling.batched``) against the same runs trained one after another.

Usage::

    .venv/bin/python benchmarks/batched_training.py              # ~5-10 min on a quiet core
    .venv/bin/python benchmarks/batched_training.py --rounds 1 --shapes 1,16,2
    python benchmarks/batched_training.py --device cuda --steps 10,50   # GPU (scripts/gpu_check.sh)

What is timed is the real code end to end: ``scaling.batched.train_batched`` on K members, and
``scaling.train.train`` on each of the same K members one after another, at the main job's
shapes and batch (``sweeps/defs/cpu_isoflop.py``: seq_len 128, 16 x 128 = 2048 tokens per step,
vocab 256, AdamW, 1 thread). Members differ as an LR sub-sweep with seeds does: member i has seed
i and peak LR ``lr * 2**((i - 3.5) / 4)``.

Per-step cost without set-up: each measurement trains the same runs at two lengths (``--steps``,
e.g. 4 and 20 steps) and takes the difference of the two CPU times (``time.process_time``; one
thread, so CPU time is the time the code ran, which keeps time-slicing by other processes out,
though not their cache and memory traffic). Loading data, building models, the one evaluation at
the last step and the final checkpoint are in both lengths and cancel. The batched and the
sequential measurements are interleaved round by round (``--rounds``), so contention hits both
alike; the table gives the median over rounds.

Columns: ``K``; ``seq tok/s`` (tokens of the K runs over their summed per-step CPU time, trained
one after another); ``batched tok/s`` (the same tokens over the batch's per-step CPU time);
``speedup`` (their ratio); ``K-batch tok/s``: ONE run of the same shape on a K-times larger
batch (K x 16 sequences per step), and ``bound`` its speed over the sequential runs'. That run
executes the same kernels once per op on all K members' tokens, with none of batching's own
costs (no per-member weights, no vmap): the most any stacking of K models can gain where the
step is bound by per-op overhead. A ``bound`` near 1 says the step is bound by arithmetic and
memory traffic that grow with the tokens, which no batching removes. ``max_rel_dloss`` is the
largest relative difference between a batched member's logged loss (``train/loss`` and
``val/loss``, every row) and the same run's trained alone (per row of the table; the result
line's is the largest over every shape and K). Float rounding differences grow with the steps
and the LR (chaotic training), so it depends on ``--steps``: docs/LOG.md compares it with the
drift of a run trained alone with another ``micro_batch_size``.

GPU mode (``--device cuda``): the same measurement on the first CUDA device, timed in wall-clock
seconds (``time.perf_counter`` between ``torch.cuda.synchronize()`` calls: GPU work is
asynchronous, so CPU time says nothing there), in the runs' default precision on CUDA (bf16
autocast; ``--precision fp32`` for fp32 with TF32 matmuls). In bf16 the members' losses differ
from the runs trained alone by bf16 rounding, far above the fp32 tolerance of 1e-5, so
``max_rel_dloss`` is then a report, not the target's check. Without a CUDA device it stops at
once with a one-line error (exit 2).

Last line: ``batched_training: k4_small_speedup=... k4_large_speedup=... max_rel_dloss=...``,
the K=4 speed-up at the smallest d_model <= 32 shape measured and at the largest d_model >= 48
(the issue's targets: >= 2x small, large reported).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from scaling.batched import train_batched
from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from scaling.rundir import read_metrics
from scaling.train import train

# main-job shapes (n_layers, d_model, n_heads) from sweeps/defs/cpu_isoflop.py
SHAPES = ((1, 16, 2), (2, 32, 2), (2, 64, 4))
KS = (1, 2, 4, 8)
LR = {16: 2e-2, 32: 1.5e-2, 48: 9e-3, 64: 6e-3, 128: 3e-3}  # 128: 64's x 64/128 (1/width)
SEQ_LEN, BATCH_TOKENS, MICRO = 128, 2048, 16  # the main job's batch: 16 sequences of 128
CORPUS = ("argparse.py", "ast.py", "inspect.py", "pathlib.py", "typing.py", "zipfile.py")


def _corpus(root: Path) -> Path:
    out = root / "corpus"
    out.mkdir()
    std = Path(sysconfig.get_paths()["stdlib"])
    for name in CORPUS:
        (out / name).write_bytes((std / name).read_bytes())
    return out


def member(
    shape: tuple[int, int, int],
    i: int,
    n_steps: int,
    corpus: Path,
    device: str = "cpu",
    precision: str = "auto",
) -> RunConfig:
    """Member ``i`` of the benchmark's group at ``shape``, trained ``n_steps`` steps."""
    n_layers, d_model, n_heads = shape
    return RunConfig(
        model=ModelConfig(n_layers=n_layers, d_model=d_model, n_heads=n_heads, seq_len=SEQ_LEN),
        data=DataConfig(source="text", path=str(corpus), val_fraction=0.1, val_tokens=4096),
        optim=OptimConfig(lr=LR.get(d_model, 1e-2) * 2 ** ((i - 3.5) / 4), warmup_fraction=0.25),
        n_tokens=BATCH_TOKENS * n_steps,
        batch_size_tokens=BATCH_TOKENS,
        micro_batch_size=MICRO,
        seed=i,
        log_interval_steps=1,
        eval_interval_tokens=BATCH_TOKENS * n_steps,
        checkpoint_interval_steps=n_steps,
        n_threads=1,
        device=device,
        precision=precision,
        wandb_mode="disabled",
    )


def _cpu(fn: object, *args: object) -> float:
    # CPU seconds of one call (one thread: the time the code ran)
    t = time.process_time()
    fn(*args, progress=False)  # type: ignore[operator]
    return time.process_time() - t


def _cuda(fn: object, *args: object) -> float:
    # wall-clock seconds of one call, the GPU's queue drained before and after
    import torch

    torch.cuda.synchronize()
    t = time.perf_counter()
    fn(*args, progress=False)  # type: ignore[operator]
    torch.cuda.synchronize()
    return time.perf_counter() - t


def measure(shape, k, steps, corpus, work, tag, device="cpu", precision="auto"):
    """Per-step seconds of (sequential, batched, one model on a K-times batch).

    CPU seconds on the CPU, wall-clock seconds on CUDA. The run directories of the first two
    are kept for the loss comparison.
    """
    short, long = steps
    clock = _cuda if device == "cuda" else _cpu
    seq = batched = bound = 0.0
    for n, sign in ((long, 1.0), (short, -1.0)):
        cfgs = [member(shape, i, n, corpus, device, precision) for i in range(k)]
        dirs = [work / f"{tag}-n{n}-b" / f"m{i}" for i in range(k)]
        batched += sign * clock(train_batched, cfgs, dirs)
        for i, cfg in enumerate(cfgs):
            seq += sign * clock(train, cfg, work / f"{tag}-n{n}-s" / f"m{i}")
        # the bound of any stacking: one model, one call per op, on K members' tokens
        big = cfgs[0].replace(
            batch_size_tokens=k * BATCH_TOKENS,
            micro_batch_size=k * MICRO,
            n_tokens=k * BATCH_TOKENS * n,
            eval_interval_tokens=k * BATCH_TOKENS * n,
        )
        bound += sign * clock(train, big, work / f"{tag}-n{n}-bound")
    return seq / (long - short), batched / (long - short), bound / (long - short)


def max_rel_dloss(a_dir: Path, b_dir: Path) -> float:
    """Largest relative difference of the logged losses of two run directories."""
    worst = 0.0
    for ra, rb in zip(read_metrics(a_dir), read_metrics(b_dir), strict=True):
        for key in ("train/loss", "val/loss"):
            if key in ra:
                worst = max(worst, abs(ra[key] - rb[key]) / abs(ra[key]))
    return worst


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and the result line (last)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", default="4,20", help="the two lengths, in steps (short,long)")
    p.add_argument("--shapes", nargs="*", default=None, help="n_layers,d_model,n_heads ...")
    p.add_argument("--ks", default=",".join(map(str, KS)))
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="the runs' precision (auto: fp32 on CPU, bf16 autocast on CUDA)",
    )
    args = p.parse_args(argv)
    if args.device == "cuda":  # refused before any work
        import torch

        if not torch.cuda.is_available():
            print(
                f"batched_training: --device cuda, but torch {torch.__version__} sees no CUDA "
                f"device (built with CUDA {torch.version.cuda}); run it on a GPU machine "
                "(scripts/gpu_check.sh) or use --device cpu",
                file=sys.stderr,
            )
            return 2
    steps = tuple(int(s) for s in args.steps.split(","))
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] if args.shapes else SHAPES
    ks = [int(k) for k in args.ks.split(",")]
    work = Path(tempfile.mkdtemp(prefix="batched-bench-"))
    try:
        corpus = _corpus(work)
        speedups: dict[tuple, float] = {}
        worst = 0.0
        for shape in shapes:
            per = {k: ([], [], []) for k in ks}
            dloss = dict.fromkeys(ks, 0.0)
            # warm-up (first calls pay one-time costs: vmap's and the kernels' first use)
            warm = [member(shape, i, 2, corpus, args.device, args.precision) for i in range(2)]
            train_batched(warm, [work / "warm-b" / f"m{i}" for i in range(2)], progress=False)
            train(warm[0], work / "warm-s" / "m0", progress=False)
            for d in work.glob("warm-*"):
                shutil.rmtree(d)
            for r in range(args.rounds):
                for k in ks:  # interleaved: each K's batched and sequential runs back to back
                    tag = f"L{shape[0]}d{shape[1]}-k{k}-r{r}"
                    measured = measure(
                        shape, k, steps, corpus, work, tag, args.device, args.precision
                    )
                    for column, value in zip(per[k], measured, strict=True):
                        column.append(value)
                    n = steps[1]
                    for i in range(k):
                        d = max_rel_dloss(
                            work / f"{tag}-n{n}-s" / f"m{i}", work / f"{tag}-n{n}-b" / f"m{i}"
                        )
                        dloss[k] = max(dloss[k], d)
                    for d in work.glob(f"{tag}-*"):
                        shutil.rmtree(d)
            how = (
                f"{args.device}, precision {args.precision}, wall-clock time"
                if args.device == "cuda"
                else "1 thread, CPU time"
            )
            print(
                f"\nshape n_layers={shape[0]} d_model={shape[1]} n_heads={shape[2]} "
                f"({BATCH_TOKENS} tokens/step, {how})"
            )
            print(
                f"{'K':>3} {'seq tok/s':>11} {'batched tok/s':>14} {'speedup':>8} "
                f"{'K-batch tok/s':>14} {'bound':>6} {'max rel dloss':>14}"
            )
            for k in ks:
                s, b, o = (statistics.median(column) for column in per[k])
                tok = k * BATCH_TOKENS
                speedups[(shape, k)] = s / b
                print(
                    f"{k:>3} {tok / s:>11.0f} {tok / b:>14.0f} {s / b:>8.2f} "
                    f"{tok / o:>14.0f} {s / o:>6.2f} {dloss[k]:>14.1e}"
                )
                worst = max(worst, dloss[k])
            sys.stdout.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    small = [s for s in shapes if s[1] <= 32]
    large = [s for s in shapes if s[1] >= 48]
    k4s = speedups.get((small[0], 4), math.nan) if small and 4 in ks else math.nan
    k4l = speedups.get((large[-1], 4), math.nan) if large and 4 in ks else math.nan
    print(
        f"batched_training: k4_small_speedup={k4s:.2f} k4_large_speedup={k4l:.2f} "
        f"max_rel_dloss={worst:.1e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
