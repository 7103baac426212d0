"""Coordinate check: activation size against width over the first steps, SP against muP.

Usage::

    .venv/bin/python benchmarks/coord_check.py            # widths 64..1024, ~1-3 min on 1 core
    .venv/bin/python benchmarks/coord_check.py --out runs/benchmarks/coord_check

The test of Yang et al. 2022 ("Tensor Programs V", arXiv:2203.03466, Sec. 5 and Fig. 5): train
the same model at growing widths with one LR for a few steps and record the root-mean-square
of each activation coordinate. Under a correct muP every curve stays flat in width; under SP with
Adam the updates make the logits (and the layers' outputs) grow with width.

Design (fixed before looking at the outcome): GPT (``scaling.models.gpt2``) with 2 layers, 4 heads
(so ``d_head`` grows with the width, 16..256, and muP's ``1/d_head`` attention is exercised),
``d_mlp = 4 d_model``, byte vocab 256, ``seq_len`` 64; widths 64, 128, 256, 512, 1024; muP's base
width 64 (there muP equals SP except the attention scale); AdamW at a constant LR 1e-2 for every
width and both parametrizations (no warmup, no weight decay, no clipping), through the model's
own parameter groups (``scaling.parametrization``); 8 sequences per step from the embedded
corpus (the interpreter's standard library, ``DataConfig()``); 3 seeds averaged. After 0..5
optimizer steps, one fixed probe batch is run forward and the RMS is recorded of: the embedding
output (token + position), each block's attention and MLP outputs (before the residual add) and
the logits. The PNG has one panel per activation and parametrization: RMS against width, a line
per step.

Last line: ``coord_check: sp_growth=X mup_growth=Y``: logits RMS at the widest width divided by
that at the narrowest, after 5 steps (seed mean). 1 means width-independent.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from scaling.config import DataConfig, ModelConfig, OptimConfig
from scaling.data import load_data
from scaling.models.gpt2 import GPT
from scaling.optim import build_optimizer

WIDTHS = (64, 128, 256, 512, 1024)
BASE_D_MODEL = 64
N_LAYERS, N_HEADS, SEQ_LEN, BATCH = 2, 4, 64, 8
LR, N_STEPS, SEEDS = 1e-2, 5, (0, 1, 2)


def _batches(tokens, n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches of ``BATCH`` random windows of the training split."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.from_numpy(tokens[:2_000_000].astype("int64"))
    out = []
    for _ in range(n):
        starts = torch.randint(0, ids.numel() - SEQ_LEN - 1, (BATCH,), generator=g)
        x = torch.stack([ids[s : s + SEQ_LEN] for s in starts])
        y = torch.stack([ids[s + 1 : s + SEQ_LEN + 1] for s in starts])
        out.append((x, y))
    return out


def _model_cfg(width: int, parametrization: str) -> ModelConfig:
    extra = {} if parametrization == "sp" else {"base_d_model": BASE_D_MODEL}
    return ModelConfig(
        n_layers=N_LAYERS,
        d_model=width,
        n_heads=N_HEADS,
        d_mlp=4 * width,
        seq_len=SEQ_LEN,
        parametrization=parametrization,
        **extra,
    )


def _rms(x: torch.Tensor) -> float:
    return float(x.detach().float().pow(2).mean().sqrt())


def run_one(width: int, parametrization: str, seed: int, tokens) -> dict[str, list[float]]:
    """RMS of each recorded activation after 0..N_STEPS steps: ``{name: [rms_step0, ...]}``."""
    cfg = _model_cfg(width, parametrization)
    torch.manual_seed(seed)
    model = GPT(cfg)
    optim = OptimConfig(lr=LR, weight_decay=0.0, warmup_fraction=0.0, schedule="constant")
    opt = build_optimizer(model.param_groups(optim.weight_decay, optim.eps), optim)
    probe, *train_batches = _batches(tokens, N_STEPS + 1, seed=1000 + seed)
    record: dict[str, list[float]] = {}
    current: dict[str, float] = {}
    hooks = [model.emb_dropout.register_forward_hook(lambda m, i, o: current.update(emb=_rms(o)))]
    for k, block in enumerate(model.blocks):
        hooks.append(
            block.attn.register_forward_hook(
                lambda m, i, o, k=k: current.update({f"attn{k}": _rms(o)})
            )
        )
        hooks.append(
            block.mlp.register_forward_hook(
                lambda m, i, o, k=k: current.update({f"mlp{k}": _rms(o)})
            )
        )
    hooks.append(
        model.lm_head.register_forward_hook(lambda m, i, o: current.update(logits=_rms(o)))
    )
    for step in range(N_STEPS + 1):
        model.eval()
        with torch.no_grad():
            model(probe[0])
        for name, value in current.items():
            record.setdefault(name, []).append(value)
        if step == N_STEPS:
            break
        model.train()
        x, y = train_batches[step]
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    for h in hooks:
        h.remove()
    return record


def plot(results: dict, path: Path) -> None:
    """One panel per (parametrization, activation): RMS against width, one line per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(results["sp"].values())).keys())
    fig, axes = plt.subplots(2, len(names), figsize=(3.0 * len(names), 6.0), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for row, p in enumerate(("sp", "mup")):
        for col, name in enumerate(names):
            ax = axes[row][col]
            for step in range(N_STEPS + 1):
                ys = [results[p][w][name][step] for w in WIDTHS]
                ax.plot(WIDTHS, ys, marker="o", color=cmap(step / N_STEPS), label=f"step {step}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{p}: {name}", fontsize=9)
            ax.set_xlabel("d_model")
            if col == 0:
                ax.set_ylabel("RMS")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        f"coordinate check: GPT {N_LAYERS} layers, Adam lr {LR}, mean of {len(SEEDS)} seeds"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/coord_check"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    tokens = load_data(DataConfig()).train
    t0 = time.perf_counter()
    results: dict[str, dict[int, dict[str, list[float]]]] = {"sp": {}, "mup": {}}
    for p in results:
        for w in WIDTHS:
            runs = [run_one(w, p, s, tokens) for s in SEEDS]
            results[p][w] = {
                name: [statistics.fmean(r[name][t] for r in runs) for t in range(N_STEPS + 1)]
                for name in runs[0]
            }
            last = results[p][w]
            print(
                f"{p:4s} d_model {w:5d}: "
                + " ".join(f"{n}={v[N_STEPS]:.3g}" for n, v in last.items())
                + f"  ({time.perf_counter() - t0:.0f}s)",
                flush=True,
            )
    png = args.out / "coord_check.png"
    plot(results, png)
    growth = {
        p: results[p][WIDTHS[-1]]["logits"][N_STEPS] / results[p][WIDTHS[0]]["logits"][N_STEPS]
        for p in results
    }
    print(f"plot: {png}")
    print(f"coord_check: sp_growth={growth['sp']:.3g} mup_growth={growth['mup']:.3g}")


if __name__ == "__main__":
    main()
