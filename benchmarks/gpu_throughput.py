"""GPU training throughput and MFU at GPT-2 scale, beside nanoGPT's model in the same run.

Run through ``benchmarks/train_throughput.py --device cuda [--nanogpt PATH]`` (what
``scripts/gpu_check.sh`` does), or ``--dry-run`` to exercise this path on the CPU with tiny shapes.

Shapes (``GPU_SHAPES``): GPT-2 124M (12 layers, d_model 768, 12 heads) and GPT-2 medium's ~350M
(24 layers, 1024, 16 heads), seq_len 1024, vocab 50304 (GPT-2's 50257 padded to a multiple of
64, as nanoGPT does), micro-batch ``--batch`` sequences (default 16). A step is what
``scaling.train`` does on CUDA: forward and backward under ``torch.autocast(bfloat16)``,
``torch.compile`` of the model, fused AdamW with the parametrization's groups (SP),
``zero_grad(set_to_none=True)``; TF32 allowed for the float32 matmuls that remain.

nanoGPT (``--nanogpt PATH``: a clone of github.com/karpathy/nanoGPT; nothing of it is vendored):
its ``model.py`` as its ``train.py`` runs it on a GPU: ``GPTConfig(bias=False, dropout=0.0)``,
``torch.compile``, bf16 autocast, ``configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cuda")``
(fused AdamW). Without ``--nanogpt`` the in-file nanoGPT-style ``Baseline`` of
``train_throughput.py`` stands in, and the result line says so. Ours and the reference are timed
interleaved, round by round (``--rounds`` rounds of ``--steps`` steps each, after warm-up and
compilation), with ``torch.cuda.synchronize()`` around each timed block.

MFU = ``scaling.counting.flops_per_token(cfg)`` (Chinchilla App. F matmul FLOPs, attention
included, no embedding lookup) x tokens/s / peak. Peak: ``PEAK_BF16_FLOPS`` = 989.4e12, the
dense bf16 Tensor Core figure of the H100 SXM5 datasheet (NVIDIA, "H100 Tensor Core GPU",
1,979 TFLOP/s with 2:4 sparsity; the H200 SXM has the same compute), or ``--peak-tflops``.
The script also measures the best bf16 matmul it can reach (square 4096-16384 products) and
prints MFU against that too. The bars (issue 24): ours >= 1.0x nanoGPT, MFU >= 40% at 124M.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from scaling import parametrization
from scaling.config import ModelConfig, OptimConfig
from scaling.counting import flops_per_token, param_counts
from scaling.models import build_model
from scaling.optim import build_optimizer

PEAK_BF16_FLOPS = 989.4e12  # H100/H200 SXM dense bf16 (NVIDIA datasheet; 1979 with sparsity)
# name: (n_layers, d_model, n_heads)
GPU_SHAPES = {"124M": (12, 768, 12), "350M": (24, 1024, 16)}
GPU_VOCAB, GPU_SEQ_LEN = 50304, 1024
# --dry-run: the same code path on the CPU with shapes that compile and run in seconds
DRY_SHAPES = {"tiny-a": (2, 64, 2), "tiny-b": (2, 96, 3)}
DRY_VOCAB, DRY_SEQ_LEN = 512, 64
BAR_NANO, BAR_MFU = 1.0, 0.40


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def best_matmul(device: str, dtype: torch.dtype, sizes: tuple[int, ...]) -> dict[int, float]:
    """Best FLOP/s of square ``dtype`` matmuls per size (3 timed tries of 5 products each)."""
    out = {}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        c = torch.empty(n, n, device=device, dtype=dtype)
        torch.mm(a, b, out=c)
        best = 0.0
        for _ in range(3):
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(5):
                torch.mm(a, b, out=c)
            _sync(device)
            best = max(best, 5 * 2 * n**3 / (time.perf_counter() - t0))
        out[n] = best
        del a, b, c
    return out


def _batch(cfg: ModelConfig, batch: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), generator=g)
    y = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), generator=g)
    return x.to(device), y.to(device)


def _closure(model: Any, opt: Any, x, y, device: str, bf16: bool, compile_: bool):
    forward = torch.compile(model) if compile_ else model

    def step() -> None:
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            _, loss = forward(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def ours_step(cfg: ModelConfig, batch: int, device: str, bf16: bool, compile_: bool):
    """Our model (``scaling.models``) and optimizer, as ``train()`` builds them."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    optim = OptimConfig(lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1)
    groups = parametrization.param_groups(model, cfg, weight_decay=0.1, eps=optim.eps)
    opt = build_optimizer(groups, optim, fused=True)
    return _closure(model, opt, *_batch(cfg, batch, device), device, bf16, compile_)


def nanogpt_step(nanogpt, cfg: ModelConfig, batch: int, device: str, bf16: bool, compile_: bool):
    """nanoGPT's own model and optimizer, as its ``train.py`` runs on a GPU (module docstring)."""
    from train_throughput import build_nanogpt

    model, opt = build_nanogpt(nanogpt, cfg, bias=False, lr=6e-4, device=device)
    return _closure(model, opt, *_batch(cfg, batch, device), device, bf16, compile_)


