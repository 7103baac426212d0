"""What the built-in families (``scaling.models.gpt2``, ``scaling.models.llama``) share.

- ``check_inputs``: the language model's input checks (shapes, context length).
- ``ParametrizedLM``: the base module. ``scaling.parametrization`` owns every rule; the model
  asks it for its initialisation (``reset_parameters``), optimizer groups (``param_groups``) and
  the three multipliers, and applies the output multiplier in one place (``readout``).
"""

from __future__ import annotations

from typing import Any

import torch
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
    """What every built-in family shares: init and optimizer groups from the parametrization.

    A subclass sets ``self.cfg`` (its ``ModelConfig``) and the three multipliers from
    ``parametrization.rules(cfg)``, builds its modules (``lm_head`` among them), then calls
    ``reset_parameters()``; its ``forward`` ends with ``readout(final_norm(x))``.
    """

    cfg: ModelConfig
    output_multiplier: float
    lm_head: nn.Linear

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """The logits ``lm_head(h * output_multiplier)`` of the final-norm output ``h``.

        The output multiplier (muP's ``m_N^-1 = base_d_model / d_model``: Yang et al. 2022,
        "Tensor Programs V", Table 8; ``scaling.parametrization``) scales the readout's input:
        the same product as scaling the logits, and cheaper (``[B, T, d_model]`` rather than
        ``[B, T, vocab_size]``). At 1.0 (SP) nothing is multiplied, so SP is bit-for-bit the
        unmultiplied model.

        Args:
            h: ``[B, T, d_model]`` final-norm activations.

        Returns:
            ``[B, T, vocab_size]`` logits.
        """
        m = self.output_multiplier
        return self.lm_head(h if m == 1.0 else h * m)

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


