"""LR variants for the point-optimality check (issue 25, item 4): opt-in, after the study ran.

For the best point (lowest selected loss, ``analysis.load.select_points``) of the smallest and
the largest budget of a sweep that has run, plan the same run at ``factors`` x its learning
rate (0.5x and 2x by default). A variant trains from scratch (a WSD branch's variant is the
WSD run of its own length, without the trunk), so it shares nothing with the point but the
shape, tokens, seed and data. ``scaling sweep plan NAME --lr-check RUNS_DIR`` lists them;
``scaling sweep launch NAME --runs-dir RUNS_DIR --lr-check`` trains them beside the study, so
the report's LR check (``analysis.optimality``) finds them (and the fit's best-LR selection
uses a variant when it wins).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sweeps.plan import PlannedRun, plan
from sweeps.spec import SweepSpec

FACTORS = (0.5, 2.0)


def lr_check_runs(
    spec: SweepSpec, runs_dir: str | Path, factors: tuple[float, ...] = FACTORS
) -> list[PlannedRun]:
    """The LR-variant runs of the best points at the smallest and largest budgets.

    Args:
        spec: the study's sweep.
        runs_dir: the root its runs went to (``runs_dir/<spec.name>/``).
        factors: LR multipliers of each variant.

    Raises:
        FileNotFoundError / ValueError: no runs of the sweep on disk yet (run the study first),
            or no complete run with a finite loss.
    """
    from analysis.load import load_runs, select_points

    sweep_dir = Path(runs_dir) / spec.name
    if not sweep_dir.is_dir():
        raise FileNotFoundError(
            f"--lr-check: {sweep_dir} does not exist; launch the sweep first (the check needs "
            "its best points)"
        )
    points, _ = select_points(load_runs(sweep_dir, warn=False))
    planned = [r for r in plan(spec) if r.role != "trunk"]
    budgets = sorted(points["flops_budget"].dropna().unique())
    out: list[PlannedRun] = []
    for budget in dict.fromkeys((budgets[0], budgets[-1])):
        at = points[points["flops_budget"] == budget]
        best = at.loc[at["val/loss"].idxmin()]
        same = [
            r
            for r in planned
            if r.config.point_key == best["point_key"] and r.config.optim.lr == best["lr"]
        ]
        if not same:
            continue
        cfg = min(same, key=lambda r: r.config.seed).config
        for f in factors:
            lr = float(f"{cfg.optim.lr * f:.4g}")  # 4 significant digits, as the spec's LRs
            var = dataclasses.replace(
                cfg,
                optim=dataclasses.replace(cfg.optim, lr=lr),
                branch_from=None,
                keep_checkpoint_steps=(),
            )
            out.append(PlannedRun.from_config(var))
    return out
