"""Opt-in early stopping: a launcher's monitor stops runs whose predicted final loss is clearly bad.

Issue 21, item 3: ``scaling sweep launch --early-stop`` (``launch(..., early_stop=
EarlyStopRule())``). The decision lives here, in ``sweeps/``; ``analysis.curves`` predicts; the
request reaches the run through the run-directory contract (``stop_request.json``, owned by
``scaling.rundir``), and ``scaling.train`` honours it at its next evaluation or checkpoint step,
ending the run with ``status: "stopped"`` (never ``"complete"``: no fit reads it as a point).

The rule (its first version was tried once, on the test pair, and changed: see **Comparison**):

- **Neighbours** of a run are the other planned runs with the same ``point_key``: the same shape
  at the same budget (or token count), differing only in learning rate or seed. They compete for
  one point of the fit, so a run clearly worse than one of them is wasted compute. Runs of other
  shapes at the same budget are *not* neighbours: an IsoFLOP sweep needs its worse-than-optimal
  sizes (they pin the parabola), so stopping them would damage the fit it exists for. A run
  without neighbours (one LR, one seed per point: the default IsoFLOP sweep) is never stopped.
  WSD trunks are never stopped (their branches start from them); branches are judged on their
  spliced curve (trunk rows up to the branch step, then their own).
- **When**: only once the run has trained ``min_fraction`` of its planned steps (default 30%, the
  fraction ``benchmarks/curve_law.py`` scores) and has enough ``val/loss`` points for a
  prediction interval (more points than the law's coefficients).
- **Prediction**: the law (default Tissue et al. 2024, 4 coefficients, so a PI exists from 5
  points; ``law="multi_power"`` needs 8) is fitted to the run's own curve so far, and predicts
  its final loss on its planned schedule with a ``level`` PI (``analysis.curve_predict``; no
  bootstrap, so a check takes a fraction of a second).
- **Comparison**: the run and each neighbour (finished or running, not diverged or stopped)
  are cut at the same step (the earlier of their last evaluated steps, itself past
  ``min_fraction``). The neighbour's standard is its *observed* loss at that step: its final loss
  will be lower (loss falls under a non-increasing schedule), so the comparison only errs
  towards not stopping. Its predicted final loss is not used: a law fitted to a run's early
  stretch is unreliable, in both directions. Measured before this rule was fixed: on five
  ``cpu_isoflop`` branches cut at 30% (still at constant LR) the Tissue and multi-power laws
  over-predicted the final loss by 4-14%; on a run with a 100x too small LR
  (tests/test_early_stop.py's pair, cut at 114 of 300 steps, loss still 5.0) the Tissue law
  predicted 1.29 nats against an actual 4.73, because the annealing coefficient is not
  identified before the decay starts. A first version that compared
  predictions with predictions stopped the *good* run of that pair.
- **Stop** when, for some neighbour, the lower end of the run's PI lies above that neighbour's
  loss at the same step: even the run's optimistic final loss is worse than what the neighbour
  has already reached (the stop request names the neighbour with the widest such gap).

A stopped run keeps its ``checkpoint.pt`` (written at the stop step) and curve. A relaunch skips
it like any ended run; ``launch(..., resume_stopped=True)`` (``--resume-stopped``) removes its
summary and stop request so it resumes where it stopped. The monitor runs in the launcher's
wait loop, for the local executor and for Slurm (``wait=True``) alike, at most every
``interval_s`` seconds.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scaling import rundir
from sweeps.plan import PlannedRun

LAWS = ("tissue", "multi_power")


@dataclass(frozen=True)
class EarlyStopRule:
    """When the monitor stops a run (module docstring).

    Attributes:
        min_fraction: fraction of its planned steps a run trains before it may be stopped,
            in (0, 1).
        level: coverage of the prediction interval, in (0, 1).
        law: ``"tissue"`` (Tissue et al. 2024) or ``"multi_power"`` (Luo et al. 2025).
        interval_s: least seconds between two checks (>= 0).
        loss_col: the metrics column predicted.

    Raises:
        ValueError: a field out of range, naming it.
    """

    min_fraction: float = 0.3
    level: float = 0.95
    law: str = "tissue"
    interval_s: float = 30.0
    loss_col: str = "val/loss"

    def __post_init__(self) -> None:
        """Check every field (one line naming the field and the fix)."""
        if not 0.0 < self.min_fraction < 1.0:
            raise ValueError(
                f"early stop min_fraction must be in (0, 1), got {self.min_fraction}; e.g. 0.3"
            )
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"early stop level must be in (0, 1), got {self.level}; e.g. 0.95")
        if self.law not in LAWS:
            raise ValueError(f"early stop law must be one of {LAWS}, got {self.law!r}")
        if not (math.isfinite(self.interval_s) and self.interval_s >= 0):
            raise ValueError(f"early stop interval_s must be >= 0 seconds, got {self.interval_s}")


@dataclass(frozen=True)
class StopDecision:
    """One stop the monitor requested (also written into the run's ``stop_request.json``).

    Attributes:
        run_name: the stopped run.
        step: the step both curves were cut at when judged.
        n_steps: its planned steps.
        predicted: its predicted final loss (nats/token).
        pi: ``[lo, hi]``, the prediction interval at ``level``.
        neighbour: the neighbour it is worse than (the widest gap if several).
        neighbour_loss: that neighbour's observed loss at ``step`` (nats/token), an upper
            bound on its final loss.
        level: PI coverage.
        law: the curve law used.
    """

    run_name: str
    step: int
    n_steps: int
    predicted: float
    pi: list[float]
    neighbour: str
    neighbour_loss: float
    level: float
    law: str

    @property
    def reason(self) -> str:
        """One line for ``summary.json``'s ``stop_reason`` and ``sweep status``."""
        return (
            f"early stop at step {self.step}/{self.n_steps}: predicted final {self.predicted:.4f} "
            f"({self.level:.0%} PI [{self.pi[0]:.4f}, {self.pi[1]:.4f}]) is worse than neighbour "
            f"{self.neighbour}'s loss at that step, {self.neighbour_loss:.4f}, by more than the PI"
        )


class EarlyStopMonitor:
    """Checks a sweep's running runs and writes stop requests (module docstring).

    Args:
        sweep_dir: the sweep's folder.
        runs: the planned runs (their ``point_key`` defines neighbours).
        rule: the ``EarlyStopRule``.
        log: stream for one line per stop (default stderr); ``None`` for silence.
    """

    def __init__(
        self,
        sweep_dir: str | Path,
        runs: Sequence[PlannedRun],
        rule: EarlyStopRule,
        log: Any = sys.stderr,
    ) -> None:
        """Group the plan's runs by ``point_key`` (trunks and runs without neighbours left out)."""
        self.sweep_dir = Path(sweep_dir)
        self.rule = rule
        self.log = log
        self.decisions: list[StopDecision] = []
        self._last = -math.inf
        self._cache: dict[tuple[str, int], dict[str, Any] | None] = {}
        groups: dict[str, list[str]] = {}
        for r in runs:
            key = r.config.point_key
            if key is None or r.config.keep_checkpoint_steps:
                continue
            groups.setdefault(key, []).append(r.run_name)
        self.groups = {k: v for k, v in groups.items() if len(v) > 1}

    def poll(self) -> list[StopDecision]:
        """``check()`` when ``interval_s`` has passed since the last one, else nothing.

        A check that cannot read the runs (a damaged file: ``OSError``, ``ValueError``,
        ``KeyError``) is skipped with one line on ``log``: the launcher and its runs go on.
        """
        now = time.monotonic()
        if now - self._last < self.rule.interval_s or not self.groups:
            return []
        self._last = now
        try:
            return self.check()
        except (OSError, ValueError, KeyError) as e:  # a damaged file must not stop the launcher
            if self.log is not None:
                print(f"early stop: check skipped ({type(e).__name__}: {e})", file=self.log)
            return []

    def check(self) -> list[StopDecision]:
        """Judge every running run past ``min_fraction`` now; write a stop request per verdict.

        Returns:
            The stops requested by this check.
        """
        live = self._live_runs()
        if not live:
            return []
        from analysis.curve_data import run_curves

        wanted = {n for names in self.groups.values() for n in names}
        curves, _ = run_curves(
            self.sweep_dir,
            self.rule.loss_col,
            statuses=("complete", "incomplete"),
            min_points=2,
        )
        by_name = {c.run: c for c in curves if c.run in wanted}
        out = []
        for names in self.groups.values():
            for name in names:
                if name not in live or name not in by_name:
                    continue
                others = [by_name[n] for n in names if n != name and n in by_name]
                decision = self._judge(by_name[name], others)
                if decision is not None:
                    self._request(decision)
                    out.append(decision)
        return out

    # -- internals ---------------------------------------------------------------------------
    def _live_runs(self) -> set[str]:
        # runs that have started, not ended, and are not already asked to stop
        live = set()
        for names in self.groups.values():
            for name in names:
                d = self.sweep_dir / name
                if not (d / rundir.CONFIG).exists() or rundir.stop_requested(d):
                    continue
                try:
                    if rundir.read_summary(d) is None:
                        live.add(name)
                except ValueError:  # a damaged summary: the run ended; sweep status reports it
                    continue
        return live

    def _predict(self, curve: Any, step: int) -> dict[str, Any] | None:
        # the law fitted to `curve` up to `step`, predicting its planned last step (cached)
        key = (curve.run, step)
        if key in self._cache:
            return self._cache[key]
        from analysis.curve_data import truncate
        from analysis.curve_predict import predict_final
        from analysis.curves import N_COEFFICIENTS, CurveError, fit_curves

        cut = truncate(curve, step)
        pred = None
        if cut.steps.size > N_COEFFICIENTS[self.rule.law]:  # a PI needs n > p
            try:
                fit = fit_curves([cut], self.rule.law, joint=False, level=self.rule.level)
                p = predict_final(fit, curve.lrs, level=self.rule.level)
                if all(math.isfinite(x) for x in (p["value"], *p["pi"])):
                    pred = p
            except (CurveError, ValueError):
                pred = None
        self._cache[key] = pred
        return pred

    def _judge(self, curve: Any, others: list[Any]) -> StopDecision | None:
        n_steps = curve.planned_steps
        last = int(curve.steps[-1])
        if last < self.rule.min_fraction * n_steps or last >= n_steps:
            return None
        worst: StopDecision | None = None
        for q in others:
            if rundir.stop_requested(self.sweep_dir / q.run):
                continue  # being stopped itself
            if _status(self.sweep_dir / q.run) not in (None, "complete"):
                continue  # a diverged or stopped neighbour is no standard
            step = min(last, int(q.steps[-1]))  # like with like: both cut at one step
            if step < self.rule.min_fraction * n_steps:
                continue
            mine = self._predict(curve, step)
            theirs = float(q.loss[q.steps <= step][-1])  # observed: its final will be lower
            if mine is None or not mine["pi"][0] > theirs:
                continue
            gap = mine["pi"][0] - theirs
            if worst is None or gap > worst.pi[0] - worst.neighbour_loss:
                worst = StopDecision(
                    run_name=curve.run,
                    step=step,
                    n_steps=n_steps,
                    predicted=float(mine["value"]),
                    pi=[float(x) for x in mine["pi"]],
                    neighbour=q.run,
                    neighbour_loss=theirs,
                    level=self.rule.level,
                    law=self.rule.law,
                )
        return worst

    def _request(self, decision: StopDecision) -> None:
        detail = {k: v for k, v in asdict(decision).items() if k != "run_name"}
        rundir.write_stop_request(self.sweep_dir / decision.run_name, decision.reason, **detail)
        self.decisions.append(decision)
        if self.log is not None:
            print(f"stop requested: {decision.run_name}: {decision.reason}", file=self.log)


def _status(run_dir: Path) -> str | None:
    try:
        summary = rundir.read_summary(run_dir)
    except ValueError:
        return "damaged"
    return None if summary is None else str(summary.get("status"))
