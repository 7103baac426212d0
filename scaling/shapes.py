"""Shape rules: from a target parameter count to a concrete, legal transformer shape.

A scaling sweep is specified in parameter counts (or depths); a run needs an explicit
``ModelConfig``. A *shape rule* is the one place that decides how width, depth, heads and MLP
width move together, so every sweep (and the analysis that answers "which architecture for C
FLOPs?") uses the same mapping. Pure Python (config + counting, no torch), so ``sweeps/`` and
``analysis/`` both import it downward from ``scaling/``.

Three rules:

- ``AspectRatioRule(aspect_ratio, d_head, mlp_ratio=4)``: nanoGPT / nanochat's single dial.
  ``d_model = aspect_ratio * n_layers`` rounded to a multiple of ``d_head``;
  ``n_heads = d_model // d_head``; ``d_mlp = mlp_ratio * d_model``. Kaplan et al. 2020 (Sec. 3.1,
  Fig. 5) found loss nearly independent of the aspect ratio ``d_model / n_layers`` over a wide
  range at fixed non-embedding N, which is what makes a single dial reasonable.
- ``AspectRatiosRule(aspect_ratios, d_head, mlp_ratio=4)``: the union of ``AspectRatioRule``
  shapes at several aspect ratios, a finer ladder in N where one ratio's shapes are far apart.
- ``ChinchillaGridRule()``: the nearest of the 50 shapes of Hoffmann et al. 2022, Table A9
  (44M to 16.2B parameters), embedded below as a literal table.

All rules take a model ``family`` (``"gpt2"`` by default, ``"llama"`` or a user family; see
``scaling.families``): shapes are built for that family and counted with its own counting, and the
MLP width is the family's ``scaling.families.default_d_mlp`` for the GELU-equivalent
``mlp_ratio`` (``mlp_ratio * d_model`` for gpt2; the parameter-matched ``2/3`` of it, rounded to
a multiple of 32, for SwiGLU). ``to_dict()`` leaves ``family`` out when it is ``"gpt2"``.

Every candidate is counted exactly with ``scaling.counting.param_counts`` (never estimated), in
the convention the caller names: ``"non_embedding"`` (Kaplan's N) or ``"total"`` (Chinchilla's N).
"Nearest" means smallest ``|log(count / target)|`` (a ratio, so 2x too big and 2x too small are
equally far).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from scaling.config import ModelConfig
from scaling.counting import N_CONVENTIONS, NConvention, param_counts
from scaling.families import default_d_mlp


class ShapeRuleError(ValueError):
    """A shape rule was given invalid arguments; the message names the argument and the fix."""


def count_params(model: ModelConfig, n_convention: NConvention) -> int:
    """Exact parameter count of ``model`` in the named convention.

    Args:
        model: the shape.
        n_convention: ``"non_embedding"`` (Kaplan et al. 2020) or ``"total"`` (Hoffmann et al.
            2022).

    Returns:
        Number of parameters (int).

    Raises:
        ShapeRuleError: on an unknown ``n_convention``.
    """
    _check_convention(n_convention)
    counts = param_counts(model)
    return counts.non_embedding if n_convention == "non_embedding" else counts.total


def _check_convention(n_convention: str) -> None:
    if n_convention not in N_CONVENTIONS:
        raise ShapeRuleError(f"n_convention must be one of {N_CONVENTIONS}, got {n_convention!r}")


def _check_target(n_params: float) -> None:
    if not (isinstance(n_params, (int, float)) and math.isfinite(n_params) and n_params > 0):
        raise ShapeRuleError(f"n_params must be a positive finite number, got {n_params!r}")


def _min_layers_dict(min_layers: int) -> dict[str, int]:
    # left out at its default, so rules saved before the field existed read back unchanged
    return {} if min_layers == 1 else {"min_layers": min_layers}


def _check_family(family: str) -> None:
    try:
        ModelConfig(n_layers=1, d_model=64, n_heads=1, family=family)
    except ValueError as e:
        raise ShapeRuleError(f"shape rule family: {e}") from None


def _family_dict(family: str) -> dict[str, str]:
    # gpt2 is left out so rule dicts written before families existed stay the same
    return {} if family == "gpt2" else {"family": family}


@dataclass(frozen=True)
class _Query:
    """The arguments of one ``candidates`` call, as a rule's ``_pool`` receives them."""

    n_params: float
    n_convention: NConvention
    vocab_size: int
    seq_len: int
    k: int
    tie_embeddings: bool


