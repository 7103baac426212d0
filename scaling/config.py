"""Typed, frozen run configuration: the single description of one training run.

A ``RunConfig`` is fully resolved before launch (explicit shape, explicit ``n_tokens``); sweeps
build them, ``train(cfg, run_dir)`` consumes them, and ``config.json`` in every run directory is
``RunConfig.to_dict()``. Every dataclass validates itself in ``__post_init__`` and raises
``ConfigError`` (a ``ValueError``) naming the field and the fix. JSON round-trips exactly;
unknown keys are an error naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# family identity (built-in names, the user pattern, default MLP widths) lives in the torch-free
# leaf scaling.families, which imports nothing from scaling; BUILTIN_FAMILIES is re-exported here
from scaling.families import BUILTIN_FAMILIES, USER_FAMILY_RE, default_d_mlp


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the fix."""


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


# Fields added after the first release carry this metadata: ``to_dict()`` leaves them out while
# they hold their default, so configs written before they existed keep their JSON, their config
# hash and therefore their run names (relaunching an old sweep still finds its runs).
OMIT_IF_DEFAULT: dict[str, bool] = {"omit_if_default": True}


def _compact_dict(obj: Any) -> dict[str, Any]:
    """``dataclasses.asdict`` for one level, dropping ``OMIT_IF_DEFAULT`` fields at default."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("omit_if_default"):
            default = (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            )
            if value == default:
                continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = _compact_dict(value)
        elif isinstance(value, tuple):
            value = [_compact_dict(v) if dataclasses.is_dataclass(v) else v for v in value]
        out[f.name] = value
    return out


def _positive_int(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(
            isinstance(value, int) and not isinstance(value, bool) and value > 0,
            f"{type(obj).__name__}.{name} must be a positive integer, got {value!r}",
        )


Parametrization = Literal["sp", "mup", "completep"]


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a decoder-only transformer of one model family (``scaling.models``).

    Attributes:
        n_layers: number of transformer blocks.
        d_model: residual-stream width.
        n_heads: attention heads; ``d_head = d_model // n_heads``.
        d_mlp: hidden width of the MLP. Omitted (``None``), it is resolved at construction to
            the family's default, ``scaling.families.default_d_mlp``: ``4 * d_model`` for
            ``gpt2``; for ``llama`` (SwiGLU) ``8/3 * d_model`` rounded to the nearest multiple
            of 32. The resolved value is what ``to_dict()`` writes.
        vocab_size: number of token ids (256 for the default byte-level tokenizer).
        seq_len: context length in tokens.
        tie_embeddings: share the token-embedding matrix with the LM head.
        dropout: dropout probability on attention and residual branches (0 for scaling runs).
        family: ``"gpt2"`` (``scaling.models.gpt2.GPT``: learned positions, LayerNorm, GELU),
            ``"llama"`` (``scaling.models.llama``: rotary positions, RMSNorm, SwiGLU, no
            biases) or a user's own family ``"package.module:attribute"`` (see
            ``scaling.families``).
        rope_theta: ``llama``: base of the rotary-position frequencies (Su et al. 2021; 10000
            in Llama 2, 500000 in Llama 3).
        qk_norm: ``llama``: RMSNorm on queries and keys per head before attention (OLMo 2).
        parametrization: ``"sp"`` (standard, GPT-2), ``"mup"`` (Yang et al. 2022) or
            ``"completep"`` (Dey et al. 2025); the rules are in ``scaling.parametrization``.
        base_d_model: ``mup``/``completep``: the width at which the hyperparameters were tuned
            (there the width rules equal SP's); must be omitted for ``sp``.
        base_n_layers: ``completep``: the depth at which the hyperparameters were tuned; must
            be omitted otherwise.
        init_std: sigma, the base initialisation standard deviation (default 0.02, GPT-2's);
            every matrix's init std is sigma times its parametrization's factor (the table in
            ``scaling.parametrization``). Under muP / CompleteP it is the base width's init,
            a tunable at ``base_d_model`` like the LR (Dey, Anthony & Hestness 2024, "The
            practitioner's guide to muP", sigma_base). Positive and finite; left out of
            ``config.json`` at its default.
    """

    n_layers: int
    d_model: int
    n_heads: int
    d_mlp: int | None = None
    vocab_size: int = 256
    seq_len: int = 256
    tie_embeddings: bool = False
    dropout: float = 0.0
    family: str = field(default="gpt2", metadata=OMIT_IF_DEFAULT)
    rope_theta: float = field(default=10000.0, metadata=OMIT_IF_DEFAULT)
    qk_norm: bool = field(default=False, metadata=OMIT_IF_DEFAULT)
    parametrization: Parametrization = field(default="sp", metadata=OMIT_IF_DEFAULT)
    base_d_model: int | None = field(default=None, metadata=OMIT_IF_DEFAULT)
    base_n_layers: int | None = field(default=None, metadata=OMIT_IF_DEFAULT)
    init_std: float = field(default=0.02, metadata=OMIT_IF_DEFAULT)

    def __post_init__(self) -> None:
        _require(
            isinstance(self.init_std, (int, float))
            and not isinstance(self.init_std, bool)
            and math.isfinite(self.init_std)
            and self.init_std > 0,
            f"ModelConfig.init_std must be a positive finite number (sigma, default 0.02), "
            f"got {self.init_std!r}",
        )
        _require(
            isinstance(self.family, str)
            and (self.family in BUILTIN_FAMILIES or USER_FAMILY_RE.fullmatch(self.family)),
            f"ModelConfig.family must be one of {BUILTIN_FAMILIES} or a user family "
            f"'package.module:attribute', got {self.family!r}",
        )
        _positive_int(self, "n_layers", "d_model", "n_heads", "vocab_size", "seq_len")
        if self.d_mlp is None:
            object.__setattr__(self, "d_mlp", default_d_mlp(self.family, self.d_model))
        _positive_int(self, "d_mlp")
        if self.family == "gpt2":
            _require(
                not self.qk_norm and self.rope_theta == 10000.0,
                "ModelConfig.qk_norm and rope_theta apply to family='llama' (gpt2 has learned "
                "positions and no QK-norm); remove them or set family='llama'",
            )
        if self.family == "llama":
            _require(
                self.d_head % 2 == 0,
                f"ModelConfig d_head = d_model // n_heads = {self.d_head} must be even for rotary "
                "positions (family='llama'); change d_model or n_heads",
            )
        _require(
            isinstance(self.rope_theta, (int, float)) and self.rope_theta > 0,
            f"ModelConfig.rope_theta must be > 0, got {self.rope_theta!r}",
        )
        self._check_parametrization()
        _require(
            self.d_model % self.n_heads == 0,
            f"ModelConfig.d_model={self.d_model} must be divisible by n_heads={self.n_heads}; "
            "choose n_heads dividing d_model",
        )
        _require(
            0.0 <= self.dropout < 1.0, f"ModelConfig.dropout must be in [0, 1), got {self.dropout}"
        )

    def _check_parametrization(self) -> None:
        p = self.parametrization
        _require(
            p in typing.get_args(Parametrization),
            f"ModelConfig.parametrization must be one of {typing.get_args(Parametrization)}, "
            f"got {p!r}",
        )
        # which base fields each parametrization needs (True) or forbids (False)
        needs = {"sp": (False, False), "mup": (True, False), "completep": (True, True)}[p]
        for name, needed in zip(("base_d_model", "base_n_layers"), needs, strict=True):
            value = getattr(self, name)
            if needed:
                _require(
                    value is not None,
                    f"ModelConfig.{name} is required when parametrization={p!r}; give the "
                    f"{'width' if name == 'base_d_model' else 'depth'} the LR was tuned at",
                )
                _positive_int(self, name)
            else:
                _require(
                    value is None,
                    f"ModelConfig.{name} has no effect with parametrization={p!r}; remove it "
                    "or choose a parametrization that uses it",
                )

    @property
    def d_head(self) -> int:
        """Per-head width ``d_model // n_heads``."""
        return self.d_model // self.n_heads


