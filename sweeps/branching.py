"""WSD trunks and cooldown branches: one trunk per (shape, LR, seed), one branch per point.

Hägele et al. 2024 ("Scaling Laws and Compute-Optimal Training Beyond Fixed Training
Durations", arXiv:2405.18392, Sec. 3-4) show that a warmup-stable-decay (WSD) run whose LR is
constant until a short final decay matches a cosine run of the same length, and that the
constant part can be shared: branch a cooldown off one constant-LR "trunk" at several token
counts and each branch is a WSD run of its own length. OLMo-core's ladder (WSD-S) and Marin
build whole token axes this way.

``SweepSpec(branching=WsdBranches(...))`` turns each planned point (a run of ``n`` steps) into a
branch that starts from its trunk's checkpoint at step ``s = n - K``, ``K = max(1,
floor(decay_fraction * n))`` (the same ``K`` as ``scaling.optim``'s ``wsd`` schedule), and
decays over its last ``K`` steps (``decay_shape`` ``"1-sqrt"`` by default, Hägele et al.'s best,
or ``"linear"``; down to ``min_lr_ratio * lr`` of the sweep's base config). Points of one (shape,
LR, seed, data, batch) share one trunk, trained with warmup then constant LR for ``max(s)``
steps, keeping ``checkpoint-step<s>.pt`` at every branch point
(``RunConfig.keep_checkpoint_steps``).

Warmup: every run of a trunk family warms up for the same ``W`` steps, so trunk and branches
agree on the LR of every shared step; each branch is then exactly the WSD run of its own length
(``scaling.lineage.parent_mismatches`` checks it). ``W`` is ``WsdBranches.warmup_steps`` when
given: one warmup length for every trunk of the sweep (and for its forecast rung), as Hägele et
al. use a fixed warmup whatever the run's length. Otherwise ``W = floor(warmup_fraction *
n_min)``, ``n_min`` the family's shortest point's steps; then a long branch of a family that
also holds a short point gets a warmup far shorter than 5% of its own length (issue 15 found a
d_model 48 point 0.16 nats worse with 25 warmup steps than with 100). The warmup fraction stored
in a config is ``(W + 0.5) / n_steps``, which ``floor`` maps back to ``W``.

FLOPs: a branch's ``flops`` is its point as if trained alone (trunk part plus its decay, what
fits use); its ``flops_marginal`` is the decay alone. With decay fraction f and token counts
``n, 2n, 4n, 8n`` one trunk of ``0.8 * 8n`` plus four decays costs ``(6.4 + 0.2 * 15) / 15 =
0.63`` of training the four points from scratch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from scaling.config import BranchFrom, ConfigError, RunConfig
from scaling.counting import training_flops
from scaling.lineage import parent_mismatches


class BranchingError(ValueError):
    """A ``WsdBranches`` setting is invalid (names the field and the fix)."""


@dataclass(frozen=True)
class WsdBranches:
    """Build a sweep's points as cooldown branches off shared WSD trunks.

    Attributes:
        decay_fraction: fraction f of each branch's own steps spent decaying, in (0, 1]
            (Hägele et al. 2024: 0.2 matches cosine).
        decay_shape: ``"1-sqrt"`` (default; Hägele et al. 2024, Sec. 3.2) or ``"linear"``.
        warmup_steps: linear warmup length W in optimizer steps for every trunk and branch
            (an int >= 0); ``None`` (default) takes ``floor(warmup_fraction * n_min)`` per trunk
            family from the base config's ``optim.warmup_fraction``.
    """

    decay_fraction: float = 0.2
    decay_shape: str = "1-sqrt"
    warmup_steps: int | None = None

    def __post_init__(self) -> None:
        f = self.decay_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise BranchingError(
                f"WsdBranches.decay_fraction must be in (0, 1], got {f!r}; "
                "0.2 is Hägele et al.'s choice"
            )
        if self.decay_shape not in ("1-sqrt", "linear"):
            raise BranchingError(
                f"WsdBranches.decay_shape must be '1-sqrt' or 'linear', got {self.decay_shape!r}"
            )
        w = self.warmup_steps
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 0):
            raise BranchingError(
                f"WsdBranches.warmup_steps must be a whole number of steps >= 0 or None, got {w!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "wsd_branches", "decay_fraction", "decay_shape"[, "warmup_steps"]}``.

        ``warmup_steps`` is written only when set, so earlier sweeps keep their ``sweep.json``.
        """
        d = {"kind": "wsd_branches", **dataclasses.asdict(self)}
        if self.warmup_steps is None:
            del d["warmup_steps"]
        return d

    def branch_step(self, n_steps: int) -> int:
        """Branch point ``s = n_steps - max(1, floor(decay_fraction * n_steps))``."""
        return n_steps - max(1, int(self.decay_fraction * n_steps))


def _warmup_fraction(w: int, n_steps: int) -> float:
    # the stored fraction whose floor(fraction * n_steps) is exactly w
    return (w + 0.5) / n_steps if w > 0 else 0.0


