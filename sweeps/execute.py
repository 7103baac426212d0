"""The function every executor runs for one run: lock, train (or resume, or skip), record errors.

``run_one(cfg_dict, run_dir)`` is module-level and importable, so debug (in-process), local
(a child forked from a warm server, or ``python -m sweeps.execute RUN_DIR`` with the config JSON
on stdin; ``sweeps.workers``) and Slurm (pickled by submitit, wrapped in ``SlurmRun``) all run
the same code:

1. take the run lock (``scaling.lock``: a non-blocking ``fcntl.flock`` on ``run_dir/.lock``,
   also taken by ``scaling train``); if another process holds it the run is already being
   trained: return status ``"running"`` and do nothing. The kernel releases the lock when the
   holder dies, so a killed or preempted job never leaves a stale lock.
2. a finished run (``summary.json`` present) returns at once without importing torch;
3. otherwise remove ``error.txt`` and call ``scaling.train.train(cfg, run_dir)``, which resumes
   from ``checkpoint.pt`` if present;
4. an exception is written to ``error.txt`` (the traceback) and returned as status
   ``"failed"``, so one failing run never stops the others.

In a data-parallel job (``RANK`` > 0 set, ``scaling.distributed``) only rank 0 takes the lock
and writes ``error.txt``; the other ranks train alongside it.

``SlurmRun`` is a ``submitit.helpers.Checkpointable``: on preemption or timeout submitit calls
its ``checkpoint()``, which returns a ``DelayedSubmission`` of itself with the same arguments;
submitit requeues the job and the new attempt resumes from ``checkpoint.pt``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scaling import rundir
from scaling.config import RunConfig
from scaling.distributed import env_from_environ
from scaling.lock import LOCK, lock_held, run_lock

__all__ = ["LOCK", "RunOutcome", "SlurmRun", "lock_held", "run_group", "run_lock", "run_one"]

# exit codes of ``python -m sweeps.execute`` (the local executor reads them, never stdout)
EXIT_OK = 0  # complete or diverged
EXIT_FAILED = 1  # the run raised; error.txt has the traceback
EXIT_RUNNING = 75  # EX_TEMPFAIL: another process holds the run's lock


class LaunchError(ValueError):
    """Bad launch arguments (unknown executor, bad Slurm option); names the option and fix."""


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar counting runs (``disable``d when not ``enabled``), on stderr."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="run", dynamic_ncols=True)


@dataclass(frozen=True)
class RunOutcome:
    """What one execution of ``run_one`` did.

    Attributes:
        run_name: the run directory's name.
        run_dir: the run directory (string path).
        status: ``"complete"``, ``"diverged"``, ``"stopped"`` (ended early on a stop request,
            ``sweeps.early_stop``), ``"failed"`` (``error`` holds the last line of
            the traceback), ``"running"`` (lock held elsewhere; nothing done) or ``"skipped"``
            (already finished before this call; nothing done).
        wall_s: seconds this call took (including imports and data loading).
        run_wall_time_s: the run's own ``wall_time_s`` from ``summary.json`` (None if none).
        error: last line of the error, or None.
    """

    run_name: str
    run_dir: str
    status: str
    wall_s: float
    run_wall_time_s: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def run_one(cfg_dict: dict[str, Any], run_dir: str | Path, *, progress: bool = False) -> RunOutcome:
    """Train one run under its lock; never raises for a training error.

    Args:
        cfg_dict: ``RunConfig.to_dict()`` of the run.
        run_dir: the run directory, ``<runs_dir>/<sweep_name>/<run_name>``.
        progress: show train()'s progress bar.

    Returns:
        A ``RunOutcome`` (see its ``status``).
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    if not env_from_environ().is_main:
        # a data-parallel peer (RANK > 0): rank 0 holds the lock and alone writes run_dir
        return _train_alone(cfg_dict, run_dir, t0, write_error=False, progress=progress)
    with run_lock(run_dir) as held:
        if not held:
            return _outcome(run_dir, t0, "running")
        return _train_alone(cfg_dict, run_dir, t0, write_error=True, progress=progress)


def _outcome(run_dir: Path, t0: float, status: str, error: str | None = None) -> RunOutcome:
    summary = rundir.read_summary(run_dir)
    wall = summary.get("wall_time_s") if summary else None
    return RunOutcome(run_dir.name, str(run_dir), status, time.perf_counter() - t0, wall, error)


def _train_alone(
    cfg_dict: dict[str, Any], run_dir: Path, t0: float, *, write_error: bool, progress: bool
) -> RunOutcome:
    # steps 2-4 of the module docstring, the lock already held (or not needed)
    if rundir.read_summary(run_dir) is not None:
        return _outcome(run_dir, t0, "skipped")
    if write_error:
        rundir.clear_error(run_dir)
    try:
        cfg = RunConfig.from_dict(cfg_dict)
        from scaling.train import train

        result = train(cfg, run_dir, progress=progress)
    except Exception:
        text = traceback.format_exc()
        if write_error:
            rundir.write_error(run_dir, text)
        return _outcome(run_dir, t0, "failed", _last_line(text))
    return _outcome(run_dir, t0, result.status)