def baseline_step(cfg: ModelConfig, batch: int, device: str, bf16: bool, compile_: bool):
    """The in-file nanoGPT-style ``Baseline`` (``train_throughput.py``) with fused AdamW."""
    from train_throughput import Baseline

    torch.manual_seed(0)
    model = Baseline(cfg).to(device)
    opt = torch.optim.AdamW(
        model.param_groups(0.1), lr=6e-4, betas=(0.9, 0.95), fused=device == "cuda"
    )
    return _closure(model, opt, *_batch(cfg, batch, device), device, bf16, compile_)


def run(
    *,
    device: str,
    nanogpt: Any = None,
    batch: int = 16,
    rounds: int = 5,
    steps: int = 10,
    peak_tflops: float | None = None,
    dry_run: bool = False,
    shapes: list[str] | None = None,
) -> int:
    """Print the throughput table and the result line (module docstring); returns 0."""
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        name = torch.cuda.get_device_name()
    else:
        name = "CPU (dry run: tiny shapes, the code path only; numbers mean nothing)"
    table = DRY_SHAPES if dry_run else GPU_SHAPES
    vocab, seq_len = (DRY_VOCAB, DRY_SEQ_LEN) if dry_run else (GPU_VOCAB, GPU_SEQ_LEN)
    if shapes:
        table = {k: v for k, v in table.items() if k in shapes}
    peak = peak_tflops * 1e12 if peak_tflops else PEAK_BF16_FLOPS
    peak_src = (
        "--peak-tflops"
        if peak_tflops
        else "H100/H200 SXM dense bf16, NVIDIA H100 datasheet (1979 with sparsity)"
    )
    bf16 = device == "cuda" or dry_run
    print(f"device {name}; torch {torch.__version__}; bf16 autocast {bf16}; torch.compile on")
    print(f"peak {peak / 1e12:.1f} TFLOP/s ({peak_src})")
    sizes = (256, 512) if dry_run else (4096, 8192, 16384)
    mm = best_matmul(device, torch.bfloat16, sizes)
    best_mm = max(mm.values())
    print(
        "best bf16 matmul measured: "
        + ", ".join(f"{n}: {f / 1e12:.1f} TFLOP/s" for n, f in mm.items())
        + f"; best {best_mm / 1e12:.1f} TFLOP/s = {best_mm / peak:.0%} of the stated peak"
    )
    ref_name = "nanoGPT" if nanogpt is not None else "Baseline (nanoGPT-style, in-file)"
    header = (
        f"{'shape':>6s} {'model':>8s} {'N total':>12s} {'batch':>5s} {'tokens/s':>11s} "
        f"{'MFU':>6s} {'MFU/mm':>6s} {'x ref':>6s}"
    )
    print(header)
    print("-" * len(header))
    results: dict[str, dict[str, float]] = {}
    for tag, (n_layers, d_model, n_heads) in table.items():
        cfg = ModelConfig(
            n_layers=n_layers,
            d_model=d_model,
            n_heads=n_heads,
            d_mlp=4 * d_model,
            vocab_size=vocab,
            seq_len=seq_len,
        )
        closures = {"ours": ours_step(cfg, batch, device, bf16, True)}
        if nanogpt is not None:
            closures["ref"] = nanogpt_step(nanogpt, cfg, batch, device, bf16, True)
        else:
            closures["ref"] = baseline_step(cfg, batch, device, bf16, True)
        t0 = time.perf_counter()
        for step in closures.values():
            for _ in range(3):  # compilation, then the allocator and autotuning settle
                step()
        _sync(device)
        warm_s = time.perf_counter() - t0
        rates: dict[str, list[float]] = {k: [] for k in closures}
        for _ in range(rounds):
            for key, step in closures.items():
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(steps):
                    step()
                _sync(device)
                rates[key].append(steps * batch * seq_len / (time.perf_counter() - t0))
        fpt = flops_per_token(cfg)
        tps = {k: statistics.median(v) for k, v in rates.items()}
        results[tag] = {"ratio": tps["ours"] / tps["ref"], "mfu": fpt * tps["ours"] / peak}
        for key in closures:
            label = "ours" if key == "ours" else ("nanoGPT" if nanogpt is not None else "baseline")
            print(
                f"{tag:>6s} {label:>8s} {param_counts(cfg).total:12,d} {batch:5d} "
                f"{tps[key]:11,.0f} {fpt * tps[key] / peak:6.1%} {fpt * tps[key] / best_mm:6.1%} "
                f"{tps[key] / tps['ref']:6.2f}",
                flush=True,
            )
        print(f"# {tag}: warm-up and compilation {warm_s:.0f} s")
        del closures
        if device == "cuda":
            torch.cuda.empty_cache()
    ratios_ok = all(r["ratio"] >= BAR_NANO for r in results.values())
    first = next(iter(results))
    mfu_ok = results[first]["mfu"] >= BAR_MFU
    print(
        f"result: ours over {ref_name}, same run: "
        + ", ".join(f"{tag} {r['ratio']:.2f}x (MFU {r['mfu']:.1%})" for tag, r in results.items())
        + f"; bars >= {BAR_NANO:.1f}x: {'met' if ratios_ok else 'MISSED'}, MFU >= {BAR_MFU:.0%} "
        f"at {first}: {'met' if mfu_ok else 'MISSED'}"
        + (" (dry run on CPU: not a measurement)" if dry_run else "")
    )
    return 0
