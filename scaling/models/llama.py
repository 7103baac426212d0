"""Llama-style decoder-only transformer (``ModelConfig.family = "llama"``).

Architecture (Touvron et al. 2023, Llama; as in OLMo 2, Marin and nanochat), for ``cfg``:

- token embedding ``[vocab_size, d_model]``; no position parameters: *rotary* positions
  (RoPE, Su et al. 2021, "RoFormer", Eq. 34) rotate each query and key pair of channels
  ``(2i, 2i + 1)`` (RoFormer's and Meta's Llama layout) by the angle
  ``position * theta**(-2i/d_head)`` with ``theta = cfg.rope_theta``, as one complex multiply;
- ``n_layers`` pre-norm blocks ``x + a * Attn(RMSNorm(x))`` then ``x + a * MLP(RMSNorm(x))``,
  ``a = residual_multiplier``. RMSNorm (Zhang & Sennrich 2019) has a gain and no bias, eps 1e-6.
  Attention: one fused bias-free QKV Linear ``d_model -> 3*d_model``, optional QK-norm
  (``cfg.qk_norm``: an RMSNorm of width ``d_head`` on queries and one on keys, shared by the
  heads, applied before the rotation, as in OLMo 2), causal SDPA with scale ``attn_scale``, a
  bias-free output Linear. MLP: SwiGLU (Shazeer 2020), ``proj(silu(gate(x)) * up(x))`` with
  ``gate, up: d_model -> d_mlp`` and ``proj: d_mlp -> d_model``. No Linear has a bias.
- final RMSNorm and a bias-free LM head ``d_model -> vocab_size`` (tied to the token embedding
  when ``cfg.tie_embeddings``), logits times ``output_multiplier`` (applied to the readout's
  input by ``ParametrizedLM.forward``, as for every family).

Parametrization hooks, as in ``scaling.models.gpt2.GPT`` (``scaling.parametrization`` owns every
rule; the model only applies numbers): ``attn_scale`` multiplies q.k (SP ``1/sqrt(d_head)``),
``residual_multiplier`` each residual branch's output (SP 1), ``output_multiplier`` the logits
(SP 1); the initialisation is ``parametrization.init_weights`` and the optimizer groups
``parametrization.param_groups``. Under SP the initialisation is GPT-2 / nanoGPT's: every Linear
and the embedding ~ N(0, 0.02**2), the two residual output projections ~ N(0, (0.02 /
sqrt(2 * n_layers))**2), norm gains 1.

Parameter names follow ``scaling.models.gpt2.GPT`` (``tok_emb``, ``blocks.<i>.attn.qkv``,
``blocks.<i>.mlp.gate``/``.up``, ``...proj``, ``lm_head``; norms ``norm_1``, ``norm_2``, ``norm_f``,
``attn.q_norm``, ``attn.k_norm``) so optimizer groups derived from names and ``ndim`` work for
both. Counted exactly by ``scaling.counting.param_counts`` (hand derivation there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scaling.config import ModelConfig
from scaling.models.common import ParametrizedLM

NORM_EPS = 1e-6


def rope_table(seq_len: int, d_head: int, theta: float) -> torch.Tensor:
    """Rotary-position table (Su et al. 2021, Eq. 34): ``cos`` and ``sin`` of every angle.

    Args:
        seq_len: positions ``0 .. seq_len - 1``.
        d_head: per-head width (even).
        theta: frequency base (``ModelConfig.rope_theta``).

    Returns:
        ``float32[seq_len, 1, d_head // 2, 2]``: ``[..., 0]`` the cosine, ``[..., 1]`` the sine
        of ``position * theta**(-2i/d_head)`` (a real tensor, so it moves and broadcasts like
        any buffer; ``apply_rope`` views it as complex).
    """
    inv_freq = theta ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)
    angles = torch.arange(seq_len, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return torch.stack((angles.cos(), angles.sin()), dim=-1).float()[:, None]


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs ``(2i, 2i+1)`` of ``x`` ``[B, T, H, Dh]`` by ``table[:T]``.

    One complex multiply per pair (a rotation), computed in float32 and returned in ``x``'s
    dtype: ~6x faster forward + backward on CPU than the four multiplies and a concatenation of
    the "rotate half" form (measured at d_model 128, docs/LOG.md).
    """
    xc = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    rotated = torch.view_as_real(xc * torch.view_as_complex(table)).flatten(-2)
    return rotated.type_as(x)


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019): ``x / sqrt(mean(x**2) + eps) * weight``, no bias.

    ``F.rms_norm`` (torch's fused kernel): forward + backward ~1.7x faster on CPU than writing
    out ``x * rsqrt(mean(x**2) + eps) * weight`` (torch 2.13; docs/LOG.md). Parameter:
    ``weight [dim]`` (initialised to 1).
    """

    def __init__(self, dim: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise the last dimension of ``x``."""
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


class LlamaAttention(nn.Module):
    """Causal self-attention with rotary positions and optional QK-norm.

    Parameters: ``qkv.weight [3*d_model, d_model]``, ``proj.weight [d_model, d_model]``, and
    with ``qk_norm`` ``q_norm.weight [d_head]``, ``k_norm.weight [d_head]``.
    """

    def __init__(self, cfg: ModelConfig, attn_scale: float) -> None:
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_head
        self.attn_scale = attn_scale
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.proj.is_residual_proj = True  # type: ignore[assignment]  # scaled init
        self.q_norm = RMSNorm(cfg.d_head) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.d_head) if cfg.qk_norm else None

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        """Attend causally: ``[B, T, d_model] -> [B, T, d_model]`` (``rope``: ``rope_table``)."""
        b, t, d = x.shape
        h = self.n_heads
        qkv = self.qkv(x)
        if self.q_norm is not None and self.k_norm is not None:
            q, k, v = (z.view(b, t, h, self.d_head) for z in qkv.split(d, dim=2))
            q, k = apply_rope(self.q_norm(q), rope), apply_rope(self.k_norm(k), rope)
        else:  # one rotation of q and k together: [B, T, 2H, Dh] (a view, no copy)
            qk, v = qkv[..., : 2 * d].view(b, t, 2 * h, self.d_head), qkv[..., 2 * d :]
            q, k = apply_rope(qk, rope).split(h, dim=2)
            v = v.view(b, t, h, self.d_head)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=True,
            scale=self.attn_scale,
        )
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class SwiGLU(nn.Module):
    """SwiGLU MLP (Shazeer 2020): ``proj(silu(gate(x)) * up(x))``.

    Parameters: ``gate.weight [d_mlp, d_model]``, ``up.weight [d_mlp, d_model]``,
    ``proj.weight [d_model, d_mlp]``. Gate and up are two Linears rather than one fused
    ``d_model -> 2*d_mlp`` Linear: the fused one's ``chunk`` costs a ``cat`` in backward, and two
    Linears ran 4-7% faster forward + backward at d_model 64-128 on CPU (docs/LOG.md).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.proj = nn.Linear(cfg.d_mlp, cfg.d_model, bias=False)
        self.proj.is_residual_proj = True  # type: ignore[assignment]  # scaled init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP to ``[B, T, d_model]``; returns ``[B, T, d_model]``."""
        return self.proj(F.silu(self.gate(x)) * self.up(x))


