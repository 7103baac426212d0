"""Regime check (analysis.regime): local exponents, one-exponent test, head-drop rule."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.regime import drop_off_trend_head, regime_check
from analysis.synthetic import CHINCHILLA_LAW, isoflop_arrays_with_break
from scaling.cli import main

# E = 0: the compute-optimal loss is then exactly a power law in C with exponent
# alpha * beta / (alpha + beta) (Hoffmann et al. 2022 Eq. 4 substituted into Eq. 2)
POWER_LAW = {**CHINCHILLA_LAW, "E": 0.0}
BUDGETS = (1e18, 10**18.5, 1e19, 10**19.5, 1e20)


def _sweep(rng, shift=0.0, noise=0.01, budgets=BUDGETS, law=POWER_LAW):
    return isoflop_arrays_with_break(
        law, budgets, break_flops=budgets[1], head_shift=shift, noise=noise, rng=rng
    )


def test_local_exponent_of_an_exact_power_law():
    N, _, C, L = _sweep(np.random.default_rng(0), noise=0.0)
    chk = regime_check(C, L, budget=C, N=N, n_bootstrap=0)
    want = 0.34 * 0.28 / (0.34 + 0.28)
    assert [r["exponent"] for r in chk["local"]] == pytest.approx([want] * 4, rel=1e-9)


def test_constant_exponent_not_flagged_at_more_than_its_rate():
    rng = np.random.default_rng(1)
    n, rejected, dropped = 80, 0, 0
    for _ in range(n):
        N, _, C, L = _sweep(rng)
        chk = regime_check(C, L, budget=C, N=N, n_bootstrap=40, seed=int(rng.integers(1 << 30)))
        rejected += chk["constant_exponent"]["rejected"]
        dropped += bool(drop_off_trend_head(chk))
    # nominal 5%; 0.125 is > 3 binomial s.d. above it
    assert rejected / n <= 0.125 and dropped / n <= 0.1


def test_a_simulated_break_is_detected_and_the_head_dropped():
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(20):
        N, _, C, L = _sweep(rng, shift=0.1)  # head ~11% below the trend
        chk = regime_check(C, L, budget=C, N=N, n_bootstrap=40, seed=3)
        hits += (
            chk["constant_exponent"]["rejected"]
            and chk["off_trend"] == [BUDGETS[0]]
            and drop_off_trend_head(chk) == [BUDGETS[0]]
            and "1e+18" in chk["warning"]
        )
    assert hits >= 18
    # the head's local exponent is the low one, beside the others' CIs
    assert chk["local"][0]["exponent"] < chk["local"][2]["ci"][0]


def test_fewer_than_three_budgets_cannot_judge():
    N, _, C, L = _sweep(np.random.default_rng(0), budgets=(1e18, 1e19))
    chk = regime_check(C, L, budget=C, N=N)
    assert (
        chk["judged"] is False and "2 budget(s)" in chk["reason"] and "at least 3" in chk["reason"]
    )
    with pytest.raises(ValueError, match="cannot apply the rule"):
        drop_off_trend_head(chk)


def test_rule_that_would_keep_two_budgets_is_refused_with_the_budgets_named():
    N, _, C, L = _sweep(np.random.default_rng(0), shift=0.3, budgets=(1e18, 10**18.5, 1e19))
    chk = regime_check(C, L, budget=C, N=N, n_bootstrap=40)
    with pytest.raises(ValueError, match=r"drop budgets 1e\+18 and keep only 3\.16e\+18, 1e\+19"):
        drop_off_trend_head(chk)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="finite and > 0"):
        regime_check([1e18, 1e19, -1.0], [3.0, 2.9, 2.8])


def _csv(tmp_path, shift, budgets):
    N, D, C, L = _sweep(np.random.default_rng(5), shift=shift, budgets=budgets, law=CHINCHILLA_LAW)
    path = tmp_path / "runs.csv"
    pd.DataFrame({"N": N, "D": D, "loss": L, "budget": C}).to_csv(path, index=False)
    return path


def _fit_args(path, out):
    return [
        "fit", "--csv", str(path), "--n-col", "N", "--d-col", "D", "--loss-col", "loss",
        "--budget-col", "budget", "--approach", "isoflop", "--out", str(out),
    ]  # fmt: skip


def test_cli_fit_records_the_regime_and_drops_the_head(tmp_path):
    path, out = _csv(tmp_path, 0.3, BUDGETS), tmp_path / "fit.json"
    assert main([*_fit_args(path, out), "--drop-off-trend"]) == 0
    d = json.loads(out.read_text())
    assert d["dropped_budgets"] == [1e18] and d["regime"]["off_trend"][0] == 1e18
    assert len(d["optima"]) == 4  # the fit itself saw four budgets


def test_cli_fit_refuses_a_drop_to_two_budgets(tmp_path, capsys):
    path, out = _csv(tmp_path, 0.3, (1e18, 10**18.5, 1e19)), tmp_path / "fit.json"
    assert main([*_fit_args(path, out), "--drop-off-trend"]) != 0
    assert "keep only" in capsys.readouterr().err and not out.exists()
