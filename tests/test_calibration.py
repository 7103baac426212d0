"""Backtest-calibrated intervals (analysis.calibration)."""

import math

import numpy as np
import pytest
from scipy import stats

from analysis.calibration import (
    calibrate,
    calibrated_interval,
    forward_backtests,
    headline_interval,
)
from analysis.synthetic import CHINCHILLA_LAW, isoflop_arrays_with_break

LAW = {**CHINCHILLA_LAW, "E": 0.0}  # a pure power law in C: approach 2's loss law is exact


def _bt(budgets, shift=0.0, noise=0.003, seed=0):
    N, D, C, L = isoflop_arrays_with_break(
        LAW, budgets, break_flops=budgets[1], head_shift=shift, noise=noise,
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    return forward_backtests(
        N, D, C, L, C, approaches=("isoflop",), n_convention="total", flop_formula="6nd"
    )


def test_forward_backtests_fit_on_the_past_and_see_the_break():
    b = (1e18, 10**18.5, 1e19, 10**19.5, 1e20)
    bt = _bt(b, shift=0.1)
    rows = bt["rows"]
    # k = 2, 3, 4 training budgets: 3 + 2 + 1 forecasts, each strictly forward
    assert len(rows) == 6 and all(r["budget"] > r["train_upto"] and r["x"] > 1 for r in rows)
    assert [round(r["x"], 3) for r in rows[:3]] == [3.162, 10.0, 31.623]
    # the head sits below the trend: a line through it is too shallow, so forecasts from the
    # first two budgets are pessimistic, more so the further they reach
    early = [r["log_err"] for r in rows if r["train_upto"] == b[1]]
    assert 0 < early[0] < early[1] < early[2]
    clean = _bt(b, shift=0.0)
    assert max(abs(r["log_err"]) for r in clean["rows"]) < 0.5 * early[0]


def test_scale_model_and_interval_arithmetic():
    rows = [
        {"approach": "isoflop", "x": x, "log_err": e}
        for x, e in ((3.0, 0.02), (10.0, -0.05), (3.0, 0.01))
    ]
    cal = calibrate({"rows": rows}, "isoflop")
    z = [0.02 / math.log(4), -0.05 / math.log(11), 0.01 / math.log(4)]
    assert cal["scale"] == pytest.approx(math.sqrt(np.mean(np.square(z))))
    lo, hi = calibrated_interval(cal, 2.0, 10.0)
    half = stats.t.ppf(0.975, 3) * cal["scale"] * math.log(11)
    assert (lo, hi) == pytest.approx((2.0 * math.exp(-half), 2.0 * math.exp(half)))
    # wider at a larger extrapolation factor
    lo2, hi2 = calibrated_interval(cal, 2.0, 100.0)
    assert hi2 - lo2 > hi - lo


def test_too_few_backtests_fall_back_to_the_model_interval_labelled():
    bt = _bt((1e18, 1e19, 1e20))  # one forward backtest
    cal = calibrate(bt, "isoflop")
    assert "too few forward backtests (1 < 3)" in cal["error"]
    assert calibrated_interval(cal, 2.0, 10.0) is None
    iv, source = headline_interval((1.9, 2.1), None)
    assert iv == (1.9, 2.1) and source.startswith("model PI")


def test_fewer_than_three_budgets_no_calibration():
    bt = _bt((1e18, 1e19))
    assert "no calibration possible with 2 budget(s)" in bt["error"]
    assert "no calibration possible" in calibrate(bt, "isoflop")["error"]


def test_headline_takes_the_wider_interval():
    assert headline_interval((1.9, 2.1), (1.8, 2.3))[0] == (1.8, 2.3)
    assert (
        headline_interval((1.5, 2.5), (1.8, 2.3))
        == ((1.5, 2.5), headline_interval((1.5, 2.5), (1.8, 2.3))[1])
        and "model PI" in headline_interval((1.5, 2.5), (1.8, 2.3))[1]
    )


def test_rung_reads_the_reports_calibration(tmp_path):
    import json

    from analysis.limits import rung_intervals

    record = {
        "predicted_loss": {"value": 1.59, "pi": [1.48, 1.78]},
        "fit": {"extrapolation_factor": 3.0},
        "actual_loss": 1.504,
    }
    assert rung_intervals(tmp_path / "limits.json", record) == {}  # no report there
    cal = {"n": 3, "scale": 0.05, "dof": 3}
    path = tmp_path / "limits.json"
    path.write_text(json.dumps({"calibration": {"by_approach": {"parametric": cal}}}))
    out = rung_intervals(path, record)
    half = stats.t.ppf(0.975, 3) * 0.05 * math.log(4)
    assert out["calibrated_interval"] == pytest.approx(
        [1.59 * math.exp(-half), 1.59 * math.exp(half)]
    )
    assert out["headline_interval"] == out["calibrated_interval"]  # the wider one
    assert out["inside_headline"] is True
    path.write_text(
        json.dumps({"calibration": {"by_approach": {"parametric": {"error": "too few"}}}})
    )
    out = rung_intervals(path, record)
    assert (
        out["headline_interval"] == [1.48, 1.78]
        and "model PI only: too few" in out["headline_source"]
    )


def test_lr_check_says_whether_a_variant_beat_the_point_beyond_seed_noise():
    import pandas as pd

    from analysis.optimality import lr_optimality

    rows = [  # point A: 3 LRs, the 2x variant better by 0.05; point B: two seeds (spread 0.02)
        ("A", 1e-3, 0, 2.50), ("A", 5e-4, 0, 2.60), ("A", 2e-3, 0, 2.45),
        ("B", 1e-3, 0, 2.00), ("B", 1e-3, 1, 2.02),
    ]  # fmt: skip
    runs = pd.DataFrame(rows, columns=["point_key", "lr", "seed", "val/loss"])
    runs["status"], runs["flops_budget"] = "complete", 1e12
    out = lr_optimality(runs)
    (p,) = out["points"]
    assert out["seed_spread"] == pytest.approx(0.02)
    assert p["lr"] == 1e-3 and p["best_variant_lr"] == 2e-3 and p["gain"] == pytest.approx(0.05)
    assert p["beaten"] is True and "a variant beat A" in out["text"]
    runs.loc[runs["lr"] == 2e-3, "val/loss"] = 2.49  # 0.01 better: within the seed spread
    assert lr_optimality(runs)["points"][0]["beaten"] is False
