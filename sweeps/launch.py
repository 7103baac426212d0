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
- ``"slurm"`` (``sweeps.slurm``): ONE submitit job array (``map_array``) of ``SlurmRun``
  (Checkpointable: requeued on preemption/timeout, resumes from ``checkpoint.pt``); submitit
  files in ``<sweep>/.submitit``; job ids appended to ``<sweep>/slurm_jobs.jsonl``. WSD
  branches (``sweeps.branching``) go in a second array that depends on the first
  (``--dependency=afterany``; why in ``sweeps.slurm.run_slurm``).

Every executor trains a batch of same-shape runs (``group_size``, else the spec's, else the
device's default; ``sweeps.batches``) in one process: debug in this process, local in one
worker, Slurm in one array task, all through ``sweeps.execute.run_group``.

With WSD branches a branch starts only when its trunk's ``checkpoint-step<N>.pt`` exists: the
local pool starts trunks first and fills free cores with branches as their checkpoints appear
(``sweeps.readiness.local_order``, ``next_ready``); a launch refuses to start when a finished
trunk lost a checkpoint an unfinished branch needs (``check_trunk_checkpoints``).

Relaunching a finished sweep does no training work and submits nothing; an incomplete run
resumes from its checkpoint; a failed run (``error.txt``) is retried.

Early stopping (opt-in, ``early_stop=EarlyStopRule()``; ``sweeps.early_stop`` states the rule):
the local pool loop and the Slurm wait loop call an ``EarlyStopMonitor``, which writes
``stop_request.json`` into a run whose predicted final loss is worse than a neighbour's by more
than its PI; the run ends at its next evaluation with ``status: "stopped"``. A stopped run is
ended: a relaunch skips it unless ``resume_stopped=True``, which makes it resume from the
checkpoint written where it stopped.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling import __version__, rundir
from sweeps import batches, workers
from sweeps.early_stop import EarlyStopMonitor, EarlyStopRule
from sweeps.execute import (
    EXIT_RUNNING,
    LaunchError,
    RunOutcome,
    lock_held,
    progress_bar,
    run_group,
    run_one,
)
from sweeps.plan import PlannedRun, plan
from sweeps.readiness import (
    blocked_branches,
    blocked_outcome,
    check_trunk_checkpoints,
    local_order,
    next_ready,
)
from sweeps.slurm import live_slurm_jobs, run_slurm, slurm_parameters
from sweeps.spec import SweepSpec

EXECUTORS = ("debug", "local", "slurm")


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
        job_ids: Slurm job ids submitted, one per run handed to Slurm (a batch's members
            share their array task's id); empty otherwise.
        jobs: the submitit ``Job`` objects, one per array task (Slurm only; e.g.
            ``job._interrupt()`` in tests).
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
        """True when every run is finished (complete, diverged, stopped early or skipped)."""
        return all(
            o.status in ("complete", "diverged", "stopped", "skipped") for o in self.outcomes
        )


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


# -------------------------------------------------------------------------------------------
# executors
# -------------------------------------------------------------------------------------------
def _run_debug(
    todo: list[tuple[PlannedRun, Path]], progress: bool, groups: list[list[int]] | None = None
) -> list[RunOutcome]:
    out: dict[int, RunOutcome] = {}
    with progress_bar(len(todo), progress, "runs (debug)") as bar:
        for group in groups or [[i] for i in range(len(todo))]:
            if len(group) == 1:
                run, run_dir = todo[group[0]]
                out[group[0]] = run_one(run.config.to_dict(), run_dir)
            else:  # same-shape runs as one batch (sweeps.batches)
                cfgs = [todo[i][0].config.to_dict() for i in group]
                done = run_group(cfgs, [todo[i][1] for i in group])
                out.update(zip(group, done, strict=True))
            bar.update(len(group))
    return [out[i] for i in range(len(todo))]


def _run_local(
    todo: list[tuple[PlannedRun, Path]],
    parallel: int,
    progress: bool,
    log_dir: Path,
    local_start: str = "forkserver",
    groups: list[list[int]] | None = None,
    monitor: EarlyStopMonitor | None = None,
) -> list[RunOutcome]:
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_SILENT": "true"})
    start = workers.starter(local_start)  # how each run's process starts (sweeps.workers)
    results: dict[int, RunOutcome] = {}
    # a batch is started by its first run (the leader); its other members wait in no queue
    members = {g[0]: g for g in groups or [] if len(g) > 1}
    followers = {i for g in members.values() for i in g[1:]}
    pending = [item for item in local_order(todo) if item[0] not in followers]
    active: dict[int, tuple[workers.RunProcess, float, Path]] = {}
    with progress_bar(len(todo), progress, f"runs (local x{parallel})") as bar:
        try:
            _pool_loop(
                todo, pending, active, results, parallel, env, log_dir, bar, start, members, monitor
            )
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
    members: dict[int, list[int]] | None = None,
    monitor: EarlyStopMonitor | None = None,
) -> None:
    """Keep ``parallel`` run processes busy until ``pending`` and ``active`` are empty.

    ``start(cfg_dict, run_dir, log_path, env)`` starts one (``sweeps.workers``). ``members``
    maps a batch's first run (in ``pending``) to all its runs (``sweeps.batches``): one process
    trains them, and its exit gives each member's outcome. ``monitor`` (early stopping) is
    polled every turn; it checks at most every ``rule.interval_s``.
    """
    members = members or {}
    while pending or active:
        busy = {j for i in active for j in members.get(i, ())}  # batch members training now
        for i, reason in blocked_branches(todo, pending, {**dict.fromkeys(busy), **active}):
            results[i] = blocked_outcome(*todo[i], reason)
            bar.update(1)
        while len(active) < parallel:
            item = next_ready(pending)
            if item is None:
                break
            i, (run, run_dir) = item
            log_path = log_dir / f"{run.run_name}.log"
            t0 = time.perf_counter()
            if i in members:  # one process for the batch, its log named after the first run
                group = members[i]
                cfgs = [todo[j][0].config.to_dict() for j in group]
                proc = start(cfgs, [todo[j][1] for j in group], log_path, env)
            else:
                proc = start(run.config.to_dict(), run_dir, log_path, env)
            active[i] = (proc, t0, log_path)
        time.sleep(0.05)
        if monitor is not None and active:
            monitor.poll()
        for i, code in [(i, p.poll()) for i, (p, _, _) in list(active.items())]:
            if code is None:
                continue
            _, t0, log_path = active.pop(i)
            run, run_dir = todo[i]
            wall = time.perf_counter() - t0
            if i in members:
                for j in members[i]:
                    results[j] = batches.member_outcome(todo[j][0].run_name, todo[j][1], wall, code)
                bar.update(len(members[i]))
                continue
            results[i] = _outcome_from_dir(run, run_dir, wall, code, str(log_path))
            bar.update(1)


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


def _group_size(
    flag: int | None,
    spec: SweepSpec,
    runs: list[PlannedRun],
    world_size: int,
    gpus_per_node: int | None,
) -> int:
    # the flag, else the spec's group_size, else the device's default (sweeps.batches); a
    # data-parallel launch trains every run alone (a batch is one process, train_batched)
    try:
        size = batches.resolve_group_size(
            flag,
            spec.group_size,
            runs[0].config if runs else spec.base,
            cuda=bool(gpus_per_node) if gpus_per_node is not None else None,
        )
    except ValueError as e:
        raise LaunchError(str(e)) from None
    if world_size == 1:
        return size
    given = flag if flag is not None else spec.group_size
    if given is not None and given > 1:
        where = "--group-size" if flag is not None else f"{spec.name}'s group_size"
        raise LaunchError(
            f"{where} = {given} with {world_size} processes per run (--nodes x "
            "--tasks-per-node): a batch of runs trains in one process, data parallelism is "
            "for one run; use group size 1 or one process per run"
        )
    return 1


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
    group_size: int | None = None,
    planned: list[PlannedRun] | None = None,
    early_stop: EarlyStopRule | None = None,
    resume_stopped: bool = False,
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
        planned: ``plan(spec)`` when the caller already planned it (the forecast rung), so
            the sweep is planned once; default: planned here.
        **slurm_kwargs: Slurm only: keywords of ``slurm_parameters`` (``partition``,
            ``gpus_per_node``, ``cpus_per_task``, ``tasks_per_node``, ``nodes``,
            ``timeout_min``, ``signal_delay_s``, ``array_parallelism``, ``account``, ``qos``,
            ``mem_gb``, ``slurm_args``, ``job_name``). ``nodes * tasks_per_node > 1`` trains each
            run data-parallel over that many processes (one per GPU; ``scaling.distributed``).
        group_size: most same-shape runs trained as one batch by one process (a local
            worker, a Slurm array task; ``sweeps.batches``, ``scaling.batched``); ``None``:
            ``spec.group_size``, else the device's default (1 on CPU, where batching measured
            no gain; 8 on CUDA; on Slurm with ``device="auto"``, CUDA when ``gpus_per_node``
            is given); 1 trains every run alone. Data-parallel runs are never batched.
        early_stop: local, and Slurm with ``wait``: stop runs early by this rule
            (``sweeps.early_stop``); ``None`` (default): never.
        resume_stopped: resume runs an earlier launch stopped early (their summary and stop
            request are removed first; they continue from the checkpoint at the stop step);
            default: a stopped run is ended and skipped like a complete one.

    Returns:
        A ``LaunchResult``; ``result.ok`` is True when every run finished.

    Raises:
        PlanError: the plan has invalid runs (nothing is started).
        LaunchError: unknown executor, Slurm options given to another executor, bad values
            (a group size that is not a positive integer), a group size above 1 with
            ``nodes * tasks_per_node > 1``, ``nodes * tasks_per_node`` that does not divide
            a run's micro-batches per step, or ``early_stop`` with the debug executor or a
            Slurm launch that does not wait.
    """
    t0 = time.perf_counter()
    if executor not in EXECUTORS:
        raise LaunchError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if slurm_kwargs and executor != "slurm":
        raise LaunchError(f"Slurm options {sorted(slurm_kwargs)} need executor='slurm'")
    if parallel is not None and (executor != "local" or parallel < 1):
        raise LaunchError("parallel must be a positive integer and needs executor='local'")
    try:
        batches.check_group_size(group_size)
    except ValueError as e:
        raise LaunchError(str(e)) from None
    if early_stop is not None and (executor == "debug" or (executor == "slurm" and not wait)):
        raise LaunchError(
            "early stopping needs a launcher that watches its runs: use executor='local', or "
            "'slurm' without --no-wait (the debug executor trains one run at a time)"
        )
    if local_start not in workers.STARTERS:
        raise LaunchError(f"local_start must be one of {workers.STARTERS}, got {local_start!r}")
    params = slurm_parameters(**slurm_kwargs) if executor == "slurm" else {}
    if executor == "slurm":
        params.setdefault("name", f"sweep-{spec.name}")

    runs = plan(spec) if planned is None else planned
    world_size = params.get("nodes", 1) * params.get("tasks_per_node", 1)
    size = _group_size(group_size, spec, runs, world_size, params.get("gpus_per_node"))
    _check_data_parallel(runs, world_size)
    sweep_dir = Path(runs_dir) / spec.name
    write_sweep_json(spec, runs, sweep_dir)

    check_trunk_checkpoints(runs, sweep_dir)  # deleted kept checkpoints: refuse, retrain nothing
    outcomes: dict[str, RunOutcome] = {}
    todo: list[tuple[PlannedRun, Path]] = []
    queued = live_slurm_jobs(sweep_dir) if executor == "slurm" else {}
    for run in runs:
        run_dir = sweep_dir / run.run_name
        if resume_stopped and not lock_held(run_dir):
            rundir.reopen_stopped(run_dir)  # asked: a stopped run resumes where it stopped
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
    monitor = EarlyStopMonitor(sweep_dir, runs, early_stop) if early_stop is not None else None
    if todo:
        # same-shape runs share a process (a local worker, a Slurm array task): sweeps.batches
        groups = batches.group_runs([r.config for r, _ in todo], size)
        names = [[todo[i][0].run_name for i in g] for g in groups]
        batches.record_groups(sweep_dir, names, size)
        if executor == "debug":
            done = _run_debug(todo, progress, groups)
        elif executor == "local":
            n_workers = parallel or usable_cores()
            done = _run_local(
                todo, n_workers, progress, sweep_dir / ".logs", local_start, groups, monitor
            )
        else:
            done, job_ids, jobs = run_slurm(
                todo, sweep_dir, params, progress, wait, poll_s, queued, groups, monitor
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
