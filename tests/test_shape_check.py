"""Shape check before compute (scaling.shape_check) and the collapse (analysis.collapse)."""

import numpy as np
import pandas as pd
import pytest

from analysis.collapse import scaling_collapse
from scaling.shape_check import PointShape, outside_fitted_range, shape_warnings


def _pts(spec):
    return [PointShape(f"L{n}-d{d}-C{c:g}", c, n, d) for c, n, d in spec]


def test_shallow_thin_and_mixed_depths_are_named():
    pts = _pts([(6e10, 1, 8), (6e10, 1, 16), (2e12, 2, 48), (2e12, 2, 64), (2e12, 1, 32)])
    w = shape_warnings(pts)
    assert len(w) == 3
    assert "3 point(s) have fewer than 2 layers" in w[0] and "L1-d8-C6e+10" in w[0]
    assert "d_model/n_layers outside [10, 800]" in w[1] and "L1-d8-C6e+10" in w[1]
    assert "L1-d16" not in w[1]
    assert "depths [1] at C = 6e+10, [1, 2] at C = 2e+12" in w[2]
    # 2 and 3 layers are one kind: no warning for a 2-layer head and a 2-3-layer tail
    deep = _pts([(1e11, 2, 32), (3e12, 2, 48), (3e12, 3, 64)])
    assert shape_warnings(deep) == []


def test_a_clean_design_has_no_warning():
    pts = _pts([(6e10, 2, 32), (6e10, 2, 48), (2e12, 2, 64), (2e12, 3, 96)])
    pts = [p for p in pts if p.n_layers == 2] + _pts([(2e12, 2, 96)])
    assert shape_warnings(pts) == []


def test_rung_outside_the_fitted_depths_and_aspects():
    fitted = _pts([(6e10, 1, 16), (2e12, 2, 48)])
    w = outside_fitted_range(PointShape("L3 d96", 6e12, 3, 96), fitted)
    assert len(w) == 2 and "3 layers, outside the fitted depths 1-2" in w[0]
    assert "= 32, outside the fitted range 16-24" in w[1]
    assert len(outside_fitted_range(PointShape("L3 d64", 6e12, 3, 64), fitted)) == 1
    assert outside_fitted_range(PointShape("L2 d40", 6e12, 2, 40), fitted) == []


def _curves(scale_third=1.0):
    rows, pts = [], []
    for i, (budget, final) in enumerate(((1e13, 3.0), (1e14, 2.5), (1e15, 2.1))):
        f = np.linspace(0.1, 1.0, 10) * budget
        shape = 1 + 0.5 * (budget / f - 1) ** 0.5  # one universal curve, 1 at the end
        if i == 2:
            shape = 1 + scale_third * (shape - 1)
        L0 = 1.0
        for fl, s in zip(f, shape, strict=True):
            rows.append({"run_name": f"r{i}", "step": int(fl / budget * 100), "flops": fl,
                         "val/loss": L0 + (final - L0) * s, "parent_run": None})  # fmt: skip
        pts.append({"run_name": f"r{i}", "flops_budget": budget, "val/loss": final})
    return pd.DataFrame(rows), pd.DataFrame(pts)


def test_collapse_spread_is_zero_for_one_curve_and_grows_when_one_breaks():
    curves, pts = _curves()
    col = scaling_collapse(curves, pts, "val/loss", irreducible=1.0)
    assert col["spread"] == pytest.approx(0.0, abs=1e-12) and len(col["curves"]) == 3
    broken = scaling_collapse(*_curves(scale_third=1.5), "val/loss", irreducible=1.0)
    assert broken["spread"] > 0.05
    # the wrong L0 (0 instead of 1) also breaks the collapse of reducible loss
    assert scaling_collapse(curves, pts, "val/loss", irreducible=None)["spread"] > 0.01
