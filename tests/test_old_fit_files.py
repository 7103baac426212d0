"""Fit files written before issue 19's moves still load through today's loaders, unchanged.

The fixture (``tests/fixtures/fits_before_h19``) was written by ``main``'s code at a8ca21e, before
``analysis/parametric.py`` and ``analysis/fits.py`` became packages; ``expected.json`` holds what
that code computed from each loaded file.
"""

import json
import math
from pathlib import Path

import pytest

from analysis.fits import FrontierFit, KaplanFit, ParametricFit, fit_from_dict

FIXTURE = Path(__file__).parent / "fixtures" / "fits_before_h19"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
TYPES = {"parametric": ParametricFit, "isoflop": FrontierFit, "envelope": FrontierFit}
TYPES["kaplan"] = KaplanFit


def _same(a, b):  # JSON values equal, NaN == NaN
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("approach", ["parametric", "isoflop", "envelope", "kaplan"])
def test_old_fit_file_loads_with_the_same_report_and_json(approach):
    raw = json.loads((FIXTURE / f"fit_{approach}.json").read_text())
    fit = fit_from_dict(raw)
    assert isinstance(fit, TYPES[approach])
    assert fit.n_convention == raw["n_convention"] == "total"
    assert fit.report() == EXPECTED[approach]["report"]
    # the JSON it writes back is what main wrote (keys and values), so files round-trip
    assert _same(json.loads(json.dumps(fit.to_dict())), EXPECTED[approach]["to_dict"])
    assert _same(EXPECTED[approach]["to_dict"], raw)


def test_old_fit_files_give_the_same_predictions():
    fits = {a: fit_from_dict(json.loads((FIXTURE / f"fit_{a}.json").read_text())) for a in TYPES}
    par = fits["parametric"]
    n_opt, d_opt = par.optimal_allocation([1e15, 1e17])
    want_n, want_d = EXPECTED["parametric"]["allocation_1e15_1e17"]
    assert list(n_opt) == pytest.approx(want_n, rel=1e-12)
    assert list(d_opt) == pytest.approx(want_d, rel=1e-12)
    assert par.meta["flop_ratio"]  # counted FLOPs: the numerical optimum, not the closed form
    assert float(par.predict_loss(1e6, 2e7)) == EXPECTED["parametric"]["loss_at_1e6_2e7"]
    for a in ("isoflop", "envelope"):
        got = [
            float(fits[a].n_opt(1e16)),
            float(fits[a].d_opt(1e16)),
            float(fits[a].loss_opt(1e16)),
        ]
        assert got == pytest.approx(EXPECTED[a]["n_d_l_opt_at_1e16"], rel=1e-12)
    assert float(fits["kaplan"].L_N.predict(1e6)) == EXPECTED["kaplan"]["L_N_at_1e6"]
