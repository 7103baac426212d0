"""Optimizers and learning-rate schedules.

Schedules are pure functions of ``(step, n_steps, cfg)`` with ``step`` the 0-based optimizer
step about to be taken, so a resumed run recomputes the same LR from its step alone. All three
start with a linear warmup over ``W = floor(warmup_fraction * n_steps)`` steps, reaching the peak
``lr`` at step ``W - 1``: ``lr * (step + 1) / W``.

- ``cosine`` (default): after warmup, ``lr_min + (lr - lr_min) * (1 + cos(pi * p)) / 2`` with
  ``p = (step - W) / (n_steps - 1 - W)`` running from 0 at step ``W`` to 1 at the last step, and
  ``lr_min = min_lr_ratio * lr``. The cycle is the run's own length: Hoffmann et al. 2022
  (Chinchilla, Sec. 3 and App. B) found that a cosine cycle longer than the run overestimates
  the loss reached, so no run is read off the middle of a longer cosine.
- ``wsd`` (warmup-stable-decay; Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training
  Beyond Fixed Training Durations", Sec. 3): peak ``lr`` until the last
  ``K = max(1, floor(decay_fraction * n_steps))`` steps, then with ``p = (step - (n_steps - K) +
  1) / K`` (from ``1/K`` to 1 at the last step) ``linear``: ``lr - (lr - lr_min) * p`` or
  ``1-sqrt``: ``lr_min + (lr - lr_min) * (1 - sqrt(p))``.
- ``constant``: peak ``lr`` after warmup.

Optimizer: AdamW (Loshchilov & Hutter 2019) with decoupled weight decay on 2-D weight matrices
only, or SGD with momentum; the caller passes the parameter groups (``GPT.param_groups``, built
by ``scaling.parametrization``). A group may carry an ``lr_multiplier`` (muP's per-role LR
scaling): ``set_lr`` gives it the schedule's LR times that multiplier.
"""

from __future__ import annotations

import math
from typing import Any

from scaling.config import OptimConfig


def warmup_steps(n_steps: int, cfg: OptimConfig) -> int:
    """Warmup length in optimizer steps: ``floor(warmup_fraction * n_steps)``."""
    return int(cfg.warmup_fraction * n_steps)


def lr_at(step: int, n_steps: int, cfg: OptimConfig) -> float:
    """Learning rate for 0-based optimizer step ``step`` of an ``n_steps``-step run.

    Formulas in the module docstring (cosine: Hoffmann et al. 2022; wsd: Hägele et al. 2024).

    Args:
        step: 0-based step, ``0 <= step < n_steps``.
        n_steps: the run's total optimizer steps (the schedule length).
        cfg: optimizer config (``lr``, ``schedule``, fractions, ``min_lr_ratio``).

    Returns:
        The learning rate (same units as ``cfg.lr``).

    Raises:
        ValueError: ``step`` outside ``[0, n_steps)`` or ``n_steps < 1``.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if not 0 <= step < n_steps:
        raise ValueError(f"step must be in [0, n_steps={n_steps}), got {step}")
    peak, lr_min = cfg.lr, cfg.min_lr_ratio * cfg.lr
    w = warmup_steps(n_steps, cfg)
    if step < w:
        return peak * (step + 1) / w
    if cfg.schedule == "constant":
        return peak
    if cfg.schedule == "cosine":
        span = n_steps - 1 - w
        p = (step - w) / span if span > 0 else 1.0
        return lr_min + (peak - lr_min) * 0.5 * (1.0 + math.cos(math.pi * p))
    # wsd
    k = max(1, int(cfg.decay_fraction * n_steps))
    decay_start = n_steps - k
    if step < decay_start:
        return peak
    p = (step - decay_start + 1) / k
    if cfg.decay_shape == "linear":
        return peak - (peak - lr_min) * p
    return lr_min + (peak - lr_min) * (1.0 - math.sqrt(p))


def build_optimizer(
    param_groups: list[dict[str, Any]], cfg: OptimConfig, *, fused: bool = False
) -> Any:
    """Build the optimizer over ready-made parameter groups.

    Args:
        param_groups: groups with ``"params"`` and ``"weight_decay"``, optionally ``"eps"`` and
            ``"lr_multiplier"`` (e.g. ``GPT.param_groups(cfg.weight_decay, cfg.eps)``: under
            SP decay on 2-D Linear weights only, none on embeddings, norms or biases).
        cfg: ``optimizer`` ``"adamw"`` (betas, eps; decoupled decay, Loshchilov & Hutter 2019)
            or ``"sgd"`` (momentum; ``weight_decay`` is then L2 added to the gradient).
        fused: use the fused AdamW kernel (CUDA and CPU; ``train()`` uses it on both).

    Returns:
        A ``torch.optim.Optimizer``; its LR is set each step from ``lr_at``.
    """
    import torch

    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(
            param_groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused or None
        )
    else:
        opt = torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum)
    set_lr(opt, cfg.lr)  # each group at its own multiple of the peak LR
    return opt


def set_lr(optimizer: Any, lr: float) -> None:
    """Set every parameter group's LR to ``lr * group.get("lr_multiplier", 1.0)``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_multiplier", 1.0)


def clip_grad_norm(parameters: Any, max_norm: float) -> float:
    """Global L2 norm of the gradients (before clipping); clips to ``max_norm`` when > 0.

    Args:
        parameters: iterable of parameters with ``.grad``.
        max_norm: clip threshold; 0 measures the norm without clipping.

    Returns:
        The pre-clip global gradient norm as a Python float (may be inf/nan).
    """
    import torch

    params = [p for p in parameters if p.grad is not None]
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return float(torch.nn.utils.get_total_norm([p.grad for p in params]))
