"""Approaches 1 and 2 (compute-frontier fits) and Kaplan power laws."""

import json
import math

import numpy as np
import pytest

from analysis import fits
from analysis.fits import FrontierFit, KaplanFit, fit_from_dict

LAW = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
A_TRUE = LAW["beta"] / (LAW["alpha"] + LAW["beta"])  # Hoffmann et al. 2022 Eq. 4
G = (LAW["alpha"] * LAW["A"] / (LAW["beta"] * LAW["B"])) ** (1 / (LAW["alpha"] + LAW["beta"]))


def _law(N, D):
    return LAW["E"] + LAW["A"] / N ** LAW["alpha"] + LAW["B"] / D ** LAW["beta"]


def _isoflop_data(noise=0.0, seed=0, offsets=True):
    """9 models per budget, 5 budgets; grid centres deliberately off the true optimum."""
    rng = np.random.default_rng(seed)
    rows = []
    for C in np.geomspace(1e18, 1e22, 5):
        centre = G * (C / 6) ** A_TRUE * (rng.uniform(0.6, 1.6) if offsets else 1.0)
        for N in centre * np.geomspace(1 / 5, 5, 9):
            rows.append((N, C / (6 * N), C))
    N, D, C = map(np.array, zip(*rows, strict=True))
    return N, D, C, _law(N, D) * np.exp(rng.normal(0, noise, N.size))


def test_isoflop_recovers_a_noise_free():
    # off-centre grids: the only error left is the parabola approximation in log N, which
    # shifts each vertex by < 2% in N here, i.e. < 0.01 in a over 4 decades of C
    N, D, C, L = _isoflop_data()
    f = fits.fit_isoflop(N, D, C, L, n_convention="total", flop_formula="6nd", budget=C)
    assert f.a == pytest.approx(A_TRUE, abs=0.01)
    assert f.b == pytest.approx(1 - A_TRUE, abs=0.01)  # C = 6ND exactly: a + b = 1
    assert f.a + f.b == pytest.approx(1.0, abs=1e-9)
    assert f.n_optima_used == 5 and all(o["curvature"] > 0 for o in f.optima)
    for o in f.optima:  # vertex close to the closed-form optimum of the true law
        assert o["N_opt"] == pytest.approx(G * (o["C"] / 6) ** A_TRUE, rel=0.05)


def test_isoflop_noisy_ci_covers_truth():
    N, D, C, L = _isoflop_data(noise=0.003, seed=4)
    f = fits.fit_isoflop(
        N, D, C, L, n_convention="total", flop_formula="6nd", budget=C, n_bootstrap=200, seed=0
    )
    lo, hi = f.ci["a"]
    assert lo <= A_TRUE <= hi
    assert hi - lo < 0.15


def test_isoflop_bins_without_labels():
    N, D, C, L = _isoflop_data()
    C_jitter = C * np.exp(np.random.default_rng(0).normal(0, 0.02, C.size))  # digitisation-like
    f = fits.fit_isoflop(N, D, C_jitter, L, n_convention="total", flop_formula="6nd")
    assert len(f.optima) == 5 and "0.1 dex" in f.grouping
    assert f.a == pytest.approx(A_TRUE, abs=0.02)


def test_isoflop_flags_edge_and_concave_budgets():
    N, D, C, L = _isoflop_data()
    # budget 1: keep only models above the optimum -> minimum at the grid edge, vertex outside
    top = C == C.max()
    n_opt_top = G * (C.max() / 6) ** A_TRUE
    drop = top & (N < n_opt_top * 2)
    # budget 0: make the losses concave in log N (no minimum)
    low = C == C.min()
    L2 = L.copy()
    x = np.log(N[low])
    L2[low] = 3.0 - 0.05 * (x - x.mean()) ** 2
    keep = ~drop
    f = fits.fit_isoflop(
        N[keep],
        D[keep],
        C[keep],
        L2[keep],
        n_convention="total",
        flop_formula="6nd",
        budget=C[keep],
    )
    by_c = {round(math.log10(o["flops_budget"])): o for o in f.optima}
    assert by_c[18]["concave"] and not by_c[18]["used"]
    assert by_c[22]["at_edge"] and not by_c[22]["used"]
    assert f.n_optima_used == 3
    assert any("concave" in s for s in f.flags) and any("edge" in s for s in f.flags)


def test_isoflop_needs_two_usable_budgets():
    N, D, C, L = _isoflop_data()
    one = C == C.min()
    with pytest.raises(ValueError, match="2 usable budgets"):
        fits.fit_isoflop(
            N[one], D[one], C[one], L[one], n_convention="total", flop_formula="6nd", budget=C[one]
        )


