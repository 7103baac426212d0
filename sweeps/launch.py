"""Launch a sweep on an executor, idempotently.

``launch(spec, runs_dir, executor=...)`` plans the sweep (refusing an invalid plan before
anything runs), writes ``<runs_dir>/<sweep>/sweep.json``, skips finished runs (``summary.json``
present) and runs whose lock is held (being trained elsewhere), and hands the rest to:

- ``"debug"``: in this process, one after another (tests, debugging; ``pdb`` works);
- ``"local"``: ``parallel`` run processes at a time (default: one per CPU core), each forked
  from one warm server that imported torch and wandb once (``sweeps.workers``; ``local_start=
  "fresh"``: a new ``python -m sweeps.execute RUN_DIR`` per run), each single-threaded
  (``OMP_NUM_THREADS=1``; configs carry ``n_threads``), stdout/stderr in
  ``<sweep>/.logs/<run_name>.log``;
- ``"slurm"``: ONE submitit job array (``map_array``) of ``SlurmRun`` (Checkpointable: requeued
  on preemption/timeout, resumes from ``checkpoint.pt``); submitit files in ``<sweep>/.submitit``;
  job ids appended to ``<sweep>/slurm_jobs.jsonl``. WSD branches (``sweeps.branching``) go in a
  second array that depends on the first (``--dependency=afterany``; why in ``_run_slurm``).

With WSD branches a branch starts only when its trunk's ``checkpoint-step<N>.pt`` exists: the
local pool starts trunks first and fills free cores with branches as their checkpoints appear
(``local_order``, ``next_ready``); a launch refuses to start when a finished trunk lost a
checkpoint an unfinished branch needs (``check_trunk_checkpoints``).

Relaunching a finished sweep does no training work and submits nothing; an incomplete run
resumes from its checkpoint; a failed run (``error.txt``) is retried.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling import __version__, rundir
from sweeps import workers
from sweeps.execute import EXIT_RUNNING, RunOutcome, lock_held, run_one
from sweeps.plan import PlannedRun, plan
from sweeps.spec import SweepSpec

EXECUTORS = ("debug", "local", "slurm")


class LaunchError(ValueError):
    """Bad launch arguments (unknown executor, bad Slurm option); names the option and fix."""


@dataclass
class LaunchResult:
    """What a launch did.

    Attributes:
        sweep_dir: ``<runs_dir>/<sweep_name>``.
        outcomes: one ``RunOutcome`` per planned run, in plan order (``"skipped"`` for runs
            finished before this launch; ``"running"`` for runs whose lock is held;
            ``"queued"`` for runs with a live Slurm job from an earlier launch, not resubmitted;
            ``"submitted"`` for Slurm runs when not waiting).
        n_planned: runs in the plan.
        n_submitted: runs handed to the executor by this launch.
        wall_s: seconds the launch took.
        job_ids: Slurm job ids submitted (empty otherwise).
        jobs: the submitit ``Job`` objects (Slurm only; e.g. ``job._interrupt()`` in tests).
    """

    sweep_dir: Path
    outcomes: list[RunOutcome]
    n_planned: int
    n_submitted: int
    wall_s: float
    job_ids: list[str] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list, repr=False)

    @property
    def counts(self) -> dict[str, int]:
        """Number of runs per outcome status."""
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        """True when every run is finished (complete, diverged or skipped as finished)."""
        return all(o.status in ("complete", "diverged", "skipped") for o in self.outcomes)


def _versions() -> dict[str, Any]:
    import importlib.metadata as md

    out: dict[str, Any] = {"scaling": __version__, "python": sys.version.split()[0]}
    for pkg in ("torch", "submitit", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def write_sweep_json(spec: SweepSpec, runs: list[PlannedRun], sweep_dir: Path) -> Path:
    """Write ``sweep.json`` (definition, shape rule, plan, versions) through ``scaling.rundir``.

    The file is rewritten only when the definition or plan changed, keeping ``created_at``
    of the first launch otherwise (``rundir.write_sweep``).
    """
    return rundir.write_sweep(
        sweep_dir,
        name=spec.name,
        spec=spec.to_dict(),
        shape_rule=spec.shape_rule.to_dict() if spec.shape_rule is not None else None,
        plan=[{"run_name": r.run_name, "config": r.config.to_dict()} for r in runs],
        versions=_versions(),
    )


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


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a Slurm or cgroup allocation).

    The local executor's default parallelism: one single-thread run per core, every core used.
    """
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _finished_outcome(run: PlannedRun, run_dir: Path) -> RunOutcome | None:
    summary = rundir.read_summary(run_dir)
    if summary is None:
        return None
    return RunOutcome(run.run_name, str(run_dir), "skipped", 0.0, summary.get("wall_time_s"))


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="run", dynamic_ncols=True)


