"""Scaling-law fits: Kaplan power laws and Chinchilla approaches 1, 2 and 3.

Modules: ``frontier`` (approaches 1 and 2: ``fit_envelope``, ``fit_isoflop``, ``FrontierFit``,
``budget_groups``), ``kaplan`` (``fit_kaplan``, ``fit_power_law``, ``KaplanFit``,
``PowerLawFit``), ``loader`` (``fit_from_dict``); approach 3 is ``analysis.parametric``
(re-exported here). Every name below is importable from ``analysis.fits``.
"""

from analysis.fits.frontier import (
    BUDGET_BIN_DEX,
    FrontierFit,
    budget_groups,
    fit_envelope,
    fit_isoflop,
)
from analysis.fits.kaplan import KaplanFit, PowerLawFit, fit_kaplan, fit_power_law
from analysis.fits.loader import fit_from_dict
from analysis.parametric import ParametricFit, closed_form_optimum, fit_parametric

__all__ = [
    "FrontierFit",
    "KaplanFit",
    "ParametricFit",
    "PowerLawFit",
    "closed_form_optimum",
    "fit_envelope",
    "fit_from_dict",
    "fit_isoflop",
    "fit_kaplan",
    "fit_parametric",
    "fit_power_law",
    "budget_groups",
    "BUDGET_BIN_DEX",
]
