"""Our muP / CompleteP against EleutherAI/nanoGPT-mup's, side by side in one run.

Usage::

    git clone https://github.com/EleutherAI/nanoGPT-mup ~/src/nanoGPT-mup   # master: width muP
    .venv/bin/python benchmarks/mup_reference.py --reference ~/src/nanoGPT-mup --quick
    .venv/bin/python benchmarks/mup_reference.py --reference ~/src/nanoGPT-mup-completep \\
        --depth          # the `completep` branch's checkout: CompleteP over depth

The reference (Dey, Anthony & Hestness 2024, "The practitioner's guide to muP"; its
``completep`` branch for Dey et al. 2025, "Don't be lazy: CompleteP enables compute-efficient
deep transformers", arXiv:2505.01618) is read at benchmark time from the checkout ``--reference``
points to, as ``benchmarks/train_throughput.py`` reads nanoGPT: its ``model.py`` is imported and
its own ``GPT``, ``GPTConfig`` and ``configure_optimizers`` are used; nothing of it is vendored.

Design (fixed before any result was seen; docs/LOG.md, issue 20). Both sides are trained by one
loop here, the same for both: the same shapes, the project's corpus (``DataConfig()``: the
interpreter's standard library, bytes), the same batches (``scaling.data.get_batch`` of a
``RunConfig`` with the run's seed), ``torch.manual_seed(seed)`` before each model is built, the
same schedule (``scaling.optim.lr_at``: 5% warmup, cosine to 10%), AdamW betas 0.9/0.95,
weight decay 0.1, global clipping at 1.0. Each side's parameter groups are its own
(ours: ``scaling.parametrization.param_groups``, each group's LR ``lr * lr_multiplier``; the
reference: ``configure_optimizers``, each group's LR ``lr * lr_scale`` as its ``train.py``).

- Shapes (as ``benchmarks/lr_transfer.py``): GPT, 2 layers, 4 heads (``d_head`` grows with the
  width), ``d_mlp = 4 d_model``, ``seq_len`` 64, 16 sequences per step, base width 32. The
  reference always ties the readout to the token embedding, so ours is built with
  ``tie_embeddings=True`` here; the reference runs with ``bias=False`` (its muP examples), ours
  has LayerNorm biases (0 at init) and no Linear biases.
- Coordinate check: constant LR 1e-2 (the reference's own coord-check setting), no warmup, 5
  steps; on one fixed probe batch, after each step, the RMS of the embedding output, each
  block's attention and MLP outputs (before the residual add) and the logits, and the RMS of
  each of those minus its value at step 0 (the update, Yang et al. 2022 Sec. 5). Widths as the
  loss sweep; seeds as ``--seeds``.
- Loss after a fixed number of steps (``--steps``, 200 quick) at every width, at one LR fixed
  in advance (``--lr``, 2^-7: the grid point nearest the geometric mean of issue 10's muP optima,
  4.6e-3..9.9e-3), seeds ``--seeds``; the final validation loss on 16,384 fixed tokens.
- LR-vs-loss: at the widths ``--lr-widths``, LRs ``--lrs`` (powers of two), same seeds.
- ``--depth``: CompleteP (the reference's ``depth_alpha_enabled``, alpha 1) at width 64 (its
  base width) over depths ``--depths`` with base depth 2, instead of muP over widths.

Result line (last): ``mup_reference: widths=... max_abs_dloss=X coord_ratio=Y``:
``max_abs_dloss`` the largest |seed-mean loss ours - seed-mean loss reference| over the widths
(or depths) at ``--lr``; ``coord_ratio`` the largest ratio (>= 1, either way round) of the
seed-mean activation RMS, ours against the reference, over widths, layers and steps 1..5. The
lines before it give every loss with each side's seed spread (max - min) to judge it by.

Runs are in process (no run directories); ``--out`` gets ``mup_reference.json`` with every number.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import io
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from scaling.data import get_batch, load_data, val_batches
from scaling.models.gpt2 import GPT
from scaling.optim import build_optimizer, clip_grad_norm, lr_at, set_lr

SEQ_LEN, BATCH, N_HEADS, VAL_TOKENS = 64, 16, 4, 16_384
BASE_WIDTH, DEPTH_WIDTH, BASE_DEPTH, WIDTH_DEPTH = 32, 64, 2, 2
COORD_LR, COORD_STEPS = 1e-2, 5
WEIGHT_DECAY = 0.1


def load_reference(path: str):
    """Import the reference's ``model.py`` from the checkout at ``path``; returns the module.

    Raises:
        SystemExit: no ``model.py`` with ``GPT``/``GPTConfig`` and muP fields there.
    """
    model_py = Path(path).expanduser() / "model.py"
    if not model_py.is_file():
        raise SystemExit(
            f"--reference {path}: no model.py there; pass a checkout of EleutherAI/nanoGPT-mup"
        )
    spec = importlib.util.spec_from_file_location("nanogpt_mup_model", model_py)
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    fields = getattr(getattr(module, "GPTConfig", None), "__dataclass_fields__", {})
    if not hasattr(module, "GPT") or "mup_width_multiplier" not in fields:
        raise SystemExit(f"--reference {path}: model.py has no muP GPT/GPTConfig (nanoGPT-mup?)")
    return module


def our_cfg(width: int, depth: int, parametrization: str) -> ModelConfig:
    """Our ``ModelConfig`` of one shape (tied readout, as the reference's)."""
    base = {
        "sp": {},
        "mup": {"base_d_model": BASE_WIDTH},
        "completep": {"base_d_model": DEPTH_WIDTH, "base_n_layers": BASE_DEPTH},
    }[parametrization]
    return ModelConfig(
        n_layers=depth,
        d_model=width,
        n_heads=N_HEADS,
        d_mlp=4 * width,
        seq_len=SEQ_LEN,
        tie_embeddings=True,
        parametrization=parametrization,
        **base,
    )


class Side:
    """One implementation's model and optimizer, with hooks naming its activations alike.

    ``activations`` after a forward: ``{"emb", "attn0", "mlp0", ..., "logits": tensor}``.
    """

    def __init__(self, impl: str, ref, cfg: ModelConfig, seed: int, optim: OptimConfig):
        torch.manual_seed(seed)
        self.activations: dict[str, torch.Tensor] = {}
        if impl == "ours":
            self.model = GPT(cfg)
            groups = self.model.param_groups(optim.weight_decay, optim.eps)
            self.opt = build_optimizer(groups, optim)
            emb, blocks, head = self.model.emb_dropout, self.model.blocks, self.model.lm_head
        else:
            self.model, self.opt = _reference(ref, cfg, optim)
            t = self.model.transformer
            emb, blocks, head = t.drop, t.h, self.model.lm_head
        self._hook(emb, "emb")
        for k, block in enumerate(blocks):
            self._hook(block.attn, f"attn{k}")
            self._hook(block.mlp, f"mlp{k}")
        self._hook(head, "logits")
        self.impl = impl

    def _hook(self, module, name: str) -> None:
        def save(m, i, o):
            self.activations[name] = o.detach().clone()

        module.register_forward_hook(save)

    def set_lr(self, lr: float) -> None:
        """Each group at ``lr`` times its multiplier (ours ``lr_multiplier``, ref ``lr_scale``)."""
        if self.impl == "ours":
            set_lr(self.opt, lr)
        else:
            for g in self.opt.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float, grad_clip: float) -> float:
        """One AdamW step at peak-relative ``lr``; returns the training loss."""
        self.model.train()
        self.set_lr(lr)
        _, loss = self.model(x.contiguous(), y.contiguous())  # the reference .view()s targets
        loss.backward()
        clip_grad_norm(self.model.parameters(), grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.item()

    @torch.no_grad()
    def probe(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Activations on ``(x, y)`` (targets given so the reference returns every logit)."""
        self.model.eval()
        self.model(x.contiguous(), y.contiguous())
        return dict(self.activations)

    @torch.no_grad()
    def val_loss(self, data) -> float:
        """Mean loss over the fixed validation windows (``VAL_TOKENS`` tokens)."""
        self.model.eval()
        losses = [
            float(self.model(x.contiguous(), y.contiguous())[1])
            for x, y in val_batches(data, SEQ_LEN, VAL_TOKENS, 16)
        ]
        return statistics.fmean(losses)


def _reference(ref, cfg: ModelConfig, optim: OptimConfig):
    """The reference's model and AdamW for ``cfg`` (``configure_optimizers``, as its train.py)."""
    p = cfg.parametrization
    kwargs = dict(
        block_size=cfg.seq_len,
        vocab_size=cfg.vocab_size,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_embd=cfg.d_model,
        dropout=0.0,
        bias=False,
        init_std=cfg.init_std,
        mup_enabled=p != "sp",
        mup_width_multiplier=cfg.d_model / (cfg.base_d_model or cfg.d_model),
    )
    if p == "completep":
        kwargs.update(
            depth_alpha_enabled=True,
            depth_multiplier=cfg.n_layers / cfg.base_n_layers,
            depth_alpha_exp=1.0,
        )
    with contextlib.redirect_stdout(io.StringIO()):  # it prints parameter counts
        model = ref.GPT(ref.GPTConfig(**kwargs))
        sig = inspect.signature(model.configure_optimizers).parameters
        args = dict(weight_decay=optim.weight_decay, learning_rate=optim.lr, betas=optim.betas)
        if "adam_eps" in sig:  # the completep branch takes eps (and scales it for CompleteP)
            args["adam_eps"] = optim.eps
        opt = model.configure_optimizers(device_type="cpu", **args)
    return model, opt


def _rms(t: torch.Tensor) -> float:
    return float(t.float().pow(2).mean().sqrt())


def run_config(cfg: ModelConfig, seed: int, n_steps: int, lr: float) -> RunConfig:
    """The ``RunConfig`` whose batches (``get_batch``) and optimizer settings both sides use."""
    tokens = BATCH * SEQ_LEN
    return RunConfig(
        model=cfg,
        data=DataConfig(val_tokens=VAL_TOKENS),
        optim=OptimConfig(lr=lr, weight_decay=WEIGHT_DECAY),
        n_tokens=tokens * n_steps,
        batch_size_tokens=tokens,
        micro_batch_size=BATCH,
        seed=seed,
        device="cpu",
        n_threads=1,
        wandb_mode="disabled",
    )


def coord_check(impl: str, ref, cfg: ModelConfig, seed: int, data) -> dict[str, list[float]]:
    """RMS and update RMS of each activation after 0..COORD_STEPS steps at constant LR."""
    rc = run_config(cfg, seed, COORD_STEPS + 1, COORD_LR)
    optim = OptimConfig(
        lr=COORD_LR, weight_decay=WEIGHT_DECAY, warmup_fraction=0.0, schedule="constant"
    )
    side = Side(impl, ref, cfg, seed, optim)
    probe = get_batch(data, rc, COORD_STEPS, 0)  # a batch no step trains on
    a0 = side.probe(*probe)
    out: dict[str, list[float]] = {k: [_rms(v)] for k, v in a0.items()}
    out.update({f"d{k}": [0.0] for k in a0})
    for step in range(COORD_STEPS):
        side.step(*get_batch(data, rc, step, 0), COORD_LR, optim.grad_clip)
        a = side.probe(*probe)
        for k, v in a.items():
            out[k].append(_rms(v))
            out[f"d{k}"].append(_rms(v - a0[k]))
    return out


def final_loss(impl: str, ref, cfg: ModelConfig, seed: int, lr: float, n_steps: int, data):
    """Final validation loss after ``n_steps`` of the project's schedule at peak ``lr``."""
    rc = run_config(cfg, seed, n_steps, lr)
    side = Side(impl, ref, cfg, seed, rc.optim)
    for step in range(n_steps):
        loss = side.step(*get_batch(data, rc, step, 0), lr_at(step, n_steps, rc.optim), 1.0)
        if not math.isfinite(loss):
            return math.nan
    return side.val_loss(data)


def _spread(xs: list[float]) -> float:
    return max(xs) - min(xs) if len(xs) > 1 else math.nan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, help="a checkout of EleutherAI/nanoGPT-mup")
    parser.add_argument("--quick", action="store_true", help="widths 32-128, 1 LR width, 100 steps")
    parser.add_argument("--depth", action="store_true", help="CompleteP over depth (completep)")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=2.0**-7)
    parser.add_argument("--lr-widths", type=int, nargs="*", default=[32])
    parser.add_argument(
        "--lrs",
        type=int,
        nargs="*",
        default=[-9, -8, -7, -6, -5],
        help="LR exponents (base 2) of the LR-vs-loss curves",
    )
    parser.add_argument("--skip-coord", action="store_true")
    parser.add_argument("--coord-only", action="store_true", help="no loss runs")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/mup_reference"))
    args = parser.parse_args(argv)
    if args.quick:
        args.widths, args.lr_widths, args.steps = [32, 64, 128], [32], 100
    torch.set_num_threads(1)
    ref = load_reference(args.reference)
    data = load_data(DataConfig(val_tokens=VAL_TOKENS))
    if args.depth:
        shapes = [(DEPTH_WIDTH, d) for d in args.depths]
        param, label = "completep", "depths"
        lr_shapes = [s for s in shapes if s[1] in (args.depths[0], args.depths[-1])]
    else:
        shapes = [(w, WIDTH_DEPTH) for w in args.widths]
        param, label = "mup", "widths"
        lr_shapes = [(w, WIDTH_DEPTH) for w in args.lr_widths]
    key = (lambda s: s[1]) if args.depth else (lambda s: s[0])
    impls = ("ref", "ours")
    t0 = time.perf_counter()
    doc: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "coord": {}, "loss": {}}

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:5.0f}s] {msg}", flush=True)

    # -- coordinate check ---------------------------------------------------------------------
    coord_ratio = math.nan
    if not args.skip_coord:
        ratios, seed_ratios = [], []
        for s in shapes:
            cfg = our_cfg(s[0], s[1], param)
            mean = {}
            for impl in impls:
                runs = [coord_check(impl, ref, cfg, seed, data) for seed in args.seeds]
                seed_ratios += [
                    max(r[k][t] for r in runs) / min(r[k][t] for r in runs)
                    for k in runs[0]
                    if not k.startswith("d")
                    for t in range(1, COORD_STEPS + 1)
                ]
                mean[impl] = {
                    k: [statistics.fmean(r[k][t] for r in runs) for t in range(COORD_STEPS + 1)]
                    for k in runs[0]
                }
            doc["coord"][key(s)] = mean
            for k in mean["ours"]:
                if not k.startswith("d"):
                    ratios += [
                        max(a / b, b / a)
                        for a, b in zip(mean["ours"][k][1:], mean["ref"][k][1:], strict=True)
                    ]
            log(
                f"coord {label[:-1]} {key(s)} step {COORD_STEPS} (ref / ours): "
                + " ".join(
                    f"{k}={mean['ref'][k][-1]:.3g}/{mean['ours'][k][-1]:.3g}" for k in mean["ours"]
                )
            )
        coord_ratio = max(ratios)
        doc["coord_seed_ratio"] = max(seed_ratios)
        print(
            f"coordinate check: ours/ref largest ratio {coord_ratio:.3g}; largest ratio between "
            f"seeds of one implementation {max(seed_ratios):.3g} (same layer, width, step)"
        )

    # -- loss after a fixed number of steps, at --lr, and LR-vs-loss curves ------------------
    points = [] if args.coord_only else [(s, args.lr) for s in shapes]
    points += [(s, 2.0**e) for s in lr_shapes for e in args.lrs if points and 2.0**e != args.lr]
    losses: dict[tuple, dict[str, list[float]]] = {}
    for s, lr in points:
        cfg = our_cfg(s[0], s[1], param)
        losses[(key(s), lr)] = {
            impl: [final_loss(impl, ref, cfg, seed, lr, args.steps, data) for seed in args.seeds]
            for impl in impls
        }
        r, o = losses[(key(s), lr)]["ref"], losses[(key(s), lr)]["ours"]
        log(
            f"loss {label[:-1]} {key(s)} lr {lr:.4g}: ref {statistics.fmean(r):.4f} "
            f"(spread {_spread(r):.4f}) ours {statistics.fmean(o):.4f} (spread {_spread(o):.4f}) "
            f"ours-ref {statistics.fmean(o) - statistics.fmean(r):+.4f}"
        )
    doc["loss"] = {f"{k[0]}|{k[1]}": v for k, v in losses.items()}
    dl = [
        abs(
            statistics.fmean(losses[(key(s), args.lr)]["ours"])
            - statistics.fmean(losses[(key(s), args.lr)]["ref"])
        )
        for s in shapes
        if (key(s), args.lr) in losses
    ] or [math.nan]
    print(f"{label} at lr {args.lr:.4g}, {args.steps} steps, seeds {args.seeds}:")
    print(f"{label[:-1]:>8s} {'ref':>8s} {'sprd':>6s} {'ours':>8s} {'sprd':>6s} {'ours-ref':>9s}")
    for s in shapes:
        if (key(s), args.lr) not in losses:
            continue
        r, o = losses[(key(s), args.lr)]["ref"], losses[(key(s), args.lr)]["ours"]
        print(
            f"{key(s):8d} {statistics.fmean(r):8.4f} {_spread(r):6.3f} {statistics.fmean(o):8.4f}"
            f" {_spread(o):6.3f} {statistics.fmean(o) - statistics.fmean(r):+9.4f}"
        )
    for s in lr_shapes:
        lrs = sorted(lr for (k, lr) in losses if k == key(s))
        for impl in impls:
            print(
                f"LR curve {label[:-1]} {key(s)} {impl:4s}: "
                + " ".join(
                    f"{lr:.3g}:{statistics.fmean(losses[(key(s), lr)][impl]):.3f}" for lr in lrs
                )
            )
    args.out.mkdir(parents=True, exist_ok=True)
    doc["wall_s"] = time.perf_counter() - t0
    (args.out / "mup_reference.json").write_text(json.dumps(doc, indent=1, default=str))
    log(f"wrote {args.out / 'mup_reference.json'}")
    names = ",".join(str(key(s)) for s in shapes)
    print(
        f"mup_reference: {label}={names} max_abs_dloss={max(dl):.4f} coord_ratio={coord_ratio:.3g}"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
