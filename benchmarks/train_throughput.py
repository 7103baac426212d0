"""Training throughput and MFU of ``scaling.models.gpt2.GPT`` on one CPU thread.

Usage::

    .venv/bin/python benchmarks/train_throughput.py            # eager rows, ~1 minute
    .venv/bin/python benchmarks/train_throughput.py --compile  # + torch.compile (C compiler)
    .venv/bin/python benchmarks/train_throughput.py --nanogpt ~/src/nanoGPT  # + nanoGPT's model
    python benchmarks/train_throughput.py --device cuda --nanogpt ~/src/nanoGPT  # GPU, 124M/350M
    python benchmarks/train_throughput.py --dry-run   # the GPU path on CPU, tiny shapes

``--device cuda`` (and ``--dry-run``) runs ``benchmarks/gpu_throughput.py`` instead: GPT-2 124M
and ~350M in bf16 with ``torch.compile``, beside nanoGPT's model, MFU against the dense bf16
peak (its docstring). Everything below is the CPU benchmark.

A training step is forward + backward + ``torch.optim.AdamW(fused=True)`` step +
``zero_grad(set_to_none=True)`` on 16 sequences of 256 byte tokens (vocab 256), fp32,
``d_mlp = 4 * d_model``. Heads: ``d_head = 64`` (GPT-2's head width) for (2, 64) and (4, 128),
i.e. 1 and 2 heads; 8 heads (``d_head = 32``) for (6, 256) as the task fixes. ``--d-head`` changes
the first two (measured at (2, 64): ``d_head`` 32 is ~4% slower, 16 ~13% slower).

MFU = ``flops_per_token(cfg)`` (our counted convention: Chinchilla App. F without the embedding
lookup, attention counted in full) x tokens/s / peak. Peak is the best of a few warm large square
fp32 matmuls (1024 and 1536) on the same single thread, timed like the steps (CPU time), measured
right before *and* right after each round's steps; the round uses the larger of the two, so a
peak taken at a slow moment cannot inflate MFU (the machine's matmul rate swings 65-190 GFLOP/s
with what the other core runs).

The machine is shared (other jobs often keep every core busy), so steps and matmuls are timed in
*CPU time of this process* (``time.process_time``; one thread, so CPU time is the time the step
actually ran), which removes time-slicing by other processes but not their cache and memory
traffic. Each round pairs a peak measurement with the steps timed just after it; the table gives
medians over rounds of tokens/s (CPU time), of wall-clock tokens/s, and of the paired MFU.
``x base`` is our tokens/s over that of ``Baseline`` (a plain GPT-2/nanoGPT-style recipe written
here) timed interleaved, round by round, with ours: a speed ratio that contention hardly moves;
``baseMFU`` is that recipe's MFU against the same peaks. With ``--nanogpt PATH`` (a clone of
github.com/karpathy/nanoGPT; nothing of it is vendored here) its own ``model.py`` and
``configure_optimizers`` are timed interleaved too: ``x nano`` is our speed over nanoGPT's and
``nanoMFU`` its MFU against the same peaks.

The bar (issue 13): our tokens/s at least nanoGPT's own model's, measured in the same run
(``x nano >= 1.0`` on every shape; without ``--nanogpt``, ``x base`` stands in and the result
line says so). MFU is printed for information only: a measured peak is not comparable across
machines of one kind (one measured a best fp32 matmul of 29-47 GFLOP/s, another 181-191), so
fixed MFU targets judged the machine, not the code; a speed ratio measured interleaved does not.
The last line is the result: the ratio per shape on the ``train`` rows and whether the bar holds.

Rows:

- ``eager``: the model, plain eager PyTorch, glibc's default allocator settings.
- ``train``: the same after ``scaling.train.tune_allocator()`` (what ``train()`` does on CPU):
  ``mallopt`` raises glibc's mmap and trim thresholds, so freed activations stay in the heap
  instead of being unmapped and page-faulted in again every step (a process setting, not a model
  one; it cannot be undone in-process, so this row runs second).
- ``compile`` (``--compile``): ``model.compile()`` (needs a C compiler; ~30 s per shape).

``--families`` prints instead one table of tokens/s per model family (``family_rows``): at each
shape, ``gpt2`` (``d_mlp = 4 * d_model``) and ``llama`` with the SwiGLU width that matches
gpt2's non-embedding N (``d_mlp = round((8 * d_model + 2) / 3)``; equal N within 0.1%), both
after ``tune_allocator()``, timed interleaved round by round, and the ratio llama / gpt2. Its last
line is the issue-11 result: the smallest ratio over the shapes (target >= 0.9).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from scaling.config import ModelConfig
from scaling.counting import flops_per_token
from scaling.models.gpt2 import GPT
from scaling.train import tune_allocator

# (n_layers, d_model, n_heads)
SHAPES = [(2, 64, 1), (4, 128, 2), (6, 256, 8)]
BAR = 1.0  # our tokens/s over nanoGPT's model's, same run
VOCAB, SEQ_LEN, BATCH = 256, 256, 16
_PEAK_INPUTS: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def peak_flops(sizes: tuple[int, ...] = (1024, 1536), repeats: int = 2) -> float:
    """Best fp32 matmul FLOP/s (CPU time) over square sizes, ``repeats`` tries each (2*n**3).

    Inputs are allocated once per size and reused; each size gets one untimed warm-up product.
    """
    best = 0.0
    for n in sizes:
        if n not in _PEAK_INPUTS:
            _PEAK_INPUTS[n] = (torch.randn(n, n), torch.randn(n, n), torch.empty(n, n))
        a, b, out = _PEAK_INPUTS[n]
        torch.mm(a, b, out=out)  # warm up the kernel and the caches
        for _ in range(repeats):
            t0 = time.process_time()
            torch.mm(a, b, out=out)
            best = max(best, 2 * n**3 / (time.process_time() - t0))
    return best


class Baseline(nn.Module):
    """A plain GPT-2 recipe to compare against, timed interleaved with ``GPT`` on the same batch.

    What GPT-2 and nanoGPT do and ``scaling.models.gpt2.GPT`` does not: Linear biases, q/k/v via
    ``split`` and a ``.contiguous()`` copy of the attention output, an LM head tied to the token
    embedding, ``AdamW(foreach=True)`` (nanoGPT fuses only on CUDA). Exact GELU, SDPA and
    pre-norm as ours. Same counted FLOPs per token
    (biases and LayerNorms are not counted), so its MFU uses the same numerator.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, d)
        self.wpe = nn.Embedding(cfg.seq_len, d)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "ln_1": nn.LayerNorm(d),
                    "attn": nn.Linear(d, 3 * d),
                    "attn_out": nn.Linear(d, d),
                    "ln_2": nn.LayerNorm(d),
                    "fc": nn.Linear(d, cfg.d_mlp),
                    "act": nn.GELU(),
                    "mlp_out": nn.Linear(cfg.d_mlp, d),
                }
            )
            for _ in range(cfg.n_layers)
        )
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, cfg.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor):
        b, t = idx.shape
        d, h = self.cfg.d_model, self.cfg.n_heads
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for blk in self.blocks:
            q, k, v = blk["attn"](blk["ln_1"](x)).split(d, dim=2)
            q, k, v = (z.view(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + blk["attn_out"](y.transpose(1, 2).contiguous().view(b, t, d))
            x = x + blk["mlp_out"](blk["act"](blk["fc"](blk["ln_2"](x))))
        logits = self.lm_head(self.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    def param_groups(self, weight_decay: float) -> list[dict]:
        params = list(self.parameters())
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]


def load_nanogpt(path: str):
    """Import ``GPT`` and ``GPTConfig`` from the ``model.py`` of a nanoGPT checkout at ``path``.

    nanoGPT (github.com/karpathy/nanoGPT) is not vendored or installed by this project; point
    ``--nanogpt`` at your own clone to time its model interleaved with ours.

    Raises:
        SystemExit: ``path`` has no ``model.py`` defining ``GPT`` and ``GPTConfig``.
    """
    model_py = Path(path).expanduser() / "model.py"
    if not model_py.is_file():
        raise SystemExit(f"--nanogpt {path}: no model.py there; pass a nanoGPT checkout folder")
    spec = importlib.util.spec_from_file_location("nanogpt_model", model_py)
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    if not hasattr(module, "GPT") or not hasattr(module, "GPTConfig"):
        raise SystemExit(f"--nanogpt {path}: model.py defines no GPT/GPTConfig")
    return module.GPT, module.GPTConfig


def make_nanogpt_step(nanogpt, cfg: ModelConfig):
    """A training step of nanoGPT's own model and optimizer, as its ``train.py`` runs on CPU.

    ``GPTConfig(bias=True, dropout=0.0)`` (its defaults for training from scratch, less
    dropout), ``configure_optimizers(weight_decay=0.1, lr=1e-3, betas=(0.9, 0.95), "cpu")``
    (non-fused AdamW on CPU), ``zero_grad(set_to_none=True)``; same batch as ``make_step``.
    """
    model, opt = build_nanogpt(nanogpt, cfg, bias=True, lr=1e-3, device="cpu")
    return _step_closure(model, opt)


def build_nanogpt(nanogpt, cfg: ModelConfig, *, bias: bool, lr: float, device: str):
    """nanoGPT's ``GPT`` for ``cfg`` (dropout 0, seed 0) on ``device``, with its own AdamW.

    ``configure_optimizers(weight_decay=0.1, lr, betas=(0.9, 0.95), device)``, as its
    ``train.py`` calls it; nanoGPT's printing of parameter counts is silenced.
    """
    gpt_cls, config_cls = nanogpt
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints parameter counts
        model = gpt_cls(
            config_cls(
                block_size=cfg.seq_len,
                vocab_size=cfg.vocab_size,
                n_layer=cfg.n_layers,
                n_head=cfg.n_heads,
                n_embd=cfg.d_model,
                dropout=0.0,
                bias=bias,
            )
        ).to(device)
        opt = model.configure_optimizers(0.1, lr, (0.9, 0.95), device)
    return model, opt


def peak_by_size(sizes: tuple[int, ...] = (256, 512, 1024, 1536, 2048)) -> dict[int, float]:
    """Best fp32 matmul GFLOP/s (CPU time, 3 tries after a warm-up) per square size.

    Printed once at the start: MFU depends on what "peak" is, and small products run well
    below large ones, so this shows how far a different peak definition would move every MFU.
    """
    out = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = 0.0
        for _ in range(3):
            t0 = time.process_time()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / max(time.process_time() - t0, 1e-9))
        out[n] = best / 1e9
    return out


def make_step(model: nn.Module, fused: bool):
    """Return a closure doing one training step on a fixed random batch."""
    opt_kwargs = {"fused": True} if fused else {"foreach": True}
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-3, betas=(0.9, 0.95), **opt_kwargs)
    return _step_closure(model, opt)


