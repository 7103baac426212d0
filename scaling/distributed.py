"""Data parallelism for one run across processes: ``torch.nn.parallel.DistributedDataParallel``.

``train()`` runs data-parallel when the process was started by a launcher that sets the
``torchrun`` variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` (plus ``MASTER_ADDR`` and
``MASTER_PORT`` for the rendezvous), for example::

    torchrun --standalone --nproc-per-node 8 -m scaling.cli train --config run.json --run-dir R

or a Slurm job with one task per GPU (``scaling sweep launch --executor slurm
--tasks-per-node 8 --gpus-per-node 8``; ``sweeps.execute.SlurmRun`` calls
``submitit.helpers.TorchDistributedEnvironment().export()``, which sets the same variables).
Without them it is a single process and nothing here is used.

The contract that keeps a data-parallel run *the same run* as a single-process one:

- the global batch is the config's ``batch_size_tokens``; its ``grad_accum_steps``
  micro-batches (a pure function of ``(seed, step)``, ``scaling.data.get_batch``) are dealt
  out round-robin, rank ``r`` taking micro-batches ``r, r + W, r + 2W, ...``, so
  ``grad_accum_steps`` must be a multiple of ``W = world_size`` (checked before any compute);
- each rank scales its loss by ``1 / (grad_accum_steps / W)`` and DDP averages gradients over
  the ``W`` ranks, so the update is the mean over the whole global batch, as on one process;
- the logged training loss is that mean too (one all-reduce per step), so every rank takes the
  same divergence decision; validation windows are dealt out the same way and their loss sums
  all-reduced;
- rank 0 alone writes the run directory (config, metrics, checkpoint, summary) and mirrors to
  wandb; every rank reads the checkpoint on resume.

Results equal the single-process run's up to float summation order (tested on CPU with the
``gloo`` backend and two processes, where the test also records each rank's micro-batches and
checks that every step's are dealt out disjointly, cover the step, and are the same tokens as
on one process). The backend is ``nccl`` on CUDA (one GPU per process,
``cuda:LOCAL_RANK``) and ``gloo`` on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scaling.config import ConfigError, RunConfig

_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a data-parallel run.

    Attributes:
        rank: global process index, ``0 <= rank < world_size``.
        local_rank: index on this node (selects ``cuda:local_rank``).
        world_size: number of processes; 1 means no data parallelism.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True when more than one process trains this run."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes the run directory."""
        return self.rank == 0


def env_from_environ(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Read ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (torchrun's variables).

    Args:
        environ: the environment (default ``os.environ``).

    Returns:
        ``DistEnv()`` (single process) when ``WORLD_SIZE`` is unset or 1.

    Raises:
        ConfigError: a variable is not an integer, ``WORLD_SIZE < 1``, ``RANK`` is outside
            ``[0, WORLD_SIZE)``, or ``WORLD_SIZE > 1`` without ``RANK``.
    """
    environ = os.environ if environ is None else environ
    values = {}
    for name in _VARS:
        raw = environ.get(name)
        if raw is None:
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            raise ConfigError(
                f"environment variable {name}={raw!r} must be an integer; "
                "start data-parallel runs with torchrun, or unset it"
            ) from None
    world = values.get("WORLD_SIZE", 1)
    if world < 1:
        raise ConfigError(f"WORLD_SIZE={world} must be >= 1")
    if world == 1:
        return DistEnv()
    if "RANK" not in values:
        raise ConfigError(f"WORLD_SIZE={world} is set but RANK is not; start with torchrun")
    rank = values["RANK"]
    if not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} must be in [0, WORLD_SIZE={world})")
    return DistEnv(rank=rank, local_rank=values.get("LOCAL_RANK", rank), world_size=world)


def check_run(cfg: RunConfig, env: DistEnv) -> None:
    """Check that ``cfg``'s global batch can be dealt out over ``env.world_size`` processes.

    Raises:
        ConfigError: ``cfg.grad_accum_steps`` is not a multiple of the world size (naming the
            fields to change).
    """
    if cfg.grad_accum_steps % env.world_size:
        raise ConfigError(
            f"batch_size_tokens={cfg.batch_size_tokens} / (micro_batch_size="
            f"{cfg.micro_batch_size} * seq_len={cfg.model.seq_len}) = {cfg.grad_accum_steps} "
            f"micro-batches per step cannot be shared by WORLD_SIZE={env.world_size} processes; "
            f"make it a multiple of {env.world_size} (lower micro_batch_size or raise "
            "batch_size_tokens)"
        )


def micro_steps(cfg: RunConfig, env: DistEnv) -> range:
    """This rank's micro-batch indices of each step: ``range(rank, grad_accum_steps, W)``."""
    return range(env.rank, cfg.grad_accum_steps, env.world_size)


def setup(env: DistEnv, device: str) -> str:
    """Join the process group (``nccl`` on CUDA, ``gloo`` on CPU); return this rank's device.

    A no-op returning ``device`` for a single process. Uses ``MASTER_ADDR``/``MASTER_PORT``
    from the environment (``env://`` rendezvous).
    """
    if not env.enabled:
        return device
    import torch
    import torch.distributed as dist

    if device == "cuda":
        # one GPU per process: cuda:LOCAL_RANK, or cuda:0 where the launcher already narrowed
        # CUDA_VISIBLE_DEVICES to this process's GPU
        index = env.local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        device = f"cuda:{index}"
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device.startswith("cuda") else "gloo",
            rank=env.rank,
            world_size=env.world_size,
        )
    return device


def teardown(env: DistEnv) -> None:
    """Leave the process group (no-op for a single process)."""
    if env.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    """Wait for every rank (no-op for a single process)."""
    if env.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sum(tensor: Any, env: DistEnv) -> Any:
    """Sum ``tensor`` over ranks in place and return it (unchanged for a single process)."""
    if env.enabled:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def wrap_model(model: Any, env: DistEnv, device: str) -> Any:
    """``DistributedDataParallel(model)`` for several processes, else ``model`` itself.

    DDP broadcasts rank 0's parameters at construction, so wrap after loading a checkpoint.
    Buffers are not re-broadcast before every forward (the model's only buffer, the positions,
    is a constant): ``forward_sync_buffers=False`` where this torch has it, else the older
    ``broadcast_buffers=False``.
    """
    if not env.enabled:
        return model
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    params = inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync_buffers = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in params
        else {"broadcast_buffers": False}
    )
    device_ids = [env.local_rank] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=device_ids, **no_sync_buffers)