# -------------------------------------------------------------------------------------------
# executors
# -------------------------------------------------------------------------------------------
def _run_debug(todo: list[tuple[PlannedRun, Path]], progress: bool) -> list[RunOutcome]:
    out = []
    with _progress(len(todo), progress, "runs (debug)") as bar:
        for run, run_dir in todo:
            out.append(run_one(run.config.to_dict(), run_dir))
            bar.update(1)
    return out


def _run_local(
    todo: list[tuple[PlannedRun, Path]],
    parallel: int,
    progress: bool,
    log_dir: Path,
    local_start: str = "forkserver",
) -> list[RunOutcome]:
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_SILENT": "true"})
    start = workers.starter(local_start)  # how each run's process starts (sweeps.workers)
    results: dict[int, RunOutcome] = {}
    pending = local_order(todo)
    active: dict[int, tuple[workers.RunProcess, float, Path]] = {}
    with _progress(len(todo), progress, f"runs (local x{parallel})") as bar:
        try:
            _pool_loop(todo, pending, active, results, parallel, env, log_dir, bar, start)
        finally:  # Ctrl-C or an error in the launcher: do not leave orphan trainers behind
            for proc, _, _ in active.values():
                proc.terminate()
                proc.wait()
    return [results[i] for i in range(len(todo))]


def _pool_loop(
    todo: list[tuple[PlannedRun, Path]],
    pending: list[tuple[int, tuple[PlannedRun, Path]]],
    active: dict[int, tuple[workers.RunProcess, float, Path]],
    results: dict[int, RunOutcome],
    parallel: int,
    env: dict[str, str],
    log_dir: Path,
    bar: Any,
    start: Any,
) -> None:
    """Keep ``parallel`` run processes busy until ``pending`` and ``active`` are empty.

    ``start(cfg_dict, run_dir, log_path, env)`` starts one (``sweeps.workers``).
    """
    while pending or active:
        for i, reason in blocked_branches(todo, pending, active):
            results[i] = _blocked_outcome(*todo[i], reason)
            bar.update(1)
        while len(active) < parallel:
            item = next_ready(pending)
            if item is None:
                break
            i, (run, run_dir) = item
            log_path = log_dir / f"{run.run_name}.log"
            t0 = time.perf_counter()
            proc = start(run.config.to_dict(), run_dir, log_path, env)
            active[i] = (proc, t0, log_path)
        time.sleep(0.05)
        for i, code in [(i, p.poll()) for i, (p, _, _) in list(active.items())]:
            if code is None:
                continue
            _, t0, log_path = active.pop(i)
            run, run_dir = todo[i]
            wall = time.perf_counter() - t0
            results[i] = _outcome_from_dir(run, run_dir, wall, code, str(log_path))
            bar.update(1)


# -------------------------------------------------------------------------------------------
# WSD trunks and branches: ordering and checks (sweeps.branching)
# -------------------------------------------------------------------------------------------
def _trunk_checkpoint(run: PlannedRun, run_dir: Path) -> Path:
    b = run.config.branch_from
    assert b is not None
    return rundir.step_checkpoint_path(run_dir.parent / b.run_name, b.step)


