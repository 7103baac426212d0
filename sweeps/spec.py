"""Sweep specifications: frozen dataclasses that expand into fully resolved ``RunConfig``s.

Three families (all share the fields of ``SweepSpec``):

- ``IsoFlopSweep``: compute budgets C x a model-size axis (depths with a shape rule, explicit
  shapes, or target parameter counts with a shape rule). Each run's ``n_tokens`` solves
  ``training_flops(model, n_tokens) = C`` (Hoffmann et al. 2022, App. F counting, via
  ``scaling.counting.training_flops``), rounded to whole batches; a run that misses its budget by
  more than ``budget_tolerance`` (1%) is invalid. This is Chinchilla's Approach 2 design
  (Hoffmann et al. 2022, Sec. 3.2).
- ``GridSweep``: widths x depths x token counts (or tokens-per-parameter multiples); Kaplan et
  al. 2020's design and Chinchilla's Approach 1/3 data.
- ``LadderSweep``: model sizes x multiples of 20 tokens/param (OLMo's model ladder: 0.5x, 1x, 2x,
  5x, 10x of Chinchilla's ~20 tokens per parameter, Hoffmann et al. 2022 Table 3).

Every LR multiplier and seed is its own run with its own directory; variants of one (shape,
budget or token count) point share ``point_key``; every config carries ``sweep_name`` (its wandb
group). ``run_name(cfg)`` is derived from the config alone: a readable prefix plus 8 hex digits
of the SHA-256 of the full config JSON, so any change to a config gives a new name.

Validation happens for the whole plan before anything runs (``SweepSpec.check``): every invalid
run is listed with its reason, and ``expand()`` raises ``PlanError`` holding all of them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from scaling.config import ConfigError, DataConfig, ModelConfig, RunConfig
from scaling.counting import flops_per_token, training_flops
from scaling.families import default_d_mlp
from scaling.shapes import NConvention, ShapeRule, ShapeRuleError, count_params
from sweeps.branching import WsdBranches, branch_configs, check_lineage
from sweeps.lr import FixedLR, LRRule, LRRuleError
from sweeps.names import config_hash, point_key, run_name, sci_notation, shape_tag


class SweepSpecError(ValueError):
    """The sweep specification itself is malformed (names the field and the fix)."""


def check_group_size(group_size: object, field: str = "--group-size") -> None:
    """Refuse a group size (runs per batch) that is not a positive integer; ``None`` is the default.

    Raises:
        SweepSpecError: naming ``field`` (the flag, or a spec's field) and the fix.
    """
    if group_size is not None and (type(group_size) is not int or group_size < 1):
        raise SweepSpecError(
            f"{field} must be a positive integer (runs per batch; 1 trains every run alone) "
            f"or None (the device's default), got {group_size!r}"
        )


class PlanError(ValueError):
    """One or more planned runs are invalid.

    Attributes:
        problems: every ``PlanProblem`` found (all of them, not just the first).
    """

    def __init__(self, problems: list[PlanProblem]):
        self.problems = list(problems)
        lines = [f"{len(self.problems)} invalid run(s) in the sweep plan:"]
        lines += [f"  - {p.label}: {p.reason}" for p in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class PlanProblem:
    """Why one planned run (named by ``label``) is invalid."""

    label: str
    reason: str


@dataclass(frozen=True)
class Candidate:
    """One planned run before validation: a config, or the reason it could not be built."""

    label: str
    config: RunConfig | None
    reason: str | None = None


# -------------------------------------------------------------------------------------------
# corpus size (for allow_repetition=False)
# -------------------------------------------------------------------------------------------
def corpus_train_tokens(data: DataConfig) -> int | None:
    """Number of training tokens in the corpus, or ``None`` when not cheaply known.

    Byte-level sources count one token per byte (plus nothing for file separators, so this
    slightly undercounts). ``stdlib``: the exact training split of ``scaling.data`` (same files,
    same hash-based held-out files). ``text``: the file or folder size times ``1 - val_fraction``
    (approximate). ``tokens``: the training shards' token counts from the manifest or headers
    (``scaling.shards.manifest_train_tokens``). A missing
    path gives ``None`` (a plan must not require the data to exist).
    """
    if data.source == "tokens":
        from scaling.shards import manifest_train_tokens  # numpy only, no torch

        return manifest_train_tokens(str(data.path))
    if data.source == "stdlib":
        from scaling.data import is_val_file, stdlib_files  # numpy only, no torch

        root, files = stdlib_files(data.include_tests)
        return sum(
            f.stat().st_size
            for f in files
            if not is_val_file(f.relative_to(root).as_posix(), data.val_fraction)
        )
    root = Path(str(data.path))
    if root.is_file():
        total = root.stat().st_size
    elif root.is_dir():
        total = sum(
            os.path.getsize(os.path.join(dirpath, f))
            for dirpath, _, filenames in os.walk(root)
            for f in filenames
        )
    else:
        return None
    return int(total * (1 - data.val_fraction))


# -------------------------------------------------------------------------------------------
# the common spec
# -------------------------------------------------------------------------------------------
def _as_tuple(value: Any) -> tuple:
    return tuple(value) if value is not None else ()


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """Fields shared by every sweep family.

    Attributes:
        name: sweep name: the runs directory ``<runs_dir>/<name>/`` and the wandb group.
        base: template RunConfig: data, optim (its ``lr`` is replaced by the LR rule), batch,
            eval/log/checkpoint intervals, device, precision, wandb mode. From ``base.model``
            only ``vocab_size``, ``seq_len``, ``tie_embeddings``, ``family`` and the
            non-shape fields (``dropout``, ``rope_theta``, ``qk_norm``) are used; the shape
            comes from the sweep (a ``shape_rule`` must build the same family).
        seeds: one run per seed at every point.
        lr_rule: peak LR per shape (``sweeps.lr``); ``None`` means ``FixedLR(base.optim.lr)``.
        lr_multipliers: LR sub-sweep: one run per multiplier of the rule's LR.
        shape_rule: maps parameter targets (or depths) to shapes (``scaling.shapes``).
        n_convention: convention of parameter targets and of tokens-per-parameter:
            ``"non_embedding"`` (Kaplan) or ``"total"`` (Chinchilla).
        allow_repetition: if False, a run needing more tokens than the training corpus holds
            (when its size is cheaply known) is invalid (the same as ``max_epochs=1``).
        max_epochs: if set, a run whose ``n_tokens`` exceeds this many passes over the training
            corpus (``corpus_train_tokens``, when cheaply known) is invalid, e.g. 4: Muennighoff
            et al. 2023 (Fig. 3) find up to ~4 epochs of repeated data cost little loss.
        mlp_ratio: GELU-equivalent MLP ratio for explicit shapes and grids: ``d_mlp =
            default_d_mlp(base.model.family, d_model, mlp_ratio)`` (``mlp_ratio * d_model`` for
            gpt2; the parameter-matched SwiGLU width for llama).
        description: free text for humans.
        branching: ``WsdBranches(...)`` plans every point as a cooldown branch off a shared
            warmup-stable-decay trunk (``sweeps.branching``); ``None`` trains every point from
            scratch with the base schedule.
        group_size: most same-shape runs trained as one batch by one process (``sweeps.batches``;
            ``--group-size`` overrides it); ``None``: the device's default (1 CPU, 8 CUDA).
    """

    kind: ClassVar[str] = "base"

    name: str
    base: RunConfig
    seeds: tuple[int, ...] = (0,)
    lr_rule: LRRule | None = None
    lr_multipliers: tuple[float, ...] = (1.0,)
    shape_rule: ShapeRule | None = None
    n_convention: NConvention = "non_embedding"
    allow_repetition: bool = True
    max_epochs: float | None = None
    mlp_ratio: int = 4
    description: str = ""
    branching: WsdBranches | None = None
    group_size: int | None = None

    def __post_init__(self) -> None:
        check_group_size(self.group_size, f"{type(self).__name__}.group_size")
        if self.branching is not None and not isinstance(self.branching, WsdBranches):
            raise SweepSpecError(
                f"{type(self).__name__}.branching must be WsdBranches(...) or None, "
                f"got {self.branching!r}"
            )
        for name in ("seeds", "lr_multipliers"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        if not (isinstance(self.name, str) and self.name and "/" not in self.name):
            raise SweepSpecError(f"{type(self).__name__}.name must be a non-empty name without '/'")
        if not isinstance(self.base, RunConfig):
            raise SweepSpecError(f"{type(self).__name__}.base must be a RunConfig")
        if not self.seeds:
            raise SweepSpecError(f"{type(self).__name__}.seeds is empty; give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise SweepSpecError(f"{type(self).__name__}.seeds has repeats: {self.seeds}")
        if not self.lr_multipliers or any(
            not (isinstance(m, (int, float)) and m > 0) for m in self.lr_multipliers
        ):
            raise SweepSpecError(
                f"{type(self).__name__}.lr_multipliers must be positive numbers, "
                f"got {self.lr_multipliers}"
            )
        rule_family = getattr(self.shape_rule, "family", None)
        if rule_family is not None and rule_family != self.base.model.family:
            raise SweepSpecError(
                f"{type(self).__name__}.shape_rule builds family {rule_family!r} but "
                f"base.model.family is {self.base.model.family!r}; give the rule "
                f"family={self.base.model.family!r}"
            )
        if self.max_epochs is not None and not (
            isinstance(self.max_epochs, (int, float)) and 0 < self.max_epochs < math.inf
        ):
            raise SweepSpecError(
                f"{type(self).__name__}.max_epochs must be a positive number or None, "
                f"got {self.max_epochs!r}"
            )
        if self.n_convention not in ("non_embedding", "total"):
            raise SweepSpecError(
                f"{type(self).__name__}.n_convention must be 'non_embedding' or 'total', "
                f"got {self.n_convention!r}"
            )

    # -- helpers used by the families ---------------------------------------------------------
    @property
    def effective_lr_rule(self) -> LRRule:
        """``lr_rule``, or ``FixedLR(base.optim.lr)`` when none was given."""
        return self.lr_rule if self.lr_rule is not None else FixedLR(self.base.optim.lr)

    def _model(self, n_layers: int, d_model: int, n_heads: int, d_mlp: int | None = None):
        # base.model's family and every non-shape field (dropout, rope_theta, qk_norm, ...)
        b = self.base.model
        return dataclasses.replace(
            b,
            n_layers=n_layers,
            d_model=d_model,
            n_heads=n_heads,
            d_mlp=d_mlp if d_mlp is not None else default_d_mlp(b.family, d_model, self.mlp_ratio),
        )

    def _carry_base(self, model: ModelConfig) -> ModelConfig:
        """A shape rule's model with base.model's non-shape fields (dropout, rope_theta, ...)."""
        b = self.base.model
        keep = {"n_layers", "d_model", "n_heads", "d_mlp", "vocab_size", "seq_len"}
        keep |= {"tie_embeddings", "family"}
        extra = {f.name: getattr(b, f.name) for f in dataclasses.fields(b) if f.name not in keep}
        return dataclasses.replace(model, **extra)

    def _rule_shape(self, n_params: float) -> ModelConfig:
        if self.shape_rule is None:
            raise SweepSpecError(
                f"{type(self).__name__}.shape_rule is required for parameter-count targets"
            )
        b = self.base.model
        model = self.shape_rule.shape_for(
            n_params, self.n_convention, b.vocab_size, b.seq_len, tie_embeddings=b.tie_embeddings
        )
        model = self._carry_base(model)
        got = count_params(model, self.n_convention)
        if abs(math.log(got / n_params)) > math.log(2):
            raise ShapeRuleError(
                f"the shape rule's nearest shape {shape_tag(model)} has {got:,} "
                f"{self.n_convention} params, {max(got / n_params, n_params / got):.1f}x away "
                f"from the target {n_params:,.0f}; the rule cannot reach this size"
            )
        return model

    def _depth_shape(self, n_layers: int) -> ModelConfig:
        rule = self.shape_rule
        if rule is None or not hasattr(rule, "shape_for_depth"):
            raise SweepSpecError(
                f"{type(self).__name__}.depths needs a shape_rule with shape_for_depth "
                "(e.g. AspectRatioRule)"
            )
        b = self.base.model
        model = rule.shape_for_depth(
            n_layers, b.vocab_size, b.seq_len, tie_embeddings=b.tie_embeddings
        )
        return self._carry_base(model)

    def _variants(
        self, label: str, model: ModelConfig, n_tokens: int, flops_budget: float | None
    ) -> list[Candidate]:
        """One candidate per (LR multiplier, seed) of one point."""
        try:
            lr0 = self.effective_lr_rule.lr_for(model)
        except LRRuleError as e:
            return [Candidate(label, None, str(e))]
        key = point_key(model, n_tokens, flops_budget)
        out = []
        for mult in self.lr_multipliers:
            lr = float(f"{lr0 * mult:.4g}")  # 4 significant digits: clean names, same runs
            for seed in self.seeds_at(flops_budget):
                sub = f"{label} lr={sci_notation(lr)} seed={seed}"
                try:
                    cfg = self.base.replace(
                        model=model,
                        n_tokens=n_tokens,
                        optim=dataclasses.replace(self.base.optim, lr=lr),
                        seed=seed,
                        sweep_name=self.name,
                        flops_budget=flops_budget,
                        point_key=key,
                    )
                except ConfigError as e:
                    out.append(Candidate(sub, None, str(e)))
                    continue
                out.append(Candidate(sub, cfg))
        return out

    def seeds_at(self, flops_budget: float | None) -> tuple[int, ...]:
        """The seeds of a point at ``flops_budget`` (FLOPs; ``None`` off IsoFLOP sweeps)."""
        return self.seeds

    def _round_tokens(self, n_tokens: float) -> int:
        batch = self.base.batch_size_tokens
        steps = round(n_tokens / batch)
        if steps < 1:
            raise ShapeRuleError(
                f"{n_tokens:,.0f} tokens is less than one batch (batch_size_tokens={batch:,}); "
                "raise the budget/tokens or shrink the batch"
            )
        return steps * batch

    # -- the public interface -----------------------------------------------------------------
    def points(self) -> list[tuple[str, Any]]:
        """``(label, (model, n_tokens, flops_budget) | reason)`` per point (family-specific)."""
        raise NotImplementedError

    def candidates(self) -> list[Candidate]:
        """Every planned run (valid or not), in plan order; no cross-run checks."""
        out: list[Candidate] = []
        for label, point in self.points():
            if isinstance(point, str):
                out.append(Candidate(label, None, point))
            else:
                out.extend(self._variants(label, *point))
        return out

    def check(self) -> tuple[list[RunConfig], list[PlanProblem]]:
        """Expand and validate the whole plan.

        Checks every run (shape legal, budget reachable within tolerance, at least one batch,
        LR rule covers the shape, RunConfig valid), then across runs: duplicate run names, and
        epochs over the corpus when ``allow_repetition`` is False or ``max_epochs`` is set.

        Returns:
            ``(configs, problems)``: the valid configs in plan order and all problems found.
        """
        configs: list[RunConfig] = []
        problems: list[PlanProblem] = []
        seen: dict[str, str] = {}
        limit = self.epoch_limit
        corpus = corpus_train_tokens(self.base.data) if limit is not None else None
        candidates = self.candidates()
        if self.branching is not None:  # points become branches off shared WSD trunks
            valid = [(c.label, c.config) for c in candidates if c.config is not None]
            runs, bad = branch_configs(valid, self.branching, run_name)
            candidates = [c for c in candidates if c.config is None]
            candidates += [Candidate(label, None, reason) for label, reason in bad]
            candidates += [Candidate(label, cfg) for label, cfg in runs]
        for c in candidates:
            if c.config is None:
                problems.append(PlanProblem(c.label, str(c.reason)))
                continue
            name = run_name(c.config)
            if name in seen:
                problems.append(
                    PlanProblem(c.label, f"duplicate run name {name} (same config as {seen[name]})")
                )
                continue
            seen[name] = c.label
            if corpus is not None and limit is not None and c.config.n_tokens > limit * corpus:
                problems.append(PlanProblem(c.label, self._epochs_reason(c.config, corpus)))
                continue
            configs.append(c.config)
        by_name = {run_name(c): c for c in configs}
        for name, reason in check_lineage(configs, run_name):
            problems.append(PlanProblem(seen[name], reason))
            configs.remove(by_name[name])
        return configs, problems

    @property
    def epoch_limit(self) -> float | None:
        """Most passes over the training corpus a run may take (None: no limit).

        ``1`` when ``allow_repetition`` is False, else ``max_epochs``; the smaller when both.
        """
        limits = [x for x in (None if self.allow_repetition else 1.0, self.max_epochs) if x]
        return min(limits) if limits else None

    def _epochs_reason(self, cfg: RunConfig, corpus: int) -> str:
        if not self.allow_repetition and cfg.n_tokens > corpus:
            return (
                f"n_tokens={cfg.n_tokens:,} exceeds the training corpus (~{corpus:,} tokens) and "
                "allow_repetition=False; use fewer tokens, more data, or allow_repetition=True"
            )
        return (
            f"n_tokens={cfg.n_tokens:,} is {cfg.n_tokens / corpus:.2f} epochs of the training "
            f"corpus (~{corpus:,} tokens), over max_epochs={self.max_epochs:g}; use fewer "
            "tokens, a larger corpus, or a higher max_epochs"
        )

    def expand(self) -> list[RunConfig]:
        """Fully resolved configs (explicit shape and ``n_tokens``), in plan order.

        Raises:
            PlanError: listing every invalid run with its reason.
        """
        configs, problems = self.check()
        if problems:
            raise PlanError(problems)
        return configs

    def run_name(self, cfg: RunConfig) -> str:
        """Deterministic run name of ``cfg`` (see module-level ``run_name``)."""
        return run_name(cfg)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description of the spec (for ``sweep.json``)."""
        d: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if (f.name in ("branching", "group_size") and value is None) or (
                f.name == "seeds_by_budget" and not value
            ):
                continue  # sweeps without these keep the sweep.json they had
            if isinstance(value, RunConfig):
                value = value.to_dict()
            elif hasattr(value, "to_dict"):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            d[f.name] = value
        if self.lr_rule is None:
            d["lr_rule"] = self.effective_lr_rule.to_dict()
        return d


# -------------------------------------------------------------------------------------------
# IsoFLOP
# -------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class IsoFlopSweep(SweepSpec):
    """Compute budgets x model sizes; ``n_tokens`` solved so each run spends its budget.

    Give exactly one size axis: ``depths`` (with a shape rule that has ``shape_for_depth``),
    ``shapes`` (explicit ``(n_layers, d_model, n_heads)``; ``d_mlp = mlp_ratio * d_model``) or
    ``n_params`` (targets in ``n_convention``, with a shape rule).

    ``n_tokens = round(C / flops_per_token(model) / batch) * batch`` where ``flops_per_token`` is
    Chinchilla App. F training FLOPs per token (no embedding matmul, LM head included). A run is
    invalid if that misses C by more than ``budget_tolerance`` (relative).

    Attributes:
        budgets: compute budgets C in FLOPs.
        depths: depth axis.
        shapes: explicit shape axis.
        n_params: parameter-count axis.
        budget_tolerance: largest allowed ``|training_flops / C - 1|``.
        tokens_per_param_range: optional ``(low, high)`` window on D/N (N in ``n_convention``):
            a (budget, size) point whose solved tokens/param falls outside is not planned. This
            is how IsoFLOP sweeps spend compute near each budget's optimum instead of on models
            that are hopeless at that budget (Hoffmann et al. 2022 chose a different size range
            per budget, Fig. 3); ``scaling sweep plan`` still lists the sizes the window left out.
        seeds_by_budget: ``((C, seeds), ...)``: the seeds of every point at budget C, in place
            of ``seeds`` there. Seed noise is largest at the smallest budgets (fewest steps),
            which are also the cheapest to repeat; fits average the seeds of a point
            (``analysis.load``). Each C must be one of ``budgets``.
    """

    kind: ClassVar[str] = "isoflop"

    budgets: tuple[float, ...]
    depths: tuple[int, ...] = ()
    shapes: tuple[tuple[int, int, int], ...] = ()
    n_params: tuple[float, ...] = ()
    budget_tolerance: float = 0.01
    tokens_per_param_range: tuple[float, float] | None = None
    seeds_by_budget: tuple[tuple[float, tuple[int, ...]], ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        pairs = []
        for pair in self.seeds_by_budget:
            try:
                budget, seeds = float(pair[0]), tuple(pair[1])
                ok = len(pair) == 2 and all(
                    isinstance(x, int) and not isinstance(x, bool) for x in seeds
                )
            except (TypeError, ValueError, IndexError):
                ok = False
            if not ok:
                raise SweepSpecError(
                    "IsoFlopSweep.seeds_by_budget entries must be (budget, seeds) with budget in "
                    f"FLOPs and seeds a tuple of ints, e.g. (6e10, (0, 1)); got {pair!r}"
                )
            if budget not in self.budgets:
                raise SweepSpecError(
                    f"IsoFlopSweep.seeds_by_budget names budget {budget:g}, which is not in "
                    f"budgets {tuple(self.budgets)}; use one of them"
                )
            if not seeds or len(set(seeds)) != len(seeds):
                raise SweepSpecError(
                    f"IsoFlopSweep.seeds_by_budget: the seeds at {budget:g} must be a non-empty "
                    f"tuple without repeats, got {seeds!r}"
                )
            pairs.append((budget, seeds))
        if len({b for b, _ in pairs}) != len(pairs):
            raise SweepSpecError("IsoFlopSweep.seeds_by_budget names a budget twice")
        object.__setattr__(self, "seeds_by_budget", tuple(pairs))
        if self.tokens_per_param_range is not None:
            window = tuple(self.tokens_per_param_range)
            if len(window) != 2 or not (0 < window[0] < window[1]):
                raise SweepSpecError(
                    "IsoFlopSweep.tokens_per_param_range must be (low, high) with 0 < low < high, "
                    f"got {self.tokens_per_param_range}"
                )
            object.__setattr__(self, "tokens_per_param_range", window)
        for name in ("budgets", "depths", "n_params"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        object.__setattr__(self, "shapes", tuple(tuple(s) for s in self.shapes))
        if not self.budgets or any(not (b > 0) for b in self.budgets):
            raise SweepSpecError(f"IsoFlopSweep.budgets must be positive FLOPs, got {self.budgets}")
        axes = [a for a in ("depths", "shapes", "n_params") if getattr(self, a)]
        if len(axes) != 1:
            raise SweepSpecError(
                "IsoFlopSweep needs exactly one size axis among depths, shapes, n_params; "
                f"got {axes or 'none'}"
            )
        if any(len(s) != 3 for s in self.shapes):
            raise SweepSpecError("IsoFlopSweep.shapes entries must be (n_layers, d_model, n_heads)")

    def seeds_at(self, flops_budget: float | None) -> tuple[int, ...]:
        """``seeds_by_budget``'s seeds at ``flops_budget``, else ``seeds``."""
        return dict(self.seeds_by_budget).get(flops_budget, self.seeds)

    def _size_axis(self) -> list[tuple[str, ModelConfig | str]]:
        out: list[tuple[str, ModelConfig | str]] = []
        for depth in self.depths:
            out.append((f"depth={depth}", _value_or_error(lambda d=depth: self._depth_shape(d))))
        for shape in self.shapes:
            out.append((f"shape={shape}", _value_or_error(lambda s=shape: self._model(*s))))
        for n in self.n_params:
            out.append(
                (f"n_params={sci_notation(n)}", _value_or_error(lambda n=n: self._rule_shape(n)))
            )
        return out

    def points(self) -> list[tuple[str, Any]]:
        """One point per (budget, size)."""
        out: list[tuple[str, Any]] = []
        batch = self.base.batch_size_tokens
        for budget in self.budgets:
            for size_label, model in self._size_axis():
                label = f"C={sci_notation(budget)} {size_label}"
                if isinstance(model, str):
                    out.append((label, model))
                    continue
                fpt = flops_per_token(model)
                steps = round(budget / fpt / batch)
                if steps < 1:
                    out.append(
                        (
                            label,
                            f"budget C={sci_notation(budget)} is too small for one batch of "
                            f"{shape_tag(model)} (one step costs "
                            f"{sci_notation(fpt * batch)} FLOPs); "
                            "raise the budget, shrink the model or the batch",
                        )
                    )
                    continue
                n_tokens = steps * batch
                miss = training_flops(model, n_tokens) / budget - 1
                if abs(miss) > self.budget_tolerance:
                    out.append(
                        (
                            label,
                            f"rounding to whole batches misses budget C={sci_notation(budget)} by "
                            f"{100 * miss:+.1f}% ({steps} steps of {batch} tokens); tolerance "
                            f"{100 * self.budget_tolerance:g}%: raise the budget or shrink "
                            "batch_size_tokens",
                        )
                    )
                    continue
                if not self._in_window(model, n_tokens):
                    continue
                out.append((label, (model, n_tokens, float(budget))))
        return out

    def _in_window(self, model: ModelConfig, n_tokens: int) -> bool:
        if self.tokens_per_param_range is None:
            return True
        low, high = self.tokens_per_param_range
        return low <= n_tokens / count_params(model, self.n_convention) <= high

    def outside_window(self) -> list[str]:
        """Labels of the (budget, size) points that ``tokens_per_param_range`` leaves out."""
        if self.tokens_per_param_range is None:
            return []
        window = dataclasses.replace(self, tokens_per_param_range=None)
        planned = {label for label, _ in self.points()}
        return [label for label, _ in window.points() if label not in planned]


# -------------------------------------------------------------------------------------------
# Grid
# -------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class GridSweep(SweepSpec):
    """Widths x depths x token counts (or tokens-per-parameter multiples).

    ``n_heads = d_model // d_head``; a width not divisible by ``d_head`` is an invalid run.
    Token counts are rounded to whole batches. ``tokens_per_param`` multiplies the exact count in
    ``n_convention``.

    Attributes:
        widths: ``d_model`` values.
        depths: ``n_layers`` values.
        d_head: per-head width.
        n_tokens: explicit token counts (exclusive with ``tokens_per_param``).
        tokens_per_param: D/N ratios.
    """

    kind: ClassVar[str] = "grid"

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    d_head: int = 16
    n_tokens: tuple[int, ...] = ()
    tokens_per_param: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("widths", "depths", "n_tokens", "tokens_per_param"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        if not self.widths or not self.depths:
            raise SweepSpecError("GridSweep.widths and GridSweep.depths must be non-empty")
        if bool(self.n_tokens) == bool(self.tokens_per_param):
            raise SweepSpecError(
                "GridSweep needs exactly one of n_tokens or tokens_per_param (non-empty)"
            )

    def points(self) -> list[tuple[str, Any]]:
        """One point per (width, depth, token amount)."""
        out: list[tuple[str, Any]] = []
        for width in self.widths:
            for depth in self.depths:
                label = f"d_model={width} n_layers={depth}"
                if width % self.d_head:
                    out.append(
                        (
                            label,
                            f"d_model={width} is not divisible by d_head={self.d_head}; "
                            "choose a width that is a multiple of d_head",
                        )
                    )
                    continue
                model = _value_or_error(
                    lambda w=width, d=depth: self._model(d, w, w // self.d_head)
                )
                if isinstance(model, str):
                    out.append((label, model))
                    continue
                amounts = [(f"D={sci_notation(d)}", float(d)) for d in self.n_tokens]
                n = count_params(model, self.n_convention)
                amounts += [(f"D/N={r:g}", r * n) for r in self.tokens_per_param]
                for tag, tokens in amounts:
                    n_tok = _value_or_error(lambda t=tokens: self._round_tokens(t))
                    point = n_tok if isinstance(n_tok, str) else (model, n_tok, None)
                    out.append((f"{label} {tag}", point))
        return out


# -------------------------------------------------------------------------------------------
# Ladder
# -------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class LadderSweep(SweepSpec):
    """Model sizes x multiples of ``base_tokens_per_param`` (OLMo's ladder).

    ``n_tokens = multiple * base_tokens_per_param * N`` rounded to whole batches, where N is the
    exact count in ``n_convention`` (default ``"total"``, Chinchilla's convention for its ~20
    tokens/param). Sizes: ``n_params`` targets or ``depths``, both through ``shape_rule``.

    Attributes:
        n_params: target parameter counts.
        depths: depths (exclusive with ``n_params``).
        multiples: Chinchilla multiples (OLMo: 0.5, 1, 2, 5, 10).
        base_tokens_per_param: tokens per parameter at multiple 1 (Chinchilla: 20).
    """

    kind: ClassVar[str] = "ladder"

    n_convention: NConvention = "total"
    n_params: tuple[float, ...] = ()
    depths: tuple[int, ...] = ()
    multiples: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0)
    base_tokens_per_param: float = 20.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_params", "depths", "multiples"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        if bool(self.n_params) == bool(self.depths):
            raise SweepSpecError("LadderSweep needs exactly one of n_params or depths (non-empty)")
        if not self.multiples or any(not (m > 0) for m in self.multiples):
            raise SweepSpecError(f"LadderSweep.multiples must be positive, got {self.multiples}")
        if not self.base_tokens_per_param > 0:
            raise SweepSpecError("LadderSweep.base_tokens_per_param must be > 0")

    def points(self) -> list[tuple[str, Any]]:
        """One point per (size, multiple)."""
        sizes = [
            (f"n_params={sci_notation(n)}", _value_or_error(lambda n=n: self._rule_shape(n)))
            for n in self.n_params
        ]
        sizes += [
            (f"depth={d}", _value_or_error(lambda d=d: self._depth_shape(d))) for d in self.depths
        ]
        out: list[tuple[str, Any]] = []
        for size_label, model in sizes:
            if isinstance(model, str):
                out.append((size_label, model))
                continue
            n = count_params(model, self.n_convention)
            for mult in self.multiples:
                label = f"{size_label} x{mult:g}"
                tokens = mult * self.base_tokens_per_param * n
                n_tok = _value_or_error(lambda t=tokens: self._round_tokens(t))
                out.append((label, n_tok if isinstance(n_tok, str) else (model, n_tok, None)))
        return out


def _value_or_error(fn) -> Any:
    """Call ``fn``; return its value, or the message of a ValueError it raised."""
    try:
        return fn()
    except ValueError as e:  # ConfigError, ShapeRuleError, SweepSpecError, LRRuleError
        return str(e)


__all__ = [
    "Candidate",
    "GridSweep",
    "IsoFlopSweep",
    "LadderSweep",
    "PlanError",
    "PlanProblem",
    "SweepSpec",
    "SweepSpecError",
    "WsdBranches",
    "check_group_size",
    "config_hash",
    "corpus_train_tokens",
    "point_key",
    "run_name",
    "sci_notation",
]
