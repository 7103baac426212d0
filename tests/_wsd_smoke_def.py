"""The smoke sweep planned as WSD trunks and branches (used by tests/test_wsd.py)."""

import dataclasses

from sweeps.branching import WsdBranches
from sweeps.defs.smoke import sweep as smoke


def sweep():
    """``smoke`` with ``branching=WsdBranches()``."""
    return dataclasses.replace(smoke(), name="smoke_wsd", branching=WsdBranches())