class _NearestShapeRule:
    """What every rule shares: ``candidates`` and ``shape_for`` over the rule's own ``_pool``.

    A rule provides ``_pool(q)`` (``q`` a ``_Query`` of the ``candidates`` arguments): the
    shapes worth scoring for that target, in tie-break order (shallower first). The ``k``
    of them whose count in ``n_convention`` is nearest to ``n_params`` in log distance
    ``|log(count / n_params)|`` are the candidates; equally near shapes keep pool order.
    """

    def _pool(self, q: _Query) -> list[ModelConfig]:
        raise NotImplementedError

    def candidates(
        self,
        n_params: float,
        n_convention: NConvention,
        vocab_size: int,
        seq_len: int,
        k: int = 3,
        *,
        tie_embeddings: bool = False,
    ) -> list[ModelConfig]:
        """The ``k`` shapes of this rule nearest to ``n_params`` (nearest first).

        Args:
            n_params: target parameter count.
            n_convention: convention of ``n_params`` (``"non_embedding"`` or ``"total"``).
            vocab_size: vocabulary size (enters the total count).
            seq_len: context length (enters the total count via position embeddings).
            k: number of shapes to return.
            tie_embeddings: tie the LM head to the token embedding.

        Returns:
            Up to ``k`` ModelConfigs sorted by ``|log(count / n_params)|`` (each counted exactly
            with ``param_counts``); ties go to the shallower shape (the rule's pool order).

        Raises:
            ShapeRuleError: on a non-positive target, unknown kind or ``k < 1``.
        """
        _check_target(n_params)
        _check_convention(n_convention)
        if k < 1:
            raise ShapeRuleError(f"k must be >= 1, got {k}")
        pool = self._pool(_Query(n_params, n_convention, vocab_size, seq_len, k, tie_embeddings))
        scored = [
            (abs(math.log(count_params(m, n_convention) / n_params)), i, m)
            for i, m in enumerate(pool)
        ]
        scored.sort(key=lambda t: (t[0], t[1]))
        return [m for _, _, m in scored[:k]]

    def shape_for(
        self,
        n_params: float,
        n_convention: NConvention,
        vocab_size: int,
        seq_len: int,
        *,
        tie_embeddings: bool = False,
    ) -> ModelConfig:
        """The nearest shape of this rule to ``n_params`` (see ``candidates``)."""
        return self.candidates(
            n_params, n_convention, vocab_size, seq_len, k=1, tie_embeddings=tie_embeddings
        )[0]


@runtime_checkable
class ShapeRule(Protocol):
    """Maps a target parameter count to concrete ``ModelConfig`` shapes."""

    def shape_for(
        self,
        n_params: float,
        n_convention: NConvention,
        vocab_size: int,
        seq_len: int,
        *,
        tie_embeddings: bool = False,
    ) -> ModelConfig:
        """The legal shape whose ``n_convention`` count is nearest (in log) to ``n_params``."""
        ...

    def candidates(
        self,
        n_params: float,
        n_convention: NConvention,
        vocab_size: int,
        seq_len: int,
        k: int = 3,
        *,
        tie_embeddings: bool = False,
    ) -> list[ModelConfig]:
        """The ``k`` nearest legal shapes, nearest first, each counted exactly."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; ``shape_rule_from_dict`` inverts it."""
        ...


