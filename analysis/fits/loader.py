"""Rebuild any fit from its JSON (``fit_<approach>.json``): dispatch on ``approach``."""

from __future__ import annotations

from typing import Any

from analysis.fits.frontier import FrontierFit
from analysis.fits.kaplan import KaplanFit
from analysis.parametric import ParametricFit


def fit_from_dict(d: dict[str, Any]) -> ParametricFit | FrontierFit | KaplanFit:
    """Rebuild any fit from its ``to_dict()`` (dispatch on ``approach``).

    Raises:
        ValueError: unknown approach.
    """
    approach = d.get("approach")
    if approach == "parametric":
        return ParametricFit.from_dict(d)
    if approach in ("isoflop", "envelope"):
        return FrontierFit.from_dict(d)
    if approach == "kaplan":
        return KaplanFit.from_dict(d)
    raise ValueError(
        f"unknown fit approach {approach!r}; expected parametric, isoflop, envelope or kaplan"
    )
