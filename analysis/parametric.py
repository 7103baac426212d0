"""Chinchilla approach 3: the parametric loss L(N, D) = E + A/N^alpha + B/D^beta.

Legend (paper symbols, used only in this fitting code):
    N      parameters (convention stated by the caller: ``"total"`` for Chinchilla)
    D      training tokens
    C      training FLOPs (``"counted"`` App. F count or ``"6nd"`` = 6*N*D)
    L      final loss, nats/token
    E, A, B, alpha, beta   Hoffmann et al. 2022, Eq. 2: L(N, D) = E + A/N^alpha + B/D^beta
    a, b, e                log A, log B, log E (Hoffmann et al. 2022, App. D.2, Eq. 3 context)
    G      (alpha A / (beta B))^(1/(alpha+beta)) (Hoffmann et al. 2022, Eq. 4 / App. D.2)
    a_N, b_D  compute-optimal exponents N_opt ~ C^a_N, D_opt ~ C^b_D, a_N = beta/(alpha+beta),
           b_D = alpha/(alpha+beta) (the paper calls them a and b; renamed here only to avoid the
           clash with a = log A)

Fitting procedure (Hoffmann et al. 2022 App. D.2 as corrected by Besiroglu et al. 2024,
arXiv:2404.10102, Sec. 2): minimise over theta = (a, b, e, alpha, beta)

    sum_i Huber_delta( LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i )

(the SUM, not the mean; delta = 1e-3) with L-BFGS-B from the grid alpha, beta in {0, 0.5, ..., 2},
e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25} (4500 starts), keeping the best optimum.

Speed: instead of 4500 scipy runs we run ONE batched, damped Gauss-Newton iteration (IRLS
majoriser of the Huber loss) over all 4500 starts at once in numpy, then run scipy L-BFGS-B with
the analytic gradient from the best ``n_refine`` distinct screened end points to a tight
tolerance. ``method="exhaustive"`` runs L-BFGS-B (analytic gradient) from every start instead;
``benchmarks/fit_speed.py`` checks that both reach the same objective.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analysis.common import (
    Estimate,
    add_cis,
    bootstrap_record,
    check_convention,
    check_level,
    cis_from_json,
    estimate_of,
    percentile_ci,
    positive_array,
    same_length,
    sample_dicts,
    samples_from_json,
    to_jsonable,
)

MIN_POINTS = 6  # 5 free parameters: need more points than parameters
PARAM_NAMES = ("a", "b", "e", "alpha", "beta")
# Screen: 6 Gauss-Newton iterations on all starts, keep the 300 best distinct, 30 more
# iterations on those; then L-BFGS-B from the best 20 distinct (``minimise``).
SCREEN_SCHEDULE: tuple[tuple[int, int | None], ...] = ((6, 300), (30, None))


def grid_starts() -> np.ndarray:
    """The 4500-start grid of Hoffmann et al. 2022 App. D.2 / Besiroglu et al. 2024.

    Returns:
        Array of shape (4500, 5), columns (a, b, e, alpha, beta).
    """
    alphas = np.arange(0.0, 2.0 + 1e-9, 0.5)
    es = np.arange(-1.0, 1.0 + 1e-9, 0.5)
    abs_ = np.arange(0.0, 25.0 + 1e-9, 5.0)
    rows = [
        (a, b, e, al, be) for a, b, e, al, be in itertools.product(abs_, abs_, es, alphas, alphas)
    ]
    return np.asarray(rows, dtype=float)


# Pinned parameters and identifiability. theta = (a, b, e, alpha, beta) with a = log A, b = log B,
# e = log E; users pin in paper names (E, A, B, alpha, beta).
PARAM_THETA = {
    "A": (0, True),
    "B": (1, True),
    "E": (2, True),
    "alpha": (3, False),
    "beta": (4, False),
}
# The start grid's range per theta entry (Hoffmann et al. 2022 App. D.2); a refit at or beyond
# its edge (within EDGE_MARGIN of the range) is counted by ``identifiability``: the published grid
# is where a sensible optimum lives (E in [0.37, 2.72] nats, exponents in [0, 2]).
GRID_RANGE = ((0.0, 25.0), (0.0, 25.0), (-1.0, 1.0), (0.0, 2.0), (0.0, 2.0))
EDGE_MARGIN = 0.02
IDENTIFIABILITY_THRESHOLD = 0.1  # warn when more than 10% of refits sit at an edge


class IdentifiabilityWarning(UserWarning):
    """Approach 3: a parameter's bootstrap refits often sit at the edge of the start grid."""


