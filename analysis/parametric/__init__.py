"""Chinchilla approach 3: L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, Eq. 2).

Two modules: ``law`` (the law's parameters, pinned parameters, the compute-optimal allocation,
the ``ParametricFit`` result and the identifiability of its bootstrap) and ``solver`` (the
summed-Huber objective and its gradient, the 4500-start grid, the batched Gauss-Newton screen,
L-BFGS-B, the bootstrap, and ``fit_parametric``, after Besiroglu et al. 2024). Every public name
of both is importable from ``analysis.parametric``.
"""

from analysis.parametric.law import (
    EDGE_MARGIN,
    GRID_RANGE,
    IDENTIFIABILITY_THRESHOLD,
    MIN_POINTS,
    PARAM_NAMES,
    PARAM_THETA,
    IdentifiabilityWarning,
    ParametricFit,
    closed_form_optimum,
    fit_flop_ratio,
    identifiability,
    optimum,
    pinned_theta,
)
from analysis.parametric.solver import (
    BOOTSTRAP_ITERS,
    SCREEN_SCHEDULE,
    bootstrap,
    bootstrap_starts,
    fit_parametric,
    grid_starts,
    minimise,
    objective_and_grad,
    objective_batch,
    resample_counts,
)

__all__ = [
    "BOOTSTRAP_ITERS",
    "EDGE_MARGIN",
    "GRID_RANGE",
    "IDENTIFIABILITY_THRESHOLD",
    "MIN_POINTS",
    "PARAM_NAMES",
    "PARAM_THETA",
    "SCREEN_SCHEDULE",
    "IdentifiabilityWarning",
    "ParametricFit",
    "bootstrap",
    "bootstrap_starts",
    "closed_form_optimum",
    "fit_flop_ratio",
    "fit_parametric",
    "grid_starts",
    "identifiability",
    "minimise",
    "objective_and_grad",
    "objective_batch",
    "optimum",
    "pinned_theta",
    "resample_counts",
]
