"""Plan a sweep: validated, fully resolved runs with their counted N, D and C.

``plan(spec)`` is what ``scaling sweep plan`` prints and what ``launch`` runs. Counts come from
``scaling.counting`` (exact, Chinchilla App. F FLOPs); nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling.config import RunConfig
from scaling.counting import flops_6nd, param_counts, training_flops
from sweeps.branching import marginal_flops, role
from sweeps.spec import SweepSpec, run_name


@dataclass(frozen=True)
class PlannedRun:
    """One run of a plan.

    Attributes:
        run_name: deterministic name (``sweeps.spec.run_name``); the run directory's name.
        config: the fully resolved config.
        n_params_non_embedding: Kaplan's N (parameters).
        n_params_total: Chinchilla's N (parameters).
        n_tokens: D (tokens).
        flops: C, counted training FLOPs (``training_flops(model, n_tokens)``, App. F without
            the embedding matmul).
        flops_6nd: ``6 * n_params_total * n_tokens``.
        tokens_per_param: ``n_tokens / n_params_total``.
        flops_marginal: FLOPs this run itself spends: ``flops`` minus its parent's part for a
            WSD branch, ``flops`` otherwise (``sweeps.branching``).
        role: ``"run"``, ``"trunk"`` or ``"branch"``.
    """

    run_name: str
    config: RunConfig
    n_params_non_embedding: int
    n_params_total: int
    n_tokens: int
    flops: int
    flops_6nd: float
    tokens_per_param: float
    flops_marginal: int = 0
    role: str = "run"

    @classmethod
    def from_config(cls, cfg: RunConfig) -> PlannedRun:
        """Count everything about ``cfg``."""
        counts = param_counts(cfg.model)
        return cls(
            run_name=run_name(cfg),
            config=cfg,
            n_params_non_embedding=counts.non_embedding,
            n_params_total=counts.total,
            n_tokens=cfg.n_tokens,
            flops=training_flops(cfg.model, cfg.n_tokens),
            flops_6nd=flops_6nd(counts.total, cfg.n_tokens),
            tokens_per_param=cfg.n_tokens / counts.total,
            flops_marginal=marginal_flops(cfg),
            role=role(cfg),
        )

    def row(self) -> dict:
        """Flat dict for tables and ``--json`` (config excluded)."""
        m, b = self.config.model, self.config.branch_from
        return {
            "run_name": self.run_name,
            "n_layers": m.n_layers,
            "d_model": m.d_model,
            "n_heads": m.n_heads,
            "d_mlp": m.d_mlp,
            "lr": self.config.optim.lr,
            "seed": self.config.seed,
            "point_key": self.config.point_key,
            "flops_budget": self.config.flops_budget,
            "n_params_non_embedding": self.n_params_non_embedding,
            "n_params_total": self.n_params_total,
            "n_tokens": self.n_tokens,
            "flops": self.flops,
            "flops_6nd": self.flops_6nd,
            "tokens_per_param": self.tokens_per_param,
            "role": self.role,
            "parent_run": b.run_name if b is not None else None,
            "parent_step": b.step if b is not None else None,
            "keep_checkpoint_steps": list(self.config.keep_checkpoint_steps),
            "flops_marginal": self.flops_marginal,
        }


def plan(spec: SweepSpec) -> list[PlannedRun]:
    """Validate and expand a spec into planned runs (plan order).

    Raises:
        PlanError: listing every invalid run with its reason (nothing is planned then).
    """
    return [PlannedRun.from_config(cfg) for cfg in spec.expand()]


def plan_totals(runs: list[PlannedRun]) -> dict[str, float]:
    """What a plan spends (``flops_total``) beside its points trained alone.

    ``flops_total`` sums every run's ``flops_marginal``; ``flops_from_scratch`` sums the
    ``flops`` of every non-trunk run (each point trained alone from initialisation).

    Without branching both are the sum of ``flops``; with WSD branches the ratio is the saving
    (``sweeps.branching``).
    """
    return {
        "flops_total": sum(r.flops_marginal for r in runs),
        "flops_from_scratch": sum(r.flops for r in runs if r.role != "trunk"),
    }
