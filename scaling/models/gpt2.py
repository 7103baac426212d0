"""GPT-2-style decoder-only transformer (``ModelConfig.family = "gpt2"``), counted exactly.

``scaling.counting.param_counts`` predicts its parameter count exactly.

Architecture (Radford et al. 2019, GPT-2; as in nanoGPT), for ``ModelConfig`` ``cfg``:

- token embedding ``[vocab_size, d_model]`` plus a *learned absolute* position embedding
  ``[seq_len, d_model]`` (GPT-2's choice; it keeps the model to one well-known recipe and its
  ``seq_len * d_model`` parameters are counted in ``ParamCounts.position``);
- ``n_layers`` pre-norm blocks: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``. LayerNorms have a
  gain and a bias; every Linear is bias-free. Attention uses one fused QKV Linear
  ``d_model -> 3*d_model``, causal ``torch.nn.functional.scaled_dot_product_attention`` and an
  output Linear ``d_model -> d_model``. The MLP is ``d_model -> d_mlp``, *exact* (erf) GELU,
  ``d_mlp -> d_model``. (GPT-2 used the tanh approximation; the two differ by < 1e-3, and on
  CPU the exact kernel is ~3x faster forward+backward in torch 2.13, which matters for MFU.)
- final LayerNorm and a bias-free LM head ``d_model -> vocab_size``, tied to the token embedding
  when ``cfg.tie_embeddings``.

Initialisation (GPT-2 / nanoGPT, under the default ``parametrization="sp"``): every Linear and
both embeddings ~ N(0, 0.02**2); the two residual-branch output projections (attention output, MLP
down-projection) ~ N(0, (0.02 / sqrt(2 * n_layers))**2) so the residual-stream variance does not
grow with depth (Radford et al. 2019, Sec. 2.3); LayerNorm gains 1, biases 0. With a tied head the
head *is* the token embedding (one tensor, initialised once).

Parametrization hooks (``scaling.parametrization`` owns every rule; the model only applies
numbers): ``attn_scale`` multiplies ``q.k`` (SP ``1/sqrt(d_head)``), ``residual_multiplier``
multiplies each residual branch's output (SP 1) and ``output_multiplier`` the logits (SP 1;
applied to the readout's input by ``ParametrizedLM.forward``, as for every family); the
initialisation is ``parametrization.init_weights`` and the optimizer groups
``parametrization.param_groups``. Under SP all three multipliers are exactly 1.0 and the model
computes what it computed before parametrizations existed, bit for bit.

Dropout ``cfg.dropout`` is applied to the attention probabilities (inside SDPA), to each residual
branch output and to the embedding sum; at 0 (the default for scaling runs) it is skipped.

Speed (CPU, one thread; ``benchmarks/train_throughput.py``): q, k, v are column slices of the
fused QKV output viewed as heads (no copies; ``split`` makes the backward one ``cat`` of dq, dk,
dv, where viewing as ``[B, T, 3, H, Dh]`` and unbinding cost a stack and a copy); SDPA's output
comes back in ``[B, T, H, Dh]`` memory so merging heads is free; Linears have no bias; with
``targets`` the logits are not returned (``F.cross_entropy`` on the flat view). Outside the
model, ``torch.optim.AdamW(fused=True)`` works on CPU, and ``scaling.train.tune_allocator``
(glibc ``mallopt``) removes per-step page faults; ``train()`` does both. Measured and not kept
(no gain within noise): ``torch.compile`` (default and max-autotune), SDPA's math backend or a
hand-written masked-softmax attention (1.5-2x slower than the CPU flash kernel), weight
gradients computed as ``(x^T g)^T``, splitting the 16 sequences into 2-8 micro-batches (a
``micro_batch_size`` choice), ``set_flush_denormal``, pinning the thread, AVX2 kernels (slower).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scaling.config import ModelConfig
from scaling.models.common import ParametrizedLM
from scaling.parametrization import INIT_STD

__all__ = ["GPT", "INIT_STD"]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with a fused bias-free QKV projection.

    Parameters: ``qkv.weight [3*d_model, d_model]``, ``proj.weight [d_model, d_model]``.
    ``attn_scale`` multiplies ``q.k`` (from the parametrization).
    """

    def __init__(self, cfg: ModelConfig, attn_scale: float) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.d_head = cfg.d_head
        self.attn_scale = attn_scale
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.proj.is_residual_proj = True  # type: ignore[assignment]  # scaled init, see GPT

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend causally.

        Args:
            x: ``[B, T, d_model]`` activations.

        Returns:
            ``[B, T, d_model]``.
        """
        b, t, d = x.shape
        # three [B, T, d] column slices viewed as [B, H, T, Dh] (no copies; SDPA takes strided
        # inputs). Splitting, rather than viewing as [B, T, 3, H, Dh] and unbinding, matters in
        # backward: the kernel returns dq, dk, dv in [B, T, H, Dh] memory and split's backward
        # writes them into dqkv with one cat, where unbind + permute needed a stack and a copy.
        q, k, v = (
            z.view(b, t, self.n_heads, self.d_head).transpose(1, 2)
            for z in self.qkv(x).split(d, dim=2)
        )
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=True,
            scale=self.attn_scale,
        )
        # [B, H, T, Dh] -> [B, T, H*Dh]: the fused kernels allocate their output as [B, T, H, Dh]
        # and return a transposed view, so this reshape is free (no copy) on CPU flash attention
        y = y.transpose(1, 2).reshape(b, t, d)
        return self.proj(y)


class MLP(nn.Module):
    """Bias-free two-layer MLP with exact (erf) GELU: ``d_model -> d_mlp -> d_model``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.proj = nn.Linear(cfg.d_mlp, cfg.d_model, bias=False)
        self.proj.is_residual_proj = True  # type: ignore[assignment]  # scaled init, see GPT

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP to ``[B, T, d_model]``; returns ``[B, T, d_model]``."""
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-norm block: ``x + r * Attn(LN(x))``, then ``x + r * MLP(LN(x))``.

    ``r`` is ``residual_multiplier`` (1 under SP and muP; CompleteP's ``(L_base / L)^alpha``).
    """

    def __init__(self, cfg: ModelConfig, attn_scale: float, residual_multiplier: float) -> None:
        super().__init__()
        self.residual_multiplier = residual_multiplier
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg, attn_scale)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)
        self.resid_dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``[B, T, d_model]``; returns ``[B, T, d_model]``."""
        # one fused add (x + alpha * branch); alpha = 1.0 is exact, so SP is unchanged
        r = self.residual_multiplier
        x = torch.add(x, self.resid_dropout(self.attn(self.ln_1(x))), alpha=r)
        return torch.add(x, self.resid_dropout(self.mlp(self.ln_2(x))), alpha=r)


class GPT(ParametrizedLM):
    """Decoder-only GPT-2-style language model (see the module docstring for the architecture).

    ``sum(p.numel() for p in GPT(cfg).parameters()) == scaling.counting.param_counts(cfg).total``.

    Attributes:
        cfg: the model shape.
        tok_emb: ``nn.Embedding(vocab_size, d_model)``.
        pos_emb: ``nn.Embedding(seq_len, d_model)``.
        blocks: ``n_layers`` ``Block`` modules.
        ln_f: final ``nn.LayerNorm(d_model)``.
        lm_head: ``nn.Linear(d_model, vocab_size, bias=False)``; its weight is ``tok_emb.weight``
            when tied.
        attn_scale: factor on ``q.k`` (``scaling.parametrization``; SP ``1/sqrt(d_head)``).
        residual_multiplier: factor on each residual branch's output (SP 1).
        output_multiplier: factor on the logits (SP 1; muP ``base_d_model / d_model``).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        if not isinstance(cfg, ModelConfig):
            raise TypeError(
                f"GPT(cfg) needs a scaling.config.ModelConfig, got {type(cfg).__name__}"
            )
        super().__init__(cfg)  # cfg and the parametrization's multipliers
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.emb_dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList(
            Block(cfg, self.attn_scale, self.residual_multiplier) for _ in range(cfg.n_layers)
        )
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        # positions 0..seq_len-1, a buffer so it moves with .to(device) and is not re-allocated
        self.register_buffer("pos", torch.arange(cfg.seq_len), persistent=False)
        self.reset_parameters()

    def trunk(self, idx: torch.Tensor, t: int) -> torch.Tensor:
        """Embeddings, blocks and the final norm: ``[B, T]`` ids -> ``[B, T, d_model]``.

        ``forward`` (``ParametrizedLM``) checks the inputs and adds the readout and the loss.
        """
        x = self.emb_dropout(self.tok_emb(idx) + self.pos_emb(self.pos[:t]))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)
