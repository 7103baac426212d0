"""What a model family is: built-in names, the user-family pattern, MLP widths, user families.

The one place that knows a family's identity, torch-free and importing nothing from ``scaling``
at run time, so that ``scaling.config`` (validation), ``scaling.counting`` (pure counts) and
``scaling.models`` (the torch modules) all import it and never each other in a circle.

- ``BUILTIN_FAMILIES``: ``"gpt2"`` (``scaling.models.gpt2.GPT``: learned positions, LayerNorm,
  GELU; the default) and ``"llama"`` (``scaling.models.llama.Llama``: rotary positions, RMSNorm,
  SwiGLU, no biases, optional QK-norm).
- ``"package.module:attribute"`` (``USER_FAMILY_RE``): a user's own family, imported on first
  use by ``load_family``. The attribute is any object (a module, a class, an instance) providing:

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
- ``GATED_FAMILIES`` and ``default_d_mlp``: which families use a gated (SwiGLU) MLP and the
  MLP width each family gets by default.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: this module imports nothing from scaling at run time
    from scaling.config import ModelConfig

# model families built into the toolkit; anything else must name a user family by import path
BUILTIN_FAMILIES: tuple[str, ...] = ("gpt2", "llama")
USER_FAMILY_RE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")

# SwiGLU width: the parameter-matched 2/3 of the GELU MLP's ``mlp_ratio * d_model`` (Shazeer
# 2020; Llama's ``int(2 * 4 * dim / 3)``), rounded to the nearest multiple of this many units so
# matmul widths stay SIMD/tensor-core friendly. Nearest (not Llama's round-up to 256) keeps the
# MLP within 16 units of 8/3 d_model, i.e. parameter parity with gpt2 at the small widths
# scaling sweeps use: d_model 64 -> 160, 128 -> 352, 256 -> 672, 768 -> 2048 (exactly 8/3).
SWIGLU_MULTIPLE = 32
GATED_FAMILIES: tuple[str, ...] = ("llama",)

# the five keys of a parameter count (``scaling.counting.ParamCounts``'s fields, in order)
COUNT_KEYS: tuple[str, ...] = ("embedding", "position", "non_embedding", "lm_head", "total")


class FamilyError(ValueError):
    """A model family cannot be used: unknown, not importable, incomplete, or miscounted."""


def default_d_mlp(family: str, d_model: int, mlp_ratio: float = 4) -> int:
    """The family's MLP width for a residual width ``d_model``.

    ``gpt2`` and user families: ``mlp_ratio * d_model`` (rounded to an integer). Gated (SwiGLU)
    families: ``2/3 * mlp_ratio * d_model`` rounded to the nearest multiple of
    ``SWIGLU_MULTIPLE`` = 32 (at least 32); with ``mlp_ratio = 4`` that is about ``8/3 *
    d_model``, which matches GPT-2's MLP in parameters and FLOPs (Shazeer 2020).

    Args:
        family: ``ModelConfig.family``.
        d_model: residual-stream width.
        mlp_ratio: GELU-equivalent expansion ratio.

    Returns:
        ``d_mlp`` in units.
    """
    if family in GATED_FAMILIES:
        units = round(2 * mlp_ratio * d_model / 3 / SWIGLU_MULTIPLE)
        return max(1, units) * SWIGLU_MULTIPLE
    return max(1, round(mlp_ratio * d_model))


def is_user_family(family: str) -> bool:
    """Whether ``family`` names a user's own family (``"pkg.module:attr"``)."""
    return ":" in family


@dataclass(frozen=True)
class UserFamily:
    """A user's family object, checked to provide the three functions.

    Attributes:
        name: ``ModelConfig.family`` (``"package.module:attribute"``).
        obj: the imported attribute.
    """

    name: str
    obj: Any

    def _call(self, function: str, cfg: ModelConfig) -> Any:
        """``self.obj.<function>(cfg)``; anything it raises becomes a ``FamilyError``."""
        try:
            return getattr(self.obj, function)(cfg)
        except Exception as e:
            raise FamilyError(
                f"model.family={self.name!r}: {function}(model_cfg) raised "
                f"{type(e).__name__}: {e}; fix the family's {function}"
            ) from e

    def counts(self, cfg: ModelConfig) -> dict[str, int]:
        """The family's ``param_counts(cfg)``, checked, as a dict of the five ``COUNT_KEYS``.

        ``scaling.counting.param_counts`` turns it into a ``ParamCounts``.

        Raises:
            FamilyError: it raised, or returned something without the five integer keys, or a
                ``total`` that is not the sum of the others.
        """
        raw = self._call("param_counts", cfg)
        values = {k: getattr(raw, k, None) for k in COUNT_KEYS}
        if isinstance(raw, dict):
            values = {k: raw.get(k) for k in COUNT_KEYS}
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values.values()
        ):
            raise FamilyError(
                f"model.family={self.name!r}: param_counts(model_cfg) must return "
                f"non-negative integers {COUNT_KEYS}, got {raw!r}; return a "
                "scaling.counting.ParamCounts"
            )
        parts = sum(values[k] for k in COUNT_KEYS[:-1])
        if parts != values["total"]:
            raise FamilyError(
                f"model.family={self.name!r}: param_counts total={values['total']:,} is not "
                f"embedding + position + non_embedding + lm_head = {parts:,}; fix the count"
            )
        return values  # type: ignore[return-value]  # checked: every value is an int

    def flops(self, cfg: ModelConfig) -> int:
        """The family's ``flops_per_token(cfg)`` (training FLOPs per token), checked.

        Raises:
            FamilyError: it raised, or did not return a positive number.
        """
        value = self._call("flops_per_token", cfg)
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