def _step_closure(model: nn.Module, opt: torch.optim.Optimizer):
    # one training step (forward, backward, update, zero_grad) on the same fixed random batch
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


def measure(steps: dict, cfg: ModelConfig, rounds: int, steps_per_round: int) -> dict:
    """Time each step closure in ``steps``, interleaved, ``rounds`` times between peak measurements.

    Each round: peak, ``steps_per_round`` steps of every closure, peak again; the round's peak is
    the larger of the two. Returns, per name: median tokens/s (CPU time), median wall tokens/s,
    median paired MFU, median peak FLOP/s, median |after/before - 1| of the peak ("drift").
    """
    fpt = flops_per_token(cfg)
    raw = {name: {"tok_s": [], "wall": [], "mfu": [], "peak": []} for name in steps}
    drifts = []
    for _ in range(rounds):
        before = peak_flops()
        tok_s: dict[str, float] = {}
        for name, step in steps.items():
            times, walls = [], []
            for _ in range(steps_per_round):
                w0, t0 = time.perf_counter(), time.process_time()
                step()
                times.append(time.process_time() - t0)
                walls.append(time.perf_counter() - w0)
            tok_s[name] = BATCH * SEQ_LEN / statistics.median(times)
            raw[name]["wall"].append(BATCH * SEQ_LEN / statistics.median(walls))
        after = peak_flops()
        peak = max(before, after)
        drifts.append(abs(after / before - 1))
        for name, tps in tok_s.items():
            raw[name]["tok_s"].append(tps)
            raw[name]["peak"].append(peak)
            raw[name]["mfu"].append(fpt * tps / peak)
    return {
        name: {
            "tokens_per_sec": statistics.median(r["tok_s"]),
            "wall_tokens_per_sec": statistics.median(r["wall"]),
            "mfu": statistics.median(r["mfu"]),
            "peak": statistics.median(r["peak"]),
            "drift": statistics.median(drifts),
        }
        for name, r in raw.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    parser.add_argument(
        "--no-eager", action="store_true", help="skip the default-allocator rows (train rows only)"
    )
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="CPU seconds of timed steps per shape"
    )
    parser.add_argument(
        "--quick", action="store_true", help="train rows only, 1 s of timed steps per shape"
    )
    parser.add_argument(
        "--d-head", type=int, default=None, help="head width for the first two shapes (default 64)"
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the interleaved baseline model"
    )
    parser.add_argument("--foreach", action="store_true", help="AdamW(foreach=True), not fused")
    parser.add_argument(
        "--families",
        action="store_true",
        help="only the per-family table: gpt2 vs llama tokens/s at equal non-embedding N",
    )
    parser.add_argument(
        "--nanogpt",
        metavar="PATH",
        default=None,
        help="a nanoGPT checkout (folder with model.py): also time its model interleaved",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="cuda: gpu_throughput.py's rows"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="the --device cuda code path on CPU, tiny shapes"
    )
    parser.add_argument("--batch", type=int, default=16, help="cuda: sequences per step")
    parser.add_argument("--rounds", type=int, default=5, help="cuda: interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=10, help="cuda: timed steps per round")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="cuda: peak for MFU (default 989.4)"
    )
    parser.add_argument(
        "--gpu-shapes", nargs="*", default=None, help="cuda: subset of 124M 350M (default both)"
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" or args.dry_run:
        import gpu_throughput

        return gpu_throughput.run(
            device="cpu" if args.dry_run else "cuda",
            nanogpt=load_nanogpt(args.nanogpt) if args.nanogpt else None,
            batch=2 if args.dry_run else args.batch,
            rounds=2 if args.dry_run else args.rounds,
            steps=2 if args.dry_run else args.steps,
            peak_tflops=args.peak_tflops,
            dry_run=args.dry_run,
            shapes=args.gpu_shapes,
        )
    if args.quick:
        args.no_eager, args.seconds = True, 1.0
    nanogpt = load_nanogpt(args.nanogpt) if args.nanogpt else None
    if args.families:
        return family_rows(args.seconds)

    torch.set_num_threads(1)
    fused = not args.foreach
    variants = ([] if args.no_eager else ["eager"]) + ["train"]
    variants += ["compile"] if args.compile else []
    print(
        f"torch {torch.__version__}, 1 thread, AdamW {'fused' if fused else 'foreach'}, fp32; "
        "peak = max(best square fp32 matmul before, after) each round"
    )
    print(
        "# best square fp32 matmul, GFLOP/s by size: "
        + ", ".join(f"{n}: {gf:.0f}" for n, gf in peak_by_size().items())
    )
    header = (
        f"{'variant':8s} {'n_layers':>8s} {'d_model':>7s} {'n_heads':>7s} {'d_head':>6s} "
        f"{'tokens/s':>9s} {'wall tok/s':>10s} {'peak GF/s':>9s} {'drift':>5s} {'MFU':>6s} "
        f"{'x base':>7s} {'baseMFU':>7s}" + (f" {'x nano':>7s} {'nanoMFU':>7s}" if nanogpt else "")
    )
    print(header)
    print("-" * len(header))
    t_start = time.perf_counter()
    bar_ratios: dict[tuple[int, int], float] = {}  # train rows: ours / nanoGPT (or baseline)
    for variant in variants:
        if variant == "train":
            print(f"# scaling.train.tune_allocator() applied: {tune_allocator()}")
        for i, (n_layers, d_model, n_heads) in enumerate(SHAPES):
            if args.d_head is not None and i < 2:
                n_heads = max(1, d_model // args.d_head)
            cfg = ModelConfig(
                n_layers=n_layers,
                d_model=d_model,
                n_heads=n_heads,
                d_mlp=4 * d_model,
                vocab_size=VOCAB,
                seq_len=SEQ_LEN,
            )
            torch.manual_seed(0)
            model = GPT(cfg)
            steps = {"ours": make_step(model, fused)}
            if variant == "compile":
                model.compile()
            elif not args.no_baseline:
                steps["baseline"] = make_step(Baseline(cfg), fused=False)
            if nanogpt is not None and variant != "compile":
                steps["nanogpt"] = make_nanogpt_step(nanogpt, cfg)
            for step in steps.values():
                step()  # warm-up (and compilation)
            t0 = time.process_time()
            steps["ours"]()
            # ~0.3 s of steps per round, rounds for ~args.seconds of timed steps per shape
            dt = time.process_time() - t0
            per_round = max(1, min(5, int(0.3 / dt)))
            rounds = max(3, min(12, int(args.seconds / (per_round * dt))))
            res = measure(steps, cfg, rounds, per_round)
            r = res["ours"]
            base = res.get("baseline")
            nano = res.get("nanogpt")
            nano_cols = ""
            if nano:
                nano_cols = (
                    f" {r['tokens_per_sec'] / nano['tokens_per_sec']:7.2f} {nano['mfu']:7.3f}"
                )
            versus = nano or base
            if variant == "train" and versus:
                bar_ratios[(n_layers, d_model)] = r["tokens_per_sec"] / versus["tokens_per_sec"]
            print(
                f"{variant:8s} {n_layers:8d} {d_model:7d} {cfg.n_heads:7d} {cfg.d_head:6d} "
                f"{r['tokens_per_sec']:9.0f} {r['wall_tokens_per_sec']:10.0f} "
                f"{r['peak'] / 1e9:9.1f} {r['drift']:5.2f} {r['mfu']:6.3f} "
                + (
                    f"{r['tokens_per_sec'] / base['tokens_per_sec']:7.2f} {base['mfu']:7.3f}"
                    if base
                    else f"{'-':>7s} {'-':>7s}"
                )
                + nano_cols,
                flush=True,
            )
    print(f"total {time.perf_counter() - t_start:.0f} s")
    if bar_ratios:
        against = (
            "nanoGPT's model" if nanogpt else "the in-file nanoGPT-style Baseline (no --nanogpt)"
        )
        met = all(v >= BAR for v in bar_ratios.values())
        print(
            f"result: tokens/s of ours over {against}, same run, train rows: "
            + ", ".join(f"({n}, {d}) {v:.2f}x" for (n, d), v in bar_ratios.items())
            + f"; bar >= {BAR:.1f}x: {'met' if met else 'MISSED'}"
        )
    return 0


def family_rows(seconds: float) -> int:
    """Tokens/s of gpt2 and llama at equal non-embedding N, interleaved (module docstring)."""
    from scaling.counting import param_counts
    from scaling.models import build_model

    torch.set_num_threads(1)
    tune_allocator()
    print(f"torch {torch.__version__}, 1 thread, AdamW fused, fp32, batch {BATCH}x{SEQ_LEN}")
    header = (
        f"{'family':7s} {'n_layers':>8s} {'d_model':>7s} {'n_heads':>7s} {'d_mlp':>6s} "
        f"{'N non-emb':>10s} {'FLOPs/tok':>10s} {'tokens/s':>9s} {'wall tok/s':>10s} "
        f"{'x gpt2':>7s}"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for n_layers, d_model, n_heads, _, _ in SHAPES:
        shape = dict(
            n_layers=n_layers, d_model=d_model, n_heads=n_heads, vocab_size=VOCAB, seq_len=SEQ_LEN
        )
        cfgs = {
            "gpt2": ModelConfig(**shape, d_mlp=4 * d_model),
            "llama": ModelConfig(**shape, d_mlp=round((8 * d_model + 2) / 3), family="llama"),
        }
        steps = {}
        for name, cfg in cfgs.items():
            torch.manual_seed(0)
            steps[name] = make_step(build_model(cfg), fused=True)
            steps[name]()  # warm-up
        t0 = time.process_time()
        steps["gpt2"]()
        dt = time.process_time() - t0
        per_round = max(1, min(5, int(0.3 / dt)))
        rounds = max(3, min(12, int(seconds / (per_round * dt))))
        res = measure(steps, cfgs["gpt2"], rounds, per_round)
        ratio = res["llama"]["tokens_per_sec"] / res["gpt2"]["tokens_per_sec"]
        ratios.append(ratio)
        for name, cfg in cfgs.items():
            r = res[name]
            print(
                f"{name:7s} {n_layers:8d} {d_model:7d} {n_heads:7d} {cfg.d_mlp:6d} "
                f"{param_counts(cfg).non_embedding:10,d} {flops_per_token(cfg):10.3g} "
                f"{r['tokens_per_sec']:9.0f} {r['wall_tokens_per_sec']:10.0f} "
                f"{r['tokens_per_sec'] / res['gpt2']['tokens_per_sec']:7.2f}",
                flush=True,
            )
    verdict = "meets" if min(ratios) >= 0.9 else "MISSES"
    print(
        f"llama / gpt2 tokens/s at equal N: min {min(ratios):.2f} over "
        f"{len(ratios)} shapes ({', '.join(f'{x:.2f}' for x in ratios)}); {verdict} the 0.9 target"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