def _curves(n_models=25):
    rid, NN, DD, CC, LL = [], [], [], [], []
    for i, N in enumerate(np.geomspace(1e7, 1e10, n_models)):
        D = np.geomspace(1e8, 2e11, 60)
        rid += [f"r{i}"] * 60
        NN += [N] * 60
        DD += list(D)
        CC += list(6 * N * D)
        LL += list(_law(N, D))
    return rid, np.array(NN), np.array(DD), np.array(CC), np.array(LL)


def test_envelope_recovers_a():
    # 25 models over 3 decades: adjacent sizes differ by 1.33x, so each envelope N_opt is off by
    # at most ~15% (half a step); over the ~5 decades of C used that bounds the slope error ~0.03
    rid, N, D, C, L = _curves()
    f = fits.fit_envelope(
        rid, N, D, C, L, n_convention="total", flop_formula="6nd", n_bins=30, n_bootstrap=30
    )
    assert f.a == pytest.approx(A_TRUE, abs=0.03)
    assert f.b == pytest.approx(1 - A_TRUE, abs=0.03)
    assert all(not o["edge_model"] for o in f.optima if o["used"])
    assert f.ci["a"][0] < f.a < f.ci["a"][1] or f.ci["a"][0] == f.ci["a"][1]


def test_envelope_needs_curves_from_several_runs():
    rid, N, D, C, L = _curves(1)
    with pytest.raises(ValueError, match=">= 2 runs"):
        fits.fit_envelope(rid, N, D, C, L, n_convention="total", flop_formula="6nd")


def test_kaplan_recovers_published_L_of_N():
    # Kaplan et al. 2020 Eq. 1.1: L(N) = (8.8e13 / N)^0.076 -> 2.3756 nats at N = 1e9
    N = np.geomspace(1e6, 1e9, 12)
    L = (8.8e13 / N) ** 0.076 * np.exp(np.random.default_rng(0).normal(0, 0.002, N.size))
    D = np.full(N.size, 1e11)
    f = fits.fit_kaplan(
        N, D, 6 * N * D, L, n_convention="non_embedding", flop_formula="6nd", n_bootstrap=100
    )
    assert f.L_N.alpha == pytest.approx(0.076, abs=0.005)
    assert f.L_N.ci["alpha"][0] <= 0.076 <= f.L_N.ci["alpha"][1]
    exact = fits.fit_power_law(N, (8.8e13 / N) ** 0.076, "N")
    assert exact.alpha == pytest.approx(0.076, rel=1e-9)
    assert float(exact.predict(1e9)) == pytest.approx(2.3756, abs=1e-4)


def test_kaplan_with_irreducible_term():
    N = np.geomspace(1e6, 1e10, 12)
    L = 1.5 + (1e8 / N) ** 0.3
    law = fits.fit_power_law(N, L, "N", irreducible=True)
    assert law.E == pytest.approx(1.5, rel=1e-3)
    assert law.alpha == pytest.approx(0.3, rel=1e-3)


def test_frontier_and_kaplan_json_round_trip():
    N, D, C, L = _isoflop_data(noise=0.003)
    f = fits.fit_isoflop(
        N, D, C, L, n_convention="total", flop_formula="6nd", budget=C, n_bootstrap=20
    )
    back = fit_from_dict(json.loads(json.dumps(f.to_dict())))
    assert (
        isinstance(back, FrontierFit) and back.a == f.a and back.ci["a"] == pytest.approx(f.ci["a"])
    )
    assert back.optima[0]["N_opt"] == f.optima[0]["N_opt"]
    k = fits.fit_kaplan(N, D, C, L, n_convention="total", flop_formula="6nd")
    kb = fit_from_dict(json.loads(json.dumps(k.to_dict())))
    assert isinstance(kb, KaplanFit) and kb.L_D.alpha == k.L_D.alpha
    assert "a (N_opt ~ C^a)" in f.report()


def test_bad_inputs_named():
    N, D, C, L = _isoflop_data()
    L = L.copy()
    L[3] = np.nan
    with pytest.raises(ValueError, match="L has 1 NaN"):
        fits.fit_isoflop(N, D, C, L, n_convention="total", flop_formula="6nd")
    with pytest.raises(ValueError, match="window"):
        fits.fit_isoflop(
            N, D, C, np.nan_to_num(L, nan=3.0), n_convention="total", flop_formula="6nd", window=2
        )
    with pytest.raises(ValueError, match="at least 3"):
        fits.fit_kaplan(
            [1e6, 1e7],
            [1e9, 1e9],
            [1e16, 1e17],
            [3.0, 2.9],
            n_convention="total",
            flop_formula="6nd",
        )