def run_group(
    cfg_dicts: list[dict[str, Any]], run_dirs: list[str | Path], *, progress: bool = False
) -> list[RunOutcome]:
    """Train same-shape runs as one batch (``scaling.batched``) under all their locks.

    Every member's lock is taken first; a member whose lock another process holds is left to
    it (``"running"``), a finished one is ``"skipped"``; the others train together with
    ``train_batched`` (one left alone trains with ``train``). If the batch cannot train (one
    member's config, checkpoint or data is bad, or the batch raised), each of its members
    trains alone instead, resuming from its own checkpoint, so the failing run records its own
    ``error.txt`` and the others still finish. Never raises for a training error.

    Args:
        cfg_dicts: the members' ``RunConfig.to_dict()``.
        run_dirs: their run directories.
        progress: show the batch's progress bar.

    Returns:
        One ``RunOutcome`` per member, in order.
    """
    t0 = time.perf_counter()
    dirs = [Path(d) for d in run_dirs]
    outcomes: list[RunOutcome | None] = [None] * len(dirs)
    with contextlib.ExitStack() as locks:
        held = [locks.enter_context(run_lock(d)) for d in dirs]
        todo = []
        for i, (d, h) in enumerate(zip(dirs, held, strict=True)):
            if not h:
                outcomes[i] = _outcome(d, t0, "running")
            elif rundir.read_summary(d) is not None:
                outcomes[i] = _outcome(d, t0, "skipped")
            else:
                todo.append(i)
        if len(todo) > 1:
            try:
                from scaling.batched import train_batched

                for i in todo:
                    rundir.clear_error(dirs[i])
                cfgs = [RunConfig.from_dict(cfg_dicts[i]) for i in todo]
                summaries = train_batched(cfgs, [dirs[i] for i in todo], progress=progress)
                for i, summary in zip(todo, summaries, strict=True):
                    outcomes[i] = _outcome(dirs[i], t0, summary.status)
                todo = []
            except Exception:  # each member alone: the failing one records its own error
                traceback.print_exc()
        for i in todo:
            summary = rundir.read_summary(dirs[i])  # finished in the batch before it raised
            if summary is not None:
                outcomes[i] = _outcome(dirs[i], t0, str(summary.get("status")))
                continue
            outcomes[i] = _train_alone(
                cfg_dicts[i], dirs[i], t0, write_error=True, progress=progress
            )
    return outcomes  # type: ignore[return-value]


class _CheckpointableBase:
    """Placeholder base when submitit is absent (``SlurmRun`` then cannot be submitted)."""


try:  # submitit is a dependency, but keep `run_one` importable without it
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover
    _Checkpointable = _CheckpointableBase  # type: ignore[assignment,misc]


class SlurmRun(_Checkpointable):
    """Callable submitted to Slurm: ``SlurmRun()(cfg_dict, run_dir) -> RunOutcome``.

    ``SlurmRun()([cfg_dict, ...], [run_dir, ...]) -> [RunOutcome, ...]`` trains a batch of
    same-shape runs in the job (``run_group``: every member's lock taken in the job, members
    held by another process left to it).

    A ``submitit.helpers.Checkpointable``: when Slurm signals preemption or timeout, submitit
    calls ``checkpoint`` (below) and requeues the returned ``DelayedSubmission``; the next
    attempt calls ``run_one`` (or ``run_group``) again, and ``train`` (``train_batched``)
    resumes from each run's ``checkpoint.pt`` (rows logged after that checkpoint are rewritten,
    not duplicated; see ``scaling.train``).
    """

    def __call__(
        self, cfg_dict: dict[str, Any] | list[dict[str, Any]], run_dir: str | list[str]
    ) -> RunOutcome | list[RunOutcome]:
        """Run (or resume) one run, or a batch of runs, in the Slurm job; see ``run_one``.

        A job with several tasks (``tasks_per_node > 1``) trains the run data-parallel: each
        task exports torchrun's variables from Slurm's
        (``submitit.helpers.TorchDistributedEnvironment``), keeping every GPU visible so rank
        ``LOCAL_RANK`` takes ``cuda:LOCAL_RANK``. A batch is one process (the launcher never
        submits one with several tasks).
        """
        import submitit

        if isinstance(cfg_dict, list):  # a batch of same-shape runs (sweeps.batches)
            return run_group(cfg_dict, list(run_dir))
        if submitit.JobEnvironment().num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return run_one(cfg_dict, run_dir)  # type: ignore[arg-type]

    def checkpoint(self, cfg_dict: Any, run_dir: Any) -> Any:
        """Requeue this same call; state lives in the runs' ``checkpoint.pt``, not in ``self``."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, cfg_dict, run_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m sweeps.execute RUN_DIR`` with the config JSON on stdin; returns the exit code.

    Several run directories (``RUN_DIR RUN_DIR ...``) with a JSON list of their configs train as
    one batch (``run_group``); the exit code is then 0 once every member is recorded.

    Exit codes: 0 complete/diverged/stopped/skipped, 1 failed (``error.txt`` written), 75 lock held.
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 1:
        print(
            "usage: python -m sweeps.execute RUN_DIR [RUN_DIR ...]  (RunConfig JSON, or a list "
            "of them, on stdin)",
            file=sys.stderr,
        )
        return 2
    cfg = json.loads(sys.stdin.read())
    if isinstance(cfg, list):
        run_group(cfg, argv)
        return EXIT_OK
    return exit_code(run_one(cfg, argv[0]))


def exit_code(out: RunOutcome) -> int:
    """The process exit code for an outcome (a failure's last error line goes to stderr).

    0 complete/diverged/skipped, 1 failed, 75 lock held (``sweeps.workers`` children too).
    """
    if out.status == "failed":
        print(f"run {out.run_name} failed: {out.error}", file=sys.stderr)
        return EXIT_FAILED
    if out.status == "running":
        return EXIT_RUNNING
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
