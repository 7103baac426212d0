"""Deterministic names of planned runs and points (``run_name``, ``point_key``, ``shape_tag``).

The run name is the run directory's name (docs/run-directory.md): shape, budget, LR, seed and a
hash of the whole config, so the same config always gets the same directory (idempotent
relaunch) and two configs differing anywhere get different ones.
"""

from __future__ import annotations

import hashlib

from scaling.config import ModelConfig, RunConfig


def sci_notation(x: float, digits: int = 3) -> str:
    """Compact scientific notation for names: ``1e12``, ``3e-3``, ``1.5e-2``, ``2.05e7``."""
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def shape_tag(model: ModelConfig) -> str:
    """``L{n_layers}-d{d_model}-h{n_heads}``."""
    return f"L{model.n_layers}-d{model.d_model}-h{model.n_heads}"


def config_hash(cfg: RunConfig) -> str:
    """First 8 hex digits of SHA-256 of ``cfg.to_json()`` (sorted keys)."""
    return hashlib.sha256(cfg.to_json().encode()).hexdigest()[:8]


def run_name(cfg: RunConfig) -> str:
    """Deterministic run name, e.g. ``L2-d64-h4-C1e12-lr3e-3-s0-1a2b3c4d``.

    The budget tag is ``C<flops_budget>`` when the config has one, else ``D<n_tokens>``; a WSD
    trunk (``keep_checkpoint_steps`` set) is prefixed ``trunk-``. The
    trailing hash covers the whole config, so two configs differing anywhere get different
    names, and the same config always gets the same name.
    """
    amount = (
        f"C{sci_notation(cfg.flops_budget)}"
        if cfg.flops_budget
        else f"D{sci_notation(cfg.n_tokens)}"
    )
    trunk = "trunk-" if cfg.keep_checkpoint_steps else ""  # a WSD trunk (sweeps.branching)
    lr = sci_notation(cfg.optim.lr)
    name = f"{shape_tag(cfg.model)}-{amount}-lr{lr}-s{cfg.seed}-{config_hash(cfg)}"
    return trunk + name


def point_key(model: ModelConfig, n_tokens: int, flops_budget: float | None) -> str:
    """Key shared by LR/seed variants of one point: shape plus budget (or exact token count)."""
    amount = f"C{sci_notation(flops_budget)}" if flops_budget else f"D{n_tokens}"
    return f"{shape_tag(model)}-{amount}"
