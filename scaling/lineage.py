"""Lineage checks: may one run be the parent of a branch (WSD trunks and cooldown branches)?

A branch (``RunConfig.branch_from``) resumes from its parent's checkpoint at a step and then
follows its own schedule (a WSD cooldown; Hägele et al. 2024, "Scaling Laws and Compute-Optimal
Training Beyond Fixed Training Durations"). That is only the same training as if the branch had
run alone when everything that shaped the parent's trajectory up to the branch point is the
branch's own, the learning rate at those steps included. ``train()`` checks this before it
restores the parent's checkpoint; ``sweeps.branching`` checks it when it plans trunks.

Kept out of ``scaling.config`` because the check needs the LR schedule (``scaling.optim``).
"""

from __future__ import annotations

import dataclasses
import math

from scaling.config import RunConfig, _compact_dict
from scaling.optim import lr_at, warmup_steps

# what a branch must share with its parent: everything that shapes the trunk's trajectory up to
# the branch point except the schedule's length (the LR at those steps is checked separately)
_LINEAGE_FIELDS = ("model", "data", "seed", "batch_size_tokens")
_LINEAGE_OPTIM = ("optimizer", "lr", "betas", "eps", "weight_decay", "momentum", "grad_clip")


def parent_mismatches(branch: RunConfig, parent: RunConfig) -> list[str]:
    """Why ``parent`` cannot be the parent of ``branch`` (empty when it can).

    The parent must have the branch's shape, data, seed, batch size and optimizer settings,
    reach ``branch.branch_from.step``, keep a checkpoint there (``keep_checkpoint_steps``) and
    have used the same learning rate as the branch's own schedule at the steps before it
    (checked at the end of warmup, the first stable step and the last step before the branch).
    """
    assert branch.branch_from is not None
    step = branch.branch_from.step
    out = []
    for name in _LINEAGE_FIELDS:
        a, b = getattr(parent, name), getattr(branch, name)
        if a != b:
            if dataclasses.is_dataclass(a):
                a, b = _compact_dict(a), _compact_dict(b)
            out.append(f"{name} differs (parent {a!r}, branch {b!r})")
    for name in _LINEAGE_OPTIM:
        a, b = getattr(parent.optim, name), getattr(branch.optim, name)
        if a != b:
            out.append(f"optim.{name} differs (parent {a!r}, branch {b!r})")
    if step > parent.n_steps:
        out.append(f"step {step} is beyond the parent's {parent.n_steps} steps")
    elif step not in parent.keep_checkpoint_steps:
        out.append(
            f"the parent keeps no checkpoint at step {step} "
            f"(keep_checkpoint_steps={list(parent.keep_checkpoint_steps)})"
        )
    if not out:
        w_parent, w_branch = (
            warmup_steps(parent.n_steps, parent.optim),
            warmup_steps(branch.n_steps, branch.optim),
        )
        if w_parent != w_branch:
            out.append(f"warmup differs (parent {w_parent} steps, branch {w_branch} steps)")
        else:
            for k in sorted({max(0, w_branch - 1), min(w_branch, step - 1), step - 1}):
                a, b = (
                    lr_at(k, parent.n_steps, parent.optim),
                    lr_at(k, branch.n_steps, branch.optim),
                )
                if not math.isclose(a, b, rel_tol=1e-12):
                    out.append(f"learning rate at step {k} differs (parent {a:g}, branch {b:g})")
                    break
    return out
