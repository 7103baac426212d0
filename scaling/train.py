"""Train one model: ``train(cfg, run_dir) -> RunSummary``, one function top to bottom.

The run directory is the record (``scaling.rundir``): ``config.json`` first, ``metrics.jsonl``
rows while training, ``checkpoint.pt`` every ``checkpoint_interval_steps`` and at the end,
``summary.json`` last. Calling ``train`` again on the same directory resumes from the checkpoint
(model, optimizer, RNG, schedule position and data position, which is just the step because
batches are a pure function of ``(seed, step)``), and the finished curve equals an uninterrupted
run's on CPU. A finished directory is returned as is, with no training work.

WSD trunks and branches (Hägele et al. 2024; ``sweeps.branching``): a run with
``keep_checkpoint_steps`` also writes ``checkpoint-step<N>.pt`` after each of those steps (once;
a resumed trunk does not overwrite a whole one). A run with ``branch_from`` starts from its
parent's (the sibling run directory's) kept checkpoint after checking that the parent has its
shape, data, seed, batch, optimizer and learning rate up to that step
(``scaling.lineage.parent_mismatches``), records the parent and the checkpoint's sha256 in
``config.json``, and trains steps ``step + 1 .. n_steps`` under its own schedule; its rows,
steps, tokens and FLOPs count from the parent's start, its clock from its own.

``metrics.jsonl`` rows come every ``log_interval_steps``, at every evaluation (each
``eval_interval_tokens`` and the last step); ``train/loss`` in a row is the mean training loss
over the steps since the previous row, ``lr`` the schedule's rate at that step (a parameter
group with an ``lr_multiplier``, such as muP's hidden matrices, used that multiple of it;
``config.json`` lists each group's), ``grad_norm`` its pre-clip global gradient norm,
``tokens_per_sec`` the training throughput since the previous row (evaluation time excluded) and
``elapsed_s`` the wall time since the run first started (summed over resumed segments). A loss
or gradient norm that is not finite stops the run as diverged before the update is applied.

Early stopping on request: at every evaluation and checkpoint step the loop looks for
``stop_request.json`` in the run directory (``scaling.rundir``; written by a launcher's
monitor, ``sweeps.early_stop``; ``train`` never decides this itself). If present, the run writes
a checkpoint and ends there with ``status: "stopped"`` and the request's ``stop_reason`` in
``summary.json``: never ``"complete"``, so no fit reads it as a finished point. In a
data-parallel run rank 0 reads the file and all ranks agree through one all-reduce.

Units: losses are mean cross-entropy in nats per token; ``val/bpb`` is bits per byte,
``val/loss / (ln 2 * bytes_per_token)`` (``null`` for token files without a ``scaling prepare``
manifest, whose bytes per token are unknown); ``flops`` are counted training FLOPs (Hoffmann
et al. 2022, App. F, without the embedding lookup; ``scaling.counting.training_flops``) for the
tokens trained so far.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling import distributed, models, parametrization, rundir, runtime
from scaling.config import ConfigError, RunConfig
from scaling.counting import (
    flops_6nd,
    kaplan_flops_per_token,
    param_counts,
    training_flops,
)
from scaling.data import DataError, check_data_for_run, get_batch, load_data, val_batches
from scaling.lineage import parent_mismatches
from scaling.loggers import NullLogger, make_logger
from scaling.optim import build_optimizer, clip_grad_norm, lr_at, set_lr

# summary.json keys that are not Python identifiers
_SLASH_KEYS = {"train_loss": "train/loss", "val_loss": "val/loss", "val_bpb": "val/bpb"}


@dataclass(frozen=True)
class RunSummary:
    """The outcome of one run; ``to_dict()`` is the content of ``summary.json``.

    ``train_loss`` is written as ``train/loss``, ``val_loss`` as ``val/loss``, ``val_bpb`` as
    ``val/bpb``; every other key is the attribute name.

    Attributes:
        status: ``"complete"``, ``"diverged"`` or ``"stopped"`` (ended early on a stop
            request; ``stop_reason`` says why).
        step: last optimizer step done (``n_steps`` when complete).
        n_steps: planned optimizer steps.
        n_tokens: tokens actually trained, ``step * batch_size_tokens``.
        train_loss: mean training loss (nats/token) of the last logged interval; ``None`` if
            diverged before any row.
        val_loss: last validation loss (nats/token); ``None`` if none was done.
        val_bpb: last validation bits per byte; ``None`` if none or unknown.
        n_params_total: all parameters (Chinchilla's N).
        n_params_non_embedding: blocks plus final norm (Kaplan's N).
        n_params_embedding: token embedding.
        n_params_position: position embedding.
        n_params_lm_head: untied LM head (0 when tied).
        flops: counted training FLOPs, ``training_flops(model, n_tokens)`` (App. F, no
            embedding lookup).
        flops_with_embedding: App. F exactly (embedding lookup counted as a matmul).
        flops_6nd: ``6 * n_params_total * n_tokens``.
        flops_6nd_non_embedding: ``6 * n_params_non_embedding * n_tokens``.
        flops_kaplan: Kaplan et al. 2020 Table 1 convention times ``n_tokens``.
        flops_budget: the config's IsoFLOP label, or ``None``.
        tokens_per_param: ``n_tokens / n_params_total``.
        wall_time_s: seconds spent training, summed over resumed segments.
        tokens_per_sec: ``n_tokens / wall_time_s``.
        world_size: data-parallel processes that trained the last segment (1: one process).
        diverged_step: the step (1-based, as in ``metrics.jsonl``) whose loss or gradient was
            non-finite, or ``None``.
        seed: ``RunConfig.seed``.
        lr: peak learning rate.
        n_layers: model shape.
        d_model: model shape.
        n_heads: model shape.
        d_mlp: model shape.
        vocab_size: model shape.
        seq_len: model shape.
        sweep_name: ``RunConfig.sweep_name``.
        point_key: ``RunConfig.point_key``.
        flops_marginal: counted training FLOPs this run itself spent: ``flops`` minus the
            parent's part for a branch (``training_flops(model, n_tokens - parent tokens)``),
            equal to ``flops`` otherwise. ``flops`` is the point as if trained alone (what fits
            use); the sum of ``flops_marginal`` over a sweep is what it cost.
        role: ``"run"``, ``"trunk"`` (keeps checkpoints for branches) or ``"branch"``.
        parent_run: a branch's parent run name, else ``None``.
        parent_step: the parent step a branch started from, else ``None``.
        epochs: ``n_tokens / n_train_tokens`` of the corpus' training split: how many times the
            run saw its training data on average (batches are windows at random offsets, so a
            fraction of an epoch leaves some text unseen and some seen twice). Muennighoff et
            al. 2023 (Fig. 3) find up to ~4 epochs cost little loss. ``None`` in summaries
            written before this field existed.
        stop_reason: why a ``"stopped"`` run was stopped (the stop request's ``reason``), else
            ``None``.
    """

    status: str
    step: int
    n_steps: int
    n_tokens: int
    train_loss: float | None
    val_loss: float | None
    val_bpb: float | None
    n_params_total: int
    n_params_non_embedding: int
    n_params_embedding: int
    n_params_position: int
    n_params_lm_head: int
    flops: int
    flops_with_embedding: int
    flops_6nd: float
    flops_6nd_non_embedding: float
    flops_kaplan: int
    flops_budget: float | None
    tokens_per_param: float
    wall_time_s: float
    tokens_per_sec: float
    world_size: int
    diverged_step: int | None
    seed: int
    lr: float
    n_layers: int
    d_model: int
    n_heads: int
    d_mlp: int
    vocab_size: int
    seq_len: int
    sweep_name: str | None
    point_key: str | None
    flops_marginal: int | None = None
    role: str = "run"
    parent_run: str | None = None
    parent_step: int | None = None
    epochs: float | None = None
    stop_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``summary.json`` content (contract keys)."""
        return {_SLASH_KEYS.get(k, k): v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSummary:
        """Build from ``summary.json`` content (unknown keys are ignored)."""
        inverse = {v: k for k, v in _SLASH_KEYS.items()}
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {"world_size": 1}  # summaries written before data parallelism existed
        kwargs.update({inverse.get(k, k): v for k, v in d.items()})
        return cls(**{k: v for k, v in kwargs.items() if k in names})


def make_summary(
    cfg: RunConfig,
    *,
    status: str,
    step: int,
    train_loss: float | None,
    val_loss: float | None,
    val_bpb: float | None,
    wall_time_s: float,
    diverged_step: int | None,
    world_size: int = 1,
    n_train_tokens: int | None = None,
    stop_reason: str | None = None,
) -> RunSummary:
    """Assemble the ``RunSummary`` of a run that stopped after ``step`` optimizer steps.

    ``n_train_tokens`` (tokens in the corpus' training split) gives ``epochs``; None leaves it
    unknown.
    """
    counts = param_counts(cfg.model)
    n_tokens = step * cfg.batch_size_tokens
    m = cfg.model
    parent = cfg.branch_from
    start_tokens = parent.step * cfg.batch_size_tokens if parent is not None else 0
    role = "branch" if parent is not None else "trunk" if cfg.keep_checkpoint_steps else "run"
    return RunSummary(
        status=status,
        step=step,
        n_steps=cfg.n_steps,
        n_tokens=n_tokens,
        train_loss=train_loss,
        val_loss=val_loss,
        val_bpb=val_bpb,
        n_params_total=counts.total,
        n_params_non_embedding=counts.non_embedding,
        n_params_embedding=counts.embedding,
        n_params_position=counts.position,
        n_params_lm_head=counts.lm_head,
        flops=training_flops(m, n_tokens),
        flops_with_embedding=training_flops(m, n_tokens, include_embedding=True),
        flops_6nd=flops_6nd(counts.total, n_tokens),
        flops_6nd_non_embedding=flops_6nd(counts.non_embedding, n_tokens),
        flops_kaplan=kaplan_flops_per_token(m) * n_tokens,
        flops_budget=cfg.flops_budget,
        tokens_per_param=n_tokens / counts.total,
        wall_time_s=wall_time_s,
        tokens_per_sec=n_tokens / wall_time_s if wall_time_s > 0 else 0.0,
        world_size=world_size,
        diverged_step=diverged_step,
        seed=cfg.seed,
        lr=cfg.optim.lr,
        n_layers=m.n_layers,
        d_model=m.d_model,
        n_heads=m.n_heads,
        d_mlp=m.d_mlp,
        vocab_size=m.vocab_size,
        seq_len=m.seq_len,
        sweep_name=cfg.sweep_name,
        point_key=cfg.point_key,
        flops_marginal=training_flops(m, n_tokens) - training_flops(m, start_tokens),
        role=role,
        parent_run=parent.run_name if parent is not None else None,
        parent_step=parent.step if parent is not None else None,
        epochs=n_tokens / n_train_tokens if n_train_tokens else None,
        stop_reason=stop_reason,
    )


def resolve_device(requested: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``.

    Raises:
        ConfigError: ``"cuda"`` requested without a CUDA device.
    """
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("RunConfig.device='cuda' but no CUDA device is visible; use auto or cpu")
    return requested


def tune_allocator() -> bool:
    """Keep freed tensor memory in glibc's heap instead of returning it to the OS.

    ``mallopt(M_MMAP_THRESHOLD, 1 GiB)`` and ``mallopt(M_TRIM_THRESHOLD, 1 GiB)``: activations
    freed at the end of a step are reused by the next step instead of being unmapped (or trimmed)
    and page-faulted in again: +5-20% tokens/s at d_model 64-128 on one CPU thread, within noise
    at 256 (``benchmarks/train_throughput.py``, eager vs train rows). The same as setting
    ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` in the environment. Process-wide
    and not undone: the process keeps up to 1 GiB of freed memory instead of returning it.

    Returns:
        True when both settings were applied (Linux/glibc); False elsewhere (no effect).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))


def _is_eval_step(done: int, cfg: RunConfig) -> bool:
    # after step `done` (1-based): the token count crossed a multiple of eval_interval_tokens,
    # or this is the last step
    b, e = cfg.batch_size_tokens, cfg.eval_interval_tokens
    return done == cfg.n_steps or (done * b) // e > ((done - 1) * b) // e


def stop_now(run_dir: Path, env: distributed.DistEnv, device: str) -> bool:
    """True when a stop was requested (``stop_request.json``); all data-parallel ranks agree.

    Rank 0 alone reads the run directory; with several processes one all-reduce shares its
    answer, so every rank leaves the loop at the same step.
    """
    asked = env.is_main and rundir.stop_requested(run_dir)
    if not env.enabled:
        return asked
    import torch

    flag = torch.tensor(float(asked), device=device)
    distributed.all_reduce_sum(flag, env)
    return bool(flag.item() > 0)


def stop_reason(run_dir: Path) -> str:
    """The stop request's reason for ``summary.json`` (``"stop requested"`` when it has none)."""
    request = rundir.read_stop_request(run_dir) or {}
    return str(request.get("reason") or "stop requested")


def train(cfg: RunConfig, run_dir: str | Path, *, progress: bool = True) -> RunSummary:
    """Train ``cfg.model`` (its family's module) on ``cfg.data`` for ``cfg.n_steps`` steps.

    The module comes from ``scaling.models.build_model``; its parameter count is checked against
    ``scaling.counting.param_counts`` before training (``FamilyError`` on a mismatch).

    Args:
        cfg: the fully resolved run configuration.
        run_dir: the run directory (created; its name is the run name).
        progress: show a tqdm progress bar (loss, tokens/s, ETA) on stderr.

    Data parallel: started by ``torchrun`` (``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` set), every
    process calls ``train`` with the same arguments and they train one run together under
    ``DistributedDataParallel``, sharing each step's micro-batches; rank 0 alone writes
    ``run_dir`` (``scaling.distributed`` states the contract).

    Returns:
        The ``RunSummary`` also written to ``summary.json``. A run whose loss becomes
        non-finite stops with ``status="diverged"`` (it does not raise).

    Raises:
        ConfigError: ``run_dir`` holds a different config (nothing there is changed), CUDA
            was requested and is missing, ``precision="bf16"`` on hardware without bf16
            (``scaling.runtime.check_precision``; before anything is written), or (data
            parallel) ``grad_accum_steps`` is not a multiple of ``WORLD_SIZE``.
        DataError: the corpus cannot feed this config (raised before anything is written), or
            it changed since the run started.
        FamilyError: ``cfg.model.family`` cannot be imported or built, or its counts disagree
            with its module (raised before anything is written).
        CheckpointError: ``checkpoint.pt`` is corrupt (the file is kept); a branch's parent
            checkpoint is missing, damaged, or changed since the branch started.
        ConfigError: (a branch) the parent run is missing or differs in shape, data, seed,
            batch, optimizer or learning rate before the branch point.
    """
    run_dir = Path(run_dir)
    dist_env = distributed.env_from_environ()
    distributed.check_run(cfg, dist_env)
    is_main = dist_env.is_main  # the only process that writes run_dir

    # -- run directory: refuse a different config; a finished run is returned untouched ----------
    has_config = rundir.check_config(run_dir, cfg)
    if has_config:
        stored_summary = rundir.read_summary(run_dir)
        if stored_summary is not None:
            return RunSummary.from_dict(stored_summary)
    models.check_family(cfg.model)  # importable, and counted as built (FamilyError otherwise)
    device = resolve_device(cfg.device)
    runtime.check_precision(cfg, device)  # bf16 where the hardware has none: refused here

    # -- data: load and check before any compute or any write ---------------------------------
    data = load_data(cfg.data, cfg.model.vocab_size)
    check_data_for_run(data, cfg)
    ckpt, from_parent = open_run_dir(cfg, run_dir, data, has_config=has_config, write=is_main)
    device = distributed.setup(dist_env, device)  # cuda:LOCAL_RANK when data parallel
    try:
        return _train_loop(cfg, run_dir, data, ckpt, from_parent, device, dist_env, progress)
    finally:
        distributed.teardown(dist_env)


def open_run_dir(
    cfg: RunConfig, run_dir: Path, data: Any, *, has_config: bool, write: bool = True
) -> tuple[dict[str, Any] | None, bool]:
    """The state a run starts from, after its checks; writes ``config.json`` on a first start.

    ``train()``'s last step before training, shared with ``scaling.batched``: the stored
    corpus hash is checked, ``checkpoint.pt`` loaded, or (a branch without one) the parent's
    kept checkpoint checked and loaded; then ``config.json`` is written if absent and
    ``error.txt`` removed (only when ``write``; data-parallel peers do not write).

    Args:
        cfg: the run's config (already checked against ``run_dir`` by ``rundir.check_config``).
        run_dir: the run directory.
        data: the loaded corpus (``scaling.data.load_data``), checked for this run.
        has_config: ``run_dir`` already holds this config (a resume).
        write: this process writes the run directory.

    Returns:
        ``(checkpoint state or None, from_parent)``: ``from_parent`` is True when the state is
        a branch's parent checkpoint (a branch's first start).

    Raises:
        DataError: the corpus changed since the run (or its parent) started.
        CheckpointError: ``checkpoint.pt`` or the parent's kept checkpoint is corrupt, missing
            or changed.
        ConfigError: a branch's parent is missing or differs before the branch point.
    """
    ckpt, from_parent, lineage = None, False, None
    if has_config:
        stored = rundir.read_config(run_dir)
        stored_sha = stored.get("data", {}).get("sha256")
        if stored_sha is not None and stored_sha != data.info.sha256:
            raise DataError(
                f"the corpus changed since {run_dir} started (sha256 {stored_sha} -> "
                f"{data.info.sha256}); restore the data or use a new run directory"
            )
        ckpt = rundir.load_checkpoint(run_dir)  # CheckpointError if corrupt; the file is kept
    if ckpt is None and cfg.branch_from is not None:
        # a branch starting (or killed before its first checkpoint): check the parent's shape,
        # data, seed, schedule and checkpoint before anything is written
        lineage, ckpt = _parent_checkpoint(cfg, run_dir, data.info.sha256)
        from_parent = True
        recorded = stored.get("parent", {}).get("checkpoint_sha256") if has_config else None
        if recorded is not None and recorded != lineage["checkpoint_sha256"]:
            raise rundir.CheckpointError(
                f"{lineage['checkpoint']} changed since branch {run_dir} started (sha256 "
                f"{recorded} -> {lineage['checkpoint_sha256']}); delete the branch directory "
                "to start it again from the new checkpoint"
            )
    if not has_config and write:
        rundir.write_config(
            run_dir,
            cfg,
            run_dir.name,
            data.info.to_dict(),
            parent=lineage,
            parametrization=parametrization.describe(cfg),
        )
    if write:
        rundir.clear_error(run_dir)
    return ckpt, from_parent


def parent_dir(cfg: RunConfig, run_dir: str | Path) -> Path:
    """A branch's parent run directory: the sibling ``run_dir/../<branch_from.run_name>``."""
    assert cfg.branch_from is not None
    return Path(run_dir).parent / cfg.branch_from.run_name


def _parent_checkpoint(
    cfg: RunConfig, run_dir: Path, data_sha256: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    # (lineage for config.json, checkpoint state) of a branch's parent, or a clear error
    assert cfg.branch_from is not None
    step = cfg.branch_from.step
    pdir = parent_dir(cfg, run_dir)
    try:
        parent_doc = rundir.read_config(pdir)
    except FileNotFoundError:
        raise ConfigError(
            f"branch {run_dir.name}: its parent run directory {pdir} has no config.json; "
            "train the parent (trunk) first, in the same sweep directory"
        ) from None
    parent_cfg = RunConfig.from_dict(parent_doc["config"])
    problems = parent_mismatches(cfg, parent_cfg)
    if problems:
        raise ConfigError(
            f"branch {run_dir.name} cannot start from {pdir.name}: {'; '.join(problems)}; "
            "branch only from a trunk of the same shape, data and seed"
        )
    parent_sha = parent_doc.get("data", {}).get("sha256")
    if parent_sha is not None and parent_sha != data_sha256:
        raise DataError(
            f"branch {run_dir.name}: the corpus changed since its parent {pdir.name} trained "
            f"(sha256 {parent_sha} -> {data_sha256}); restore the data"
        )
    path = rundir.step_checkpoint_path(pdir, step)
    problem = rundir.checkpoint_problem(path)
    if problem is not None:
        raise rundir.CheckpointError(
            f"branch {run_dir.name} starts from {problem}; let the trunk {pdir.name} reach "
            f"step {step}, or delete its summary.json and checkpoint.pt to retrain it"
        )
    state = rundir.load_checkpoint(pdir, path=path)
    assert state is not None
    if int(state["step"]) != step:
        raise rundir.CheckpointError(
            f"{path} holds step {state['step']}, not {step}; delete it and retrain the trunk"
        )
    lineage = {
        "run_name": pdir.name,
        "step": step,
        "checkpoint": path.name,
        "checkpoint_sha256": rundir.file_sha256(path),
    }
    return lineage, state


def _train_loop(
    cfg: RunConfig,
    run_dir: Path,
    data: Any,
    ckpt: dict[str, Any] | None,
    from_parent: bool,
    device: str,
    dist_env: distributed.DistEnv,
    progress: bool,
) -> RunSummary:
    # train() after its checks: build, resume, train, write the summary (rank 0 writes)
    import torch
    from tqdm.auto import tqdm

    from scaling.models import build_model, check_counts

    run_name, is_main = run_dir.name, dist_env.is_main
    device_type = device.split(":")[0]

    # -- device, precision, threads -------------------------------------------------------------
    use_bf16 = runtime.use_bf16(cfg, device_type)
    if device_type == "cpu":
        torch.set_num_threads(cfg.n_threads)
        tune_allocator()  # keep activations' memory between steps (see the helper)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def autocast() -> Any:
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=use_bf16)

    # -- model and optimizer (the seed fixes the initialisation) ---------------------------------
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)  # the family's module (scaling.models registry)
    check_counts(model, cfg.model)  # the N recorded is the N that trains
    model = model.to(device)
    optimizer = build_optimizer(
        # any model family: roles, LR multipliers, eps and decay from scaling.parametrization
        parametrization.param_groups(
            model, cfg.model, weight_decay=cfg.optim.weight_decay, eps=cfg.optim.eps
        ),
        cfg.optim,
        fused=cfg.optim.optimizer == "adamw",  # torch's fused AdamW runs on CPU and CUDA
    )
    # -- resume: model, optimizer, RNG, step (= data position); drop rows after the checkpoint --
    start_step, elapsed_before = 0, 0.0
    loss_sum, loss_count = 0.0, 0  # training loss accumulated since the last metrics row
    train_loss = val_loss = val_bpb = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if device_type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state_all(ckpt["rng_cuda"])
        start_step = int(ckpt["step"])
        # a branch's first start takes the parent's training-loss accumulator too, so its
        # first row averages the same steps as a run trained alone; its clock and its
        # metrics.jsonl are its own
        loss_sum, loss_count = float(ckpt["loss_sum"]), int(ckpt["loss_count"])
        train_loss, val_loss, val_bpb = ckpt["train_loss"], ckpt["val_loss"], ckpt["val_bpb"]
        if not from_parent:
            elapsed_before = float(ckpt["elapsed_s"])
        if is_main:
            rundir.truncate_metrics(run_dir, 0 if from_parent else int(ckpt["metrics_bytes"]))
    elif is_main:
        rundir.truncate_metrics(run_dir, 0)  # killed before the first checkpoint: start over
    # wrapped after loading the checkpoint: DDP broadcasts rank 0's weights when it is built
    ddp_model = distributed.wrap_model(model, dist_env, device)
    # torch.compile, or eager with one warning where inductor cannot build (scaling.runtime)
    forward = runtime.compile_or_eager(ddp_model, cfg.compile)
    # evaluation runs the eager module: no DDP hooks or collectives inside it, and no second
    # compiled graph (a fraction of a run's tokens, where a compilation costs tens of seconds)
    eval_forward = model
    my_micro_steps = distributed.micro_steps(cfg, dist_env)  # all of them on one process
    n_micro = len(my_micro_steps)

    @torch.no_grad()
    def evaluate() -> tuple[float, float | None]:
        # mean loss over the fixed validation windows, weighted by tokens; data parallel: each
        # rank takes every world_size-th batch and the sums are all-reduced
        model.eval()
        total, n = 0.0, 0
        batches = val_batches(data, cfg.model.seq_len, cfg.data.val_tokens, cfg.micro_batch_size)
        for i, (x, y) in enumerate(batches):
            if i % dist_env.world_size != dist_env.rank:
                continue
            with autocast():
                _, loss = eval_forward(x.to(device), y.to(device))
            total += float(loss) * y.numel()
            n += y.numel()
        model.train()
        if dist_env.enabled:
            sums = torch.tensor([total, n], dtype=torch.float64, device=device)
            total, n = distributed.all_reduce_sum(sums, dist_env).tolist()
        mean = total / n
        bpb = mean / (math.log(2) * data.bytes_per_token) if data.bytes_per_token else None
        return mean, bpb

    def checkpoint(step: int, elapsed: float, path: Path | None = None) -> None:
        rundir.save_checkpoint(
            run_dir,
            {
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state_all() if device_type == "cuda" else None,
                "metrics_bytes": rundir.metrics_size(run_dir),
                "elapsed_s": elapsed,
                "loss_sum": loss_sum,
                "loss_count": loss_count,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_bpb": val_bpb,
            },
            path=path,
        )

    # -- training loop ------------------------------------------------------------------------
    if is_main:
        logger = make_logger(cfg, run_dir, run_name, run_dir / rundir.METRICS)
    else:
        logger = NullLogger()
    n_steps, b = cfg.n_steps, cfg.batch_size_tokens
    keep_steps = set(cfg.keep_checkpoint_steps)
    status, diverged_step, step_done = "complete", None, start_step
    t_start = time.perf_counter()
    t_row, step_row = t_start, start_step  # training-time clock for tokens_per_sec
    bar = tqdm(
        total=n_steps,
        initial=start_step,
        disable=not (progress and is_main),
        unit="step",
        leave=False,
    )
    model.train()
    try:
        for step in range(start_step, n_steps):
            lr = lr_at(step, n_steps, cfg.optim)
            set_lr(optimizer, lr)
            step_loss_t = torch.zeros((), device=device)
            for j, micro in enumerate(my_micro_steps):
                x, y = get_batch(data, cfg, step, micro)
                # data parallel: gradients are all-reduced on this rank's last micro-batch only
                last = j == n_micro - 1
                no_sync = ddp_model.no_sync() if dist_env.enabled and not last else None
                with no_sync or contextlib.nullcontext():
                    with autocast():
                        _, loss = forward(x.to(device), y.to(device))
                    (loss / n_micro).backward()
                step_loss_t += loss.detach().float() / n_micro
            if dist_env.enabled:  # the mean over the global batch, identical on every rank
                distributed.all_reduce_sum(step_loss_t, dist_env).div_(dist_env.world_size)
            step_loss = float(step_loss_t)  # one host sync per step (divergence check)
            grad_norm = clip_grad_norm(model.parameters(), cfg.optim.grad_clip)
            done = step + 1

            # divergence: stop before a non-finite update touches the weights
            if not (math.isfinite(step_loss) and math.isfinite(grad_norm)):
                status, diverged_step = "diverged", done
                optimizer.zero_grad(set_to_none=True)
                break
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step_done = done
            loss_sum, loss_count = loss_sum + step_loss, loss_count + 1
            bar.update(1)

            # metrics row: every log_interval_steps, at every evaluation and at the last step
            is_eval = _is_eval_step(done, cfg)
            if done % cfg.log_interval_steps == 0 or is_eval:
                now = time.perf_counter()
                train_loss = loss_sum / loss_count
                row = {
                    "step": done,
                    "tokens": done * b,
                    "flops": training_flops(cfg.model, done * b),
                    "train/loss": train_loss,
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "tokens_per_sec": (done - step_row) * b / max(now - t_row, 1e-9),
                    "elapsed_s": elapsed_before + now - t_start,
                }
                if is_eval:
                    val_loss, val_bpb = evaluate()
                    row["val/loss"], row["val/bpb"] = val_loss, val_bpb
                logger.log(row)
                bar.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{row['tokens_per_sec']:.0f}")
                loss_sum, loss_count = 0.0, 0
                t_row, step_row = time.perf_counter(), done  # eval time excluded from tok/s

            keep = done in keep_steps
            if is_main and keep:  # a branch point: kept once, never overwritten (see rundir)
                kept = rundir.step_checkpoint_path(run_dir, done)
                if rundir.checkpoint_problem(kept) is not None:
                    checkpoint(done, elapsed_before + time.perf_counter() - t_start, kept)
            periodic = done % cfg.checkpoint_interval_steps == 0
            if is_main and (periodic or done == n_steps or keep):
                checkpoint(done, elapsed_before + time.perf_counter() - t_start)
            # a stop request (sweeps.early_stop), looked for at evaluation and checkpoint steps
            if done < n_steps and (is_eval or periodic) and stop_now(run_dir, dist_env, device):
                status = "stopped"
                if is_main and not (periodic or keep):
                    checkpoint(done, elapsed_before + time.perf_counter() - t_start)
                break
    except BaseException:
        bar.close()
        logger.close("interrupted")
        raise
    bar.close()
    logger.close(status)

    # -- summary: written last; its presence means the run ended -----------------------------
    summary = make_summary(
        cfg,
        status=status,
        step=step_done,
        train_loss=train_loss,
        val_loss=val_loss,
        val_bpb=val_bpb,
        wall_time_s=elapsed_before + time.perf_counter() - t_start,
        diverged_step=diverged_step,
        world_size=dist_env.world_size,
        n_train_tokens=data.info.n_train_tokens,
        stop_reason=stop_reason(run_dir) if status == "stopped" and is_main else None,
    )
    if is_main:
        rundir.write_summary(run_dir, summary.to_dict())
    return summary
