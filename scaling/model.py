"""Moved: the GPT-2 family is ``scaling.models.gpt2`` (issue 19); this name still imports it.

Kept so that code and scripts written before the move (``from scaling.model import GPT``)
keep working; new code imports ``scaling.models.gpt2``. State-dict keys are unchanged.
"""

from scaling.models.common import ParametrizedLM, check_inputs
from scaling.models.gpt2 import GPT, INIT_STD, MLP, Block, CausalSelfAttention

__all__ = [
    "GPT",
    "INIT_STD",
    "MLP",
    "Block",
    "CausalSelfAttention",
    "ParametrizedLM",
    "check_inputs",
]
