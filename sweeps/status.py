"""Per-run state of a sweep, read from the run directories only.

States come from ``scaling.rundir.run_state`` (``pending``, ``incomplete``, ``complete``,
``diverged``, ``stopped`` (ended early by ``sweeps.early_stop``, its reason as detail),
``failed``), plus ``running`` when a process holds the run's lock
(``sweeps.execute.lock_held``) and ``queued`` when the run's latest Slurm job (from
``slurm_jobs.jsonl``) is pending or requeued per ``squeue``. Incomplete runs report their last
logged step; failed runs the last line of ``error.txt``. A run whose files are damaged (a
truncated ``summary.json``) is ``damaged``, with what is wrong in its detail; damaged lines in
the middle of ``metrics.jsonl`` are skipped and named in the detail. One damaged run never stops
the status of the others.

A WSD branch (``sweeps.branching``) that has not started yet is ``blocked`` when its trunk has
ended and the trunk checkpoint it starts from is missing or damaged (checked without torch:
``scaling.rundir.checkpoint_problem``), with the file and reason as detail; while its trunk is
still to reach that step it is ``pending``, detail ``waits for <trunk> step <N>``.

A run the latest batching launch trained in a batch (``sweeps.batches``) names it (``batch``);
each member keeps its own state, read from its own directory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from scaling import rundir
from sweeps.batches import batch_labels
from sweeps.execute import lock_held
from sweeps.plan import plan
from sweeps.spec import SweepSpec

STATES = (
    "pending",
    "blocked",
    "queued",
    "running",
    "incomplete",
    "failed",
    "diverged",
    "stopped",
    "complete",
    "damaged",
)


@dataclass(frozen=True)
class RunStatus:
    """State of one planned run.

    Attributes:
        run_name: the run's name.
        state: one of ``STATES``.
        step: last step done (``None`` if nothing ran).
        n_steps: planned optimizer steps.
        detail: last line of ``error.txt`` for failed runs, the Slurm job of queued ones, what
            is wrong for ``damaged`` runs and damaged ``metrics.jsonl`` lines; for a WSD branch
            not started yet, what it waits for or why it is blocked; else ``None``.
        batch: the batch of same-shape runs the latest launch that batched put it in
            (``"batch 2 (4 runs)"``; ``sweeps.batches``), else ``None``.
    """

    run_name: str
    state: str
    step: int | None
    n_steps: int
    detail: str | None = None
    batch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)


def run_status(run_dir: str | Path, n_steps: int, queued_job: str | None = None) -> RunStatus:
    """State of one run directory (see module docstring).

    Args:
        run_dir: the run directory.
        n_steps: the run's planned optimizer steps.
        queued_job: id of a live Slurm job for this run, if any.
    """
    run_dir = Path(run_dir)
    try:
        state = rundir.run_state(run_dir)
        summary = rundir.read_summary(run_dir) if state in rundir.ENDED else None
        step = int(summary["step"]) if summary is not None else None
    except (ValueError, KeyError, TypeError) as e:  # a damaged summary.json
        detail = str(e) if isinstance(e, ValueError) else f"summary.json lacks a 'step' ({e})"
        return RunStatus(run_dir.name, "damaged", None, n_steps, detail)
    if state not in rundir.ENDED:
        if lock_held(run_dir):
            state = "running"
        elif queued_job is not None:
            state = "queued"
    details = []
    if state == "queued":
        details.append(f"Slurm job {queued_job}")
    if state == "stopped":
        details.append(str(summary.get("stop_reason") or "stopped early") if summary else "")
    elif summary is None and rundir.stop_requested(run_dir):
        details.append("stop requested (stops at its next evaluation)")
    if state == "failed":
        text = (run_dir / rundir.ERROR).read_text(errors="replace").strip().splitlines()
        last = next((ln for ln in reversed(text) if ln.strip()), None)
        if last:
            details.append(last)
    if summary is None and state != "pending":
        problems: list[str] = []
        rows = rundir.read_metrics(run_dir, problems=problems)
        steps = [r["step"] for r in rows if isinstance(r.get("step"), (int, float))]
        step = int(steps[-1]) if steps else None
        if problems:
            more = f" (and {len(problems) - 1} more damaged line(s))" if len(problems) > 1 else ""
            details.append(problems[0] + more)
    return RunStatus(run_dir.name, state, step, n_steps, "; ".join(details) or None)


def sweep_status(spec: SweepSpec, runs_dir: str | Path) -> list[RunStatus]:
    """State of every run of ``spec``'s plan under ``runs_dir/<spec.name>``, in plan order.

    Raises:
        PlanError: the spec's plan is invalid.
    """
    from sweeps.slurm import live_slurm_jobs

    sweep_dir = Path(runs_dir) / spec.name
    queued = live_slurm_jobs(sweep_dir)
    labels = batch_labels(sweep_dir)
    out = []
    for r in plan(spec):
        status = run_status(sweep_dir / r.run_name, r.config.n_steps, queued.get(r.run_name))
        if r.config.branch_from is not None and status.state in ("pending", "failed", "queued"):
            status = _branch_status(status, r.config.branch_from, sweep_dir)
        out.append(replace(status, batch=labels.get(r.run_name)))
    return out


def _branch_status(status: RunStatus, parent: Any, sweep_dir: Path) -> RunStatus:
    # a branch that has not trained yet: blocked (trunk ended, checkpoint unusable) or waiting
    if status.step is not None and status.step > parent.step:
        return status  # it ran past its start: its own checkpoint matters, not the trunk's
    trunk_dir = sweep_dir / parent.run_name
    path = rundir.step_checkpoint_path(trunk_dir, parent.step)
    problem = rundir.checkpoint_problem(path)
    trunk_state = rundir.run_state(trunk_dir)
    if problem is None:
        return status
    if trunk_state in ("complete", "diverged", "failed") and not lock_held(trunk_dir):
        return replace(status, state="blocked", detail=f"trunk {trunk_state}; {problem}")
    if status.state == "pending":
        return replace(status, detail=f"waits for {parent.run_name} step {parent.step}")
    return status


def count_states(statuses: list[RunStatus]) -> dict[str, int]:
    """``{state: count}`` over ``STATES`` (zeros included)."""
    counts = dict.fromkeys(STATES, 0)
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
    return counts