def pinned_theta(fixed: dict[str, float] | None) -> np.ndarray | None:
    """(5,) theta with the pinned parameters' values and NaN for free ones, or None.

    Args:
        fixed: paper name (``E``, ``A``, ``B``, ``alpha``, ``beta``) -> value.

    Raises:
        ValueError: an unknown name, a non-finite value, E/A/B <= 0, or all five pinned.
    """
    if not fixed:
        return None
    theta = np.full(5, np.nan)
    for name, value in fixed.items():
        if name not in PARAM_THETA:
            raise ValueError(
                f"cannot fix {name!r}: approach 3 parameters are {', '.join(PARAM_THETA)} "
                "(e.g. --fix E=1.69)"
            )
        value = float(value)
        idx, logged = PARAM_THETA[name]
        if not math.isfinite(value) or (logged and value <= 0):
            raise ValueError(f"fixed {name}={value} must be finite{' and > 0' if logged else ''}")
        theta[idx] = math.log(value) if logged else value
    if not np.isnan(theta).any():
        raise ValueError("all five parameters are fixed; leave at least one free to fit")
    return theta


def identifiability(bs: np.ndarray, pinned: np.ndarray | None = None) -> dict[str, float]:
    """Share of bootstrap refits at or beyond the edge of the start grid, per free parameter.

    A refit counts for a parameter when its theta entry lies within ``EDGE_MARGIN`` of the
    range (or outside) ``GRID_RANGE``, e.g. e < -0.96 (E < 0.38 nats: the asymptote collapsing
    towards 0) or alpha < 0.04. Non-finite entries count as at the edge.

    Args:
        bs: (n_bootstrap, >=5) bootstrap thetas (a, b, e, alpha, beta, ...).
        pinned: from ``pinned_theta``; pinned parameters are left out.

    Returns:
        paper name -> share in [0, 1] (free parameters only).
    """
    out = {}
    for name, (idx, _) in PARAM_THETA.items():
        if pinned is not None and not np.isnan(pinned[idx]):
            continue
        lo, hi = GRID_RANGE[idx]
        m = EDGE_MARGIN * (hi - lo)
        x = bs[:, idx]
        at_edge = ~np.isfinite(x) | (x <= lo + m) | (x >= hi - m)
        out[name] = float(at_edge.mean()) if len(x) else math.nan
    return out


# ---------------------------------------------------------------------------------------------
# Objective and analytic gradient (batched over starts)
# ---------------------------------------------------------------------------------------------


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss of residuals ``r`` (elementwise): r^2/2 inside ``delta``, linear outside."""
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def _terms(theta: np.ndarray, logN: np.ndarray, logD: np.ndarray):
    """LSE model and its softmax weights for a batch ``theta`` of shape (S, 5); data (n,)."""
    a, b, e, alpha, beta = (theta[:, k : k + 1] for k in range(5))
    ta = a - alpha * logN
    tb = b - beta * logD
    te = np.broadcast_to(e, ta.shape)
    m = np.maximum(np.maximum(ta, tb), te)
    ea, eb, ee = np.exp(ta - m), np.exp(tb - m), np.exp(te - m)
    s = ea + eb + ee
    return m + np.log(s), ea / s, eb / s, ee / s


def objective_batch(
    theta: np.ndarray,
    logN: np.ndarray,
    logD: np.ndarray,
    logL: np.ndarray,
    delta: float,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Summed Huber objective for each row of ``theta`` (S, 5); returns shape (S,)."""
    lse, _, _, _ = _terms(np.atleast_2d(theta), logN, logD)
    r = lse - logL
    h = _huber(r, delta)
    if weights is not None:
        h = h * weights
    return h.sum(axis=1)


