"""Learning-rate rules: the peak LR of each model size in a sweep.

Why a rule at all: Porian et al. 2024 ("Resolving Discrepancies in Compute-Optimal Scaling of
Language Models") show that one fixed learning rate across sizes biases a scaling law (small
models want a larger LR than big ones); tuned per-size hyperparameters move the fitted exponent
from Kaplan's towards Chinchilla's. The measured CPU sweep on this project saw the same: best LR
~1.5e-2 at d_model 32, 7e-3 at 48, 5e-3 at 64, 3e-3 at 96 (``docs/cpu-isoflop-notes.md``), i.e.
roughly ``lr ∝ 1 / d_model``.

Rules (all frozen dataclasses with ``lr_for(model) -> float`` and ``to_dict()``):

- ``WidthScaledLR(base_lr, base_d_model, exponent=1.0)``: the default;
  ``lr = base_lr * (base_d_model / d_model) ** exponent``. ``exponent=1`` is the muP scaling of
  Adam's LR for hidden (matrix) layers (Yang et al. 2022, "Tensor Programs V", Table 3).
- ``FixedLR(lr)``: one LR for every size.
- ``MupLR(base_lr)``: one LR for every shape of a muP or CompleteP model
  (``ModelConfig.parametrization``): the parametrization scales each parameter group's LR with
  the width (and depth) itself (``scaling.parametrization``), so the sweep gives every run the LR
  tuned at the base shape. Refuses an SP model, where one LR for all widths would be wrong.
- ``LRTable(entries)``: a per-``d_model`` table (e.g. from a previous LR sweep); between entries
  it interpolates linearly in log(lr) vs log(d_model); outside the table's range it refuses.

A sweep may also list LR multipliers (e.g. ``(0.5, 1, 2)``): each multiplier of the rule's LR is
its own run, sharing the ``point_key`` of its (shape, budget) point, so analysis keeps the best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from scaling.config import ModelConfig


class LRRuleError(ValueError):
    """An LR rule is invalid or cannot give an LR for a shape; the message says why."""


@runtime_checkable
class LRRule(Protocol):
    """Gives the peak learning rate of a model shape."""

    def lr_for(self, model: ModelConfig) -> float:
        """Peak learning rate for ``model`` (raises ``LRRuleError`` if the rule cannot say)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; ``lr_rule_from_dict`` inverts it."""
        ...


def _positive(name: str, value: Any) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise LRRuleError(f"{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class FixedLR:
    """The same peak LR for every shape.

    Attributes:
        lr: peak learning rate.
    """

    lr: float

    def __post_init__(self) -> None:
        _positive("FixedLR.lr", self.lr)

    def lr_for(self, model: ModelConfig) -> float:
        """Return ``lr`` whatever the shape."""
        return float(self.lr)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; ``lr_rule_from_dict`` inverts it."""
        return {"kind": "fixed", "lr": self.lr}


@dataclass(frozen=True)
class MupLR:
    """One peak LR for every shape, for muP / CompleteP models (Yang et al. 2022; Dey et al. 2025).

    The LR transfers because the parametrization scales each parameter group's LR with
    ``d_model / base_d_model`` (and depth) inside the optimizer; ``config.json`` records the
    effective LR of every group.

    Attributes:
        base_lr: the peak LR tuned at the base shape (``ModelConfig.base_d_model``).
    """

    base_lr: float

    def __post_init__(self) -> None:
        _positive("MupLR.base_lr", self.base_lr)

    def lr_for(self, model: ModelConfig) -> float:
        """Return ``base_lr``.

        Raises:
            LRRuleError: ``model.parametrization`` is ``"sp"`` (its LR does not transfer).
        """
        if model.parametrization == "sp":
            raise LRRuleError(
                "MupLR needs ModelConfig.parametrization 'mup' or 'completep' (with "
                "base_d_model) in the sweep's base config; under 'sp' use WidthScaledLR"
            )
        return float(self.base_lr)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; ``lr_rule_from_dict`` inverts it."""
        return {"kind": "mup", "base_lr": self.base_lr}


@dataclass(frozen=True)
class WidthScaledLR:
    """``lr = base_lr * (base_d_model / d_model) ** exponent`` (muP-style, Yang et al. 2022).

    Attributes:
        base_lr: the LR tuned at width ``base_d_model``.
        base_d_model: the width ``base_lr`` was tuned at.
        exponent: 1.0 is muP's 1/width for Adam on hidden matrices; 0 gives a fixed LR.
    """

    base_lr: float
    base_d_model: int
    exponent: float = 1.0

    def __post_init__(self) -> None:
        _positive("WidthScaledLR.base_lr", self.base_lr)
        _positive("WidthScaledLR.base_d_model", self.base_d_model)
        if not (isinstance(self.exponent, (int, float)) and math.isfinite(self.exponent)):
            raise LRRuleError(f"WidthScaledLR.exponent must be finite, got {self.exponent!r}")

    def lr_for(self, model: ModelConfig) -> float:
        """Peak LR for ``model.d_model``.

        Raises:
            LRRuleError: ``model`` is muP/CompleteP, whose optimizer groups already scale the
                LR with width (the two would compound); use ``MupLR`` there.
        """
        if model.parametrization != "sp" and self.exponent != 0:
            raise LRRuleError(
                f"WidthScaledLR would scale the LR with width on top of "
                f"parametrization={model.parametrization!r}, which already does; use MupLR"
            )
        return float(self.base_lr * (self.base_d_model / model.d_model) ** self.exponent)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; ``lr_rule_from_dict`` inverts it."""
        return {
            "kind": "width_scaled",
            "base_lr": self.base_lr,
            "base_d_model": self.base_d_model,
            "exponent": self.exponent,
        }


