"""Model families: one small registry from ``ModelConfig.family`` to a torch module.

- ``"gpt2"`` -> ``scaling.model.GPT`` (learned positions, LayerNorm, GELU; the default).
- ``"llama"`` -> ``scaling.models.llama.Llama`` (rotary positions, RMSNorm, SwiGLU, no biases,
  optional QK-norm).
- ``"package.module:attribute"`` -> a user's own family, imported on first use. The attribute is
  any object (a module, a class, an instance) providing:

  - ``build(model_cfg) -> torch.nn.Module`` whose ``forward(idx, targets)`` takes ``int64
    [B, T]`` input and target ids and returns ``(logits, loss)`` (``loss`` the mean
    cross-entropy in nats per token; ``logits`` may be ``None`` when ``targets`` are given);
  - ``param_counts(model_cfg)`` -> ``scaling.counting.ParamCounts`` or a mapping with its five
    keys ``embedding, position, non_embedding, lm_head, total`` (Kaplan's N is
    ``non_embedding``), equal to ``sum(p.numel())`` of the built module;
  - ``flops_per_token(model_cfg)`` -> training FLOPs per token (forward + backward, App. F
    convention of ``scaling.counting``, no embedding lookup).

  The module must be importable where the run executes (installed, or on ``PYTHONPATH``: a
  local or Slurm job imports it again in a fresh process).

This module imports no torch at import time (``scaling.counting`` and ``analysis`` use it to
count user families); ``build_model`` imports the family's module when called.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from scaling.config import BUILTIN_FAMILIES

if TYPE_CHECKING:
    from torch import nn

    from scaling.config import ModelConfig
    from scaling.counting import ParamCounts

_COUNT_KEYS = ("embedding", "position", "non_embedding", "lm_head", "total")


class FamilyError(ValueError):
    """A model family cannot be used: unknown, not importable, incomplete, or miscounted."""


@dataclass(frozen=True)
class UserFamily:
    """A user's family object, checked to provide the three functions.

    Attributes:
        name: ``ModelConfig.family`` (``"package.module:attribute"``).
        obj: the imported attribute.
    """

    name: str
    obj: Any

    def counts(self, cfg: ModelConfig) -> ParamCounts:
        """The family's ``param_counts(cfg)`` as a ``ParamCounts``.

        Raises:
            FamilyError: it raised, or returned something without the five integer keys, or a
                ``total`` that is not the sum of the others.
        """
        from scaling.counting import ParamCounts

        try:
            raw = self.obj.param_counts(cfg)
        except Exception as e:
            raise FamilyError(
                f"model.family={self.name!r}: param_counts(model_cfg) raised "
                f"{type(e).__name__}: {e}; fix the family's param_counts"
            ) from e
        values = {k: getattr(raw, k, None) for k in _COUNT_KEYS}
        if isinstance(raw, dict):
            values = {k: raw.get(k) for k in _COUNT_KEYS}
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values.values()
        ):
            raise FamilyError(
                f"model.family={self.name!r}: param_counts(model_cfg) must return "
                f"non-negative integers {_COUNT_KEYS}, got {raw!r}; return a "
                "scaling.counting.ParamCounts"
            )
        parts = sum(values[k] for k in _COUNT_KEYS[:-1])
        if parts != values["total"]:
            raise FamilyError(
                f"model.family={self.name!r}: param_counts total={values['total']:,} is not "
                f"embedding + position + non_embedding + lm_head = {parts:,}; fix the count"
            )
        return ParamCounts(**values)

    def flops(self, cfg: ModelConfig) -> int:
        """The family's ``flops_per_token(cfg)`` (training FLOPs per token), checked.

        Raises:
            FamilyError: it raised, or did not return a positive number.
        """
        try:
            value = self.obj.flops_per_token(cfg)
        except Exception as e:
            raise FamilyError(
                f"model.family={self.name!r}: flops_per_token(model_cfg) raised "
                f"{type(e).__name__}: {e}; fix the family's flops_per_token"
            ) from e
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise FamilyError(
                f"model.family={self.name!r}: flops_per_token(model_cfg) must return a positive "
                f"number of FLOPs, got {value!r}"
            )
        return int(value)


@cache
def load_family(name: str) -> UserFamily:
    """Import a user family ``"package.module:attribute"`` (cached per process).

    Raises:
        FamilyError: the name is not of that form, the module does not import (the message
            says why and how to make it importable), the attribute is missing, or it lacks one
            of ``build``, ``param_counts``, ``flops_per_token``.
    """
    module_name, _, attr_path = name.partition(":")
    if not module_name or not attr_path:
        raise FamilyError(
            f"model.family={name!r} is neither {BUILTIN_FAMILIES} nor 'package.module:attribute'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or any error raised while the module runs
        raise FamilyError(
            f"model.family={name!r}: cannot import module {module_name!r} "
            f"({type(e).__name__}: {e}); install it or add its folder to PYTHONPATH "
            "where the run executes"
        ) from e
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise FamilyError(
                f"model.family={name!r}: module {module_name!r} has no attribute {attr_path!r}; "
                "check the name after ':'"
            )
        obj = getattr(obj, part)
    missing = [
        f
        for f in ("build", "param_counts", "flops_per_token")
        if not callable(getattr(obj, f, None))
    ]
    if missing:
        raise FamilyError(
            f"model.family={name!r} lacks {', '.join(missing)}; a family provides "
            "build(model_cfg), param_counts(model_cfg) and flops_per_token(model_cfg)"
        )
    return UserFamily(name, obj)


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the (untrained, initialised) module of ``cfg.family``.

    Uses the global torch RNG for initialisation (seed it first for a deterministic model).

    Raises:
        FamilyError: a user family that cannot be imported, whose ``build`` raises, or whose
            module is not a ``torch.nn.Module``.
    """
    if cfg.family == "gpt2":
        from scaling.model import GPT

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
