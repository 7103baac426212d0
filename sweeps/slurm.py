"""The Slurm executor: one submitit job array per launch (two with WSD branches).

``run_slurm`` submits the runs a launch has to do as ONE ``map_array`` of ``SlurmRun``
(Checkpointable: requeued on preemption/timeout, resumes from ``checkpoint.pt``), with submitit
files in ``<sweep>/.submitit`` and job ids appended to ``<sweep>/slurm_jobs.jsonl``; WSD
branches go in a second array that depends on the first (why in ``run_slurm``). A batch of
same-shape runs (``sweeps.batches``) is one array task that trains them in one process
(``sweeps.execute.run_group``, the same code as the local executor's batches).
``live_slurm_jobs`` reads that record back so that a relaunch does not resubmit queued runs;
``slurm_parameters`` turns launch options into submitit's. ``sweeps.launch.launch`` is the
entry point.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import io
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from scaling import rundir
from sweeps.execute import LaunchError, RunOutcome, progress_bar
from sweeps.plan import PlannedRun

# Slurm job states in which a submitted job may still train its run
LIVE_SLURM_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SUSPENDED",
        "SIGNALING",
        "STAGE_OUT",
    }
)


def live_slurm_jobs(sweep_dir: str | Path) -> dict[str, str]:
    """``{run_name: job_id}`` for runs whose latest Slurm job (``slurm_jobs.jsonl``) is alive.

    Alive means pending, running or requeued per ``squeue``; such runs are not resubmitted (a
    pending job holds no lock yet). Empty when there is no record or no ``squeue``.
    """
    path = Path(sweep_dir) / "slurm_jobs.jsonl"
    if not path.exists() or shutil.which("squeue") is None:
        return {}
    latest: dict[str, str] = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        latest[rec["run_name"]] = str(rec["job_id"])
    r = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode != 0:
        return {}
    states = dict(ln.split("|", 1) for ln in r.stdout.split() if "|" in ln)
    return {run: jid for run, jid in latest.items() if states.get(jid) in LIVE_SLURM_STATES}


def slurm_parameters(
    partition: str | None = None,
    gpus_per_node: int | None = None,
    cpus_per_task: int | None = None,
    tasks_per_node: int | None = None,
    nodes: int | None = None,
    timeout_min: int = 240,
    signal_delay_s: int | None = None,
    array_parallelism: int | None = None,
    account: str | None = None,
    qos: str | None = None,
    mem_gb: float | None = None,
    slurm_args: dict[str, str] | None = None,
    job_name: str | None = None,
) -> dict[str, Any]:
    """Translate launch options into ``submitit.AutoExecutor.update_parameters`` keywords.

    ``signal_delay_s``: seconds before the time limit at which Slurm sends the requeue signal
    (submitit's default 90); with short limits keep it well under ``timeout_min * 60``, since
    Slurm may send it up to a minute early. Below ~50 minutes submitit counts every signal as
    a timeout (spending one of its 3 timeout requeues), not as a preemption.

    Raises:
        LaunchError: on a non-positive count or timeout, or a signal delay not shorter than
            the time limit.
    """
    for name, value in [
        ("gpus_per_node", gpus_per_node),
        ("cpus_per_task", cpus_per_task),
        ("tasks_per_node", tasks_per_node),
        ("nodes", nodes),
        ("array_parallelism", array_parallelism),
        ("mem_gb", mem_gb),
    ]:
        if value is not None and not value > 0:
            raise LaunchError(f"--{name.replace('_', '-')} must be > 0, got {value}")
    if not timeout_min > 0:
        raise LaunchError(f"--timeout-min must be > 0, got {timeout_min}")
    if signal_delay_s is not None and not 0 < signal_delay_s < timeout_min * 60:
        raise LaunchError(
            f"--signal-delay-s must be in (0, --timeout-min x 60 = {timeout_min * 60}), got "
            f"{signal_delay_s}; the signal comes that many seconds before the time limit"
        )
    params: dict[str, Any] = {"timeout_min": int(timeout_min)}
    optional = {
        "slurm_partition": partition,
        "gpus_per_node": gpus_per_node,
        "cpus_per_task": cpus_per_task,
        "tasks_per_node": tasks_per_node,
        "nodes": nodes,
        "slurm_array_parallelism": array_parallelism,
        "slurm_account": account,
        "slurm_qos": qos,
        "mem_gb": mem_gb,
        "name": job_name,
        "slurm_signal_delay_s": signal_delay_s,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    if slurm_args:
        params["slurm_additional_parameters"] = dict(slurm_args)
    return params


def submit_array(
    units: list[list[tuple[PlannedRun, Path]]],
    sweep_dir: Path,
    params: dict[str, Any],
    dependency: str | None,
) -> list[Any]:
    """Submit ``units`` as one job array, one task per unit; record every run's job id.

    A unit of one run is a ``SlurmRun()(cfg_dict, run_dir)`` task; a unit of several is a batch
    of same-shape runs (``sweeps.batches``): ``SlurmRun()([cfg_dict, ...], [run_dir, ...])``
    trains them in one process (``sweeps.execute.run_group``). ``slurm_jobs.jsonl`` gets one
    line per run, a batch's members all naming their task's job id. With ``dependency``, the
    array starts ``afterany`` of it.

    Returns:
        The submitit ``Job`` objects, in ``units``' order.

    Raises:
        LaunchError: sbatch refused the array (nothing more is submitted).
    """
    import submitit
    from submitit.core.utils import FailedJobError

    from sweeps.execute import SlurmRun

    executor = submitit.AutoExecutor(folder=sweep_dir / ".submitit" / "%j", cluster="slurm")
    if dependency is not None:
        extra = dict(params.get("slurm_additional_parameters", {}), dependency=dependency)
        params = dict(params, slurm_additional_parameters=extra)
    executor.update_parameters(**params)
    cfgs: list[Any] = []
    dirs: list[Any] = []
    for unit in units:
        unit_cfgs, unit_dirs = [r.config.to_dict() for r, _ in unit], [str(d) for _, d in unit]
        cfgs.append(unit_cfgs if len(unit) > 1 else unit_cfgs[0])
        dirs.append(unit_dirs if len(unit) > 1 else unit_dirs[0])
    try:  # submitit echoes sbatch's stderr on failure; it goes into the one-line error instead
        with contextlib.redirect_stderr(io.StringIO()):
            jobs = executor.map_array(SlurmRun(), cfgs, dirs)
    except FailedJobError as e:  # sbatch refused the array
        reason = " ".join(str(e).split())
        raise LaunchError(
            f"sbatch refused the job array ({reason}); check --partition, --account, --qos, "
            "--gpus-per-node and --slurm-arg against `sinfo`; nothing more was submitted"
        ) from None
    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    with open(sweep_dir / "slurm_jobs.jsonl", "a") as f:
        for unit, job in zip(units, jobs, strict=True):
            for run, _ in unit:
                rec = {"run_name": run.run_name, "job_id": job.job_id, "at": stamp}
                f.write(json.dumps(rec) + "\n")
    return jobs


def run_slurm(
    todo: list[tuple[PlannedRun, Path]],
    sweep_dir: Path,
    params: dict[str, Any],
    progress: bool,
    wait: bool,
    poll_s: float,
    queued: dict[str, str] | None = None,
    groups: list[list[int]] | None = None,
    monitor: Any = None,
) -> tuple[list[RunOutcome], list[str], list[Any]]:
    """Submit ``todo`` (trunks and plain runs first, WSD branches in a dependent second array).

    ``groups`` (indices into ``todo``; ``sweeps.batches.group_runs``) makes each batch of
    same-shape runs ONE array task; default: one task per run. Branches are never batched.

    Returns:
        ``(outcomes in todo's order, job ids, submitit jobs)``; ``job_ids[i]`` is the job of
        ``todo[i]`` (a batch's members share theirs), ``jobs`` holds each submitted task once.
        Outcomes are ``"submitted"`` when not ``wait``ing, else what each job returned
        (``"failed"`` with ``error.txt`` written when a job died without returning).
        ``monitor`` (``sweeps.early_stop``) is polled while waiting.
    """
    # WSD branches go in a SECOND job array that depends on the first (--dependency=afterany on
    # the trunks' array and on live trunk jobs of earlier launches), not one job per branch with
    # its own dependency: submitit's map_array gives one set of sbatch options to a whole array,
    # so per-branch dependencies would mean one sbatch call and one job per branch; one
    # dependent array keeps a sweep at two submissions. afterany (not afterok): a trunk that
    # fails must not leave its branches pending forever (DependencyNeverSatisfied); they start,
    # find the trunk checkpoint missing and fail with error.txt naming it, and the next launch
    # retries them after the trunk. A preempted trunk is requeued (PENDING again), so the array
    # is not finished and the branches keep waiting (checked on the local Slurm 22.05: after
    # `scontrol requeue` of an array task the dependent job stays "afterany:<id>_*
    # (unfulfilled)" until the requeued task completes). A trunk training outside Slurm (its
    # lock held by another process) is not waited for: its branches fail if they start before
    # its checkpoint exists, and the next launch retries them. The cost: branches wait for the
    # slowest trunk of the launch, not just their own.
    units = sorted(groups or [[i] for i in range(len(todo))], key=min)
    first = [u for u in units if all(todo[i][0].config.branch_from is None for i in u)]
    second = [u for u in units if u not in first]
    t0 = time.perf_counter()
    job_of: dict[int, Any] = {}  # unit's first index -> its job
    after: list[str] = []
    if first:
        jobs = submit_array([[todo[i] for i in u] for u in first], sweep_dir, params, None)
        job_of.update((u[0], job) for u, job in zip(first, jobs, strict=True))
        after.append(jobs[0].job_id.split("_")[0])
    if second:
        parents = [todo[i][0].config.branch_from for u in second for i in u]
        trunks = {b.run_name for b in parents if b is not None}
        after += sorted({jid for name, jid in (queued or {}).items() if name in trunks})
        dependency = f"afterany:{':'.join(after)}" if after else None
        jobs = submit_array([[todo[i] for i in u] for u in second], sweep_dir, params, dependency)
        job_of.update((u[0], job) for u, job in zip(second, jobs, strict=True))
    units = sorted(units, key=lambda u: u[0])
    jobs = [job_of[u[0]] for u in units]
    unit_of = {i: u for u in units for i in u}
    job_ids = [job_of[unit_of[i][0]].job_id for i in range(len(todo))]
    if not wait:
        outs = [
            RunOutcome(r.run_name, str(d), "submitted", time.perf_counter() - t0) for r, d in todo
        ]
        return outs, job_ids, jobs
    results: dict[int, RunOutcome] = {}
    arrays = " ".join(sorted({j.split("_")[0] for j in job_ids}))
    with progress_bar(len(todo), progress, f"runs (slurm arrays {arrays})") as bar:
        while len(results) < len(todo):
            for unit, job in zip(units, jobs, strict=True):
                if unit[0] in results or not job.done():
                    continue
                wall = time.perf_counter() - t0
                outs = _unit_outcomes(job, [todo[i] for i in unit], wall)
                results.update(zip(unit, outs, strict=True))
                bar.update(len(unit))
            if len(results) < len(todo):
                if monitor is not None:
                    monitor.poll()
                time.sleep(poll_s)
    return [results[i] for i in range(len(todo))], job_ids, jobs


def _unit_outcomes(job: Any, unit: list[tuple[PlannedRun, Path]], wall: float) -> list[RunOutcome]:
    """What a finished array task returned for each of its runs (one, or a batch's members).

    A task that died without returning (scancel, node failure, out of memory) leaves each of its
    runs without a summary ``"failed"``, ``error.txt`` written if the run has none; a batch
    member that finished before the task died keeps its status.
    """
    try:
        out = job.results()[0]  # task 0 (rank 0) speaks for a data-parallel job
    except Exception as e:
        msg = f"Slurm job {job.job_id} did not return: {type(e).__name__}: {e}"
        outs = []
        for run, run_dir in unit:
            summary = rundir.read_summary(run_dir)
            if summary is not None:
                status, run_wall = str(summary["status"]), summary.get("wall_time_s")
                outs.append(RunOutcome(run.run_name, str(run_dir), status, wall, run_wall))
                continue
            if not (run_dir / rundir.ERROR).exists():
                rundir.write_error(run_dir, msg)
            first_line = msg.splitlines()[0]
            outs.append(RunOutcome(run.run_name, str(run_dir), "failed", wall, None, first_line))
        return outs
    return [dataclasses.replace(o, wall_s=wall) for o in (out if isinstance(out, list) else [out])]
