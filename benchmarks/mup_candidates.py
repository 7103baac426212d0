"""Which candidate closes muP's gap to SP? Experiment E1 of issue 20 (docs/LOG.md).

Usage::

    .venv/bin/python benchmarks/mup_candidates.py                 # width 128, 5 arms, 2 seeds
    .venv/bin/python benchmarks/mup_candidates.py --widths 32 64 128 256 --arms mup \\
        --lr 5.6e-3 --seeds 0 1 2 --steps 400                  # wider-is-better (E2)

Our GPT only, trained by ``benchmarks/mup_reference.py``'s loop (the project's corpus, batches,
schedule, AdamW and clipping); untied readout (the project's default). Arms (the design and its
reading were written in docs/LOG.md before the run):

- ``sp``: standard parametrization.
- ``mup``: muP with base width 32.
- ``mup_refwd``: ``mup`` with EleutherAI/nanoGPT-mup's weight decay: hidden matrices ``lambda``
  (ours ``lambda m``), token and position embeddings ``lambda`` (ours 0).
- ``mup_emblr``: ``mup`` with the embeddings' LR ``eta / m`` like the hidden matrices.
- ``mup_init2``: ``mup`` with every matrix's init std doubled: ``ModelConfig.init_std`` = 0.04
  (sigma, the practitioner's guide's base-width init tunable).

The weight-decay and LR what-ifs edit the built model's parameter groups here, in the
experiment, and leave ``scaling/parametrization.py`` alone. Last line:
``mup_candidates: steps=S best=arm@width:loss,...``: each arm's best seed-mean loss over its LRs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from benchmarks.mup_reference import BASE_WIDTH, SEQ_LEN, VAL_TOKENS, Side, run_config
from scaling import parametrization
from scaling.config import DataConfig, ModelConfig
from scaling.data import get_batch, load_data
from scaling.optim import build_optimizer, lr_at

LR_EXPONENTS = {
    "sp": (-11, -10, -9),
    "mup": (-8, -7, -6),
    "mup_refwd": (-8, -7, -6),
    "mup_emblr": (-8, -7, -6),
    "mup_init2": (-8, -7, -6),
}


def model_cfg(arm: str, width: int) -> ModelConfig:
    """The arm's shape: 2 layers, 4 heads, ``d_mlp = 4 d_model``, untied readout."""
    extra = {} if arm == "sp" else {"parametrization": "mup", "base_d_model": BASE_WIDTH}
    if arm == "mup_init2":
        extra["init_std"] = 2 * parametrization.INIT_STD
    return ModelConfig(
        n_layers=2, d_model=width, n_heads=4, d_mlp=4 * width, seq_len=SEQ_LEN, **extra
    )


def regroup(arm: str, side: Side, cfg: ModelConfig, optim) -> None:
    """Rebuild ``side``'s AdamW with one group per role, the arm's what-if applied."""
    r = parametrization.rules(cfg)
    emb_ids = parametrization._embedding_ids(side.model)
    groups: dict[str, dict] = {}
    for name, p in side.model.named_parameters():
        role = parametrization.role_of(name, p, emb_ids)
        g = groups.setdefault(
            role,
            {
                "params": [],
                "roles": [role],
                "lr_multiplier": r.lr_multiplier(role),
                "weight_decay": r.weight_decay(role, optim.weight_decay),
                "eps": r.eps(role, optim.eps),
            },
        )
        g["params"].append(p)
    if arm == "mup_refwd":
        groups["hidden"]["weight_decay"] = optim.weight_decay
        groups["embedding"]["weight_decay"] = optim.weight_decay
    if arm == "mup_emblr":
        groups["embedding"]["lr_multiplier"] = r.lr_multiplier("hidden")
    side.opt = build_optimizer(list(groups.values()), optim)


def final_loss(arm: str, width: int, seed: int, lr: float, n_steps: int, data) -> float:
    """Final validation loss of one arm's run (``nan`` when it diverges)."""
    cfg = model_cfg(arm, width)
    rc = run_config(cfg, seed, n_steps, lr)
    side = Side("ours", None, cfg, seed, rc.optim)
    regroup(arm, side, cfg, rc.optim)
    for step in range(n_steps):
        loss = side.step(*get_batch(data, rc, step, 0), lr_at(step, n_steps, rc.optim), 1.0)
        if not math.isfinite(loss):
            return math.nan
    return side.val_loss(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[128])
    parser.add_argument("--arms", nargs="+", default=list(LR_EXPONENTS), choices=LR_EXPONENTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, help="one LR for every arm (else LR_EXPONENTS)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load_data(DataConfig(val_tokens=VAL_TOKENS))
    t0 = time.perf_counter()
    best = {}
    for width in args.widths:
        for arm in args.arms:
            lrs = [args.lr] if args.lr else [2.0**e for e in LR_EXPONENTS[arm]]
            rows = []
            for lr in lrs:
                losses = [final_loss(arm, width, s, lr, args.steps, data) for s in args.seeds]
                rows.append((statistics.fmean(losses), lr, losses))
                print(
                    f"[{time.perf_counter() - t0:5.0f}s] {arm:10s} width {width} lr {lr:.4g} "
                    f"(2^{math.log2(lr):.2f}): mean {rows[-1][0]:.4f} seeds "
                    + " ".join(f"{v:.4f}" for v in losses)
                    + f" spread {max(losses) - min(losses):.4f}",
                    flush=True,
                )
            finite = [r for r in rows if math.isfinite(r[0])]
            best[f"{arm}@{width}"] = min(finite)[0] if finite else math.nan
    print(
        f"mup_candidates: steps={args.steps} best="
        + ",".join(f"{a}:{v:.4f}" for a, v in best.items())
    )


if __name__ == "__main__":
    main()
