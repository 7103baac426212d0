"""Eager vs ``torch.compile`` at the main job's shapes, end to end: does compiling pay on CPU?

Usage::

    .venv/bin/python benchmarks/compile_speed.py           # every cpu_isoflop shape + rung shapes
    .venv/bin/python benchmarks/compile_speed.py --quick   # 3 shapes, fewer timed steps

For each shape of ``sweeps/defs/cpu_isoflop.py``'s current plan, plus the issue-15 forecast
rung's shapes (3 layers, d_model 48, 64, 96) and a 4-layer d_model 96, at the sweep's batch
(16 x 128 byte tokens, vocab 256), fp32, one thread, ``tune_allocator()`` applied, the
training step that ``train()`` runs (forward, backward, fused AdamW with the parametrization's
groups, zero_grad) is timed:

- ``eager ms``, ``comp ms``: median CPU time per step (``time.process_time``; one thread, so
  other processes' time-slicing is removed), eager and compiled, interleaved round by round;
- ``cold s``: CPU time (this process plus its finished children, i.e. inductor's g++ calls) of
  the first compiled step, compilation included, with an empty inductor cache (this script
  points ``TORCHINDUCTOR_CACHE_DIR`` at a fresh folder); ``cold wl`` the same in wall time;
- ``warm s``: what a later run of the same shape pays for compiling when the on-disk inductor
  cache has its kernels: a fresh child interpreter (each run of a sweep is its own process)
  times an eager step, then compiles (importing dynamo and inductor) and runs a compiled step;
  the CPU time beyond the eager step. ``warm ip``: the same in this process after
  ``torch._dynamo.reset()`` (imports already paid), for comparison;
- ``steps``: the optimizer steps the sweep really trains at this shape (trunks and the branches'
  own steps; ``runs``: how many runs); rung shapes add the issue-15 rung's and neighbours' steps
  (``docs/LOG.md``: 2,264, 3,647 and 1,127 steps; 4 layers: 2,000 as a stand-in);
- ``end-to-end``: eager ``steps * eager`` against compiled ``cold + (runs - 1) * warm +
  steps * comp`` seconds; ``x`` is eager over compiled (> 1: compiling pays).

Every time used in the totals is CPU time, which other processes on a shared machine hardly
move (compilation is serial here: one thread, ``g++`` one file at a time, so on a quiet machine
its wall time is its CPU time); the wall columns and the load average show the contention.
The last line is the result: the end-to-end ratio per shape and where compiling pays.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

# an empty inductor cache, before torch is imported, so the first compilation is a cold one
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="compile-speed-"))

import torch  # noqa: E402

from scaling import parametrization  # noqa: E402
from scaling.config import ModelConfig, OptimConfig  # noqa: E402
from scaling.models import build_model  # noqa: E402
from scaling.optim import build_optimizer  # noqa: E402
from scaling.train import tune_allocator  # noqa: E402

VOCAB, SEQ_LEN, BATCH = 256, 128, 16
# the forecast rung and its neighbours (docs/LOG.md, issue 15: 4.64M, 7.47M, 2.31M tokens at
# 2048 per step) and a 4-layer shape at the top of the job's range (steps a stand-in)
RUNG_SHAPES = {(3, 64, 4): [2264], (3, 48, 3): [3647], (3, 96, 6): [1127], (4, 96, 6): [2000]}


def sweep_steps() -> dict[tuple[int, int, int], list[int]]:
    """Optimizer steps each run of ``cpu_isoflop`` trains, by (n_layers, d_model, n_heads)."""
    from sweeps.defs.cpu_isoflop import sweep

    out: dict[tuple[int, int, int], list[int]] = {}
    for cfg in sweep().expand():
        m = cfg.model
        start = cfg.branch_from.step if cfg.branch_from is not None else 0
        out.setdefault((m.n_layers, m.d_model, m.n_heads), []).append(cfg.n_steps - start)
    return out


def make_step(model_cfg: ModelConfig, compiled: bool):
    """A closure: one training step as ``train()`` does it, on a fixed random batch."""
    torch.manual_seed(0)
    model = build_model(model_cfg)
    optim = OptimConfig(lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    groups = parametrization.param_groups(model, model_cfg, weight_decay=0.1, eps=optim.eps)
    opt = build_optimizer(groups, optim, fused=True)
    forward = torch.compile(model) if compiled else model
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=g)
    y = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=g)

    def step() -> float:
        _, loss = forward(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def cpu_seconds() -> float:
    """CPU seconds of this process plus its finished children (inductor's g++ processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def first_step(model_cfg: ModelConfig) -> tuple[float, float]:
    """(wall, CPU) seconds of a fresh compiled model's first step, compilation included."""
    step = make_step(model_cfg, compiled=True)
    t0, c0 = time.perf_counter(), cpu_seconds()
    step()
    return time.perf_counter() - t0, cpu_seconds() - c0


_FRESH = """
import resource, sys, time
import torch
from compile_speed import ModelConfig, make_step
torch.set_num_threads(1)
cfg = ModelConfig(**{kwargs})
def cpu():
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime
c0 = cpu()
make_step(cfg, compiled=False)()
c1 = cpu()
make_step(cfg, compiled=True)()
c2 = cpu()
print((c2 - c1) - (c1 - c0))
"""


def fresh_process_overhead(model_cfg: ModelConfig) -> float:
    """CPU seconds a new process pays to compile (warm on-disk cache) beyond an eager step.

    A child interpreter (as every run of a sweep is) times one eager step, then imports dynamo
    and inductor, compiles and runs one step; the difference is what compiling adds to a run
    when the inductor cache already holds its kernels.
    """
    import subprocess

    kwargs = ", ".join(
        f"{k}={getattr(model_cfg, k)!r}"
        for k in ("n_layers", "d_model", "n_heads", "d_mlp", "vocab_size", "seq_len")
    )
    code = _FRESH.replace("{kwargs}", f"dict({kwargs})")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), *sys.path]))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def step_times(steps: dict, rounds: int, per_round: int) -> dict[str, float]:
    """Median CPU seconds per step of each closure, interleaved over ``rounds``."""
    raw: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(per_round):
                t0 = time.process_time()
                step()
                raw[name].append(time.process_time() - t0)
    return {name: statistics.median(v) for name, v in raw.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 shapes, fewer timed steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tune_allocator()
    shapes = sweep_steps()
    for shape, steps in RUNG_SHAPES.items():  # a rung-sized run of a sweep shape adds to it
        shapes.setdefault(shape, []).extend(steps)
    if args.quick:
        keys = list(shapes)
        shapes = {k: shapes[k] for k in (keys[0], keys[len(keys) // 2], keys[-1])}
    rounds, per_round = (3, 5) if args.quick else (5, 10)
    print(
        f"torch {torch.__version__}, 1 thread, fp32, batch {BATCH}x{SEQ_LEN}, vocab {VOCAB}, "
        f"inductor cache {os.environ['TORCHINDUCTOR_CACHE_DIR']} (empty at start), "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'shape':>8s} {'runs':>4s} {'steps':>6s} {'eager ms':>8s} {'comp ms':>8s} "
        f"{'speedup':>7s} {'cold s':>6s} {'warm s':>6s} {'eager s':>8s} {'comp s':>8s} {'x':>5s} "
        f"{'cold wl':>7s} {'warm ip':>7s}"
    )
    print(header)
    print("-" * len(header))
    ratios: dict[str, float] = {}
    t_start = time.perf_counter()
    for (n_layers, d_model, n_heads), run_steps in shapes.items():
        cfg = ModelConfig(
            n_layers=n_layers,
            d_model=d_model,
            n_heads=n_heads,
            d_mlp=4 * d_model,
            vocab_size=VOCAB,
            seq_len=SEQ_LEN,
        )
        torch._dynamo.reset()
        cold_wall, cold = first_step(cfg)
        torch._dynamo.reset()
        warm_wall, warm_in_process = first_step(cfg)
        warm = fresh_process_overhead(cfg)
        steps = {"eager": make_step(cfg, False), "compiled": make_step(cfg, True)}
        for step in steps.values():
            step()  # warm-up (the compiled one hits the cache)
        per_step = step_times(steps, rounds, per_round)
        total = sum(run_steps)
        eager_s = total * per_step["eager"]
        comp_s = cold + (len(run_steps) - 1) * warm + total * per_step["compiled"]
        tag = f"L{n_layers} d{d_model}"
        ratios[tag] = eager_s / comp_s
        print(
            f"{tag:>8s} {len(run_steps):4d} {total:6d} {per_step['eager'] * 1e3:8.2f} "
            f"{per_step['compiled'] * 1e3:8.2f} {per_step['eager'] / per_step['compiled']:7.2f} "
            f"{cold:6.1f} {warm:6.1f} {eager_s:8.1f} {comp_s:8.1f} {ratios[tag]:5.2f} "
            f"{cold_wall:7.1f} {warm_in_process:7.1f}",
            flush=True,
        )
    print(f"total {time.perf_counter() - t_start:.0f} s, load average {os.getloadavg()[0]:.1f}")
    pays = [tag for tag, r in ratios.items() if r > 1.0]
    print(
        "result: end-to-end eager / compiled time per shape (> 1: compile pays): "
        + ", ".join(f"{tag} {r:.2f}x" for tag, r in ratios.items())
        + f"; compile pays at: {', '.join(pays) if pays else 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
