"""``smoke_wsd``: the ``smoke`` sweep planned as WSD trunks and cooldown branches.

The same 4 (shape, budget) points as ``smoke``, each a branch decaying over its last 20% (1-sqrt,
Hägele et al. 2024) off one warmup-constant trunk per shape: 2 trunks + 4 branches.
``scaling sweep plan smoke_wsd`` shows the trunks, the branches and the FLOPs saved.
"""

import dataclasses

from sweeps.branching import WsdBranches
from sweeps.defs.smoke import sweep as smoke


def sweep():
    """``smoke`` with ``branching=WsdBranches()``."""
    return dataclasses.replace(
        smoke(),
        name="smoke_wsd",
        branching=WsdBranches(decay_fraction=0.2, decay_shape="1-sqrt"),
        description="the smoke sweep as WSD trunks (one per shape) and cooldown branches",
    )