def can_start(run: PlannedRun, run_dir: Path) -> bool:
    """Whether a run can start now.

    True for a run that is not a branch, and for a branch that has its own ``checkpoint.pt``
    (it resumes) or whose trunk checkpoint exists (written atomically: existing means whole).
    """
    if run.config.branch_from is None or (run_dir / rundir.CHECKPOINT).exists():
        return True
    return _trunk_checkpoint(run, run_dir).exists()


def check_trunk_checkpoints(runs: list[PlannedRun], sweep_dir: Path) -> None:
    """Refuse to launch when a finished trunk lacks a checkpoint an unfinished branch needs.

    Nothing is retrained silently: the trunk's ``checkpoint-step<N>.pt`` was deleted or damaged
    after it finished, and the user decides (restore the files, or delete the trunk's
    ``summary.json`` and ``checkpoint.pt`` so the relaunch retrains it).

    Raises:
        LaunchError: naming every missing or damaged file and the fix.
    """
    bad = []
    for run in runs:
        b = run.config.branch_from
        branch_dir = sweep_dir / run.run_name
        if b is None or rundir.read_summary(branch_dir) is not None:
            continue
        if (branch_dir / rundir.CHECKPOINT).exists():
            continue  # started: it resumes from its own checkpoint
        trunk_summary = rundir.read_summary(sweep_dir / b.run_name)
        if trunk_summary is None or trunk_summary.get("status") != "complete":
            continue  # not trained yet (or diverged: reported per branch)
        problem = rundir.checkpoint_problem(_trunk_checkpoint(run, sweep_dir / run.run_name))
        if problem is not None:
            bad.append(problem)
    if bad:
        raise LaunchError(
            f"finished trunk(s) lack the checkpoints their branches start from: {'; '.join(bad)}; "
            "restore them, or delete the trunk's summary.json and checkpoint.pt to retrain it"
        )


def local_order(todo: list[tuple[PlannedRun, Path]]) -> list[tuple[int, tuple[PlannedRun, Path]]]:
    """Start order for the local pool: trunks first, then the rest longest first.

    Trunks are the critical path (their branches wait for them). Among the rest, longest
    ``flops_marginal`` first (LPT scheduling): starting the big runs early keeps every worker
    busy until the end instead of idling on a last long run. ``next_ready`` skips branches whose
    trunk checkpoint does not exist yet, so both cores train trunks while branches wait, and
    branches fill the cores as soon as their checkpoints appear.
    """
    return sorted(
        enumerate(todo), key=lambda item: (item[1][0].role != "trunk", -item[1][0].flops_marginal)
    )


def next_ready(
    pending: list[tuple[int, tuple[PlannedRun, Path]]],
) -> tuple[int, tuple[PlannedRun, Path]] | None:
    """Pop and return the first pending run that can start now, or ``None``.

    See ``can_start``.
    """
    for k, (_, (run, run_dir)) in enumerate(pending):
        if can_start(run, run_dir):
            return pending.pop(k)
    return None


def blocked_branches(
    todo: list[tuple[PlannedRun, Path]],
    pending: list[tuple[int, tuple[PlannedRun, Path]]],
    active: dict[int, Any],
) -> list[tuple[int, str]]:
    """Pending branches that can never start in this launch; removed from ``pending``.

    A branch is blocked when its trunk checkpoint is missing and its trunk is neither pending,
    running here, nor training elsewhere (lock held): the trunk failed or diverged first.
    """
    waiting = {todo[i][0].run_name for i, _ in pending} | {todo[i][0].run_name for i in active}
    out = []
    for k in range(len(pending) - 1, -1, -1):
        i, (run, run_dir) = pending[k]
        b = run.config.branch_from
        if b is None or b.run_name in waiting or can_start(run, run_dir):
            continue
        trunk_dir = run_dir.parent / b.run_name
        if lock_held(trunk_dir):
            continue
        pending.pop(k)
        state = rundir.run_state(trunk_dir)
        out.append(
            (
                i,
                f"trunk {b.run_name} ended ({state}) without {_trunk_checkpoint(run, run_dir).name}"
                "; fix the trunk (see its error.txt) and relaunch",
            )
        )
    return out[::-1]


