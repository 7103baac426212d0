"""Train K same-shape runs as one stacked model: ``train_batched(cfgs, run_dirs)``.

LR sub-sweeps, seeds and LR probes are runs whose ``RunConfig``s differ only in the learning
rate (or any other optimizer setting), the seed (initialisation and data order), the schedule
or the token count. ``train_batched`` trains such a group in one process, one step at a time
for all members together, and writes each member's run directory exactly as ``train()`` would
(``config.json``, ``metrics.jsonl``, ``checkpoint.pt`` with the same keys, kept
``checkpoint-step<N>.pt``, ``summary.json``): the run-directory contract does not change, and
a member's directory can be resumed by ``train()`` alone (or the other way round).

How (HFTA, Wang et al. 2021, arXiv:2102.02344; ``torch.func``): each member is its family's
own module, seeded, counted and given its own optimizer exactly as in ``train()``. Its
parameters are then made views into one stacked tensor per parameter name (``[K, *shape]``),
and a training step is one ``torch.func.vmap`` of ``torch.func.functional_call`` of the module
over the stack, so every family (gpt2, llama, a user's) runs batched unchanged. One backward of
the members' summed losses leaves member k's gradient in slice k (the members share no
parameter, so the sum couples nothing). Then per member, as in ``train()``: its gradient norm
(``clip_grad_norm`` over its own parameters: a per-member norm, never one over the stack), the
divergence check, its optimizer step at its own schedule's LR, its rows, evaluations and
checkpoints. A member that diverges or reaches its own ``n_steps`` writes its summary and leaves
the batch; the stack is rebuilt from the members still training, and the last member left trains
through its own module, exactly as ``train()`` runs it.

Equality with runs trained alone: same initialisation (the seed before building), same batches
(``get_batch`` is a pure function of ``(seed, step)``), same LR and optimizer arithmetic; only
the forward and backward run as batched kernels, whose summation order may differ. Measured
(``tests/test_batched.py``, fp32 CPU, gpt2 and llama, SP and muP): every logged loss within
1e-5 relative of the member trained alone. Evaluation runs each member's own module on the
validation windows, as ``train()`` does.

Time: rows' ``tokens_per_sec`` is the member's own tokens over the batch's wall time, so the sum
over members is the batch's throughput; ``elapsed_s`` and ``wall_time_s`` are the batch's wall
time (each member's own before a resume). Speed: ``benchmarks/batched_training.py``.

What may differ inside a group (``GROUP_MAY_DIFFER``) and what may not: every field that changes
the computation's shape or the process (model shape, family, parametrization, seq_len, batch,
micro-batch, data, device, precision, compile, threads) must be equal; ``check_group`` refuses a
group that differs in one, naming the field, before anything is written. Dropout must be 0 (the
members' dropout masks would come from one random stream, not each its own seed's), and data
parallelism (``WORLD_SIZE > 1``) is not supported.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling import distributed, models, parametrization, rundir
from scaling.config import ConfigError, RunConfig
from scaling.counting import training_flops
from scaling.data import check_data_for_run, get_batch, load_data, val_batches
from scaling.loggers import make_logger
from scaling.optim import build_optimizer, clip_grad_norm, lr_at, set_lr
from scaling.train import (
    RunSummary,
    _is_eval_step,
    make_summary,
    open_run_dir,
    resolve_device,
    stop_reason,
    tune_allocator,
)

__all__ = ["GROUP_MAY_DIFFER", "check_group", "group_key", "group_mismatches", "train_batched"]

#: ``RunConfig`` fields (top level) that members of one batch may set differently: the optimizer
#: and schedule, the seed, the length, and the bookkeeping. Everything else changes the
#: computation's shape or the process and must be equal.
GROUP_MAY_DIFFER = (
    "optim",
    "seed",
    "n_tokens",
    "eval_interval_tokens",
    "log_interval_steps",
    "checkpoint_interval_steps",
    "wandb_mode",
    "wandb_project",
    "sweep_name",
    "flops_budget",
    "point_key",
    "keep_checkpoint_steps",
    "branch_from",
)

# the one warning vmap gives for our models: torch has no batching rule for the CPU flash
# attention kernel, so vmap calls it once per member (and stacks the results). Measured: the
# kernel's cost is linear in the batch at these shapes (benchmarks/batched_training.py), so the
# per-member loop costs little; the message is filtered only around the batched call
_NO_BATCH_RULE = r"There is a performance drop because we have not yet implemented the batching"


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def group_key(cfg: RunConfig) -> str:
    """A string equal for two configs exactly when they may train in one batch.

    The config without the fields of ``GROUP_MAY_DIFFER``; executors group runs by it.
    """
    d = {k: v for k, v in cfg.to_dict().items() if k not in GROUP_MAY_DIFFER}
    return repr(sorted(_flat(d).items()))


def group_mismatches(cfgs: Sequence[RunConfig]) -> list[str]:
    """Why ``cfgs`` cannot train as one batch: one line per problem, empty when they can.

    Each line names the field: a member that differs from the first in a field outside
    ``GROUP_MAY_DIFFER`` (``"model.d_model: 32 (member 0) != 48 (member 2)"``), dropout above 0,
    or ``compile=True``.
    """
    problems: list[str] = []
    if not cfgs:
        return ["the group is empty; give at least one RunConfig"]
    first = _flat({k: v for k, v in cfgs[0].to_dict().items() if k not in GROUP_MAY_DIFFER})
    for i, cfg in enumerate(cfgs[1:], start=1):
        other = _flat({k: v for k, v in cfg.to_dict().items() if k not in GROUP_MAY_DIFFER})
        for key in sorted(set(first) | set(other)):
            a, b = first.get(key), other.get(key)
            if a != b:
                problems.append(f"{key}: {a!r} (member 0) != {b!r} (member {i})")
    if cfgs[0].model.dropout > 0:
        problems.append(
            f"model.dropout={cfgs[0].model.dropout}: batched members would share one random "
            "stream for their dropout masks; use dropout 0 or train the runs alone"
        )
    if cfgs[0].compile:
        problems.append("compile=True: batched training runs eagerly; train compiled runs alone")
    return problems


def check_group(cfgs: Sequence[RunConfig], run_dirs: Sequence[str | Path]) -> None:
    """Refuse a group that cannot train as one batch, before anything is written.

    Raises:
        ConfigError: ``group_mismatches`` is not empty (the message names the fields, up to
            four, and counts the rest), the lengths differ, or two members share a run
            directory.
    """
    if len(cfgs) != len(run_dirs):
        raise ConfigError(
            f"train_batched: {len(cfgs)} configs but {len(run_dirs)} run directories; give one "
            "run directory per config"
        )
    problems = group_mismatches(cfgs)
    if problems:
        more = f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
        raise ConfigError(
            f"batched group refused: {'; '.join(problems[:4])}{more}; only "
            f"{', '.join(GROUP_MAY_DIFFER)} may differ inside a batch: train the others in "
            "groups of their own"
        )
    resolved = [Path(d).resolve() for d in run_dirs]
    if len(set(resolved)) != len(resolved):
        dup = next(d for d in resolved if resolved.count(d) > 1)
        raise ConfigError(
            f"batched group refused: run directory {dup} appears twice; give each "
            "member its own run directory"
        )


@dataclass
class _Member:
    # one run of the batch: its config, directory, module, optimizer and bookkeeping
    cfg: RunConfig
    run_dir: Path
    model: Any = None
    optimizer: Any = None
    logger: Any = None
    params: dict[str, Any] | None = None  # name -> its Parameter (a view into the stack)
    rng: Any = None  # torch RNG state after initialisation (what train() checkpoints)
    step: int = 0  # optimizer steps done
    elapsed_before: float = 0.0
    loss_sum: float = 0.0
    loss_count: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    val_bpb: float | None = None
    t_row: float = 0.0
    step_row: int = 0
    status: str = "complete"
    diverged_step: int | None = None
    stop_reason: str | None = None
    summary: RunSummary | None = None


def train_batched(
    cfgs: Sequence[RunConfig], run_dirs: Sequence[str | Path], *, progress: bool = True
) -> list[RunSummary]:
    """Train the runs ``cfgs`` (one per directory of ``run_dirs``) together as one batch.

    Each member ends exactly as ``scaling.train.train(cfg, run_dir)`` would end it (same files,
    same rows within float rounding; module docstring). Finished members are returned as they
    are; the others resume from their own ``checkpoint.pt``.

    Args:
        cfgs: K fully resolved configs that may share a batch (``check_group``).
        run_dirs: their K run directories (created; each one's name is its run name).
        progress: show one tqdm bar (steps summed over members) on stderr.

    Returns:
        K ``RunSummary``s in the order of ``cfgs``, each also written to its ``summary.json``;
        a member whose loss or gradient norm becomes non-finite is ``"diverged"`` and the
        others go on.

    Raises:
        ConfigError: the group is refused (``check_group``), a run directory holds a different
            config, CUDA is missing, or ``WORLD_SIZE > 1`` (data parallelism is per run).
        DataError, FamilyError, CheckpointError: as ``train()``, for the first member that has
            the problem (raised before any member trains).
    """
    cfgs = list(cfgs)
    run_dirs = [Path(d) for d in run_dirs]
    check_group(cfgs, run_dirs)
    if distributed.env_from_environ().enabled:
        raise ConfigError(
            "train_batched: WORLD_SIZE > 1; a batch of runs trains in one process, so start it "
            "without torchrun (data parallelism is for one run: scaling.train.train)"
        )

    # -- run directories: refuse a different config; finished members are returned as they are
    members, summaries = [], [None] * len(cfgs)
    for i, (cfg, run_dir) in enumerate(zip(cfgs, run_dirs, strict=True)):
        has_config = rundir.check_config(run_dir, cfg)
        stored = rundir.read_summary(run_dir) if has_config else None
        if stored is not None:
            summaries[i] = RunSummary.from_dict(stored)
        else:
            members.append((i, _Member(cfg, run_dir), has_config))
    if not members:
        return summaries  # type: ignore[return-value]
    shared = members[0][1].cfg
    models.check_family(shared.model)
    device = resolve_device(shared.device)

    # -- data: loaded once, checked for every member before any write -------------------------
    data = load_data(shared.data, shared.model.vocab_size)
    for _, m, _ in members:
        check_data_for_run(data, m.cfg)
    states = [open_run_dir(m.cfg, m.run_dir, data, has_config=h) for _, m, h in members]
    done = _train_members([m for _, m, _ in members], states, data, device, progress)
    for (i, _, _), summary in zip(members, done, strict=True):
        summaries[i] = summary
    return summaries  # type: ignore[return-value]


def _train_members(
    members: list[_Member],
    states: list[tuple[dict[str, Any] | None, bool]],
    data: Any,
    device: str,
    progress: bool,
) -> list[RunSummary]:
    # train_batched() after its checks: build, resume, train the stack, write each summary
    import torch
    from torch.func import functional_call, vmap
    from tqdm.auto import tqdm

    from scaling.models import build_model, check_counts

    shared = members[0].cfg
    device_type = device.split(":")[0]

    # -- device, precision, threads (as train()) ------------------------------------------------
    use_bf16 = shared.precision == "bf16" or (shared.precision == "auto" and device_type == "cuda")
    if device_type == "cpu":
        torch.set_num_threads(shared.n_threads)
        tune_allocator()
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def autocast() -> Any:
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=use_bf16)

    # -- each member: its module (its seed fixes the init), optimizer, resume, logger ---------
    for m, (ckpt, from_parent) in zip(members, states, strict=True):
        cfg = m.cfg
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model)
        check_counts(model, cfg.model)
        m.rng = torch.get_rng_state()  # what train() checkpoints: dropout 0 draws nothing more
        m.model = model.to(device)
        m.optimizer = build_optimizer(
            parametrization.param_groups(
                m.model, cfg.model, weight_decay=cfg.optim.weight_decay, eps=cfg.optim.eps
            ),
            cfg.optim,
            fused=cfg.optim.optimizer == "adamw",
        )
        if ckpt is not None:
            m.model.load_state_dict(ckpt["model"])
            m.optimizer.load_state_dict(ckpt["optimizer"])
            m.rng = ckpt["rng_cpu"]
            m.step = int(ckpt["step"])
            m.loss_sum, m.loss_count = float(ckpt["loss_sum"]), int(ckpt["loss_count"])
            m.train_loss, m.val_loss, m.val_bpb = (
                ckpt["train_loss"],
                ckpt["val_loss"],
                ckpt["val_bpb"],
            )
            if not from_parent:
                m.elapsed_before = float(ckpt["elapsed_s"])
            rundir.truncate_metrics(m.run_dir, 0 if from_parent else int(ckpt["metrics_bytes"]))
        else:
            rundir.truncate_metrics(m.run_dir, 0)
        m.params = dict(m.model.named_parameters())
        m.model.train()

    # the module vmap calls with the stacked parameters (buffers are its own, shared)
    template = copy.deepcopy(members[0].model)
    names = list(members[0].params)

    def restack(active: list[_Member]) -> dict[str, Any]:
        # one [K, *shape] tensor per parameter; each member's parameter becomes its slice k
        stack = {}
        with torch.no_grad():
            for name in names:
                stack[name] = torch.stack([m.params[name].detach() for m in active])
                for k, m in enumerate(active):
                    m.params[name].data = stack[name][k]
        return stack

    def member_loss(params: dict[str, Any], x: Any, y: Any) -> Any:
        return functional_call(template, params, (x, y))[1]

    batched_loss = vmap(member_loss, in_dims=(0, 0, 0))

    @torch.no_grad()
    def evaluate(m: _Member) -> tuple[float, float | None]:
        # train()'s evaluation, on the member's own module (its parameters are the live slices)
        m.model.eval()
        total, n = 0.0, 0
        cfg = m.cfg
        for x, y in val_batches(data, cfg.model.seq_len, cfg.data.val_tokens, cfg.micro_batch_size):
            with autocast():
                _, loss = m.model(x.to(device), y.to(device))
            total += float(loss) * y.numel()
            n += y.numel()
        m.model.train()
        mean = total / n
        bpb = mean / (math.log(2) * data.bytes_per_token) if data.bytes_per_token else None
        return mean, bpb

    def checkpoint(m: _Member, step: int, elapsed: float, path: Path | None = None) -> None:
        # train()'s checkpoint, keys and all; the weights are copied out of the stack so the
        # file holds this member's tensors only (saving a view would save the whole stack)
        rundir.save_checkpoint(
            m.run_dir,
            {
                "step": step,
                "model": {k: v.detach().clone() for k, v in m.model.state_dict().items()},
                "optimizer": m.optimizer.state_dict(),
                "rng_cpu": m.rng,
                "rng_cuda": torch.cuda.get_rng_state_all() if device_type == "cuda" else None,
                "metrics_bytes": rundir.metrics_size(m.run_dir),
                "elapsed_s": elapsed,
                "loss_sum": m.loss_sum,
                "loss_count": m.loss_count,
                "train_loss": m.train_loss,
                "val_loss": m.val_loss,
                "val_bpb": m.val_bpb,
            },
            path=path,
        )

    def finish(m: _Member, now: float) -> None:
        m.logger.close(m.status)
        m.summary = make_summary(
            m.cfg,
            status=m.status,
            step=m.step,
            train_loss=m.train_loss,
            val_loss=m.val_loss,
            val_bpb=m.val_bpb,
            wall_time_s=m.elapsed_before + now - t_start,
            diverged_step=m.diverged_step,
            n_train_tokens=data.info.n_train_tokens,
            stop_reason=m.stop_reason,
        )
        rundir.write_summary(m.run_dir, m.summary.to_dict())

    # -- training loop: one batched forward/backward, then each member's own update ------------
    for m in members:
        m.logger = make_logger(m.cfg, m.run_dir, m.run_dir.name, m.run_dir / rundir.METRICS)
    t_start = time.perf_counter()
    for m in members:
        m.t_row, m.step_row = t_start, m.step
    active = [m for m in members if m.step < m.cfg.n_steps]
    for m in members:
        if m not in active:  # a checkpoint at the last step, killed before the summary
            finish(m, t_start)
    n_micro = shared.grad_accum_steps
    bar = tqdm(
        total=sum(m.cfg.n_steps for m in members),
        initial=sum(m.step for m in members),
        disable=not progress,
        unit="step",
        leave=False,
    )
    try:
        stack = restack(active) if active else {}
        while active:
            lrs = [lr_at(m.step, m.cfg.n_steps, m.cfg.optim) for m in active]
            for m, lr in zip(active, lrs, strict=True):
                set_lr(m.optimizer, lr)
            # one member left (or K = 1): its own module, as train() runs it (no vmap cost)
            alone = active[0].model if len(active) == 1 else None
            leaves = {} if alone else {k: v.detach().requires_grad_() for k, v in stack.items()}
            step_loss_t = torch.zeros(len(active), device=device)
            for micro in range(n_micro):
                batches = [get_batch(data, m.cfg, m.step, micro) for m in active]
                x = torch.stack([b[0] for b in batches]).to(device)
                y = torch.stack([b[1] for b in batches]).to(device)
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", _NO_BATCH_RULE, UserWarning)
                    with autocast():
                        if alone is not None:
                            losses = alone(x[0], y[0])[1].reshape(1)
                        else:
                            losses = batched_loss(leaves, x, y)  # [K] each member's mean loss
                    # member k's gradient lands in slice k: the sum couples no parameters
                    (losses.sum() / n_micro).backward()
                step_loss_t += losses.detach().float() / n_micro
            step_losses = step_loss_t.tolist()  # one host sync per step
            for name, leaf in leaves.items():
                for k, m in enumerate(active):
                    m.params[name].grad = leaf.grad[k]
            leaving = []
            for m, lr, step_loss in zip(active, lrs, step_losses, strict=True):
                if _member_step(m, lr, step_loss, data, evaluate, checkpoint, t_start):
                    leaving.append(m)
            bar.update(len(active) - sum(m.status == "diverged" for m in leaving))
            if leaving:
                now = time.perf_counter()
                for m in leaving:
                    finish(m, now)
                active = [m for m in active if m not in leaving]
                stack = restack(active) if active else {}
    except BaseException:
        bar.close()
        for m in members:
            if m.summary is None:
                with contextlib.suppress(Exception):  # the original error matters more
                    m.logger.close("interrupted")
        raise
    bar.close()
    return [m.summary for m in members]  # type: ignore[misc]


def _member_step(
    m: _Member,
    lr: float,
    step_loss: float,
    data: Any,
    evaluate: Any,
    checkpoint: Any,
    t_start: float,
) -> bool:
    # one member's part of a step after the batched backward, as in train(): norm and clip,
    # divergence check, update, row, evaluation, checkpoints; True when the member leaves
    cfg = m.cfg
    grad_norm = clip_grad_norm(m.model.parameters(), cfg.optim.grad_clip)  # this member's own
    done = m.step + 1
    if not (math.isfinite(step_loss) and math.isfinite(grad_norm)):
        m.status, m.diverged_step = "diverged", done
        m.optimizer.zero_grad(set_to_none=True)
        return True
    m.optimizer.step()
    m.optimizer.zero_grad(set_to_none=True)
    m.step = done
    m.loss_sum, m.loss_count = m.loss_sum + step_loss, m.loss_count + 1
    b = cfg.batch_size_tokens
    is_eval = _is_eval_step(done, cfg)
    if done % cfg.log_interval_steps == 0 or is_eval:
        now = time.perf_counter()
        m.train_loss = m.loss_sum / m.loss_count
        row = {
            "step": done,
            "tokens": done * b,
            "flops": training_flops(cfg.model, done * b),
            "train/loss": m.train_loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens_per_sec": (done - m.step_row) * b / max(now - m.t_row, 1e-9),
            "elapsed_s": m.elapsed_before + now - t_start,
        }
        if is_eval:
            m.val_loss, m.val_bpb = evaluate(m)
            row["val/loss"], row["val/bpb"] = m.val_loss, m.val_bpb
        m.logger.log(row)
        m.loss_sum, m.loss_count = 0.0, 0
        m.t_row, m.step_row = time.perf_counter(), done
    keep = done in cfg.keep_checkpoint_steps
    if keep:  # a branch point: kept once, never overwritten (see rundir)
        kept = rundir.step_checkpoint_path(m.run_dir, done)
        if rundir.checkpoint_problem(kept) is not None:
            checkpoint(m, done, m.elapsed_before + time.perf_counter() - t_start, kept)
    periodic = done % cfg.checkpoint_interval_steps == 0
    if periodic or done == cfg.n_steps or keep:
        checkpoint(m, done, m.elapsed_before + time.perf_counter() - t_start)
    # a stop request (sweeps.early_stop), looked for at the steps train() looks: this member
    # alone leaves with status "stopped", the others go on
    if done < cfg.n_steps and (is_eval or periodic) and rundir.stop_requested(m.run_dir):
        m.status, m.stop_reason = "stopped", stop_reason(m.run_dir)
        if not (periodic or keep):
            checkpoint(m, done, m.elapsed_before + time.perf_counter() - t_start)
        return True
    return done == cfg.n_steps
