"""Parameter and FLOP counting for every model family. Pure Python: no torch import.

Families (``ModelConfig.family``, ``scaling.families``): ``gpt2`` (``scaling.models.gpt2.GPT``),
``llama`` (``scaling.models.llama.Llama``) and a user's own family ``"pkg.module:attr"``, whose
object supplies its own ``param_counts`` and ``flops_per_token`` (imported on first use; see
``scaling.families``). Every run checks these counts against ``sum(p.numel())`` of the built module
before it trains.

Which N (DESIGN.md): Kaplan et al. 2020 use the *non-embedding* count (blocks and final norm;
no token or position embedding, no LM head). Hoffmann et al. 2022 (Chinchilla) use the *total*
count. Both are recorded for every run; fits take the convention as an explicit argument.

FLOPs follow Hoffmann et al. 2022, Appendix F: every matrix multiply costs 2 FLOPs per
multiply-accumulate, the backward pass costs twice the forward pass, and attention is counted in
full (no causal halving): per layer and token, QKV projections ``2*3*d_model*(d_head*n_heads)``,
scores ``2*seq_len*(d_head*n_heads)``, softmax ``3*n_heads*seq_len``, score-times-value
``2*seq_len*(d_head*n_heads)``, output projection ``2*(d_head*n_heads)*d_model``; MLP
``2*n_mlp_matrices*d_model*d_mlp`` (2 matrices for GPT-2's GELU MLP, 3 for SwiGLU's gate, up and
down projections); LM head ``2*d_model*vocab_size``. App. F also counts the embedding lookup
as a ``2*vocab_size*d_model`` matmul; we record it in the breakdown but leave it out of the
default count because a lookup performs no multiply-adds (``include_embedding=True`` gives App. F
exactly). Norms, biases, rotary embeddings, the SwiGLU gating product, residual adds and the loss
are element-wise and ignored, as in App. F.

Hand derivation for ``llama`` (d = d_model, f = d_mlp, h = n_heads, d_h = d_head, L = n_layers,
V = vocab_size, s = seq_len), parameters per block: RMSNorm gains before attention and before
the MLP ``2*d`` (no biases); Q, K, V ``3*d*d``; output ``d*d``; QK-norm gains ``2*d_h`` (one
``d_h``-wide RMSNorm for queries and one for keys, shared by the heads) when ``qk_norm``;
SwiGLU ``3*d*f``. Non-embedding N ``= L*(2*d + 4*d**2 + 3*d*f [+ 2*d_h]) + d`` (final RMSNorm);
no position parameters (rotary positions are computed, not learned); token embedding ``V*d``;
untied head ``V*d``. Example: L=2, d=64, h=4, f=160, V=256, untied, no QK-norm: per block
``128 + 16384 + 30720 = 47232``, N = ``2*47232 + 64 = 94528``, total ``94528 + 2*16384 =
127296``. Forward FLOPs per token: ``L*(8*d**2 + 4*s*d + 3*h*s + 6*d*f) + 2*d*V``; with
``f = 8/3*d`` the MLP's ``6*d*f = 16*d**2`` equals GPT-2's ``4*d*(4*d)``, which is why 8/3 is
the parameter- and FLOP-matched SwiGLU width (Shazeer 2020, "GLU Variants Improve Transformer").

Kaplan et al. 2020, Table 1, approximates the forward pass as ``2*N + 2*n_layers*seq_len*d_model``
per token (non-embedding N, no LM head); ``kaplan_flops_per_token`` gives that convention, and
``flops_6nd`` the familiar C = 6·N·D (Kaplan Eq. 2.1 context; Hoffmann et al. 2022 Sec. 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

# family identity lives in the torch-free leaf scaling.families; these names are re-exported
# here for existing importers (``from scaling.counting import default_d_mlp`` keeps working)
from scaling.families import (
    GATED_FAMILIES,
    SWIGLU_MULTIPLE,
    default_d_mlp,
    is_user_family,
    load_family,
)

if TYPE_CHECKING:  # for annotations only: keeps this module importable without torch
    from scaling.config import ModelConfig

__all__ = [
    "N_CONVENTIONS",
    "NConvention",
    "GATED_FAMILIES",
    "SWIGLU_MULTIPLE",
    "FlopBreakdown",
    "ParamCounts",
    "default_d_mlp",
    "flop_breakdown",
    "flops_6nd",
    "flops_per_token",
    "is_user_family",
    "kaplan_flops_per_token",
    "param_counts",
    "training_flops",
]

# Which N (see the module docstring): the one name for the convention in sweeps and analysis
NConvention = Literal["non_embedding", "total"]
N_CONVENTIONS: tuple[str, ...] = ("non_embedding", "total")



@dataclass(frozen=True)
class ParamCounts:
    """Trainable-parameter breakdown of a model (integers, parameters).

    Attributes:
        embedding: token embedding, ``vocab_size * d_model``.
        position: learned position embedding, ``seq_len * d_model`` (0 for ``llama``).
        non_embedding: transformer blocks plus the final norm (Kaplan's N).
        lm_head: untied output projection ``d_model * vocab_size``; 0 when tied.
        total: everything (Chinchilla's N); equals ``sum(p.numel() for p in model.parameters())``.
    """

    embedding: int
    position: int
    non_embedding: int
    lm_head: int
    total: int


def param_counts(cfg: ModelConfig) -> ParamCounts:
    """Count the parameters of the model ``cfg`` describes, without building it.

    ``gpt2`` per block (pre-norm, bias-free linears, LayerNorm with gain and bias): two
    LayerNorms ``4*d_model``, fused QKV ``3*d_model**2``, attention output ``d_model**2``, MLP
    ``2*d_model*d_mlp``; final LayerNorm ``2*d_model``; learned positions ``seq_len*d_model``.
    Kaplan et al. 2020, Sec. 2.1 gives the same ``12*n_layers*d_model**2`` leading term for
    ``d_mlp = 4*d_model``. ``llama``: the module docstring's hand derivation. A user family:
    its own ``param_counts(cfg)``.

    Args:
        cfg: model shape.

    Returns:
        ParamCounts in parameters.

    Raises:
        FamilyError: (user families) the family cannot be imported or returns a malformed
            count.
    """
    if is_user_family(cfg.family):
        return ParamCounts(**load_family(cfg.family).counts(cfg))  # imports the user module
    d = cfg.d_model
    if cfg.family == "llama":
        qk_norm = 2 * cfg.d_head if cfg.qk_norm else 0
        per_block = 2 * d + 3 * d * d + d * d + qk_norm + 3 * d * cfg.d_mlp
        non_embedding = cfg.n_layers * per_block + d  # + final RMSNorm (gain only)
        position = 0  # rotary positions have no parameters
    else:
        per_block = 4 * d + 3 * d * d + d * d + 2 * d * cfg.d_mlp
        non_embedding = cfg.n_layers * per_block + 2 * d  # + final LayerNorm
        position = cfg.seq_len * d
    embedding = cfg.vocab_size * d
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
    """Per-token forward FLOPs by component (Hoffmann et al. 2022, App. F).

    ``gpt2`` and ``llama`` share attention; their MLPs have 2 and 3 (SwiGLU) matrices.

    Raises:
        ValueError: for a user family (it supplies only its total, ``flops_per_token``).
    """
    if is_user_family(cfg.family):
        raise ValueError(
            f"model.family={cfg.family!r} is a user family: it gives flops_per_token only, "
            "no per-component breakdown"
        )
    d, s, h = cfg.d_model, cfg.seq_len, cfg.n_heads
    d_attn = cfg.d_head * h
    n_mlp_matrices = 3 if cfg.family in GATED_FAMILIES else 2
    return FlopBreakdown(
        embedding=2 * cfg.vocab_size * d,
        attention_projections=cfg.n_layers * (2 * 3 * d * d_attn + 2 * d_attn * d),
        attention_scores=cfg.n_layers * (2 * s * d_attn + 3 * h * s + 2 * s * d_attn),
        mlp=cfg.n_layers * 2 * n_mlp_matrices * d * cfg.d_mlp,
        lm_head=2 * d * cfg.vocab_size,
    )


def flops_per_token(cfg: ModelConfig, include_embedding: bool = False) -> int:
    """Training FLOPs per token (forward + backward) in the Chinchilla App. F convention.

    A user family's own ``flops_per_token(cfg)`` is the default count (training FLOPs, no
    embedding lookup); ``include_embedding`` adds the lookup's ``3 * 2*vocab_size*d_model``.

    Args:
        cfg: model shape.
        include_embedding: also count the embedding lookup as a matmul, as App. F does.

    Returns:
        FLOPs per training token (int).

    Raises:
        FamilyError: (user families) the family cannot be imported or returns a bad value.
    """
    if is_user_family(cfg.family):
        lookup = 3 * 2 * cfg.vocab_size * cfg.d_model if include_embedding else 0
        return load_family(cfg.family).flops(cfg) + lookup
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
