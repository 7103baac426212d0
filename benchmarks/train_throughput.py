"""Training throughput and MFU of ``scaling.model.GPT`` on one CPU thread.

Usage::

    .venv/bin/python benchmarks/train_throughput.py            # eager rows, ~1 minute
    .venv/bin/python benchmarks/train_throughput.py --compile  # + torch.compile (C compiler)

A training step is forward + backward + ``torch.optim.AdamW`` step + ``zero_grad`` on 16
sequences of 256 byte tokens (vocab 256), fp32, ``d_mlp = 4 * d_model``, ``d_head = 32``.

MFU = ``flops_per_token(cfg)`` (our counted convention: Chinchilla App. F without the embedding
lookup, attention counted in full) x tokens/s / peak, where peak is the best of a few large square
fp32 matmuls on the same single thread, measured right before each timed round.

The machine is shared (other jobs often keep every core busy), so steps and matmuls are timed in
*CPU time of this process* (``time.process_time``; one thread, so CPU time is the time the step
actually ran), which removes time-slicing by other processes but not their cache and memory
traffic. Each round pairs a peak measurement with the steps timed just after it; the table gives
medians over rounds of tokens/s (CPU time), of wall-clock tokens/s, and of the paired MFU.

Rows:

- ``eager``: the model as the training loop uses it, plain eager PyTorch.
- ``malloc``: the same after ``mallopt`` raises glibc's mmap and trim thresholds, so freed
  activations stay in the heap instead of being unmapped and page-faulted in again every step
  (a process setting, not a model one; ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``
  in the environment do the same).
- ``compile`` (``--compile``): ``model.compile()`` (needs a C compiler; ~30 s per shape).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time

import torch

from scaling.config import ModelConfig
from scaling.counting import flops_per_token
from scaling.model import GPT

# (n_layers, d_model, MFU target): nanoGPT's model reaches 0.54, 0.61, 0.75 here (lead's note).
SHAPES = [(2, 64, 0.55), (4, 128, 0.62), (6, 256, 0.75)]
VOCAB, SEQ_LEN, BATCH = 256, 256, 16


def peak_flops(sizes: tuple[int, ...] = (768, 1024), repeats: int = 3) -> float:
    """Best fp32 matmul FLOP/s (CPU time) over square sizes, ``repeats`` tries each (2*n**3)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)  # warm up the kernel and the output buffer
        for _ in range(repeats):
            t0 = time.process_time()
            torch.mm(a, b, out=out)
            best = max(best, 2 * n**3 / (time.process_time() - t0))
    return best


def make_step(model: torch.nn.Module, fused: bool):
    """Return a closure doing one training step on a fixed random batch."""
    opt_kwargs = {"fused": True} if fused else {"foreach": True}
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-3, betas=(0.9, 0.95), **opt_kwargs)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=g)
    targets = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=g)

    def step() -> float:
        _, loss = model(idx, targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def measure(step, cfg: ModelConfig, rounds: int, steps_per_round: int, warmup: int) -> dict:
    """Time ``rounds`` x ``steps_per_round`` steps, each round after a fresh peak measurement."""
    for _ in range(warmup):
        step()
    fpt = flops_per_token(cfg)
    tok_s, wall_tok_s, mfu, peaks = [], [], [], []
    for _ in range(rounds):
        peak = peak_flops()
        times, walls = [], []
        for _ in range(steps_per_round):
            w0, t0 = time.perf_counter(), time.process_time()
            step()
            times.append(time.process_time() - t0)
            walls.append(time.perf_counter() - w0)
        tps = BATCH * SEQ_LEN / statistics.median(times)
        tok_s.append(tps)
        wall_tok_s.append(BATCH * SEQ_LEN / statistics.median(walls))
        peaks.append(peak)
        mfu.append(fpt * tps / peak)
    return {
        "tokens_per_sec": statistics.median(tok_s),
        "wall_tokens_per_sec": statistics.median(wall_tok_s),
        "mfu": statistics.median(mfu),
        "peak": statistics.median(peaks),
    }


def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap (no mmap/munmap per large tensor). Linux/glibc only."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(
        libc.mallopt(m_trim_threshold, 1 << 30)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    parser.add_argument("--no-malloc", action="store_true", help="skip the mallopt rows")
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="CPU seconds of timed steps per shape"
    )
    parser.add_argument("--d-head", type=int, default=32, help="head width (n_heads = d/d_head)")
    parser.add_argument("--foreach", action="store_true", help="AdamW(foreach=True), not fused")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    fused = not args.foreach
    variants = ["eager"] + ([] if args.no_malloc else ["malloc"])
    variants += ["compile"] if args.compile else []
    print(f"torch {torch.__version__}, 1 thread, AdamW {'fused' if fused else 'foreach'}, fp32")
    header = (
        f"{'variant':8s} {'n_layers':>8s} {'d_model':>7s} {'n_heads':>7s} {'tokens/s':>9s} "
        f"{'wall tok/s':>10s} {'peak GF/s':>9s} {'MFU':>6s} {'target':>6s} {'ratio':>6s}"
    )
    print(header)
    print("-" * len(header))
    t_start = time.perf_counter()
    for variant in variants:
        if variant == "malloc":
            print(f"# mallopt applied: {tune_malloc()}")
        for n_layers, d_model, target in SHAPES:
            cfg = ModelConfig(
                n_layers=n_layers,
                d_model=d_model,
                n_heads=max(1, d_model // args.d_head),
                d_mlp=4 * d_model,
                vocab_size=VOCAB,
                seq_len=SEQ_LEN,
            )
            torch.manual_seed(0)
            model = GPT(cfg)
            step = make_step(model, fused)
            if variant == "compile":
                model.compile()
            step()  # warm-up (and compilation)
            t0 = time.process_time()
            step()
            # ~0.3 s of steps per round, rounds for ~args.seconds of timed steps per shape
            dt = time.process_time() - t0
            steps = max(1, min(5, int(0.3 / dt)))
            rounds = max(3, min(12, int(args.seconds / (steps * dt))))
            r = measure(step, cfg, rounds, steps, warmup=1)
            print(
                f"{variant:8s} {n_layers:8d} {d_model:7d} {cfg.n_heads:7d} "
                f"{r['tokens_per_sec']:9.0f} {r['wall_tokens_per_sec']:10.0f} "
                f"{r['peak'] / 1e9:9.1f} {r['mfu']:6.3f} {target:6.2f} {r['mfu'] / target:6.2f}",
                flush=True,
            )
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