def _blocked_outcome(run: PlannedRun, run_dir: Path, reason: str) -> RunOutcome:
    # recorded as a failure of the branch (error.txt), retried by the next launch
    rundir.write_error(run_dir, f"not started: {reason}\n")
    return RunOutcome(run.run_name, str(run_dir), "failed", 0.0, None, f"not started: {reason}")


def _outcome_from_dir(
    run: PlannedRun, run_dir: Path, wall: float, returncode: int, log_path: str
) -> RunOutcome:
    """Outcome of a finished subprocess from its exit code and the run directory's files."""
    summary = rundir.read_summary(run_dir)
    run_wall = summary.get("wall_time_s") if summary else None
    if returncode == EXIT_RUNNING:
        return RunOutcome(run.run_name, str(run_dir), "running", wall)
    if summary is not None and returncode == 0:
        return RunOutcome(run.run_name, str(run_dir), str(summary["status"]), wall, run_wall)
    error_path = run_dir / rundir.ERROR
    if not error_path.exists():  # died before run_one could record anything (import, kill)
        tail = Path(log_path).read_text(errors="replace")[-4000:] if Path(log_path).exists() else ""
        how = (
            f"killed by signal {-returncode}"
            if returncode < 0
            else f"exited with code {returncode}"
        )
        # the reason last: the outcome and `scaling sweep status` show the last line
        rundir.write_error(run_dir, f"log {log_path} (end):\n{tail}\nrun process {how}")
    text = error_path.read_text(errors="replace")
    last = [ln for ln in text.strip().splitlines() if ln.strip()]
    return RunOutcome(
        run.run_name, str(run_dir), "failed", wall, run_wall, last[-1] if last else None
    )


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


def _submit_array(
    part: list[tuple[PlannedRun, Path]],
    sweep_dir: Path,
    params: dict[str, Any],
    dependency: str | None,
) -> list[Any]:
    import submitit
    from submitit.core.utils import FailedJobError

    from sweeps.execute import SlurmRun

    executor = submitit.AutoExecutor(folder=sweep_dir / ".submitit" / "%j", cluster="slurm")
    if dependency is not None:
        extra = dict(params.get("slurm_additional_parameters", {}), dependency=dependency)
        params = dict(params, slurm_additional_parameters=extra)
    executor.update_parameters(**params)
    try:  # submitit echoes sbatch's stderr on failure; it goes into the one-line error instead
        with contextlib.redirect_stderr(io.StringIO()):
            jobs = executor.map_array(
                SlurmRun(), [r.config.to_dict() for r, _ in part], [str(d) for _, d in part]
            )
    except FailedJobError as e:  # sbatch refused the array
        reason = " ".join(str(e).split())
        raise LaunchError(
            f"sbatch refused the job array ({reason}); check --partition, --account, --qos, "
            "--gpus-per-node and --slurm-arg against `sinfo`; nothing more was submitted"
        ) from None
    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    with open(sweep_dir / "slurm_jobs.jsonl", "a") as f:
        for (run, _), job in zip(part, jobs, strict=True):
            f.write(
                json.dumps({"run_name": run.run_name, "job_id": job.job_id, "at": stamp}) + "\n"
            )
    return jobs