# -------------------------------------------------------------------------------------------
# AspectRatioRule
# -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AspectRatioRule(_NearestShapeRule):
    """``d_model = aspect_ratio * n_layers`` rounded to a multiple of ``d_head`` (nanoGPT/nanochat).

    Attributes:
        aspect_ratio: target ``d_model / n_layers`` (nanochat uses 64; tiny CPU models ~32).
        d_head: per-head width; ``d_model`` is always a positive multiple of it and
            ``n_heads = d_model // d_head``.
        mlp_ratio: ``d_mlp = mlp_ratio * d_model`` (4 in GPT-2 and Kaplan et al. 2020); for a
            gated family the parameter-matched SwiGLU width (``default_d_mlp``).
        max_layers: deepest shape considered by ``shape_for``/``candidates``.
        family: ``ModelConfig.family`` of the shapes.
        min_layers: shallowest shape considered by ``shape_for``/``candidates`` (1: every
            depth; 2 keeps a rule inside a sweep whose fitted shapes all have >= 2 layers,
            Kaplan et al. 2020, Fig. 6).

    Raises:
        ShapeRuleError: on non-positive fields or ``min_layers > max_layers``.
    """

    aspect_ratio: float
    d_head: int
    mlp_ratio: int = 4
    max_layers: int = 256
    family: str = "gpt2"
    min_layers: int = 1

    def __post_init__(self) -> None:
        _check_family(self.family)
        if not (self.aspect_ratio > 0 and math.isfinite(self.aspect_ratio)):
            raise ShapeRuleError(
                f"AspectRatioRule.aspect_ratio must be > 0, got {self.aspect_ratio!r}"
            )
        for name in ("d_head", "mlp_ratio", "max_layers", "min_layers"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise ShapeRuleError(
                    f"AspectRatioRule.{name} must be a positive integer, got {value!r}"
                )
        if self.min_layers > self.max_layers:
            raise ShapeRuleError(
                f"AspectRatioRule.min_layers ({self.min_layers}) must be <= max_layers "
                f"({self.max_layers}); lower min_layers or raise max_layers"
            )

    def shape_for_depth(
        self, n_layers: int, vocab_size: int, seq_len: int, *, tie_embeddings: bool = False
    ) -> ModelConfig:
        """The rule's shape with exactly ``n_layers`` blocks.

        ``d_model = max(d_head, round(aspect_ratio * n_layers / d_head) * d_head)``.

        Raises:
            ShapeRuleError: if ``n_layers`` is not a positive integer.
        """
        if not (isinstance(n_layers, int) and not isinstance(n_layers, bool) and n_layers > 0):
            raise ShapeRuleError(f"n_layers must be a positive integer, got {n_layers!r}")
        units = max(1, round(self.aspect_ratio * n_layers / self.d_head))
        d_model = units * self.d_head
        return ModelConfig(
            n_layers=n_layers,
            d_model=d_model,
            n_heads=units,
            d_mlp=default_d_mlp(self.family, d_model, self.mlp_ratio),
            vocab_size=vocab_size,
            seq_len=seq_len,
            tie_embeddings=tie_embeddings,
            family=self.family,
        )

    def _pool(self, q: _Query) -> list[ModelConfig]:
        """Shapes of depth ``min_layers``, ... until well past the target (<= ``max_layers``)."""
        pool: list[ModelConfig] = []
        for n_layers in range(self.min_layers, self.max_layers + 1):
            model = self.shape_for_depth(
                n_layers, q.vocab_size, q.seq_len, tie_embeddings=q.tie_embeddings
            )
            pool.append(model)
            # counts grow monotonically with depth: stop well past the target
            if count_params(model, q.n_convention) > 8 * q.n_params and len(pool) >= q.k:
                break
        return pool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; ``shape_rule_from_dict`` inverts it."""
        return {
            "kind": "aspect_ratio",
            "aspect_ratio": self.aspect_ratio,
            "d_head": self.d_head,
            "mlp_ratio": self.mlp_ratio,
            "max_layers": self.max_layers,
            **_family_dict(self.family),
            **_min_layers_dict(self.min_layers),
        }


# -------------------------------------------------------------------------------------------
# AspectRatiosRule
# -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AspectRatiosRule(_NearestShapeRule):
    """``AspectRatioRule`` at several aspect ratios at once: a finer ladder of shapes in N.

    One aspect ratio gives one shape per depth, and at small depths neighbouring shapes are far
    apart in N (``N ~ 12 * n_layers**3 * aspect_ratio**2``: 8x from 1 to 2 layers, 3.4x from 2 to
    3). The union over ``aspect_ratios`` (each ``AspectRatioRule(a, d_head, mlp_ratio,
    max_layers, family)``; a shape built by two ratios counts once) fills those gaps with shapes
    of nearby aspect ratios, within the range where Kaplan et al. 2020 (Sec. 3.1, Fig. 5) found
    loss nearly independent of shape at fixed non-embedding N.

    Attributes:
        aspect_ratios: target ``d_model / n_layers`` values, at least one.
        d_head: per-head width (as in ``AspectRatioRule``).
        mlp_ratio: ``d_mlp = mlp_ratio * d_model`` (the family's GELU-equivalent width).
        max_layers: deepest shape considered.
        family: ``ModelConfig.family`` of the shapes.
        min_layers: shallowest shape considered (as in ``AspectRatioRule``).

    Raises:
        ShapeRuleError: on an empty ``aspect_ratios`` or any field ``AspectRatioRule`` refuses.
    """

    aspect_ratios: tuple[float, ...]
    d_head: int
    mlp_ratio: int = 4
    max_layers: int = 256
    family: str = "gpt2"
    min_layers: int = 1

    def __post_init__(self) -> None:
        ratios = tuple(self.aspect_ratios) if isinstance(self.aspect_ratios, (list, tuple)) else ()
        if not ratios:
            raise ShapeRuleError(
                f"AspectRatiosRule.aspect_ratios must be a non-empty tuple, got "
                f"{self.aspect_ratios!r}"
            )
        object.__setattr__(self, "aspect_ratios", ratios)
        self._rules()  # AspectRatioRule validates every other field

    def _rules(self) -> list[AspectRatioRule]:
        return [
            AspectRatioRule(
                a, self.d_head, self.mlp_ratio, self.max_layers, self.family, self.min_layers
            )
            for a in self.aspect_ratios
        ]

    def _pool(self, q: _Query) -> list[ModelConfig]:
        """Each ratio's ``k`` candidates, a shape built by two ratios once; shallower first.

        Sorted by ``(n_layers, d_model)``, so ties go to the shallower, then the narrower shape.
        """
        seen: dict[tuple[int, int], ModelConfig] = {}
        for rule in self._rules():
            for model in rule.candidates(
                q.n_params,
                q.n_convention,
                q.vocab_size,
                q.seq_len,
                q.k,
                tie_embeddings=q.tie_embeddings,
            ):
                seen.setdefault((model.n_layers, model.d_model), model)
        return [m for _, m in sorted(seen.items())]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; ``shape_rule_from_dict`` inverts it."""
        return {
            "kind": "aspect_ratios",
            "aspect_ratios": list(self.aspect_ratios),
            "d_head": self.d_head,
            "mlp_ratio": self.mlp_ratio,
            "max_layers": self.max_layers,
            **_family_dict(self.family),
            **_min_layers_dict(self.min_layers),
        }


# -------------------------------------------------------------------------------------------
# ChinchillaGridRule
# -------------------------------------------------------------------------------------------
# Hoffmann et al. 2022, Table A9: (params, d_model, ffw_size, kv_size, n_heads, n_layers).
# `params` is the paper's own count (their tokenizer, relative positions); we recount exactly for
# our model with `param_counts`, so only the shapes are used.
CHINCHILLA_A9: tuple[tuple[int, int, int, int, int, int], ...] = (
    (44_000_000, 512, 2048, 64, 8, 8),
    (57_000_000, 576, 2304, 64, 9, 9),
    (74_000_000, 640, 2560, 64, 10, 10),
    (90_000_000, 640, 2560, 64, 10, 13),
    (106_000_000, 640, 2560, 64, 10, 16),
    (117_000_000, 768, 3072, 64, 12, 12),
    (140_000_000, 768, 3072, 64, 12, 15),
    (163_000_000, 768, 3072, 64, 12, 18),
    (175_000_000, 896, 3584, 64, 14, 14),
    (196_000_000, 896, 3584, 64, 14, 16),
    (217_000_000, 896, 3584, 64, 14, 18),
    (251_000_000, 1024, 4096, 64, 16, 16),
    (278_000_000, 1024, 4096, 64, 16, 18),
    (306_000_000, 1024, 4096, 64, 16, 20),
    (425_000_000, 1280, 5120, 128, 10, 18),
    (489_000_000, 1280, 5120, 128, 10, 21),
    (509_000_000, 1408, 5632, 128, 11, 18),
    (552_000_000, 1280, 5120, 128, 10, 24),
    (587_000_000, 1408, 5632, 128, 11, 21),
    (632_000_000, 1536, 6144, 128, 12, 19),
    (664_000_000, 1408, 5632, 128, 11, 24),
    (724_000_000, 1536, 6144, 128, 12, 22),
    (816_000_000, 1536, 6144, 128, 12, 25),
    (893_000_000, 1792, 7168, 128, 14, 20),
    (1_018_000_000, 1792, 7168, 128, 14, 23),
    (1_143_000_000, 1792, 7168, 128, 14, 26),
    (1_266_000_000, 2048, 8192, 128, 16, 22),
    (1_424_000_000, 2176, 8704, 128, 17, 22),
    (1_429_000_000, 2048, 8192, 128, 16, 25),
    (1_593_000_000, 2048, 8192, 128, 16, 28),
    (1_609_000_000, 2176, 8704, 128, 17, 25),
    (1_731_000_000, 2304, 9216, 128, 18, 24),
    (1_794_000_000, 2176, 8704, 128, 17, 28),
    (2_007_000_000, 2304, 9216, 128, 18, 28),
    (2_283_000_000, 2304, 9216, 128, 18, 32),
    (2_298_000_000, 2560, 10240, 128, 20, 26),
    (2_639_000_000, 2560, 10240, 128, 20, 30),
    (2_980_000_000, 2560, 10240, 128, 20, 34),
    (3_530_000_000, 2688, 10752, 128, 22, 36),
    (3_802_000_000, 2816, 11264, 128, 22, 36),
    (4_084_000_000, 2944, 11776, 128, 22, 36),
    (4_516_000_000, 3072, 12288, 128, 24, 36),
    (6_796_000_000, 3584, 14336, 128, 28, 40),
    (9_293_000_000, 4096, 16384, 128, 32, 42),
    (11_452_000_000, 4352, 17408, 128, 32, 47),
    (12_295_000_000, 4608, 18432, 128, 36, 44),
    (12_569_000_000, 4608, 18432, 128, 32, 47),
    (13_735_000_000, 4864, 19456, 128, 32, 47),
    (14_940_000_000, 4992, 19968, 128, 32, 49),
    (16_183_000_000, 5120, 20480, 128, 40, 47),
)


def _a9_heads(d_model: int, kv_size: int, n_heads: int) -> int:
    # Our attention has d_head * n_heads == d_model. Where the paper's n_heads does not divide
    # d_model (only 2944 with 22 heads), use d_model // kv_size heads (23 heads of 128).
    if d_model % n_heads == 0:
        return n_heads
    return d_model // kv_size


@dataclass(frozen=True)
class ChinchillaGridRule(_NearestShapeRule):
    """Nearest shape among the 50 of Hoffmann et al. 2022, Table A9 (44M to 16.2B parameters).

    ``d_mlp`` is the table's ``ffw_size``. Our attention width always equals ``d_model``; the
    table's heads are kept where they divide ``d_model`` (49 of 50 rows), and the 2944-wide row
    uses 23 heads of 128 instead of 22. Meant for GPU-scale sweeps: targets far below 44M snap to
    the smallest row (the sweep planner flags targets the grid cannot reach). For a gated family
    (``llama``) ``d_mlp`` is the parameter-matched SwiGLU width of ``ffw_size``
    (``default_d_mlp(family, d_model, ffw_size / d_model)``).

    Attributes:
        family: ``ModelConfig.family`` of the shapes.
    """

    family: str = "gpt2"

    def __post_init__(self) -> None:
        _check_family(self.family)

    def shapes(
        self, vocab_size: int, seq_len: int, *, tie_embeddings: bool = False
    ) -> list[ModelConfig]:
        """All Table A9 shapes as ModelConfigs, in table order."""
        return [
            ModelConfig(
                n_layers=n_layers,
                d_model=d_model,
                n_heads=_a9_heads(d_model, kv_size, n_heads),
                d_mlp=default_d_mlp(self.family, d_model, ffw / d_model),
                vocab_size=vocab_size,
                seq_len=seq_len,
                tie_embeddings=tie_embeddings,
                family=self.family,
            )
            for _, d_model, ffw, kv_size, n_heads, n_layers in CHINCHILLA_A9
        ]

    def _pool(self, q: _Query) -> list[ModelConfig]:
        """All Table A9 shapes, in table order (exact counts decide, not the paper's)."""
        return self.shapes(q.vocab_size, q.seq_len, tie_embeddings=q.tie_embeddings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; ``shape_rule_from_dict`` inverts it."""
        return {"kind": "chinchilla_grid", **_family_dict(self.family)}


def shape_rule_from_dict(d: dict[str, Any]) -> ShapeRule:
    """Rebuild a rule from its ``to_dict()``.

    Raises:
        ShapeRuleError: on a missing or unknown ``kind`` or unknown keys.
    """
    if not isinstance(d, dict) or "kind" not in d:
        raise ShapeRuleError(f"shape rule dict needs a 'kind' key, got {d!r}")
    d = dict(d)
    kind = d.pop("kind")
    try:
        if kind == "aspect_ratio":
            return AspectRatioRule(**d)
        if kind == "aspect_ratios":
            return AspectRatiosRule(**{**d, "aspect_ratios": tuple(d.get("aspect_ratios", ()))})
        if kind == "chinchilla_grid":
            return ChinchillaGridRule(**d)
    except TypeError as e:
        raise ShapeRuleError(f"bad keys for shape rule {kind!r}: {e}") from None
    raise ShapeRuleError(
        f"unknown shape rule kind {kind!r}; expected 'aspect_ratio', 'aspect_ratios' or "
        "'chinchilla_grid'"
    )