DataSource = Literal["stdlib", "text", "tokens"]


@dataclass(frozen=True)
class DataConfig:
    """Where the tokens come from.

    Attributes:
        source: ``"stdlib"`` (the running interpreter's standard-library ``.py`` files, byte
            tokens), ``"text"`` (a user's text file or folder, byte tokens) or ``"tokens"``
            (token-id shards: a ``scaling prepare`` folder with ``manifest.json``, a nanoGPT
            folder with ``train.bin``/``val.bin``, a folder of llm.c / modded-nanogpt shards,
            or a glob of shards; see ``scaling.data``).
        path: file or folder for ``text``; folder or glob of training shards for ``tokens``;
            must be ``None`` for ``stdlib``.
        val_path: ``tokens`` only: folder or glob of validation shards, needed when ``path``
            is a glob (a folder's own manifest or file names say which shards validate).
        include_tests: ``stdlib`` only: also use the ``test``/``tests`` folders (~30 MB vs ~12 MB).
        val_fraction: fraction of files (``stdlib``/``text`` folders) or of the byte stream (a
            single text file) held out for validation, chosen deterministically.
        val_tokens: number of validation tokens evaluated at every evaluation (fixed set, the
            same for every run on the same data).
    """

    source: DataSource = "stdlib"
    path: str | None = None
    include_tests: bool = False
    val_fraction: float = 0.04
    val_tokens: int = 65536
    val_path: str | None = field(default=None, metadata=OMIT_IF_DEFAULT)

    def __post_init__(self) -> None:
        _require(
            self.source in typing.get_args(DataSource),
            f"DataConfig.source must be one of {typing.get_args(DataSource)}, got {self.source!r}",
        )
        if self.source == "stdlib":
            _require(self.path is None, "DataConfig.path must be omitted when source='stdlib'")
        else:
            _require(
                bool(self.path),
                f"DataConfig.path is required when source={self.source!r}; give a file or folder",
            )
        _require(
            0.0 < self.val_fraction < 0.5,
            f"DataConfig.val_fraction must be in (0, 0.5), got {self.val_fraction}",
        )
        _positive_int(self, "val_tokens")
        if self.val_path is not None:
            _require(
                self.source == "tokens" and bool(self.val_path),
                "DataConfig.val_path applies to source='tokens' only; remove it",
            )