def objective_and_grad(
    theta: np.ndarray,
    logN: np.ndarray,
    logD: np.ndarray,
    logL: np.ndarray,
    delta: float,
    weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Objective and its analytic gradient for one ``theta`` (5,), for scipy L-BFGS-B.

    d LSE / d(a, b, e) are the softmax weights (w_A, w_B, w_E); d/d alpha = -w_A log N,
    d/d beta = -w_B log D; Huber'(r) = clip(r, -delta, delta).
    """
    lse, wa, wb, we = _terms(theta[None, :], logN, logD)
    r = lse[0] - logL
    h = _huber(r, delta)
    psi = np.clip(r, -delta, delta)
    if weights is not None:
        h = h * weights
        psi = psi * weights
    ga, gb, ge = psi * wa[0], psi * wb[0], psi * we[0]
    grad = np.array([ga.sum(), gb.sum(), ge.sum(), -(ga * logN).sum(), -(gb * logD).sum()])
    return float(h.sum()), grad


def _eval(theta, logN, logD, logL, delta, weights=None):
    """Objective (S,) plus the cached terms needed for a Gauss-Newton step."""
    lse, wa, wb, we = _terms(theta, logN, logD)
    r = lse - logL
    h = _huber(r, delta)
    f = (h if weights is None else h * weights).sum(axis=1)
    return f, r, wa, wb, we


def _screen(
    theta0: np.ndarray,
    logN: np.ndarray,
    logD: np.ndarray,
    logL: np.ndarray,
    delta: float,
    schedule: tuple[tuple[int, int | None], ...],
    weights: np.ndarray | None = None,
    free: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Batched damped Gauss-Newton (Levenberg-Marquardt on the IRLS majoriser of Huber).

    The Huber loss is majorised at r by the quadratic with weight psi(r)/r (Huber's IRLS), so
    the Gauss-Newton matrix is J^T diag(psi(r)/r) J and the gradient J^T psi(r). Each start keeps
    its own damping; a step is accepted only if the objective decreases, so every start's
    objective is non-increasing. ``schedule`` is a sequence of (iterations, keep): after each
    stage only the ``keep`` best distinct starts go on (``None`` keeps all). ``weights`` (S, n)
    gives each start its own per-point multiplicities (bootstrap resamples; no pruning then).
    ``free`` (5,) bool marks the parameters that move; the others (pinned) keep their start value.

    Returns:
        The surviving end points (S', 5) and their objectives (S',).
    """
    theta = theta0.copy()
    f, r, wa, wb, we = _eval(theta, logN, logD, logL, delta, weights)
    lam = np.full(len(theta), 1e-2)
    eye = np.eye(5)
    for n_iter, keep in schedule:
        for _ in range(n_iter):
            psi = np.clip(r, -delta, delta)
            ar = np.abs(r)
            w = np.where(ar <= delta, 1.0, delta / np.maximum(ar, 1e-300))  # psi(r)/r
            if weights is not None:
                psi, w = psi * weights, w * weights
            J = np.stack([wa, wb, we, -wa * logN, -wb * logD], axis=1)  # (S, 5, n)
            if free is not None:  # pinned parameters: no gradient, no step
                J = J * free[None, :, None]
            g = np.matmul(J, psi[:, :, None])[:, :, 0]
            H = np.matmul(J * w[:, None, :], J.transpose(0, 2, 1))
            diag = np.einsum("skk->sk", H)
            Hd = H + lam[:, None, None] * (diag[:, :, None] * eye + 1e-12 * eye)
            try:
                step = -np.linalg.solve(Hd, g[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:
                step = -g / (np.maximum(diag, 1e-12) * (1 + lam[:, None]))
            step = np.where(np.isfinite(step), step, 0.0)
            if free is not None:
                step = step * free
            trial = theta + step
            f_t, r_t, wa_t, wb_t, we_t = _eval(trial, logN, logD, logL, delta, weights)
            ok = f_t < f
            theta[ok], f[ok], r[ok], wa[ok], wb[ok], we[ok] = (
                trial[ok],
                f_t[ok],
                r_t[ok],
                wa_t[ok],
                wb_t[ok],
                we_t[ok],
            )
            lam = np.where(ok, np.maximum(lam / 3.0, 1e-9), np.minimum(lam * 4.0, 1e12))
        if keep is not None and keep < len(theta) and weights is None:
            idx = _distinct(theta, f, keep, tol=1e-6)
            theta, f, r, wa, wb, we, lam = (x[idx] for x in (theta, f, r, wa, wb, we, lam))
    return theta, f


def _lbfgs(theta0, logN, logD, logL, delta, weights=None, tight=True, jac=True, free=None):
    from scipy.optimize import minimize

    full = np.asarray(theta0, dtype=float).copy()
    free = np.ones(5, dtype=bool) if free is None else free

    def expand(t: np.ndarray) -> np.ndarray:
        x = full.copy()
        x[free] = t
        return x

    if jac:

        def fun(t, *args):
            f, g = objective_and_grad(expand(t), *args)
            return f, g[free]

    else:  # the published procedure: finite-difference gradients

        def fun(t, *args):
            return float(objective_batch(expand(t)[None, :], *args[:4], args[4])[0])

    # tight: relative objective change 1e-13 (objective ~1e-3 -> ~1e-16 absolute); note a
    # large maxiter makes scipy 1.17's L-BFGS-B much slower per call, so keep the default.
    opts = {"ftol": 1e-13, "gtol": 1e-9} if tight else {}
    res = minimize(
        fun,
        full[free],
        args=(logN, logD, logL, delta, weights),
        jac=jac,
        method="L-BFGS-B",
        options=opts,
    )
    return expand(res.x), float(res.fun)


def _distinct(thetas: np.ndarray, fs: np.ndarray, k: int, tol: float = 1e-3) -> np.ndarray:
    """Indices of up to ``k`` lowest-objective rows whose parameters differ by > ``tol``."""
    order = np.argsort(fs)
    kept: list[int] = []
    for i in order:
        if not np.isfinite(fs[i]):
            continue
        if all(np.max(np.abs(thetas[i] - thetas[j])) > tol for j in kept):
            kept.append(int(i))
        if len(kept) >= k:
            break
    return np.asarray(kept, dtype=int)


def minimise(
    logN: np.ndarray,
    logD: np.ndarray,
    logL: np.ndarray,
    delta: float = 1e-3,
    starts: np.ndarray | None = None,
    method: str = "screened",
    schedule: tuple[tuple[int, int | None], ...] = SCREEN_SCHEDULE,
    n_refine: int = 20,
    weights: np.ndarray | None = None,
    pinned: np.ndarray | None = None,
) -> dict[str, Any]:
    """Minimise the summed Huber objective over a set of starts.

    Args:
        logN: natural log of N, shape (n,); natural logs of N, D and L, shape (n,).
        logD: natural log of D, shape (n,).
        logL: natural log of L, shape (n,).
        delta: Huber delta.
        starts: (S, 5) starting points (a, b, e, alpha, beta); default the 4500-point grid.
        method: ``"screened"`` (batched Gauss-Newton screen of every start, then L-BFGS-B from
            the ``n_refine`` best distinct end points), ``"exhaustive"`` (L-BFGS-B with the
            analytic gradient from every start), or ``"published"`` (L-BFGS-B with
            finite-difference gradients and scipy's default tolerances from every start: the
            Besiroglu et al. procedure; slow).
        schedule: the screen's stages, (iterations, starts kept); see ``_screen``.
        n_refine: distinct screened end points refined with L-BFGS-B.
        weights: optional per-point multiplicities (bootstrap counts), shape (n,).
        pinned: (5,) theta values of pinned parameters, NaN where free (``pinned_theta``);
            pinned entries of every start are set to them and never move.

    Returns:
        dict with ``theta`` (5,), ``objective``, ``refined_theta`` (k, 5), ``refined_objective``
        (k,), ``n_starts``.

    Raises:
        ValueError: on an unknown ``method``.
    """
    starts = grid_starts() if starts is None else np.atleast_2d(np.asarray(starts, dtype=float))
    free = None
    if pinned is not None and not np.all(np.isnan(pinned)):
        free = np.isnan(pinned)
        starts = np.unique(np.where(free, starts, pinned), axis=0)  # the grid over free ones
    if method == "screened":
        if weights is None:
            th, fs = _screen(starts, logN, logD, logL, delta, schedule, free=free)
        else:  # fold multiplicities into the data: repeat rows (exact for integer counts)
            rep = np.repeat(np.arange(len(logN)), weights.astype(int))
            th, fs = _screen(starts, logN[rep], logD[rep], logL[rep], delta, schedule, free=free)
        idx = _distinct(th, fs, n_refine)
        cand = th[idx]
    elif method in ("exhaustive", "published"):
        cand = starts
    else:
        raise ValueError(f"method must be 'screened', 'exhaustive' or 'published', got {method!r}")
    out = [
        _lbfgs(
            t,
            logN,
            logD,
            logL,
            delta,
            weights,
            tight=method != "published",
            jac=method != "published",
            free=free,
        )
        for t in cand
    ]
    thetas = np.array([o[0] for o in out])
    fs = np.array([o[1] for o in out])
    fs = np.where(np.isfinite(fs), fs, np.inf)
    order = np.argsort(fs)
    return {
        "theta": thetas[order[0]],
        "objective": float(fs[order[0]]),
        "refined_theta": thetas[order],
        "refined_objective": fs[order],
        "n_starts": len(starts),
    }


# ---------------------------------------------------------------------------------------------
# Bootstrap (over rows = runs)
# ---------------------------------------------------------------------------------------------


BOOTSTRAP_ITERS = 80  # batched Gauss-Newton iterations per bootstrap refit


def _bootstrap_chunk(args) -> np.ndarray:
    """Refit every resample of ``counts_chunk`` (k, n) from each of ``starts`` (m, 5).

    All resamples x starts form one batched Gauss-Newton problem; ``polish`` adds L-BFGS-B from
    the best end point of each resample.

    Returns:
        (k, 6): best (a, b, e, alpha, beta, objective) per resample.
    """
    logN, logD, logL, delta, starts, counts_chunk, polish, free = args
    k, m = len(counts_chunk), len(starts)
    theta0 = np.tile(starts, (k, 1))
    weights = np.repeat(counts_chunk, m, axis=0)
    th, fs = _screen(theta0, logN, logD, logL, delta, ((BOOTSTRAP_ITERS, None),), weights, free)
    fs = fs.reshape(k, m)
    best = np.argmin(fs, axis=1)
    out = np.empty((k, 6))
    out[:, :5] = th.reshape(k, m, 5)[np.arange(k), best]
    out[:, 5] = fs[np.arange(k), best]
    if polish:
        for i in range(k):
            t, f = _lbfgs(out[i, :5], logN, logD, logL, delta, counts_chunk[i], free=free)
            if f < out[i, 5]:
                out[i, :5], out[i, 5] = t, f
    return out


def bootstrap_starts(
    theta_hat: np.ndarray, refined: np.ndarray, logN: np.ndarray, logD: np.ndarray
) -> np.ndarray:
    """Starting points for each bootstrap refit (documented choice).

    The full-data optimum; two perturbations of it, (alpha, beta) + 0.1 and (alpha, beta) - 0.1,
    with a (resp. b) shifted by 0.1 * median(log N) (resp. log D) so that A/N^alpha at the median
    N (resp. B/D^beta at the median D) is unchanged; and up to two other distinct local optima
    of the full-data fit (so a resample may switch basin).
    """
    mN, mD = float(np.median(logN)), float(np.median(logD))
    starts = [theta_hat]
    for s in (-0.1, 0.1):
        t = theta_hat.copy()
        t[3] += s
        t[0] += s * mN
        t[4] += s
        t[1] += s * mD
        starts.append(t)
    others = [t for t in refined if np.max(np.abs(t - theta_hat)) > 1e-2][:2]
    return np.asarray(starts + others)


def bootstrap(
    logN: np.ndarray,
    logD: np.ndarray,
    logL: np.ndarray,
    delta: float,
    theta_hat: np.ndarray,
    refined: np.ndarray,
    n_bootstrap: int,
    seed: int,
    workers: int | None = None,
    polish: bool = False,
    pinned: np.ndarray | None = None,
) -> np.ndarray:
    """Nonparametric bootstrap over rows: ``n_bootstrap`` refits on resampled rows.

    Resample i draws n rows with replacement (``numpy.random.default_rng(seed)``, drawn up front
    so results do not depend on ``workers``), expressed as per-row multiplicities. Each refit
    minimises the same summed Huber objective from ``bootstrap_starts`` with
    ``BOOTSTRAP_ITERS`` batched Gauss-Newton iterations (all resamples x starts at once), keeping
    the best start; ``polish=True`` adds a tight L-BFGS-B from that end point. Work is split
    over a ``ProcessPoolExecutor`` with ``workers`` processes (default ``min(2, cpu count)``;
    1 = in-process). ``pinned`` (see ``minimise``) holds pinned parameters at their values in
    every refit.

    Returns:
        (n_bootstrap, 6) array: columns (a, b, e, alpha, beta, objective).
    """
    n = len(logN)
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_bootstrap)])
    counts = counts.astype(float)
    starts = bootstrap_starts(theta_hat, refined, logN, logD)
    free = None
    if pinned is not None and not np.all(np.isnan(pinned)):
        free = np.isnan(pinned)
        starts = np.unique(np.where(free, starts, pinned), axis=0)
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    # chunks of <= 100 resamples keep the batched arrays small (100 x 5 starts x n rows)
    n_chunks = max(workers, -(-n_bootstrap // 100))
    chunks = [c for c in np.array_split(counts, n_chunks) if len(c)]
    jobs = [(logN, logD, logL, delta, starts, c, polish, free) for c in chunks]
    if workers <= 1 or n_bootstrap < 50:
        return np.concatenate([_bootstrap_chunk(j) for j in jobs])
    with ProcessPoolExecutor(max_workers=workers) as ex:
        return np.concatenate(list(ex.map(_bootstrap_chunk, jobs)))


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------


def closed_form_optimum(C: Any, E: float, A: float, B: float, alpha: float, beta: float):
    """Compute-optimal N and D under L(N, D) with C = 6 N D (Hoffmann et al. 2022, Eq. 4).

    N_opt = G (C/6)^a, D_opt = (C/6)^b / G, G = (alpha A / (beta B))^(1/(alpha+beta)),
    a = beta/(alpha+beta), b = alpha/(alpha+beta).

    Args:
        C: FLOPs, scalar or array.
        E: irreducible loss (unused by the allocation; kept for a uniform signature).
        A: parameter-term coefficient.
        B: data-term coefficient.
        alpha: parameter exponent.
        beta: data exponent.

    Returns:
        (N_opt, D_opt) with the shape of ``C``; NaN when ``alpha <= 0`` or ``beta <= 0`` (then
        L has no finite compute optimum: more of one resource never helps; noisy bootstrap
        refits can land there).
    """
    C = np.asarray(C, dtype=float)
    if not (alpha > 0 and beta > 0):
        nan = np.full_like(C, np.nan)
        return nan, nan.copy()
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    a = beta / (alpha + beta)
    b = alpha / (alpha + beta)
    return G * (C / 6.0) ** a, (C / 6.0) ** b / G


def optimum(
    C: float,
    E: float,
    A: float,
    B: float,
    alpha: float,
    beta: float,
    flop_ratio: dict[str, float] | None = None,
) -> tuple[float, float]:
    """Compute-optimal (N, D) at FLOPs ``C``, optionally with counted FLOPs instead of 6 N D.

    Without ``flop_ratio`` this is ``closed_form_optimum`` (C = 6 N D). With it, C is taken as
    6 N D r(N) with r(N) = exp(c0) N^c1 (the counted / 6ND ratio fitted on the runs: attention
    and LM-head FLOPs make small models cost more than 6 N per token), and N_opt minimises
    L(N, C / (6 N r(N))) numerically (bounded search within e^4 of the closed form).

    Args:
        C: FLOPs (scalar).
        E: irreducible loss.
        A: parameter-term coefficient.
        B: data-term coefficient.
        alpha: parameter exponent.
        beta: data exponent.
        flop_ratio: ``{"c0", "c1"}`` or None.

    Returns:
        (N_opt, D_opt).
    """
    n0, d0 = closed_form_optimum(C, E, A, B, alpha, beta)
    if not flop_ratio or not np.isfinite(n0):
        return float(n0), float(d0)
    from scipy.optimize import minimize_scalar

    c0, c1 = flop_ratio["c0"], flop_ratio["c1"]

    def tokens(x: float) -> float:
        return C / (6.0 * math.exp(x) * math.exp(c0 + c1 * x))

    def loss(x: float) -> float:
        return A / math.exp(alpha * x) + B / tokens(x) ** beta

    x0 = math.log(float(n0))
    r = minimize_scalar(loss, bounds=(x0 - 4, x0 + 4), method="bounded", options={"xatol": 1e-9})
    return math.exp(r.x), tokens(r.x)


def fit_flop_ratio(N: Any, D: Any, C: Any) -> dict[str, float]:
    """Least-squares fit of log(C / (6 N D)) = c0 + c1 log N over runs (counted-FLOP overhead).

    Args:
        N: parameters per run (n,).
        D: tokens per run (n,).
        C: counted FLOPs per run (n,).

    Returns:
        ``{"c0", "c1", "max_abs_resid"}``.
    """
    N, D, C = (np.asarray(x, dtype=float) for x in (N, D, C))
    y = np.log(C / (6.0 * N * D))
    c1, c0 = np.polyfit(np.log(N), y, 1)
    resid = y - (c0 + c1 * np.log(N))
    return {"c0": float(c0), "c1": float(c1), "max_abs_resid": float(np.max(np.abs(resid)))}


@dataclass(frozen=True)
class ParametricFit:
    """Result of Chinchilla approach 3 (see module docstring for the legend and procedure).

    Attributes:
        E: irreducible loss; fitted L(N, D) = E + A/N^alpha + B/D^beta (L in nats/token).
        A: parameter-term coefficient.
        B: data-term coefficient.
        alpha: parameter exponent.
        beta: data exponent.
        objective: summed Huber objective at the optimum.
        huber_delta: Huber delta.
        n_points: rows fitted.
        n_starts: grid starts.
        method: ``"screened"`` or ``"exhaustive"``.
        best_starts: objectives and (alpha, beta, E) of the best distinct refined optima, best
            first (the spread of the best starts).
        n_convention: which N (``"non_embedding"`` | ``"total"``).
        flop_formula: which C (``"counted"`` | ``"6nd"``); D came from the data or from C/(6N).
        seed: bootstrap seed.
        n_bootstrap: bootstrap resamples (0 = none).
        ci_level: CI coverage.
        ci: parameter name -> (lo, hi) percentile interval (E, A, B, alpha, beta, a, b, G).
        samples: parameter name -> bootstrap samples (for query CIs).
        selection: how rows were chosen (e.g. best LR per point).
        meta: free-form provenance (shape rule, source, ...).
        fixed: pinned parameters (paper name -> value); they were not fitted and the
            bootstrap held them too.
        residuals: log L_i - log L_hat(N_i, D_i) per fitted row (prediction intervals resample
            them; ``analysis.forecast``).
        identifiability: free parameter -> share of bootstrap refits at or beyond the edge of
            the start grid (``identifiability``); empty without bootstrap.
        flags: warnings (a share above ``IDENTIFIABILITY_THRESHOLD``).
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    huber_delta: float
    n_points: int
    n_starts: int
    method: str
    best_starts: tuple[dict[str, float], ...]
    n_convention: str
    flop_formula: str
    seed: int
    n_bootstrap: int
    ci_level: float = 0.95
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[str, tuple[float, ...]] = field(default_factory=dict, repr=False)
    selection: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)
    residuals: tuple[float, ...] = field(default=(), repr=False)
    identifiability: dict[str, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    approach = "parametric"

    @property
    def a(self) -> float:
        """N_opt ~ C^a exponent, beta/(alpha+beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """D_opt ~ C^b exponent, alpha/(alpha+beta)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """(alpha A / (beta B))^(1/(alpha+beta))."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def predict_loss(self, N: Any, D: Any) -> np.ndarray:
        """L(N, D) = E + A/N^alpha + B/D^beta (nats/token); broadcasts N and D."""
        N = np.asarray(N, dtype=float)
        D = np.asarray(D, dtype=float)
        return self.E + self.A / N**self.alpha + self.B / D**self.beta

    def compute_optimal(self, C: Any) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) at FLOPs ``C``.

        The closed form (C = 6 N D) unless ``meta["flop_ratio"]`` holds the counted/6ND ratio of
        the runs (counted FLOPs), then a numerical optimum; see ``optimum``.
        """
        ratio = self.meta.get("flop_ratio")
        if not ratio:
            return closed_form_optimum(C, self.E, self.A, self.B, self.alpha, self.beta)
        Cs = np.asarray(C, dtype=float)
        pairs = [
            optimum(c, self.E, self.A, self.B, self.alpha, self.beta, ratio) for c in Cs.ravel()
        ]
        n = np.array([p[0] for p in pairs]).reshape(Cs.shape)
        d = np.array([p[1] for p in pairs]).reshape(Cs.shape)
        return n, d

    def estimate(self, name: str) -> Estimate:
        """Point estimate and CI of a parameter (E, A, B, alpha, beta, a, b, G)."""
        return estimate_of(self, name)

    def sample_params(self) -> list[dict[str, float]]:
        """Bootstrap parameter sets (E, A, B, alpha, beta), one dict per resample."""
        return sample_dicts(self.samples, ("E", "A", "B", "alpha", "beta"))

    def report(self) -> str:
        """Human-readable multi-line summary."""
        lines = [
            "Chinchilla approach 3 (parametric), Besiroglu et al. 2024 procedure",
            f"  L(N, D) = E + A/N^alpha + B/D^beta; N = {self.n_convention} params, C = "
            f"{self.flop_formula}",
            f"  points: {self.n_points}; starts: {self.n_starts} ({self.method}); Huber delta "
            f"= {self.huber_delta:g} (summed)",
            f"  objective: {self.objective:.6e}",
        ]
        for name in ("E", "A", "B", "alpha", "beta", "a", "b"):
            pin = "  (fixed)" if name in self.fixed else ""
            edge = self.identifiability.get(name)
            share = f"  ({edge:.0%} of refits at a grid edge)" if edge else ""
            lines.append(f"  {name:>5} = {self.estimate(name)}{pin}{share}")
        if self.n_bootstrap:
            lines.append(
                f"  CIs: {100 * self.ci_level:g}% percentile bootstrap over rows, "
                f"{self.n_bootstrap} resamples, seed {self.seed}"
            )
        if self.best_starts:
            objs = ", ".join(f"{s['objective']:.6e}" for s in self.best_starts[:5])
            lines.append(f"  best distinct optima (objective): {objs}")
        lines += [f"  flag: {f}" for f in self.flags]
        if self.selection:
            lines.append(f"  selection: {self.selection}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict: paper names, ``<name>_ci`` beside each, ``samples``."""
        d: dict[str, Any] = {
            "approach": self.approach,
            "E": self.E,
            "A": self.A,
            "B": self.B,
            "alpha": self.alpha,
            "beta": self.beta,
            "a": self.a,
            "b": self.b,
            "G": self.G,
            "objective": self.objective,
            "huber_delta": self.huber_delta,
            "n_points": self.n_points,
            "n_starts": self.n_starts,
            "method": self.method,
            "best_starts": list(self.best_starts),
            "n_convention": self.n_convention,
            "flop_formula": self.flop_formula,
            "fixed": self.fixed,
            "identifiability": self.identifiability,
            "flags": list(self.flags),
            "residuals": list(self.residuals),
            **bootstrap_record(self),
        }
        return to_jsonable(add_cis(d, self.ci))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParametricFit:
        """Inverse of ``to_dict``.

        Raises:
            ValueError: if ``d`` is not a parametric fit.
        """
        if d.get("approach") != "parametric":
            raise ValueError(f"not a parametric fit: approach={d.get('approach')!r}")
        ci = cis_from_json(d)
        return cls(
            E=float(d["E"]),
            A=float(d["A"]),
            B=float(d["B"]),
            alpha=float(d["alpha"]),
            beta=float(d["beta"]),
            objective=float(d["objective"]),
            huber_delta=float(d["huber_delta"]),
            n_points=int(d["n_points"]),
            n_starts=int(d["n_starts"]),
            method=str(d["method"]),
            best_starts=tuple(d.get("best_starts", [])),
            n_convention=d["n_convention"],
            flop_formula=d["flop_formula"],
            seed=int(d["seed"]),
            n_bootstrap=int(d["n_bootstrap"]),
            ci_level=float(d.get("ci_level", 0.95)),
            ci=ci,
            samples=samples_from_json(d),
            selection=d.get("selection", ""),
            meta=d.get("meta", {}),
            fixed={k: float(v) for k, v in d.get("fixed", {}).items()},
            residuals=tuple(float(x) for x in d.get("residuals", [])),
            identifiability={k: float(v) for k, v in d.get("identifiability", {}).items()},
            flags=tuple(d.get("flags", [])),
        )


def fit_parametric(
    N: Any,
    D: Any,
    L: Any,
    *,
    n_convention: str,
    flop_formula: str,
    huber_delta: float = 1e-3,
    n_bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
    method: str = "screened",
    workers: int | None = None,
    selection: str = "",
    meta: dict[str, Any] | None = None,
    fixed: dict[str, float] | None = None,
    identifiability_threshold: float = IDENTIFIABILITY_THRESHOLD,
    starts: np.ndarray | None = None,
) -> ParametricFit:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta (Chinchilla approach 3, Besiroglu et al. 2024).

    Args:
        N: parameters per row (n,), in the ``n_convention`` convention.
        D: training tokens per row (n,).
        L: final loss per row (n,), nats/token.
        n_convention: ``"non_embedding"`` or ``"total"`` (recorded).
        flop_formula: ``"counted"`` or ``"6nd"`` (recorded; only matters for how D or C was made).
        huber_delta: Huber delta (default 1e-3, as published).
        n_bootstrap: bootstrap resamples over rows for CIs (0 = none).
        seed: bootstrap seed.
        ci_level: CI coverage.
        method: ``"screened"`` (fast, default) or ``"exhaustive"``; see ``minimise``.
        workers: bootstrap processes (default min(2, cpu count)).
        selection: note on how rows were selected.
        meta: provenance stored with the result.
        fixed: parameters to pin instead of fitting (paper name -> value, e.g.
            ``{"E": 1.69}``; Marin pins the asymptote or the exponents this way); the start
            grid, the solver and every bootstrap refit hold them.
        identifiability_threshold: with bootstrap, flag (and warn with
            ``IdentifiabilityWarning``) every free parameter whose share of refits at or
            beyond the start grid's edge exceeds this.
        starts: (S, 5) starts (a, b, e, alpha, beta) instead of the 4500-point grid (a cheap
            path for simulations that know the basin; reported as ``n_starts``).

    Returns:
        ParametricFit.

    Raises:
        ValueError: NaN, non-positive values, unequal lengths, fewer than 6 rows, bad delta,
            a bad ``fixed`` entry (see ``pinned_theta``).
    """
    check_convention(n_convention, flop_formula)
    check_level(ci_level)
    N = positive_array("N", N, MIN_POINTS, "parametric")
    D = positive_array("D", D, MIN_POINTS, "parametric")
    L = positive_array("L", L, MIN_POINTS, "parametric")
    same_length(N=N, D=D, L=L)
    if not huber_delta > 0:
        raise ValueError(f"huber_delta must be > 0, got {huber_delta}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    pinned = pinned_theta(fixed)
    logN, logD, logL = np.log(N), np.log(D), np.log(L)
    res = minimise(logN, logD, logL, huber_delta, starts=starts, method=method, pinned=pinned)
    a, b, e, alpha, beta = res["theta"]
    best = []
    for t, f in zip(res["refined_theta"], res["refined_objective"], strict=True):
        if all(np.max(np.abs(t - np.asarray(o["theta"]))) > 1e-3 for o in best):
            best.append({"objective": float(f), "theta": t.tolist()})
        if len(best) >= 5:
            break
    best_starts = tuple(
        {
            "objective": o["objective"],
            "alpha": o["theta"][3],
            "beta": o["theta"][4],
            "E": math.exp(o["theta"][2]),
        }
        for o in best
    )
    fit = ParametricFit(
        E=math.exp(e),
        A=math.exp(a),
        B=math.exp(b),
        alpha=float(alpha),
        beta=float(beta),
        objective=res["objective"],
        huber_delta=huber_delta,
        n_points=len(N),
        n_starts=res["n_starts"],
        method=method,
        best_starts=best_starts,
        n_convention=n_convention,
        flop_formula=flop_formula,
        seed=seed,
        n_bootstrap=n_bootstrap,
        ci_level=ci_level,
        selection=selection,
        meta={
            **(meta or {}),
            "fitted_range": {
                "N": [float(N.min()), float(N.max())],
                "D": [float(D.min()), float(D.max())],
            },
        },
        fixed={k: float(v) for k, v in (fixed or {}).items()},
        residuals=tuple(float(r) for r in logL - np.log(_predict(res["theta"], N, D))),
    )
    if n_bootstrap == 0:
        return fit
    bs = bootstrap(
        logN,
        logD,
        logL,
        huber_delta,
        res["theta"],
        res["refined_theta"],
        n_bootstrap,
        seed,
        workers,
        pinned=pinned,
    )
    shares = identifiability(bs, pinned)
    flags = tuple(
        f"{name}: {share:.0%} of {n_bootstrap} bootstrap refits sit at or beyond the edge of the "
        f"start grid (threshold {identifiability_threshold:.0%}); {name} is not identified by "
        f"these runs: widen the N/D range or pin it (--fix {name}=VALUE)"
        for name, share in shares.items()
        if share > identifiability_threshold
    )
    for flag in flags:
        warnings.warn(flag, IdentifiabilityWarning, stacklevel=2)
    return replace(_with_samples(fit, bs), identifiability=shares, flags=flags)


def _predict(theta: np.ndarray, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    a, b, e, alpha, beta = theta
    return np.exp(e) + np.exp(a) / N**alpha + np.exp(b) / D**beta


def _with_samples(fit: ParametricFit, bs: np.ndarray) -> ParametricFit:
    a, b, e, alpha, beta = (bs[:, k] for k in range(5))
    with np.errstate(all="ignore"):
        samples = {
            "E": np.exp(e),
            "A": np.exp(a),
            "B": np.exp(b),
            "alpha": alpha,
            "beta": beta,
            "a": beta / (alpha + beta),
            "b": alpha / (alpha + beta),
            "G": (alpha * np.exp(a) / (beta * np.exp(b))) ** (1.0 / (alpha + beta)),
        }
    ci = {k: percentile_ci(v, fit.ci_level) for k, v in samples.items()}
    return replace(fit, ci=ci, samples={k: tuple(float(x) for x in v) for k, v in samples.items()})
