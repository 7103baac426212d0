"""What the built-in families (``scaling.models.gpt2``, ``scaling.models.llama``) share.

- ``check_inputs``: the language model's input checks (shapes, context length).
- ``ParametrizedLM``: the base module. ``scaling.parametrization`` owns every rule; the model
  asks it for the three multipliers, its initialisation (``reset_parameters``) and optimizer
  groups (``param_groups``); ``forward`` checks the inputs, runs the family's ``trunk`` and
  applies the output multiplier and the loss in one place, the same way for every family.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scaling import parametrization
from scaling.config import ModelConfig

__all__ = ["ParametrizedLM", "check_inputs"]


def check_inputs(idx: torch.Tensor, targets: torch.Tensor | None, seq_len: int) -> int:
    """Check a language model's inputs; return the sequence length ``T``.

    Args:
        idx: ``LongTensor[B, T]`` token ids.
        targets: ``LongTensor[B, T]`` next-token ids, or ``None``.
        seq_len: the model's context length.

    Raises:
        ValueError: ``idx`` is not 2-D, ``T`` exceeds ``seq_len``, or ``targets`` has a
            different shape.
    """
    if idx.dim() != 2:
        raise ValueError(f"idx must be [B, T] token ids, got shape {tuple(idx.shape)}")
    t = idx.shape[1]
    if t > seq_len:
        raise ValueError(
            f"sequence length {t} exceeds ModelConfig.seq_len={seq_len}; "
            "crop the input or build the model with a larger seq_len"
        )
    if targets is not None and targets.shape != idx.shape:
        raise ValueError(
            f"targets shape {tuple(targets.shape)} must equal idx shape {tuple(idx.shape)}"
        )
    return t


class ParametrizedLM(nn.Module):
    """What every built-in family shares: the parametrization's numbers, init, groups, readout.

    A subclass checks its ``cfg``, calls ``super().__init__(cfg)`` (which sets ``cfg`` and the
    three multipliers from ``parametrization.rules(cfg)``), builds its modules (``lm_head`` among
    them), then calls ``reset_parameters()``; it implements ``trunk`` (embeddings, blocks, final
    norm), and the shared ``forward`` adds the readout and the loss.

    Attributes:
        cfg: the model shape.
        attn_scale: factor on ``q.k`` (SP ``1/sqrt(d_head)``).
        residual_multiplier: factor on each residual branch's output (SP 1).
        output_multiplier: factor on the logits (SP 1; muP ``base_d_model / d_model``).
    """

    lm_head: nn.Linear

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        rules = parametrization.rules(cfg)
        self.attn_scale = rules.attn_scale(cfg.d_head)
        self.residual_multiplier = rules.residual_multiplier
        self.output_multiplier = rules.output_multiplier

    def trunk(self, idx: torch.Tensor, t: int) -> torch.Tensor:
        """The family's embedding, blocks and final norm: ``[B, T]`` ids -> ``[B, T, d_model]``.

        ``t`` is ``T``, already checked against ``seq_len``. Each family implements it.
        """
        raise NotImplementedError

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Run the model, and the loss when ``targets`` are given.

        The logits are ``lm_head(trunk(idx) * output_multiplier)``: the output multiplier
        (muP's ``m_N^-1 = base_d_model / d_model``: Yang et al. 2022, "Tensor Programs V",
        Table 8; ``scaling.parametrization``) scales the readout's input, the same product as
        scaling the logits and cheaper (``[B, T, d_model]`` rather than ``[B, T, vocab_size]``).
        At 1.0 (SP) nothing is multiplied, so SP is bit-for-bit the unmultiplied model.

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
        h = self.trunk(idx, check_inputs(idx, targets, self.cfg.seq_len))
        m = self.output_multiplier
        logits = self.lm_head(h if m == 1.0 else h * m)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return (logits if return_logits else None), loss

    def reset_parameters(self) -> None:
        """(Re)initialise every parameter in place by ``parametrization.init_weights``.

        SP is GPT-2 / nanoGPT's init (``scaling.parametrization``). Uses the global torch RNG, so
        ``torch.manual_seed(s)`` before building gives a deterministic model.
        """
        parametrization.init_weights(self, self.cfg)

    def param_groups(self, weight_decay: float, eps: float = 1e-8) -> list[dict[str, Any]]:
        """Optimizer parameter groups: ``parametrization.param_groups(self, self.cfg, ...)``.

        Under SP: weight decay on the 2-D matrices of the Linear layers (QKV, attention output,
        MLP, untied LM head), none on norm gains and biases or on the embeddings (so none on a
        tied LM head): ``[decay, no_decay]``. Under muP and CompleteP
        each group also carries its LR multiplier and epsilon (``scaling.parametrization``).

        Args:
            weight_decay: the configured decoupled weight decay (>= 0).
            eps: the configured Adam epsilon.

        Returns:
            Groups ready for ``scaling.optim.build_optimizer``; each parameter appears once.

        Raises:
            ValueError: ``weight_decay`` is negative.
        """
        return parametrization.param_groups(self, self.cfg, weight_decay=weight_decay, eps=eps)