OptimizerName = Literal["adamw", "sgd"]
ScheduleName = Literal["cosine", "wsd", "constant"]
DecayShape = Literal["linear", "1-sqrt"]


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule.

    Defaults follow common scaling-law practice (Hoffmann et al. 2022; nanoGPT): AdamW with
    betas (0.9, 0.95), weight decay 0.1 on matrices only (not on embeddings' biases, norms or
    gains; see ``scaling.optim``), gradient clipping at global norm 1.0, linear warmup then cosine
    decay to ``min_lr_ratio * lr`` over the run's own length.

    Attributes:
        optimizer: ``"adamw"`` or ``"sgd"`` (SGD with momentum).
        lr: peak learning rate.
        betas: AdamW (beta1, beta2).
        eps: AdamW epsilon.
        weight_decay: decoupled weight decay on 2-D weight matrices.
        momentum: SGD momentum.
        grad_clip: max global L2 norm of gradients; 0 disables clipping.
        schedule: ``"cosine"``, ``"wsd"`` (warmup-stable-decay) or ``"constant"``.
        warmup_fraction: fraction of the run's steps spent in linear warmup.
        min_lr_ratio: final learning rate as a fraction of ``lr`` (cosine and wsd).
        decay_fraction: ``wsd`` only: fraction of steps in the final decay phase.
        decay_shape: ``wsd`` only: ``"linear"`` or ``"1-sqrt"`` (Hägele et al. 2024).
    """

    optimizer: OptimizerName = "adamw"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.1
    momentum: float = 0.9
    grad_clip: float = 1.0
    schedule: ScheduleName = "cosine"
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    decay_fraction: float = 0.2
    decay_shape: DecayShape = "linear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        _require(
            self.optimizer in typing.get_args(OptimizerName),
            f"OptimConfig.optimizer must be one of {typing.get_args(OptimizerName)}, "
            f"got {self.optimizer!r}",
        )
        _require(
            self.schedule in typing.get_args(ScheduleName),
            f"OptimConfig.schedule must be one of {typing.get_args(ScheduleName)}, "
            f"got {self.schedule!r}",
        )
        _require(
            self.decay_shape in typing.get_args(DecayShape),
            f"OptimConfig.decay_shape must be one of {typing.get_args(DecayShape)}, "
            f"got {self.decay_shape!r}",
        )
        _require(self.lr > 0, f"OptimConfig.lr must be > 0, got {self.lr}")
        _require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"OptimConfig.betas must be two numbers in [0, 1), got {self.betas}",
        )
        _require(
            self.weight_decay >= 0,
            f"OptimConfig.weight_decay must be >= 0, got {self.weight_decay}",
        )
        _require(
            self.grad_clip >= 0,
            f"OptimConfig.grad_clip must be >= 0 (0 disables), got {self.grad_clip}",
        )
        _require(
            0 <= self.warmup_fraction < 1,
            f"OptimConfig.warmup_fraction must be in [0, 1), got {self.warmup_fraction}",
        )
        _require(
            0 <= self.min_lr_ratio <= 1,
            f"OptimConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}",
        )
        _require(
            0 < self.decay_fraction <= 1,
            f"OptimConfig.decay_fraction must be in (0, 1], got {self.decay_fraction}",
        )
        if self.schedule == "wsd":
            _require(
                self.warmup_fraction + self.decay_fraction <= 1,
                "OptimConfig.warmup_fraction + decay_fraction must be <= 1 for schedule='wsd'",
            )


@dataclass(frozen=True)
class BranchFrom:
    """Where a branch run starts: its parent (trunk) run and the parent's optimizer step.

    A branch (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed
    Training Durations", Sec. 3: a warmup-stable-decay trunk with cooldowns branched off it)
    loads ``checkpoint-step<step>.pt`` from the parent's run directory, which is the sibling
    folder ``<run_dir>/../<run_name>`` (both runs belong to one sweep directory), and trains on
    from step ``step + 1`` to its own ``n_steps``; its steps and tokens count from the parent's
    start.

    Attributes:
        run_name: the parent run's name (its run directory's name).
        step: the parent's optimizer step to start from (``>= 1``).
    """

    run_name: str
    step: int

    def __post_init__(self) -> None:
        _require(
            isinstance(self.run_name, str) and bool(self.run_name) and "/" not in self.run_name,
            f"BranchFrom.run_name must be a run name (no '/'), got {self.run_name!r}",
        )
        _positive_int(self, "step")


Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16"]
WandbMode = Literal["offline", "online", "disabled"]


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run.

    Attributes:
        model: the architecture.
        data: the corpus.
        optim: optimizer and schedule.
        n_tokens: D, training tokens; rounded down to whole steps of ``batch_size_tokens``.
        batch_size_tokens: tokens per optimizer step (a multiple of ``micro_batch_size * seq_len``;
            gradient accumulation covers the rest).
        micro_batch_size: *sequences* (of ``seq_len`` tokens each, not tokens) per
            forward/backward pass (memory knob only; results do not depend on it beyond float
            rounding). ``batch_size_tokens`` counts tokens, this counts sequences.
        seed: seeds initialisation and the batch order; batches are a pure function of
            (seed, step).
        eval_interval_tokens: evaluate validation loss every this many training tokens (and at
            the end).
        log_interval_steps: write a ``metrics.jsonl`` row every this many steps (and at the end).
        checkpoint_interval_steps: write ``checkpoint.pt`` every this many steps (and at the end).
        device: ``"auto"`` picks CUDA when available, else CPU.
        precision: ``"auto"`` is bf16 autocast on CUDA and fp32 on CPU.
        compile: wrap the model in ``torch.compile``.
        n_threads: torch intra-op threads on CPU (1 is fastest for small models when several
            runs share a machine).
        wandb_mode: ``"offline"`` (default), ``"online"`` or ``"disabled"``; wandb only mirrors
            ``metrics.jsonl``.
        wandb_project: wandb project name.
        sweep_name: sweep this run belongs to (its wandb group), or ``None``.
        flops_budget: the IsoFLOP budget label C in FLOPs, or ``None`` outside IsoFLOP sweeps.
        point_key: runs that are LR or seed variants of one (shape, budget) point share it.
        keep_checkpoint_steps: steps after which a copy of the checkpoint is kept as
            ``checkpoint-step<N>.pt`` (a WSD trunk's branch points; ``scaling.rundir``).
        branch_from: start from another run's kept checkpoint (a WSD branch); ``None`` trains
            from initialisation.
    """

    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    n_tokens: int = 1_048_576
    batch_size_tokens: int = 4096
    # counts sequences, not tokens; the name stays: it is in every config.json and run-name hash
    micro_batch_size: int = 16
    seed: int = 0
    eval_interval_tokens: int = 262_144
    log_interval_steps: int = 10
    checkpoint_interval_steps: int = 200
    device: Device = "auto"
    precision: Precision = "auto"
    compile: bool = False
    n_threads: int = 1
    wandb_mode: WandbMode = "offline"
    wandb_project: str = "scaling"
    sweep_name: str | None = None
    flops_budget: float | None = None
    point_key: str | None = None
    keep_checkpoint_steps: tuple[int, ...] = field(default=(), metadata=OMIT_IF_DEFAULT)
    branch_from: BranchFrom | None = field(default=None, metadata=OMIT_IF_DEFAULT)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_checkpoint_steps", tuple(self.keep_checkpoint_steps))
        if isinstance(self.branch_from, dict):
            object.__setattr__(
                self, "branch_from", _build(BranchFrom, self.branch_from, "branch_from.")
            )
        _require(isinstance(self.model, ModelConfig), "RunConfig.model must be a ModelConfig")
        _require(isinstance(self.data, DataConfig), "RunConfig.data must be a DataConfig")
        _require(isinstance(self.optim, OptimConfig), "RunConfig.optim must be an OptimConfig")
        _positive_int(
            self,
            "n_tokens",
            "batch_size_tokens",
            "micro_batch_size",
            "eval_interval_tokens",
            "log_interval_steps",
            "checkpoint_interval_steps",
            "n_threads",
        )
        micro_tokens = self.micro_batch_size * self.model.seq_len
        _require(
            self.batch_size_tokens % micro_tokens == 0,
            f"RunConfig.batch_size_tokens={self.batch_size_tokens} must be a multiple of "
            f"micro_batch_size (sequences) * seq_len = {micro_tokens} tokens; "
            "change batch_size_tokens or micro_batch_size",
        )
        _require(
            self.n_tokens >= self.batch_size_tokens,
            f"RunConfig.n_tokens={self.n_tokens} is less than one batch "
            f"(batch_size_tokens={self.batch_size_tokens}); raise n_tokens or shrink the batch",
        )
        _require(
            self.device in typing.get_args(Device),
            f"RunConfig.device must be one of {typing.get_args(Device)}",
        )
        _require(
            self.precision in typing.get_args(Precision),
            f"RunConfig.precision must be one of {typing.get_args(Precision)}",
        )
        _require(
            self.wandb_mode in typing.get_args(WandbMode),
            f"RunConfig.wandb_mode must be one of {typing.get_args(WandbMode)}",
        )
        _require(
            self.model.parametrization == "sp" or self.optim.optimizer == "adamw",
            f"parametrization={self.model.parametrization!r} implements the rules for Adam "
            "(scaling.parametrization); use optim.optimizer='adamw' or parametrization='sp'",
        )
        if self.flops_budget is not None:
            _require(
                self.flops_budget > 0,
                f"RunConfig.flops_budget must be > 0, got {self.flops_budget}",
            )
        keep = self.keep_checkpoint_steps
        _require(
            all(isinstance(k, int) and not isinstance(k, bool) for k in keep)
            and list(keep) == sorted(set(keep))
            and all(1 <= k <= self.n_steps for k in keep),
            f"RunConfig.keep_checkpoint_steps must be increasing steps in [1, n_steps="
            f"{self.n_steps}], got {list(keep)}",
        )
        if self.branch_from is not None:
            _require(
                isinstance(self.branch_from, BranchFrom),
                "RunConfig.branch_from must be a BranchFrom(run_name, step)",
            )
            _require(
                self.branch_from.step < self.n_steps,
                f"RunConfig.branch_from.step={self.branch_from.step} must be below the branch's "
                f"own n_steps={self.n_steps}; branch earlier or train the branch longer",
            )

    # -- derived quantities -------------------------------------------------------------------
    @property
    def n_steps(self) -> int:
        """Optimizer steps: ``n_tokens // batch_size_tokens``."""
        return self.n_tokens // self.batch_size_tokens

    @property
    def grad_accum_steps(self) -> int:
        """Micro-batches per optimizer step."""
        return self.batch_size_tokens // (self.micro_batch_size * self.model.seq_len)

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary (nested dicts for model, data, optim).

        Fields marked ``OMIT_IF_DEFAULT`` are left out while they hold their default, so the
        JSON (and the run name's config hash) of a config that does not use them is unchanged.
        """
        return _compact_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Build from ``to_dict()`` output.

        Raises:
            ConfigError: on an unknown key (named, with its section) or an invalid value.
        """
        d = dict(d)
        nested = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig}
        kwargs: dict[str, Any] = {}
        for key, sub_cls in nested.items():
            if key in d:
                kwargs[key] = _build(sub_cls, d.pop(key), section=f"{key}.")
        if "model" not in kwargs:
            raise ConfigError("RunConfig.model is required; give n_layers, d_model, n_heads, d_mlp")
        kwargs.update(_check_keys(cls, d, section="", skip=set(nested)))
        return cls(**kwargs)

    def to_json(self) -> str:
        """Indented JSON text of ``to_dict()``."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json_file(cls, path: str | Path) -> RunConfig:
        """Read a config JSON file.

        Raises:
            ConfigError: the file is missing, not JSON, or holds an invalid config.
        """
        return cls.from_dict(read_json_object(path, "config file"))

    def replace(self, **changes: Any) -> RunConfig:
        """Copy with top-level fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def read_json_object(path: str | Path, label: str) -> dict[str, Any]:
    """Read a JSON file that must hold an object; errors name it as ``"<label> <path>"``.

    Raises:
        ConfigError: the file is missing, is not JSON, or holds something other than an object.
    """
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{label} {path} does not exist; check the path") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{label} {path} is not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{label} {path} must hold a JSON object")
    return d


def _check_keys(
    cls: type, d: dict[str, Any], section: str, skip: set[str] | None = None
) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)} - (skip or set())
    for key in d:
        if key not in names:
            raise ConfigError(
                f"unknown config key {section}{key!r}; "
                f"valid keys in {cls.__name__}: {sorted(names)}"
            )
    return dict(d)


def _build(cls: type, d: Any, section: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"config section {section[:-1]!r} must be a JSON object")
    return cls(**_check_keys(cls, d, section))
