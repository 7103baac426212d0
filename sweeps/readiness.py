"""WSD readiness: when a branch may start, in which order the local pool starts runs.

A WSD branch (``sweeps.branching``) starts from its trunk's ``checkpoint-step<N>.pt``, so it
may start only once that file exists (``can_start``); the local pool starts trunks first and
fills free cores with branches as their checkpoints appear (``local_order``, ``next_ready``),
gives up on branches whose trunk ended without the checkpoint (``blocked_branches``), and a
launch refuses to start when a finished trunk lost a checkpoint an unfinished branch needs
(``check_trunk_checkpoints``). ``sweeps.launch`` uses all of these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaling import rundir
from sweeps.execute import LaunchError, RunOutcome, lock_held
from sweeps.plan import PlannedRun


def trunk_checkpoint(run: PlannedRun, run_dir: Path) -> Path:
    """The trunk's ``checkpoint-step<N>.pt`` that branch ``run`` (in ``run_dir``) starts from."""
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
    return trunk_checkpoint(run, run_dir).exists()


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
        problem = rundir.checkpoint_problem(trunk_checkpoint(run, sweep_dir / run.run_name))
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
                f"trunk {b.run_name} ended ({state}) without {trunk_checkpoint(run, run_dir).name}"
                "; fix the trunk (see its error.txt) and relaunch",
            )
        )
    return out[::-1]


def blocked_outcome(run: PlannedRun, run_dir: Path, reason: str) -> RunOutcome:
    """A ``"failed"`` outcome for a branch that cannot start, with ``error.txt`` saying why.

    Recorded as a failure of the branch, so the next launch retries it.
    """
    rundir.write_error(run_dir, f"not started: {reason}\n")
    return RunOutcome(run.run_name, str(run_dir), "failed", 0.0, None, f"not started: {reason}")
