"""Loss at any (N, D) with CI and PI, identifiability flags, pinned parameters, forecast scoring
and the sensitivity table."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.forecast import predict_loss, prediction_interval
from analysis.parametric import IdentifiabilityWarning, fit_parametric
from analysis.synthetic import CHINCHILLA_LAW as LAW
from analysis.synthetic import law_loss, pi_coverage
from scaling.cli import main


def _grid(noise, seed=0, n=6, lo=(1e7, 1e8), decades=3.0):
    rng = np.random.default_rng(seed)
    N, D = (
        x.ravel()
        for x in np.meshgrid(
            np.geomspace(lo[0], lo[0] * 10**decades, n), np.geomspace(lo[1], lo[1] * 10**decades, n)
        )
    )
    return N, D, law_loss(N, D, LAW) * np.exp(rng.normal(0, noise, N.size))


@pytest.fixture(scope="module")
def grid_fit():
    N, D, L = _grid(0.01)
    return fit_parametric(
        N, D, L, n_convention="total", flop_formula="6nd", n_bootstrap=60, seed=0, workers=1
    )


def test_predict_loss_contract_and_intervals(grid_fit):
    import analysis

    assert analysis.predict_loss is predict_loss  # the interface contract's name
    ans = predict_loss(grid_fit, 3e10, 6e10)
    assert set(ans) == {"value", "ci", "pi", "level"} and ans["level"] == 0.95
    truth = float(law_loss(3e10, 6e10, LAW))
    assert ans["value"] == pytest.approx(truth, rel=0.02)
    (clo, chi), (plo, phi) = ans["ci"], ans["pi"]
    assert clo < ans["value"] < chi  # a real interval from the bootstrap, never degenerate
    assert plo < clo and phi > chi  # the PI adds the residual spread to the CI
    # 1% log-normal noise: a single run's 95% interval is at least +-1.96% wide
    assert (phi - plo) / ans["value"] > 2 * 1.96 * 0.01 * 0.9
    # the round trip through fit.json answers the same
    back = predict_loss(json.loads(json.dumps(grid_fit.to_dict())), 3e10, 6e10)
    assert back["pi"] == pytest.approx(ans["pi"]) and back["ci"] == pytest.approx(ans["ci"])
    with pytest.raises(ValueError, match="n_tokens"):
        predict_loss(grid_fit, 1e9, -5)


def test_prediction_interval_is_the_residual_quantile_without_bootstrap():
    # one centre, residuals +-r: the PI is exp(centre + quantiles of the inflated residuals)
    r = np.linspace(-0.02, 0.02, 41)
    lo, hi = prediction_interval([0.0], r, n_free=1, level=0.9)
    infl = math.sqrt(41 / 40)
    assert math.log(hi) == pytest.approx(np.percentile(r * infl, 95))
    assert math.log(lo) == pytest.approx(np.percentile(r * infl, 5))
    assert all(math.isnan(x) for x in prediction_interval([0.0], r[:3], n_free=5))


def test_pi_covers_fresh_draws_on_simulated_sweeps():
    # known truth, 100 simulated sweeps (fast path: starts near the truth, Gauss-Newton refits,
    # 40 resamples); benchmarks/pi_coverage.py runs the full 200-sweep measurement
    r = pi_coverage(100, n_bootstrap=40, seed=1, fast=True)
    assert 0.90 <= r["coverage_target"] <= 0.99, r
    assert 0.90 <= r["coverage_interior"] <= 1.0, r
    assert r["mean_pi_width_target"] < 0.1  # not covering by being absurdly wide


def _narrow(seed):
    """16 runs within half a decade of N and D: E cannot be told apart from A/N^alpha."""
    return _grid(0.01, seed=seed, n=4, decades=0.5)


def test_identifiability_flags_the_unidentified_asymptote():
    N, D, L = _narrow(0)
    with pytest.warns(IdentifiabilityWarning, match="E: "):
        f = fit_parametric(
            N, D, L, n_convention="total", flop_formula="6nd", n_bootstrap=60, workers=1
        )
    assert f.identifiability["E"] > 0.5
    assert any(flag.startswith("E: ") and "--fix E=" in flag for flag in f.flags)
    assert "flag: E: " in f.report()
    # control: the same law on a 3-decade grid identifies every parameter
    N, D, L = _grid(0.01, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        g = fit_parametric(
            N, D, L, n_convention="total", flop_formula="6nd", n_bootstrap=60, workers=1
        )
    assert not g.flags and max(g.identifiability.values()) <= 0.1


def test_fix_pins_a_parameter_in_fit_bootstrap_and_fit_json(tmp_path, capsys):
    N, D, L = _narrow(0)
    csv = tmp_path / "runs.csv"
    pd.DataFrame({"N": N, "D": D, "loss": L}).to_csv(csv, index=False)
    out = tmp_path / "fit.json"
    args = ["fit", "--csv", str(csv), "--n-col", "N", "--d-col", "D", "--loss-col", "loss"]
    args += ["--approach", "parametric", "--bootstrap", "40", "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        assert main([*args, "--fix", "E=1.69"]) == 0
    d = json.loads(out.read_text())
    assert d["fixed"] == {"E": 1.69} and d["E"] == pytest.approx(1.69)
    assert d["E_ci"] == pytest.approx([1.69, 1.69])  # every bootstrap refit held it
    assert np.allclose(d["samples"]["E"], 1.69)
    assert "E" not in d["identifiability"] and d["flags"] == []
    for k in ("alpha", "beta"):  # with E pinned the exponents are identified again
        assert d[f"{k}_ci"][0] < LAW[k] < d[f"{k}_ci"][1], (k, d[f"{k}_ci"])
    assert "(fixed)" in capsys.readouterr().out
    # two pins, then bad pins: one-line errors naming the flag, nothing written
    no_boot = [x if x != "40" else "0" for x in args]
    assert main([*no_boot, "--fix", "E=1.69", "--fix", "alpha=0.34"]) == 0
    assert json.loads(out.read_text())["fixed"] == {"E": 1.69, "alpha": 0.34}
    capsys.readouterr()
    for bad, msg in (("E", "NAME=VALUE"), ("gamma=1", "cannot fix 'gamma'"), ("E=-1", "> 0")):
        before = out.read_text()
        assert main([*args, "--fix", bad]) == 2
        assert msg in capsys.readouterr().err and out.read_text() == before
    iso = ["--approach", "isoflop"]
    assert main([*args[:-6], *iso, "--out", str(out), "--fix", "E=1"]) == 2


def test_loss_query_cli(grid_fit, tmp_path, capsys):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(grid_fit.to_dict()))
    assert (
        main(["optimal", "--fit", str(path), "--params", "3e10", "--tokens", "6e10", "--json"]) == 0
    )
    ans = json.loads(capsys.readouterr().out)
    assert ans["query"] == {"n_params": 3e10, "n_tokens": 6e10}
    assert set(ans["loss"]) == {"value", "ci", "pi", "level"}
    assert ans["loss"]["pi"] == pytest.approx(predict_loss(grid_fit, 3e10, 6e10)["pi"])
    assert "resampled" in ans["note"] and "N is 3x above the largest fitted N" in ans["note"]
    assert main(["optimal", "--fit", str(path), "--params", "1e8", "--tokens", "1e9"]) == 0
    assert "prediction interval" in capsys.readouterr().out
    # --flops answers gain loss.pi
    assert main(["optimal", "--fit", str(path), "--flops", "1e21", "--json"]) == 0
    opt = json.loads(capsys.readouterr().out)
    lo, hi = opt["loss"]["pi"]
    assert lo < opt["loss"]["ci"][0] <= opt["loss"]["value"] <= opt["loss"]["ci"][1] < hi
    with pytest.raises(SystemExit):  # argparse: one of --flops/--params/--loss is required
        main(["optimal", "--fit", str(path), "--tokens", "1e9"])
    assert main(["optimal", "--fit", str(path), "--loss", "2.5", "--tokens", "1e9"]) == 2
    assert "--tokens needs --params" in capsys.readouterr().err


def test_loss_query_refuses_frontier_fits():
    from analysis.fits import fit_isoflop
    from analysis.synthetic import isoflop_arrays

    N, D, C, L = isoflop_arrays(LAW, noise=0.003)
    iso = fit_isoflop(N, D, C, L, n_convention="total", flop_formula="6nd", budget=C)
    with pytest.raises(ValueError, match="approach-3 fit"):
        predict_loss(iso, 1e9, 1e10)


def test_forecast_scoring_largest_n_held_out_on_grid_data():
    from analysis.backtest import backtest_forecasts
    from analysis.fit_inputs import FitData

    N, D, L = _grid(0.01, seed=2)
    points = pd.DataFrame(
        {"n_params_total": N, "n_tokens": D, "flops": 6 * N * D, "flops_6nd": 6 * N * D}
    )
    points["val/loss"] = L
    sc = backtest_forecasts(
        FitData(points, None, "val/loss", "grid", {}),
        n_convention="total",
        flop_formula="6nd",
        n_bootstrap=40,
        workers=1,
    )
    assert sc["design"] == "largest_n" and len(sc["rows"]) == 6  # the 6 runs at the largest N
    for r in sc["rows"]:
        assert r["L_err"] == pytest.approx(r["L_pred"] - r["L_obs"])
        assert r["L_pi"][0] < r["L_pred"] < r["L_pi"][1]
    # extrapolating one step in N on 1% noise: most held-out runs fall inside their 95% PI
    assert sc["summary"]["parametric"]["L_in_pi"] >= 4


def test_sensitivity_for_any_csv(tmp_path, capsys):
    from analysis.synthetic import isoflop_arrays

    N, D, C, L = isoflop_arrays(LAW, noise=0.003, rng=np.random.default_rng(0))
    csv = tmp_path / "runs.csv"
    pd.DataFrame({"N": N, "D": D, "C": C * 1.1, "loss": L, "budget": C}).to_csv(csv, index=False)
    out = tmp_path / "sens.json"
    args = ["fit", "--csv", str(csv), "--n-col", "N", "--d-col", "D", "--c-col", "C"]
    args += ["--loss-col", "loss", "--budget-col", "budget", "--sensitivity"]
    assert main([*args, "--target-flops", "1e22", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Sensitivity at C = 1.000e+22" in text and "tokens/param spans" in text
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 12
    # one N column: the CSV cannot say what the other convention would give, and says so
    assert all("error" in r for r in rows if r["n_convention"] == "non_embedding")
    ok = [r for r in rows if r["n_convention"] == "total"]
    assert len(ok) == 6 and not [r for r in ok if "error" in r]
    a_true = LAW["beta"] / (LAW["alpha"] + LAW["beta"])
    for r in ok:  # every choice lands near the truth on this clean design
        assert abs(r["a"] - a_true) < 0.05, r
    # counted C here is 1.1 x 6ND: the same budget buys 1/1.1 of the compute, a smaller model
    by = {(r["flop_formula"], r["approach"], r["huber_delta"]): r for r in ok}
    assert by[("counted", "isoflop", None)]["n_opt"] < by[("6nd", "isoflop", None)]["n_opt"]
    assert main([*args, "--fix", "E=1.7"]) == 2
    assert "--fix does not combine" in capsys.readouterr().err


def test_counted_flop_optimum_of_a_wild_bootstrap_refit_is_nan_not_a_crash():
    # both found on real sweeps: A underflowed to 0 (closed form N_opt = 0 -> log(0)), and an
    # exponent so large that A/N^alpha underflows inside the search (division by zero)
    from analysis.parametric import optimum

    ratio = {"c0": 0.1, "c1": -0.05}
    n, d = optimum(1e20, 1.7, 0.0, 410.0, 0.34, 0.28, ratio)
    assert math.isnan(n) and math.isnan(d)
    for alpha in (40.0, 400.0):
        n, d = optimum(1e12, 1.7, 1e-300, 410.0, alpha, 0.28, ratio)
        assert (math.isnan(n) and math.isnan(d)) or (n > 0 and d > 0)
    n, d = optimum(1e21, **LAW, flop_ratio=ratio)  # a sane law still gets its optimum
    assert n > 0 and d > 0 and 6 * n * d * math.exp(0.1) * n**-0.05 == pytest.approx(1e21)