def _family_key(cfg: RunConfig) -> str:
    # runs that can share a trunk: everything equal except the length and the point labels
    return cfg.replace(n_tokens=cfg.batch_size_tokens, flops_budget=None, point_key=None).to_json()


def branch_configs(
    configs: list[tuple[str, RunConfig]], branching: WsdBranches, name_of: Any
) -> tuple[list[tuple[str, RunConfig]], list[tuple[str, str]]]:
    """Trunks and branches for labelled point configs.

    Args:
        configs: ``(label, config)`` per planned point (valid configs, plan order).
        branching: the decay settings.
        name_of: ``run_name(cfg)`` (trunk names are what branches point at).

    Returns:
        ``(runs, problems)``: ``(label, config)`` of every trunk (first) then every branch, in
        plan order, and ``(label, reason)`` for points that cannot be branched.
    """
    families: dict[str, list[tuple[str, RunConfig]]] = {}
    for label, cfg in configs:
        families.setdefault(_family_key(cfg), []).append((label, cfg))
    trunks: list[tuple[str, RunConfig]] = []
    branches: list[tuple[str, RunConfig]] = []
    problems: list[tuple[str, str]] = []
    f, shape = branching.decay_fraction, branching.decay_shape
    for members in families.values():
        first = members[0][1]
        n_min = min(c.n_steps for _, c in members)
        w = branching.warmup_steps
        if w is None:
            w = int(first.optim.warmup_fraction * n_min)
        points = []
        for label, cfg in members:
            s = branching.branch_step(cfg.n_steps)
            if 0 < s <= w:
                problems.append(
                    (
                        label,
                        f"its branch point (step {s} of {cfg.n_steps}) is inside the warmup "
                        f"({w} steps); lower decay_fraction={f} or the warmup, or train "
                        "longer",
                    )
                )
                continue
            points.append((label, cfg, s))
        keep = tuple(sorted({s for _, _, s in points if s > 0}))
        trunk_name = None
        if keep:
            t_steps = keep[-1]
            trunk_optim = dataclasses.replace(
                first.optim, schedule="constant", warmup_fraction=_warmup_fraction(w, t_steps)
            )
            try:
                trunk = first.replace(
                    n_tokens=t_steps * first.batch_size_tokens,
                    optim=trunk_optim,
                    keep_checkpoint_steps=keep,
                    flops_budget=None,
                    point_key=None,
                )
            except ConfigError as e:
                problems += [(label, f"its trunk is invalid: {e}") for label, _, _ in points]
                continue
            trunk_name = name_of(trunk)
            trunks.append((f"trunk of {points[0][0]}", trunk))
        for label, cfg, s in points:
            optim = dataclasses.replace(
                cfg.optim,
                schedule="wsd",
                decay_fraction=f,
                decay_shape=shape,
                warmup_fraction=_warmup_fraction(w, cfg.n_steps),
            )
            try:
                branch = cfg.replace(
                    optim=optim,
                    branch_from=BranchFrom(trunk_name, s) if s > 0 else None,
                )
            except ConfigError as e:
                problems.append((label, str(e)))
                continue
            branches.append((label, branch))
    return trunks + branches, problems


def check_lineage(configs: list[RunConfig], name_of: Any) -> list[tuple[str, str]]:
    """Plan-time check of every branch against its parent in the same plan.

    A branch must name a run of the plan, start at a step its parent reaches and keeps a
    checkpoint at, and share the parent's shape, data, seed, batch and optimizer (see
    ``scaling.lineage.parent_mismatches``).

    Returns:
        ``(run_name, reason)`` per bad branch (empty when all are fine).
    """
    by_name = {name_of(c): c for c in configs}
    problems = []
    for cfg in configs:
        if cfg.branch_from is None:
            continue
        name = name_of(cfg)
        parent = by_name.get(cfg.branch_from.run_name)
        if parent is None:
            problems.append(
                (
                    name,
                    f"branch_from names run {cfg.branch_from.run_name!r}, which is not in the "
                    "sweep; branch only from a trunk planned in the same sweep",
                )
            )
            continue
        bad = parent_mismatches(cfg, parent)
        if bad:
            problems.append(
                (
                    name,
                    f"cannot branch from {cfg.branch_from.run_name}: {'; '.join(bad)}",
                )
            )
    return problems


def marginal_flops(cfg: RunConfig) -> int:
    """Counted training FLOPs the run itself spends (a branch: the steps after its parent's)."""
    full = training_flops(cfg.model, cfg.n_tokens)
    if cfg.branch_from is None:
        return full
    return full - training_flops(cfg.model, cfg.branch_from.step * cfg.batch_size_tokens)


def role(cfg: RunConfig) -> str:
    """``"branch"`` (has ``branch_from``), ``"trunk"`` (keeps checkpoints) or ``"run"``."""
    if cfg.branch_from is not None:
        return "branch"
    return "trunk" if cfg.keep_checkpoint_steps else "run"