@dataclass(frozen=True)
class LRTable:
    """Per-``d_model`` learning rates, log-log interpolated between entries.

    Attributes:
        entries: ``((d_model, lr), ...)``; any order, distinct widths.

    Raises:
        LRRuleError: on an empty table, repeated widths or non-positive values.
    """

    entries: tuple[tuple[int, float], ...]

    def __post_init__(self) -> None:
        entries = tuple(sorted((int(d), float(lr)) for d, lr in self.entries))
        if not entries:
            raise LRRuleError("LRTable.entries is empty; give at least one (d_model, lr) pair")
        for d, lr in entries:
            _positive(f"LRTable d_model {d}", d)
            _positive(f"LRTable lr at d_model {d}", lr)
        widths = [d for d, _ in entries]
        if len(set(widths)) != len(widths):
            raise LRRuleError(f"LRTable has repeated d_model entries: {widths}")
        object.__setattr__(self, "entries", entries)

    def lr_for(self, model: ModelConfig) -> float:
        """LR at ``model.d_model``: exact entry, or log-log interpolation between neighbours.

        Raises:
            LRRuleError: ``d_model`` lies outside the table's range (extrapolation refused).
        """
        d = model.d_model
        lo_d, hi_d = self.entries[0][0], self.entries[-1][0]
        if not lo_d <= d <= hi_d:
            raise LRRuleError(
                f"LRTable covers d_model {lo_d}..{hi_d}, not {d}; add an entry for d_model={d}"
            )
        for (d0, lr0), (d1, lr1) in zip(self.entries, self.entries[1:], strict=False):
            if d0 <= d <= d1:
                t = (math.log(d) - math.log(d0)) / (math.log(d1) - math.log(d0))
                return float(math.exp((1 - t) * math.log(lr0) + t * math.log(lr1)))
        return self.entries[0][1]  # single-entry table, d == that width

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; ``lr_rule_from_dict`` inverts it."""
        return {"kind": "table", "entries": [list(e) for e in self.entries]}


def lr_rule_from_dict(d: dict[str, Any]) -> LRRule:
    """Rebuild an LR rule from its ``to_dict()``.

    Raises:
        LRRuleError: on a missing or unknown ``kind`` or bad keys.
    """
    if not isinstance(d, dict) or "kind" not in d:
        raise LRRuleError(f"LR rule dict needs a 'kind' key, got {d!r}")
    d = dict(d)
    kind = d.pop("kind")
    classes = {"fixed": FixedLR, "mup": MupLR, "width_scaled": WidthScaledLR, "table": LRTable}
    if kind not in classes:
        raise LRRuleError(f"unknown LR rule kind {kind!r}; expected one of {sorted(classes)}")
    if kind == "table":
        d["entries"] = tuple(tuple(e) for e in d.get("entries", ()))
    try:
        return classes[kind](**d)
    except TypeError as e:
        raise LRRuleError(f"bad keys for LR rule {kind!r}: {e}") from None
