"""Approach 3 (parametric) fit: published numbers, recovery, gradient, speed-path equivalence."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data

from analysis import parametric as P
from analysis.fits import fit_from_dict
from analysis.parametric import ParametricFit, closed_form_optimum, fit_parametric

EPOCH = "chinchilla-epoch/svg_extracted_data.csv"
CONSTANTS = "chinchilla-paper/published_constants.json"
LAW = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def _law(N, D, p=LAW):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


@pytest.fixture(scope="module")
def epoch():
    df = (
        pd.read_csv(shared_data(EPOCH)).sort_values("loss").iloc[:-5]
    )  # Besiroglu et al.: drop 5 highest
    N = df["Model Size"].to_numpy(float)
    C = df["Training FLOP"].to_numpy(float)
    return N, C / (6 * N), df["loss"].to_numpy(float)


@pytest.fixture(scope="module")
def epoch_fit(epoch):
    N, D, L = epoch
    return fit_parametric(
        N, D, L, n_convention="total", flop_formula="6nd", n_bootstrap=200, seed=0
    )


def test_epoch_published_fit(epoch_fit):
    f = epoch_fit
    assert f.n_points == 240 and f.n_starts == 4500
    assert f.objective <= 1.01828e-3  # published grid optimum 1.01827e-3
    assert abs(f.alpha - 0.3473) <= 0.01
    assert abs(f.beta - 0.3672) <= 0.01
    assert abs(f.E - 1.8172) <= 0.01
    # A and B are weakly identified: within one published bootstrap SE of Epoch's estimate
    assert abs(f.A - 482.01) <= 124.5 and abs(f.B - 2085.43) <= 1293


def test_epoch_bootstrap_ci_covers_published_a(epoch_fit):
    lo, hi = epoch_fit.ci["a"]
    assert lo < 0.513 < hi
    # the interval is informative: Epoch's SE of a is 0.020, so a 95% CI is ~0.08 wide
    assert hi - lo < 0.2
    lo_a, hi_a = epoch_fit.ci["alpha"]
    assert lo_a < epoch_fit.alpha < hi_a


def test_hoffmann_unrounded_closed_form_gopher_budget():
    c = json.loads(shared_data(CONSTANTS).read_text())["chinchilla_unrounded_as_used_by_epoch"]
    A, B, E = math.exp(c["log_A"]), math.exp(c["log_B"]), math.exp(c["log_E"])
    N_opt, D_opt = closed_form_optimum(5.76e23, E, A, B, c["alpha"], c["beta"])
    assert N_opt == pytest.approx(40.4e9, rel=0.01)
    assert D_opt == pytest.approx(2.38e12, rel=0.01)
    assert 6 * N_opt * D_opt == pytest.approx(5.76e23, rel=1e-12)  # the closed form spends C


def test_closed_form_is_the_numerical_minimum():
    # independent check: minimise L(N, C/(6N)) over a fine log grid of N
    C = 1e21
    N = np.geomspace(1e7, 1e12, 200_001)
    i = np.argmin(_law(N, C / (6 * N)))
    N_opt, _ = closed_form_optimum(C, **LAW)
    assert N[i] == pytest.approx(float(N_opt), rel=1e-3)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    logN, logD = rng.uniform(17, 23, 50), rng.uniform(20, 26, 50)
    logL = np.log(_law(np.exp(logN), np.exp(logD))) + rng.normal(0, 0.01, 50)
    theta = np.array([6.0, 6.2, 0.5, 0.33, 0.29])
    w = rng.integers(0, 3, 50).astype(float)
    for weights in (None, w):
        f, g = P.objective_and_grad(theta, logN, logD, logL, 1e-3, weights)
        h = 1e-6
        fd = [
            (
                P.objective_and_grad(theta + h * e, logN, logD, logL, 1e-3, weights)[0]
                - P.objective_and_grad(theta - h * e, logN, logD, logL, 1e-3, weights)[0]
            )
            / (2 * h)
            for e in np.eye(5)
        ]
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-9)
        assert f == pytest.approx(
            float(P.objective_batch(theta[None], logN, logD, logL, 1e-3, weights)[0])
        )


def _grid_data(noise, seed=0):
    rng = np.random.default_rng(seed)
    N, D = (x.ravel() for x in np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e8, 1e11, 8)))
    L = _law(N, D) * np.exp(rng.normal(0, noise, N.size))
    return N, D, L


def test_noise_free_recovery_is_exact():
    # no noise: the global optimum is the truth with objective 0, so any error is the optimizer's
    N, D, L = _grid_data(0.0)
    f = fit_parametric(N, D, L, n_convention="total", flop_formula="6nd")
    assert f.objective < 1e-12
    for k in ("E", "A", "B", "alpha", "beta"):
        assert getattr(f, k) == pytest.approx(LAW[k], rel=2e-3), k


def test_noisy_recovery_within_bootstrap_ci():
    # 0.5% log-normal noise on 64 points; the truth must lie inside the 95% bootstrap CI and
    # the exponents within 0.05 (about 3 bootstrap SEs at this noise level)
    N, D, L = _grid_data(0.005, seed=3)
    f = fit_parametric(N, D, L, n_convention="total", flop_formula="6nd", n_bootstrap=100, seed=1)
    for k in ("alpha", "beta", "E"):
        lo, hi = f.ci[k]
        assert lo <= LAW[k] <= hi, (k, lo, hi)
    assert abs(f.alpha - LAW["alpha"]) < 0.05 and abs(f.beta - LAW["beta"]) < 0.05
    a_true = LAW["beta"] / (LAW["alpha"] + LAW["beta"])
    assert f.ci["a"][0] <= a_true <= f.ci["a"][1]


def test_screened_equals_exhaustive_on_the_same_starts(epoch):
    N, D, L = epoch
    lN, lD, lL = np.log(N), np.log(D), np.log(L)
    starts = P.grid_starts()[np.random.default_rng(0).choice(4500, 20, replace=False)]
    fast = P.minimise(lN, lD, lL, 1e-3, starts=starts, method="screened")
    slow = P.minimise(lN, lD, lL, 1e-3, starts=starts, method="exhaustive")
    assert fast["objective"] <= slow["objective"] + 1e-8


def test_grid_has_4500_published_starts():
    g = P.grid_starts()
    assert g.shape == (4500, 5)
    assert sorted(set(g[:, 0])) == [0, 5, 10, 15, 20, 25]
    assert sorted(set(g[:, 2])) == [-1, -0.5, 0, 0.5, 1]
    assert sorted(set(g[:, 3])) == [0, 0.5, 1, 1.5, 2]


def test_json_round_trip(epoch_fit):
    d = json.loads(json.dumps(epoch_fit.to_dict()))
    assert d["approach"] == "parametric" and d["n_convention"] == "total"
    assert len(d["alpha_ci"]) == 2
    back = fit_from_dict(d)
    assert isinstance(back, ParametricFit)
    assert back.alpha == epoch_fit.alpha and back.ci["a"] == pytest.approx(epoch_fit.ci["a"])
    assert back.samples["alpha"] == pytest.approx(epoch_fit.samples["alpha"])
    assert "objective" in back.report()


@pytest.mark.parametrize(
    "N, D, L, match",
    [
        ([1e8] * 5 + [np.nan], [1e9] * 6, [3.0] * 6, "N has 1 NaN"),
        ([1e8] * 6, [1e9] * 5 + [-1.0], [3.0] * 6, "D has 1 non-positive"),
        ([1e8] * 5, [1e9] * 5, [3.0] * 5, "at least 6 points"),
        ([1e8] * 6, [1e9] * 6, [3.0] * 7, "equal lengths"),
    ],
)
def test_bad_input_named(N, D, L, match):
    with pytest.raises(ValueError, match=match):
        fit_parametric(N, D, L, n_convention="total", flop_formula="6nd")


def test_conventions_are_explicit_and_checked():
    N, D, L = _grid_data(0.0)
    with pytest.raises(ValueError, match="n_convention"):
        fit_parametric(N, D, L, n_convention="kaplan", flop_formula="6nd")
    with pytest.raises(ValueError, match="flop_formula"):
        fit_parametric(N, D, L, n_convention="total", flop_formula="approx")


def test_counted_flop_optimum():
    # with a constant counted/6ND ratio r, spending C counted FLOPs is spending C/r under 6ND
    r = 1.3
    n_ref, d_ref = closed_form_optimum(1e21 / r, **LAW)
    n, d = P.optimum(1e21, **LAW, flop_ratio={"c0": math.log(r), "c1": 0.0})
    assert n == pytest.approx(float(n_ref), rel=1e-6) and d == pytest.approx(float(d_ref), rel=1e-6)
    # the ratio fit recovers a known power-law overhead exactly
    N = np.geomspace(1e6, 1e9, 9)
    D = 20 * N
    ratio = P.fit_flop_ratio(N, D, 6 * N * D * 2.0 * N**-0.05)
    assert ratio["c0"] == pytest.approx(math.log(2.0)) and ratio["c1"] == pytest.approx(-0.05)


def test_closed_form_has_no_optimum_for_non_positive_exponents():
    import numpy as np

    from analysis.parametric import closed_form_optimum, optimum

    n, d = closed_form_optimum(1e20, 1.7, 400.0, 400.0, -0.05, 0.3)
    assert np.isnan(n) and np.isnan(d)
    n, d = optimum(1e20, 1.7, 400.0, 400.0, 0.3, 0.0, {"c0": 0.1, "c1": -0.01})
    assert np.isnan(n) and np.isnan(d)
    n, d = closed_form_optimum(1e20, 1.7, 400.0, 400.0, 0.3, 0.3)
    assert np.isfinite(n) and n * d * 6 == pytest.approx(1e20)
