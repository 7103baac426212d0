"""GPT-2-style decoder-only transformer whose parameter count ``scaling.counting`` predicts exactly.

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

Initialisation (GPT-2 / nanoGPT): every Linear and both embeddings ~ N(0, 0.02**2); the two
residual-branch output projections (attention output, MLP down-projection) ~
N(0, (0.02 / sqrt(2 * n_layers))**2) so the residual-stream variance does not grow with depth
(Radford et al. 2019, Sec. 2.3); LayerNorm gains 1, biases 0. With a tied head the head *is* the
token embedding (one tensor, initialised once).

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

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scaling.config import ModelConfig

INIT_STD = 0.02  # GPT-2 / nanoGPT initialisation scale


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with a fused bias-free QKV projection.

    Parameters: ``qkv.weight [3*d_model, d_model]``, ``proj.weight [d_model, d_model]``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.d_head = cfg.d_head
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
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
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
    """Pre-norm transformer block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)
        self.resid_dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``[B, T, d_model]``; returns ``[B, T, d_model]``."""
        x = x + self.resid_dropout(self.attn(self.ln_1(x)))
        return x + self.resid_dropout(self.mlp(self.ln_2(x)))


class GPT(nn.Module):
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
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(
                f"GPT(cfg) needs a scaling.config.ModelConfig, got {type(cfg).__name__}"
            )
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.emb_dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        # positions 0..seq_len-1, a buffer so it moves with .to(device) and is not re-allocated
        self.register_buffer("pos", torch.arange(cfg.seq_len), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """(Re)initialise every parameter in place, GPT-2 / nanoGPT style (module docstring).

        Uses the global torch RNG, so ``torch.manual_seed(s)`` before building gives a
        deterministic model.
        """
        resid_std = INIT_STD / math.sqrt(2 * self.cfg.n_layers)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                if module is self.lm_head and self.cfg.tie_embeddings:
                    continue  # the shared tensor is initialised as the embedding
                std = resid_std if getattr(module, "is_residual_proj", False) else INIT_STD
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Run the model, and the loss when ``targets`` are given.

        Args:
            idx: ``LongTensor[B, T]`` token ids, ``T <= seq_len``.
            targets: ``LongTensor[B, T]`` next-token ids, or ``None``. Entries equal to -100 are
                ignored in the loss (``F.cross_entropy``'s ``ignore_index``).
            return_logits: with ``targets``, also return the logits (otherwise they are dropped
                as soon as the loss is computed, so the caller holds no ``[B, T, V]`` tensor).

        Returns:
            ``(logits, loss)``: ``logits`` is ``FloatTensor[B, T, vocab_size]`` when ``targets``
            is ``None`` or ``return_logits``, else ``None``; ``loss`` is the scalar mean
            cross-entropy in nats per token when ``targets`` is given, else ``None``.

        Raises:
            ValueError: ``idx`` is not 2-D, ``T`` exceeds ``seq_len``, or ``targets`` has a
                different shape.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must be [B, T] token ids, got shape {tuple(idx.shape)}")
        t = idx.shape[1]
        if t > self.cfg.seq_len:
            raise ValueError(
                f"sequence length {t} exceeds ModelConfig.seq_len={self.cfg.seq_len}; "
                "crop the input or build the model with a larger seq_len"
            )
        if targets is not None and targets.shape != idx.shape:
            raise ValueError(
                f"targets shape {tuple(targets.shape)} must equal idx shape {tuple(idx.shape)}"
            )
        x = self.emb_dropout(self.tok_emb(idx) + self.pos_emb(self.pos[:t]))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return (logits if return_logits else None), loss

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Split parameters into weight-decay and no-decay groups for an optimizer.

        Decay: 2-D matrices of the Linear layers (QKV, attention output, MLP, untied LM head).
        No decay: LayerNorm gains and biases, token and position embeddings (and so a tied LM
        head, which is the token embedding). Each parameter appears exactly once.

        Args:
            weight_decay: decoupled weight decay for the decay group (>= 0).

        Returns:
            ``[{"params": [...], "weight_decay": weight_decay}, {"params": [...],
            "weight_decay": 0.0}]``, ready for ``torch.optim.AdamW``.

        Raises:
            ValueError: ``weight_decay`` is negative.
        """
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        linear_weights = {id(m.weight) for m in self.modules() if isinstance(m, nn.Linear)} - {
            id(self.tok_emb.weight)
        }
        decay, no_decay = [], []
        for p in self.parameters():  # de-duplicated, so a tied weight appears once
            (decay if id(p) in linear_weights else no_decay).append(p)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