def _run_slurm(
    todo: list[tuple[PlannedRun, Path]],
    sweep_dir: Path,
    params: dict[str, Any],
    progress: bool,
    wait: bool,
    poll_s: float,
    queued: dict[str, str] | None = None,
) -> tuple[list[RunOutcome], list[str], list[Any]]:
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
    order = {id(item): k for k, item in enumerate(todo)}
    first = [item for item in todo if item[0].config.branch_from is None]
    second = [item for item in todo if item[0].config.branch_from is not None]
    t0 = time.perf_counter()
    jobs_by_item: list[tuple[tuple[PlannedRun, Path], Any]] = []
    after: list[str] = []
    if first:
        jobs = _submit_array(first, sweep_dir, params, None)
        jobs_by_item += list(zip(first, jobs, strict=True))
        after.append(jobs[0].job_id.split("_")[0])
    if second:
        trunks = {b.run_name for b in (r.config.branch_from for r, _ in second) if b is not None}
        after += sorted({jid for name, jid in (queued or {}).items() if name in trunks})
        dependency = f"afterany:{':'.join(after)}" if after else None
        jobs = _submit_array(second, sweep_dir, params, dependency)
        jobs_by_item += list(zip(second, jobs, strict=True))
    jobs_by_item.sort(key=lambda pair: order[id(pair[0])])
    jobs = [job for _, job in jobs_by_item]
    job_ids = [j.job_id for j in jobs]
    if not wait:
        outs = [
            RunOutcome(r.run_name, str(d), "submitted", time.perf_counter() - t0) for r, d in todo
        ]
        return outs, job_ids, jobs
    results: dict[int, RunOutcome] = {}
    arrays = " ".join(sorted({j.split("_")[0] for j in job_ids}))
    with _progress(len(todo), progress, f"runs (slurm arrays {arrays})") as bar:
        while len(results) < len(jobs):
            for i, job in enumerate(jobs):
                if i in results or not job.done():
                    continue
                run, run_dir = todo[i]
                wall = time.perf_counter() - t0
                try:
                    out = job.results()[0]  # task 0 (rank 0) speaks for a data-parallel job
                    results[i] = RunOutcome(
                        out.run_name, out.run_dir, out.status, wall, out.run_wall_time_s, out.error
                    )
                except Exception as e:  # job died: scancel, node failure, out of memory
                    msg = f"Slurm job {job.job_id} did not return: {type(e).__name__}: {e}"
                    if not (run_dir / rundir.ERROR).exists():
                        rundir.write_error(run_dir, msg)
                    results[i] = RunOutcome(
                        run.run_name, str(run_dir), "failed", wall, None, msg.splitlines()[0]
                    )
                bar.update(1)
            if len(results) < len(jobs):
                time.sleep(poll_s)
    return [results[i] for i in range(len(jobs))], job_ids, jobs


# -------------------------------------------------------------------------------------------
# the entry point
# -------------------------------------------------------------------------------------------
def _check_data_parallel(runs: list[PlannedRun], world_size: int) -> None:
    # every run's micro-batches must split evenly over the processes, checked before submitting
    from scaling.config import ConfigError
    from scaling.distributed import DistEnv, check_run

    if world_size == 1:
        return
    bad = []
    for run in runs:
        try:
            check_run(run.config, DistEnv(world_size=world_size))
        except ConfigError:
            bad.append(f"{run.run_name} ({run.config.grad_accum_steps})")
    if bad:
        raise LaunchError(
            f"--nodes x --tasks-per-node = {world_size} processes per run: these runs' "
            f"micro-batches per step do not split over {world_size} processes: {', '.join(bad)}; "
            "use a process count that divides them, or a smaller micro_batch_size in the "
            "sweep's base config"
        )


