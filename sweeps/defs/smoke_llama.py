"""``smoke_llama``: the ``smoke`` IsoFLOP sweep with Llama-style blocks (used by tests).

Same budgets, depths, data and LR rule as ``sweeps.defs.smoke``, with ``family="llama"``:
rotary positions, RMSNorm, SwiGLU (``d_mlp`` the parameter-matched 8/3 d_model rounded to a
multiple of 32: 96 at d_model 32, 160 at 64), no biases. The shape rule builds llama shapes and
counts them with llama's own counting, so each run still lands on its budget.
"""

from __future__ import annotations

import dataclasses

from scaling.shapes import AspectRatioRule
from sweeps.defs.smoke import sweep as smoke
from sweeps.spec import IsoFlopSweep


def sweep() -> IsoFlopSweep:
    """The llama smoke sweep spec."""
    base = smoke()
    model = dataclasses.replace(base.base.model, family="llama", d_mlp=None)
    return dataclasses.replace(
        base,
        name="smoke_llama",
        base=base.base.replace(model=model),
        shape_rule=AspectRatioRule(aspect_ratio=32, d_head=16, family="llama"),
        description="tiny CPU IsoFLOP sweep of llama blocks: 2 budgets x 2 depths",
    )
