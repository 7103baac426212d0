"""Model families: one small registry from ``ModelConfig.family`` to a torch module.

- ``"gpt2"`` -> ``scaling.models.gpt2.GPT`` (learned positions, LayerNorm, GELU; the default).
- ``"llama"`` -> ``scaling.models.llama.Llama`` (rotary positions, RMSNorm, SwiGLU, no biases,
  optional QK-norm).
- ``"package.module:attribute"`` -> a user's own family, imported on first use by
  ``scaling.families.load_family`` (what the attribute must provide is documented there).

What a family *is* (names, the user pattern, ``load_family``, ``FamilyError``) lives in the
torch-free leaf ``scaling.families``; this package builds and checks modules. ``FamilyError``,
``UserFamily`` and ``load_family`` are re-exported here for existing importers. This module imports
no torch at import time; ``build_model`` imports the family's module when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaling.families import BUILTIN_FAMILIES, FamilyError, UserFamily, load_family

if TYPE_CHECKING:
    from torch import nn

    from scaling.config import ModelConfig

__all__ = [
    "FamilyError",
    "UserFamily",
    "build_model",
    "check_counts",
    "check_family",
    "load_family",
]


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the (untrained, initialised) module of ``cfg.family``.

    Uses the global torch RNG for initialisation (seed it first for a deterministic model).

    Raises:
        FamilyError: a user family that cannot be imported, whose ``build`` raises, or whose
            module is not a ``torch.nn.Module``.
    """
    if cfg.family == "gpt2":
        from scaling.models.gpt2 import GPT

        return GPT(cfg)
    if cfg.family == "llama":
        from scaling.models.llama import Llama

        return Llama(cfg)
    from torch import nn

    family = load_family(cfg.family)
    try:
        model = family.obj.build(cfg)
    except Exception as e:
        raise FamilyError(
            f"model.family={cfg.family!r}: build(model_cfg) raised {type(e).__name__}: {e}"
        ) from e
    if not isinstance(model, nn.Module):
        raise FamilyError(
            f"model.family={cfg.family!r}: build(model_cfg) returned {type(model).__name__}, "
            "not a torch.nn.Module"
        )
    return model


def check_counts(model: nn.Module, cfg: ModelConfig) -> None:
    """Check ``scaling.counting.param_counts(cfg).total`` against the built module.

    Every run calls this before training, so the N recorded in ``summary.json`` (and used by
    every fit) is the N that trained. Parameters shared between modules (a tied head) count once.

    Raises:
        FamilyError: the counts differ; the message gives both numbers and the family.
    """
    from scaling.counting import param_counts

    counted = param_counts(cfg).total
    actual = sum(p.numel() for p in model.parameters())
    if counted != actual:
        where = (
            "fix the family's param_counts or build"
            if cfg.family not in BUILTIN_FAMILIES
            else "this is a bug in scaling.counting; please report it"
        )
        raise FamilyError(
            f"model.family={cfg.family!r}: param_counts(model_cfg).total={counted:,} but the "
            f"built module has {actual:,} parameters; {where}"
        )


def check_family(cfg: ModelConfig) -> None:
    """Import ``cfg.family``, build it on torch's ``meta`` device and check its counts.

    ``train()`` calls this first, before it reads data or writes anything, so a family that
    does not import or miscounts stops the run at once. The meta device allocates no memory,
    so this is cheap at any size; a module that cannot be built there is built on the CPU.

    Raises:
        FamilyError: as ``load_family``, ``build_model`` and ``check_counts``.
    """
    import torch

    from scaling.counting import param_counts

    param_counts(cfg)  # imports a user family; FamilyError names what is wrong
    try:
        with torch.device("meta"):
            model = build_model(cfg)
    except FamilyError:
        model = build_model(cfg)  # e.g. a build that copies data into its weights
    check_counts(model, cfg)