def launch(
    spec: SweepSpec,
    runs_dir: str | Path,
    executor: str = "local",
    parallel: int | None = None,
    progress: bool = True,
    *,
    wait: bool = True,
    poll_s: float = 1.0,
    local_start: str = "forkserver",
    **slurm_kwargs: Any,
) -> LaunchResult:
    """Plan and run a sweep; finished runs are skipped, incomplete ones resume.

    Args:
        spec: the sweep (``sweeps.registry.load_sweep(name)``).
        runs_dir: root folder; runs go to ``runs_dir/<spec.name>/<run_name>/``.
        executor: ``"debug"`` (in-process), ``"local"`` (subprocess pool) or ``"slurm"``.
        parallel: local executor only: concurrent run processes (default ``usable_cores()``:
            every core this process may use).
        progress: tqdm progress bar (runs done / total, ETA) on stderr.
        wait: Slurm only: wait for the array to finish (else return after submitting).
        poll_s: Slurm only: seconds between job-state polls.
        local_start: local only: how each run's process starts (``sweeps.workers``):
            ``"forkserver"`` (forked from one warm server that imported torch and wandb once)
            or ``"fresh"`` (a new ``python -m sweeps.execute`` per run).
        **slurm_kwargs: Slurm only: keywords of ``slurm_parameters`` (``partition``,
            ``gpus_per_node``, ``cpus_per_task``, ``tasks_per_node``, ``nodes``,
            ``timeout_min``, ``signal_delay_s``, ``array_parallelism``, ``account``, ``qos``,
            ``mem_gb``, ``slurm_args``, ``job_name``). ``nodes * tasks_per_node > 1`` trains each
            run data-parallel over that many processes (one per GPU; ``scaling.distributed``).

    Returns:
        A ``LaunchResult``; ``result.ok`` is True when every run finished.

    Raises:
        PlanError: the plan has invalid runs (nothing is started).
        LaunchError: unknown executor, Slurm options given to another executor, bad values,
            or ``nodes * tasks_per_node`` that does not divide a run's micro-batches per step.
    """
    t0 = time.perf_counter()
    if executor not in EXECUTORS:
        raise LaunchError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if slurm_kwargs and executor != "slurm":
        raise LaunchError(f"Slurm options {sorted(slurm_kwargs)} need executor='slurm'")
    if parallel is not None and (executor != "local" or parallel < 1):
        raise LaunchError("parallel must be a positive integer and needs executor='local'")
    if local_start not in workers.STARTERS:
        raise LaunchError(f"local_start must be one of {workers.STARTERS}, got {local_start!r}")
    params = slurm_parameters(**slurm_kwargs) if executor == "slurm" else {}
    if executor == "slurm":
        params.setdefault("name", f"sweep-{spec.name}")

    runs = plan(spec)
    _check_data_parallel(runs, params.get("nodes", 1) * params.get("tasks_per_node", 1))
    sweep_dir = Path(runs_dir) / spec.name
    write_sweep_json(spec, runs, sweep_dir)

    check_trunk_checkpoints(runs, sweep_dir)  # deleted kept checkpoints: refuse, retrain nothing
    outcomes: dict[str, RunOutcome] = {}
    todo: list[tuple[PlannedRun, Path]] = []
    queued = live_slurm_jobs(sweep_dir) if executor == "slurm" else {}
    for run in runs:
        run_dir = sweep_dir / run.run_name
        finished = _finished_outcome(run, run_dir)
        if finished is not None:
            outcomes[run.run_name] = finished
        elif lock_held(run_dir):
            outcomes[run.run_name] = RunOutcome(run.run_name, str(run_dir), "running", 0.0)
        elif run.run_name in queued:
            outcomes[run.run_name] = RunOutcome(
                run.run_name, str(run_dir), "queued", 0.0, None, f"Slurm job {queued[run.run_name]}"
            )
        else:
            todo.append((run, run_dir))

    job_ids: list[str] = []
    jobs: list[Any] = []
    if todo:
        if executor == "debug":
            done = _run_debug(todo, progress)
        elif executor == "local":
            n_workers = parallel or usable_cores()
            done = _run_local(todo, n_workers, progress, sweep_dir / ".logs", local_start)
        else:
            done, job_ids, jobs = _run_slurm(
                todo, sweep_dir, params, progress, wait, poll_s, queued
            )
        for o in done:
            outcomes[o.run_name] = o
    return LaunchResult(
        sweep_dir=sweep_dir,
        outcomes=[outcomes[r.run_name] for r in runs],
        n_planned=len(runs),
        n_submitted=len(todo),
        wall_s=time.perf_counter() - t0,
        job_ids=job_ids,
        jobs=jobs,
    )
