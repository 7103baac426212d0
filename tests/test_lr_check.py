"""LR variants of the best points (sweeps.lr_check), planned from a sweep's runs on disk."""

import numpy as np
import pytest

from analysis.synthetic import CHINCHILLA_LAW, _write_run
from sweeps.lr_check import lr_check_runs
from sweeps.plan import plan
from sweeps.registry import load_sweep


def test_variants_of_the_best_point_at_each_end(tmp_path):
    spec = load_sweep("smoke")
    with pytest.raises(FileNotFoundError, match="launch the sweep first"):
        lr_check_runs(spec, tmp_path)
    runs = plan(spec)
    rng = np.random.default_rng(0)
    for r in runs:  # "trained" runs drawn from a known law (no training)
        _write_run(tmp_path / "smoke" / r.run_name, r.run_name, r.config, CHINCHILLA_LAW,
                   0.0, 0.0, 4, rng)  # fmt: skip
    variants = lr_check_runs(spec, tmp_path)
    assert len(variants) == 4  # 2 budgets x (0.5x, 2x)
    for v in variants:
        same_point = [r for r in runs if r.config.point_key == v.config.point_key]
        base = same_point[0].config
        assert v.config.optim.lr / base.optim.lr in (pytest.approx(0.5), pytest.approx(2.0))
        assert v.n_tokens == base.n_tokens and v.config.model == base.model
        assert v.run_name not in {r.run_name for r in runs}  # a new run, not a rename
    budgets = {v.config.flops_budget for v in variants}
    assert budgets == {4e9, 8e9}
    from analysis.load import load_runs, select_points

    points, _ = select_points(load_runs(tmp_path / "smoke"))
    for b in (4e9, 8e9):
        at = points[points["flops_budget"] == b].sort_values("val/loss")
        assert at["val/loss"].iloc[0] < at["val/loss"].iloc[1]  # a real choice
        picked = {v.config.point_key for v in variants if v.config.flops_budget == b}
        assert picked == {at["point_key"].iloc[0]}
