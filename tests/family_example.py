"""A user model family for the tests (imported as ``family_example:family``; not a test file).

A bigram-style model: token embedding -> one hidden Linear + ReLU -> LM head. Counts by hand:
embedding ``V*d``, non-embedding ``d*d`` (the hidden matrix), head ``d*V``; training FLOPs per
token ``3 * (2*d*d + 2*d*V)`` (App. F: 2 per multiply-add, backward = 2x forward).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch.nn.functional as F
from torch import nn

from scaling.counting import ParamCounts


class Bigram(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.hidden = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, idx, targets=None):
        logits = self.lm_head(F.relu(self.hidden(self.tok_emb(idx))))
        if targets is None:
            return logits, None
        return None, F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def _counts(cfg):
    d, v = cfg.d_model, cfg.vocab_size
    return ParamCounts(
        embedding=v * d, position=0, non_embedding=d * d, lm_head=d * v, total=2 * v * d + d * d
    )


def _flops(cfg):
    return 3 * (2 * cfg.d_model**2 + 2 * cfg.d_model * cfg.vocab_size)


family = SimpleNamespace(build=Bigram, param_counts=_counts, flops_per_token=_flops)

# counts one parameter too few in the hidden layer: every run must refuse it
miscounted = SimpleNamespace(
    build=Bigram,
    param_counts=lambda cfg: {
        **_counts(cfg).__dict__,
        "non_embedding": cfg.d_model**2 - 1,
        "total": _counts(cfg).total - 1,
    },
    flops_per_token=_flops,
)

# lacks flops_per_token
incomplete = SimpleNamespace(build=Bigram, param_counts=_counts)