class LlamaBlock(nn.Module):
    """Pre-norm block: ``x + a * Attn(RMSNorm(x))``, then ``x + a * MLP(RMSNorm(x))``."""

    def __init__(self, cfg: ModelConfig, attn_scale: float, residual_multiplier: float) -> None:
        super().__init__()
        self.residual_multiplier = residual_multiplier
        self.norm_1 = RMSNorm(cfg.d_model)
        self.attn = LlamaAttention(cfg, attn_scale)
        self.norm_2 = RMSNorm(cfg.d_model)
        self.mlp = SwiGLU(cfg)
        self.resid_dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``[B, T, d_model]``; returns ``[B, T, d_model]``."""
        a = self.residual_multiplier
        h = self.resid_dropout(self.attn(self.norm_1(x), rope))
        x = x + (h if a == 1.0 else a * h)
        h = self.resid_dropout(self.mlp(self.norm_2(x)))
        return x + (h if a == 1.0 else a * h)


class Llama(ParametrizedLM):
    """Llama-style language model (module docstring); the ``"llama"`` family.

    ``sum(p.numel() for p in Llama(cfg).parameters()) == scaling.counting.param_counts(cfg)
    .total``.

    Attributes:
        cfg: the model shape (``cfg.family == "llama"``).
        attn_scale: multiplies q.k; SP ``1 / sqrt(d_head)``.
        residual_multiplier: multiplies each residual branch's output; SP 1.0.
        output_multiplier: multiplies the logits; SP 1.0.
        tok_emb: ``nn.Embedding(vocab_size, d_model)``.
        blocks: ``n_layers`` ``LlamaBlock`` modules.
        norm_f: final ``RMSNorm(d_model)``.
        lm_head: ``nn.Linear(d_model, vocab_size, bias=False)`` (``tok_emb.weight`` when tied).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        if not isinstance(cfg, ModelConfig) or cfg.family != "llama":
            raise TypeError("Llama(cfg) needs a scaling.config.ModelConfig with family='llama'")
        super().__init__(cfg)  # cfg and the parametrization's hooks (module docstring)
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.emb_dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList(
            LlamaBlock(cfg, self.attn_scale, self.residual_multiplier) for _ in range(cfg.n_layers)
        )
        self.norm_f = RMSNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        rope = rope_table(cfg.seq_len, cfg.d_head, cfg.rope_theta)
        self.register_buffer("rope", rope, persistent=False)
        self.reset_parameters()

    def trunk(self, idx: torch.Tensor, t: int) -> torch.Tensor:
        """Embeddings, blocks and the final norm: ``[B, T]`` ids -> ``[B, T, d_model]``.

        ``forward`` (``ParametrizedLM``) checks the inputs and adds the readout and the loss.
        """
        rope = self.rope[:t]
        x = self.emb_dropout(self.tok_emb(idx))
        for block in self.blocks:
            x = block(x, rope)
        return self.norm_f(x)
