"""Group a launch's same-shape runs into batches trained by one process (``scaling.batched``).

Runs whose configs differ only in what ``scaling.batched.GROUP_MAY_DIFFER`` allows (LR and
other optimizer settings, seed, length, bookkeeping) have the same ``group_key`` and may share a
batch. ``group_runs`` cuts each such class into batches of at most ``group_size`` runs, runs of
similar length together (a member leaves the batch when it finishes, so similar lengths keep the
batch full). WSD branches are not grouped (each waits for its own trunk checkpoint, which a batch
would have to wait for all at once); trunks and plain runs are.

The group size comes from ``launch(group_size=...)`` / ``scaling sweep launch --group-size``,
else from the sweep spec's ``group_size`` (``resolve_group_size``); the default is
``default_group_size``: 1 (no batching) on CPU, where batching was measured to
pay nothing at the main job's shapes (``benchmarks/batched_training.py``: the step is bound by
kernels whose cost is linear in tokens, not by per-op overhead), and ``CUDA_GROUP_SIZE`` on a
GPU, where small models leave the device idle between kernel launches (HFTA, Wang et al. 2021).

Every launch that batches appends its groups to ``<sweep>/batches.jsonl`` (one JSON object per
launch: time, group size, groups of run names), so ``scaling sweep status`` can name each run's
batch; the run directories themselves are exactly those of runs trained alone.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from scaling import rundir
from scaling.batched import group_key
from scaling.config import RunConfig
from sweeps.spec import check_group_size

BATCHES_JSONL = "batches.jsonl"
#: runs per batch on a CUDA device when no group size is given (not measured here: no GPU)
CUDA_GROUP_SIZE = 8
#: runs per batch on CPU when no group size is given: batching measured ~1.0x (module docstring)
CPU_GROUP_SIZE = 1


def default_group_size(cfg: RunConfig, cuda: bool | None = None) -> int:
    """Runs per batch for ``cfg``'s device: ``CUDA_GROUP_SIZE`` on CUDA, ``CPU_GROUP_SIZE`` else.

    Args:
        cfg: a run's config; its ``device`` decides.
        cuda: for ``device="auto"``: whether the runs will see a CUDA device (the Slurm
            executor passes whether it asks for GPUs: the launching machine may have none);
            ``None``: whether torch sees one here (torch is imported then).
    """
    device = cfg.device
    if device == "auto":
        if cuda is None:
            import torch

            cuda = torch.cuda.is_available()
        device = "cuda" if cuda else "cpu"
    return CUDA_GROUP_SIZE if device == "cuda" else CPU_GROUP_SIZE


def resolve_group_size(
    flag: int | None, spec_size: int | None, cfg: RunConfig, cuda: bool | None = None
) -> int:
    """The group size a launch or plan uses: the flag, else the spec's, else the device default.

    Args:
        flag: ``--group-size`` / ``launch(group_size=)``, or ``None``.
        spec_size: the sweep spec's ``group_size``, or ``None``.
        cfg: the first run's config (its device gives the default: ``default_group_size``).
        cuda: passed to ``default_group_size``.

    Raises:
        ValueError: ``flag`` is not a positive integer (naming ``--group-size``).
    """
    check_group_size(flag)
    check_group_size(spec_size, "SweepSpec.group_size")
    if flag is not None:
        return flag
    if spec_size is not None:
        return spec_size
    return default_group_size(cfg, cuda)


def group_runs(configs: list[RunConfig], group_size: int | None = None) -> list[list[int]]:
    """Batches of the runs ``configs`` (indices), in the order of each batch's first run.

    Args:
        configs: the runs' configs.
        group_size: most runs per batch; ``None``: ``default_group_size`` of the first run.

    Returns:
        Lists of indices into ``configs``; every index appears once; a run that cannot share a
        batch (a WSD branch, dropout, ``compile``, or no same-shape partner) is a list of one.
    """
    check_group_size(group_size)
    if not configs:
        return []
    size = group_size if group_size is not None else default_group_size(configs[0])
    classes: dict[str, list[int]] = {}
    singles: list[list[int]] = []
    for i, cfg in enumerate(configs):
        if size == 1 or cfg.branch_from is not None or cfg.model.dropout > 0 or cfg.compile:
            singles.append([i])
        else:
            classes.setdefault(group_key(cfg), []).append(i)
    groups = list(singles)
    for members in classes.values():
        members = sorted(members, key=lambda i: (-configs[i].n_steps, i))  # similar lengths
        groups += [members[k : k + size] for k in range(0, len(members), size)]
    return sorted(groups, key=min)


def record_groups(sweep_dir: str | Path, names: list[list[str]], group_size: int) -> None:
    """Append this launch's batches (run names; only those of two or more) to ``batches.jsonl``."""
    batches = [g for g in names if len(g) > 1]
    if not batches:
        return
    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    line = json.dumps({"at": stamp, "group_size": group_size, "batches": batches})
    with open(Path(sweep_dir) / BATCHES_JSONL, "a") as f:
        f.write(line + "\n")


def batch_labels(sweep_dir: str | Path) -> dict[str, str]:
    """``{run_name: "batch <k> (<n> runs)"}`` from the latest launch that batched (else ``{}``).

    A torn last line (a launch killed while appending) is skipped.
    """
    path = Path(sweep_dir) / BATCHES_JSONL
    if not path.exists():
        return {}
    latest: dict[str, Any] | None = None
    for line in path.read_text().splitlines():
        try:
            latest = json.loads(line)
        except json.JSONDecodeError:
            continue
    if not latest:
        return {}
    return {
        name: f"batch {k + 1} ({len(batch)} runs)"
        for k, batch in enumerate(latest["batches"])
        for name in batch
    }


def member_outcome(run_name: str, run_dir: Path, wall: float, returncode: int) -> Any:
    """The outcome of one member of a batch process that exited with ``returncode``.

    The batch process (``sweeps.execute.run_group``) exits 0 once every member is recorded: a
    summary (complete or diverged), an ``error.txt`` (failed), or neither (its lock was held by
    another launch: running). Any other exit code means the process died (killed, crashed): a
    member without a summary is failed, its ``error.txt`` written here if the process left none.
    """
    from sweeps.execute import RunOutcome

    summary = rundir.read_summary(run_dir)
    run_wall = summary.get("wall_time_s") if summary else None
    if summary is not None:
        return RunOutcome(run_name, str(run_dir), str(summary["status"]), wall, run_wall)
    error_path = run_dir / rundir.ERROR
    if returncode == 0 and not error_path.exists():
        return RunOutcome(run_name, str(run_dir), "running", wall)
    if not error_path.exists():
        how = f"killed by signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
        rundir.write_error(run_dir, f"batch process {how}")
    text = error_path.read_text(errors="replace").strip().splitlines()
    last = next((ln for ln in reversed(text) if ln.strip()), None)
    return RunOutcome(run_name, str(run_dir), "failed", wall, None, last)
