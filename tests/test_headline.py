"""The headline rule (which approach answers when approach 3 is unidentified) and approach 2's
parabola bias on a sweep's own grid (Czech et al. 2026)."""

from types import SimpleNamespace

import numpy as np
import pytest

from analysis.headline import headline_choice, parabola_bias
from analysis.parametric import closed_form_optimum
from analysis.synthetic import law_loss


def _law(E, A, B, alpha, beta):
    p = {"E": E, "A": A, "B": B, "alpha": alpha, "beta": beta}
    return SimpleNamespace(**p, predict_loss=lambda N, D: law_loss(N, D, p))


def _grid(law, budgets, shift=1.0, spread=4.0, n=7):
    rows = []
    for C in budgets:
        n_opt = closed_form_optimum(C, law.E, law.A, law.B, law.alpha, law.beta)[0]
        rows += [(x, C / (6 * x), C) for x in shift * n_opt * np.geomspace(1 / spread, spread, n)]
    return (np.array(v) for v in zip(*rows, strict=True))


def test_headline_rule_takes_the_allocation_from_approach_2_and_the_loss_from_approach_3():
    ok = SimpleNamespace(flags=())
    bad = SimpleNamespace(flags=("E: 100% of 200 bootstrap refits sit at ...",))
    two, two_thin = SimpleNamespace(n_optima_used=4), SimpleNamespace(n_optima_used=2)
    for p3, state in ((ok, "identifies every parameter"), (bad, "leaves E unidentified")):
        got = headline_choice({"parametric": p3, "isoflop": two})
        assert (got["allocation"], got["loss"]) == ("isoflop", "parametric"), got
        assert state in got["why"] and "4 usable budgets" in got["why"]
    # approach 2 on fewer than 3 usable budgets (untested territory): approach 3 alone
    thin = headline_choice({"parametric": bad, "isoflop": two_thin})
    assert thin["allocation"] == "parametric" and "only 2 usable" in thin["why"]
    alone = headline_choice({"parametric": ok})
    assert alone["allocation"] == "parametric" and "could not be fitted" in alone["why"]
    assert headline_choice({"isoflop": two}) == {
        "allocation": "isoflop",
        "loss": "isoflop",
        "why": "approach 3 could not be fitted; approach 2 has 4 usable budgets",
    }
    assert headline_choice({})["allocation"] is None


def test_parabola_bias_vanishes_when_alpha_equals_beta_on_a_centred_grid():
    # along an IsoFLOP line L = E + A e^(-alpha x) + B' e^(alpha x): a cosh, symmetric about
    # its minimum, so a parabola through a symmetric grid centred there has its vertex on it
    law = _law(1.7, 400.0, 400.0, 0.3, 0.3)
    N, D, C = _grid(law, (1e18, 1e19, 1e20))
    b = parabola_bias(law, N, D, C, C, n_convention="total", flop_formula="6nd")
    assert len(b["rows"]) == 3 and all(abs(r["N_bias"]) < 1e-6 for r in b["rows"])
    assert b["a_bias"] == pytest.approx(0.0, abs=1e-6)


def test_parabola_bias_appears_off_centre_and_with_alpha_not_beta():
    law = _law(1.69, 406.4, 410.7, 0.34, 0.28)  # Hoffmann et al. 2022 Eq. 10
    N, D, C = _grid(law, (1e18, 1e19, 1e20), shift=3.0, spread=8.0)  # sampled off-centre
    b = parabola_bias(law, N, D, C, C, n_convention="total", flop_formula="6nd")
    assert all(abs(r["N_bias"]) > 0.02 for r in b["rows"]), b["rows"]
    for r in b["rows"]:  # the truth is the law's own minimum on that budget
        n_opt = closed_form_optimum(r["C"], 1.69, 406.4, 410.7, 0.34, 0.28)[0]
        assert r["N_true"] == pytest.approx(n_opt, rel=1e-4)
