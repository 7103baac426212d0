"""Held-out scoring (``analysis.backtest``): refits that never see the held-out data, the same
estimator as the reported fit, the largest USABLE budget, and like-for-like comparisons."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.backtest import _subset, backtest_forecasts
from analysis.fit_inputs import FitData, run_fit
from analysis.synthetic import CHINCHILLA_LAW, isoflop_arrays

KW = dict(n_convention="total", flop_formula="6nd")


def _data(L_scale_top=1.0, seed=0, noise=0.01, budgets=(1e18, 1e19, 1e20)):
    rng = np.random.default_rng(seed)
    N, D, C, L = isoflop_arrays(CHINCHILLA_LAW, budgets, noise=noise, rng=rng)
    L = np.where(C == C.max(), L * L_scale_top, L)
    points = pd.DataFrame(
        {"n_params_total": N, "n_tokens": D, "flops": C, "flops_6nd": C, "flops_budget": C}
    )
    points["val/loss"] = L
    return FitData(points, None, "val/loss", "synthetic", {})


def _top_rows(sc):
    return {r["approach"]: r for r in sc["rows"] if r["largest"]}


def test_held_out_budget_never_reaches_its_refit():
    # the held-out budget's losses scaled by 1.3: the observed vertex moves, the forecast of a
    # refit that never saw those runs cannot (a refit leaking them would follow them)
    a = backtest_forecasts(_data(), n_bootstrap=0, **KW)
    b = backtest_forecasts(_data(L_scale_top=1.3), n_bootstrap=0, **KW)
    ta, tb = _top_rows(a), _top_rows(b)
    assert set(ta) == {"isoflop", "parametric"}
    for appr in ta:
        assert tb[appr]["L_obs"] == pytest.approx(1.3 * ta[appr]["L_obs"], rel=1e-9)
        assert tb[appr]["N_pred"] == pytest.approx(ta[appr]["N_pred"], rel=1e-12)
        assert tb[appr]["L_pred"] == pytest.approx(ta[appr]["L_pred"], rel=1e-12)
    # and the refit is the reported estimator on the runs left: approach 3's point forecast
    data = _data()
    rest = _subset(data, data.points["flops_budget"].to_numpy() < data.points["flops"].max())
    direct = run_fit("parametric", rest, **KW)
    from analysis.query import compute_optimal

    c = ta["parametric"]["C"]
    assert ta["parametric"]["N_pred"] == pytest.approx(
        compute_optimal(c, direct).n_params.value, rel=1e-6
    )


def test_largest_row_is_the_largest_usable_budget_and_extrapolates():
    # the top budget's runs all sit far below its optimum (N / 30): its parabola's vertex lies
    # outside its N grid, so approach 2 rejects it; the backtest holds out the next budget AND
    # drops the rejected one, else approach 3 would still see runs at 10x the held-out C
    N, D, C, L = isoflop_arrays(CHINCHILLA_LAW, noise=0.002, rng=np.random.default_rng(1))
    top = C == C.max()
    N = np.where(top, N / 30, N)
    D = C / (6 * N)
    from analysis.synthetic import law_loss

    L = np.where(top, law_loss(N, D, CHINCHILLA_LAW), L)
    points = pd.DataFrame(
        {"n_params_total": N, "n_tokens": D, "flops": C, "flops_6nd": C, "flops_budget": C}
    )
    points["val/loss"] = L
    data = FitData(points, None, "val/loss", "synthetic", {})
    sc = backtest_forecasts(data, n_bootstrap=0, **KW)
    tops = _top_rows(sc)
    assert tops and all(r["C"] == pytest.approx(1e20) for r in tops.values())
    for r in tops.values():
        assert r["kind"] == "extrapolation"
        assert "largest usable budget; 1 larger rejected budget(s) dropped too" in r["held_out"]
    kept = data.points["flops_budget"].to_numpy() < 1e20
    direct = run_fit("parametric", _subset(data, kept), **KW)
    from analysis.query import compute_optimal

    assert tops["parametric"]["N_pred"] == pytest.approx(
        compute_optimal(1e20, direct).n_params.value, rel=1e-6
    )
    assert all(r["kind"] == "interpolation" for r in sc["rows"] if not r["largest"])


def _branched():
    """Two trunks (shapes), each with branches at steps 10 and 20; points = branch end points."""
    pts, cur = [], []
    for t, n in (("trunkA", 1e6), ("trunkB", 2e6)):
        for step in range(1, 21):  # a trunk runs to its last branch point
            cur.append(
                {"run_name": t, "step": step, "tokens": step * 1e3, "val/loss": 5.0 - step / 10}
            )
        for bp, end, budget in ((10, 20, 1e12), (20, 40, 1e13)):
            name = f"{t}-b{bp}"
            pts.append(
                {
                    "run_name": name,
                    "parent_run": t,
                    "parent_step": bp,
                    "flops_budget": budget,
                    "n_params_total": n,
                    "cluster": t,
                }
            )
            for step in range(bp + 1, end + 1):
                cur.append({"run_name": name, "step": step, "tokens": step * 1e3, "val/loss": 3.0})
    return FitData(pd.DataFrame(pts), pd.DataFrame(cur), "val/loss", "branched", {})


def test_refit_keeps_wsd_trunk_curves_as_the_reported_fit_does():
    data = _branched()
    # nothing held out: the very curves the reported approach-1 fit uses (trunks included)
    same = _subset(data, np.ones(len(data.points), bool))
    pd.testing.assert_frame_equal(same.curves, data.curves)
    # the 1e13 budget held out: its branches go, and each trunk stops at the last branch
    # point a kept branch needs (step 10): the sweep as if that budget had never been run
    low = _subset(data, data.points["flops_budget"].to_numpy() < 1e13)
    trunks = low.curves[
        low.curves["run_name"].str.startswith("trunk") & ~low.curves["run_name"].str.contains("-")
    ]
    assert set(trunks["run_name"]) == {"trunkA", "trunkB"} and trunks["step"].max() == 10
    assert set(low.curves["run_name"]) == {"trunkA", "trunkB", "trunkA-b10", "trunkB-b10"}


def test_seed_means_get_the_interval_of_a_seed_mean():
    from analysis.backtest import _run_pi

    data = _data(seed=3)
    fit = run_fit("parametric", data, n_bootstrap=8, workers=1, **KW)
    assert fit.n_bootstrap == 8
    lo1, hi1 = _run_pi(fit, 1e9, 2e10, 1)
    lo4, hi4 = _run_pi(fit, 1e9, 2e10, 4)
    # a 4-seed mean's noise is half of one run's; the estimation error is the same
    assert lo1 < lo4 < hi4 < hi1
    assert math.log(hi4 / lo4) < 0.8 * math.log(hi1 / lo1)


def test_curve_law_is_a_method_of_the_leave_one_budget_out_backtest(tmp_path, monkeypatch):
    # issue 21: with curve_law=True each usable budget gets a curve-law row whose refit saw only
    # the other budgets' curves and which predicts every held-out run's final loss
    import warnings

    import analysis.curves
    from analysis.fit_inputs import data_from_runs
    from analysis.synthetic import write_synthetic_sweep

    sweep = write_synthetic_sweep(tmp_path, n_models=5, n_log=8, budgets=(3e13, 1e14, 3e14))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = data_from_runs(sweep)
    fitted_sets = []
    real_fit = analysis.curves.fit_curves

    def spy(curves, *args, **kwargs):  # the real fit, recording which runs it saw
        fitted_sets.append({c.run for c in curves})
        return real_fit(curves, *args, **kwargs)

    monkeypatch.setattr(analysis.curves, "fit_curves", spy)
    out = backtest_forecasts(
        data, n_convention="non_embedding", flop_formula="counted", n_bootstrap=0, curve_law=True
    )
    rows = [r for r in out["rows"] if r["approach"] == "curves"]
    budget = dict(zip(data.points["run_name"], data.points["flops_budget"], strict=True))
    assert [r["C"] for r in rows] == sorted(r["C"] for r in rows) and len(rows) == 3
    assert len(fitted_sets) == 3
    for r, seen in zip(rows, fitted_sets, strict=True):
        held = {n for n, b in budget.items() if np.isclose(b, r["C"], rtol=0.05)}
        assert held and not held & seen  # the held-out runs never reach the refit
        assert seen == set(budget) - held and r["n_fitted_curves"] == len(seen)
        assert r["runs_in_pi"][1] == len(r["run_rel_errs"]) == len(held)
        assert r["n_held_without_curve"] == 0
        assert all(math.isfinite(e) for e in r["run_rel_errs"])
    assert out["summary"]["curves"]["median_abs_run_rel_err"] > 0
    assert "curve law" in out["note"]
    # the report's held-out section shows the rows (the main job runs `report --curve-law`)
    from types import SimpleNamespace

    from analysis.report import _forecast

    sec = _forecast(SimpleNamespace(forecast=out))
    cells = [row for row in sec.table[1] if row[1] == "curve law (multi-power)"]
    assert len(cells) == 3 and all("held-out runs' final loss" in row[4] for row in cells)
    assert any("median |relative error| of a run" in p for p in sec.paragraphs)
