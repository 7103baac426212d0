"""Parameter and FLOP counting for ``scaling.model.GPT``. Pure Python: no torch import.

Which N (DESIGN.md): Kaplan et al. 2020 use the *non-embedding* count (blocks and final norm;
no token or position embedding, no LM head). Hoffmann et al. 2022 (Chinchilla) use the *total*
count. Both are recorded for every run; fits take the convention as an explicit argument.

FLOPs follow Hoffmann et al. 2022, Appendix F: every matrix multiply costs 2 FLOPs per
multiply-accumulate, the backward pass costs twice the forward pass, and attention is counted in
full (no causal halving): per layer and token, QKV projections ``2*3*d_model*(d_head*n_heads)``,
scores ``2*seq_len*(d_head*n_heads)``, softmax ``3*n_heads*seq_len``, score-times-value
``2*seq_len*(d_head*n_heads)``, output projection ``2*(d_head*n_heads)*d_model``; MLP
``2*2*d_model*d_mlp``; LM head ``2*d_model*vocab_size``. App. F also counts the embedding lookup
as a ``2*vocab_size*d_model`` matmul; we record it in the breakdown but leave it out of the
default count because a lookup performs no multiply-adds (``include_embedding=True`` gives App. F
exactly). Norms, biases, residual adds and the loss are ignored, as in App. F.

Kaplan et al. 2020, Table 1, approximates the forward pass as ``2*N + 2*n_layers*seq_len*d_model``
per token (non-embedding N, no LM head); ``kaplan_flops_per_token`` gives that convention, and
``flops_6nd`` the familiar C = 6·N·D (Kaplan Eq. 2.1 context; Hoffmann et al. 2022 Sec. 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations only: keeps this module importable without torch
    from scaling.config import ModelConfig


@dataclass(frozen=True)
class ParamCounts:
    """Trainable-parameter breakdown of ``scaling.model.GPT`` (integers, parameters).

    Attributes:
        embedding: token embedding, ``vocab_size * d_model``.
        position: learned position embedding, ``seq_len * d_model``.
        non_embedding: transformer blocks plus the final LayerNorm (Kaplan's N).
        lm_head: untied output projection ``d_model * vocab_size``; 0 when tied.
        total: everything (Chinchilla's N); equals ``sum(p.numel() for p in model.parameters())``.
    """

    embedding: int
    position: int
    non_embedding: int
    lm_head: int
    total: int


def param_counts(cfg: ModelConfig) -> ParamCounts:
    """Count the parameters of ``GPT(cfg)`` without building it.

    Per block (pre-norm, bias-free linears, LayerNorm with gain and bias): two LayerNorms
    ``4*d_model``, fused QKV ``3*d_model**2``, attention output ``d_model**2``, MLP
    ``2*d_model*d_mlp``. Kaplan et al. 2020, Sec. 2.1 gives the same ``12*n_layers*d_model**2``
    leading term for ``d_mlp = 4*d_model``.

    Args:
        cfg: model shape.

    Returns:
        ParamCounts in parameters.
    """
    d = cfg.d_model
    per_block = 4 * d + 3 * d * d + d * d + 2 * d * cfg.d_mlp
    non_embedding = cfg.n_layers * per_block + 2 * d  # + final LayerNorm
    embedding = cfg.vocab_size * d
    position = cfg.seq_len * d
    lm_head = 0 if cfg.tie_embeddings else d * cfg.vocab_size
    total = embedding + position + non_embedding + lm_head
    return ParamCounts(embedding, position, non_embedding, lm_head, total)


@dataclass(frozen=True)
class FlopBreakdown:
    """Forward-pass FLOPs per token by component (Hoffmann et al. 2022, App. F).

    All fields are FLOPs per token for one forward pass, summed over layers.

    Attributes:
        embedding: the lookup counted as a one-hot matmul, ``2*vocab_size*d_model`` (App. F).
        attention_projections: QKV and output projections, ``n_layers*(6+2)*d_model*d_attn``.
        attention_scores: scores, softmax and score-times-value, ``n_layers*(4*seq_len*d_attn +
            3*n_heads*seq_len)``.
        mlp: ``n_layers*4*d_model*d_mlp``.
        lm_head: ``2*d_model*vocab_size``.
    """

    embedding: int
    attention_projections: int
    attention_scores: int
    mlp: int
    lm_head: int

    @property
    def layers(self) -> int:
        """Forward FLOPs per token in the transformer blocks only (attention + MLP)."""
        return self.attention_projections + self.attention_scores + self.mlp

    def forward(self, include_embedding: bool = False) -> int:
        """Forward FLOPs per token; ``include_embedding=True`` is App. F exactly."""
        return self.layers + self.lm_head + (self.embedding if include_embedding else 0)

    def training(self, include_embedding: bool = False) -> int:
        """Training FLOPs per token: forward plus backward (2x forward), App. F."""
        return 3 * self.forward(include_embedding)


def flop_breakdown(cfg: ModelConfig) -> FlopBreakdown:
    """Per-token forward FLOPs of ``GPT(cfg)`` by component (Hoffmann et al. 2022, App. F)."""
    d, s, h = cfg.d_model, cfg.seq_len, cfg.n_heads
    d_attn = cfg.d_head * h
    return FlopBreakdown(
        embedding=2 * cfg.vocab_size * d,
        attention_projections=cfg.n_layers * (2 * 3 * d * d_attn + 2 * d_attn * d),
        attention_scores=cfg.n_layers * (2 * s * d_attn + 3 * h * s + 2 * s * d_attn),
        mlp=cfg.n_layers * 2 * 2 * d * cfg.d_mlp,
        lm_head=2 * d * cfg.vocab_size,
    )


def flops_per_token(cfg: ModelConfig, include_embedding: bool = False) -> int:
    """Training FLOPs per token (forward + backward) in the Chinchilla App. F convention.

    Args:
        cfg: model shape.
        include_embedding: also count the embedding lookup as a matmul, as App. F does.

    Returns:
        FLOPs per training token (int).
    """
    return flop_breakdown(cfg).training(include_embedding)


def training_flops(cfg: ModelConfig, n_tokens: int, include_embedding: bool = False) -> int:
    """Total training FLOPs C for ``n_tokens`` tokens: ``flops_per_token(cfg) * n_tokens``.

    Raises:
        ValueError: if ``n_tokens`` is negative.
    """
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
    return flops_per_token(cfg, include_embedding) * n_tokens


def kaplan_flops_per_token(cfg: ModelConfig) -> int:
    """Training FLOPs per token in Kaplan et al. 2020, Table 1.

    ``3 * (2*N + 2*n_layers*seq_len*d_model)``: forward ``2N`` plus attention scores, times 3
    for forward + backward.

    N is the non-embedding count; the LM head and embeddings are not counted.
    """
    n = param_counts(cfg).non_embedding
    return 3 * (2 * n + 2 * cfg.n_layers * cfg.seq_len * cfg.d_model)


def flops_6nd(n_params: int | float, n_tokens: int | float) -> float:
    """The C = 6·N·D approximation (Kaplan et al. 2020, Sec. 2.1; Hoffmann et al. 2022, Sec. 3).

    Args:
        n_params: N, in whichever convention the caller states (total or non-embedding).
        n_tokens: D, training tokens.

    Raises:
        ValueError: on negative inputs.
    """
    if n_params < 0 or n_tokens < 0:
        raise ValueError(f"n_params and n_tokens must be >= 0, got {n_params}, {n_tokens}")
    return 6.0 * n_params * n_tokens
