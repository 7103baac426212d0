"""Chinchilla approach 3, the solver: fit theta = (a, b, e, alpha, beta) of ``law``.

Symbols as in ``analysis.parametric.law`` (Hoffmann et al. 2022, Eq. 2; a, b, e = log A, log B,
log E).

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

``fit_parametric`` (the entry point) runs the solver and returns ``law.ParametricFit``.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from analysis.estimates import percentile_ci
from analysis.inputs import (
    check_convention,
    check_distinct,
    check_level,
    positive_array,
    same_length,
)
from analysis.parametric.law import (
    IDENTIFIABILITY_THRESHOLD,
    MIN_POINTS,
    IdentifiabilityWarning,
    ParametricFit,
    identifiability,
    pinned_theta,
)

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
        # one vectorised comparison against every kept row (a Python loop over pairs cost
        # seconds when thousands of screened starts end at the same optimum)
        if not kept or np.min(np.max(np.abs(thetas[kept] - thetas[i]), axis=1)) > tol:
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
            Besiroglu et al. procedure; slow), or ``"gauss_newton"`` (the batched Gauss-Newton
            iterations of a bootstrap refit from every start, no L-BFGS-B: a cheap path for
            simulations that start near the optimum).
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
    if method == "gauss_newton":  # the bootstrap's refit: batched Gauss-Newton only
        th, fs = _screen(starts, logN, logD, logL, delta, ((BOOTSTRAP_ITERS, None),), weights, free)
        idx = _distinct(th, fs, n_refine)
        return {
            "theta": th[idx[0]],
            "objective": float(fs[idx[0]]),
            "refined_theta": th[idx],
            "refined_objective": fs[idx],
            "n_starts": len(starts),
        }
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
        raise ValueError(
            "method must be 'screened', 'exhaustive', 'published' or 'gauss_newton', got "
            f"{method!r}"
        )
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


def resample_counts(n: int, n_bootstrap: int, seed: int, clusters: Any = None) -> np.ndarray:
    """Per-row multiplicities of ``n_bootstrap`` resamples, shape ``(n_bootstrap, n)``.

    Rows (``clusters`` None or all distinct): n draws with replacement from n rows. Clusters:
    k draws with replacement from the k distinct labels; a row counts as often as its cluster
    was drawn. Seeded with ``numpy.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    if clusters is not None:
        labels, inverse = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
        if len(labels) < n:
            k = len(labels)
            drawn = [np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(n_bootstrap)]
            return np.stack(drawn)[:, inverse].astype(float)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_bootstrap)])
    return counts.astype(float)


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
    clusters: Any = None,
) -> np.ndarray:
    """Nonparametric bootstrap over rows: ``n_bootstrap`` refits on resampled rows.

    With ``clusters`` (one label per row, e.g. the WSD trunk a branch started from) whole
    clusters are resampled instead: k clusters are drawn with replacement from the k present
    and every row of a drawn cluster enters with that cluster's multiplicity (the cluster
    bootstrap, Davison & Hinkley 1997, Sec. 3.8), because branches of one trunk share its
    noise and are not independent. Labels that are all distinct give the row bootstrap.

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
    counts = resample_counts(len(logN), n_bootstrap, seed, clusters)
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
    clusters: Any = None,
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
        method: ``"screened"`` (fast, default), ``"exhaustive"`` or ``"gauss_newton"``; see
            ``minimise``.
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
        clusters: optional label per row (n,); the bootstrap then resamples clusters, not rows
            (WSD branches of one trunk share a cluster; see ``bootstrap``). Recorded in
            ``meta["bootstrap_clusters"]`` (number of clusters) when they group rows.

    Returns:
        ParametricFit.

    Raises:
        ValueError: NaN, non-positive values, unequal lengths, fewer than 6 distinct (N, D)
            points, bad delta, a bad ``fixed`` entry (see ``pinned_theta``).
    """
    check_convention(n_convention, flop_formula)
    check_level(ci_level)
    N = positive_array("N", N, MIN_POINTS, "parametric")
    D = positive_array("D", D, MIN_POINTS, "parametric")
    L = positive_array("L", L, MIN_POINTS, "parametric")
    same_length(N=N, D=D, L=L)
    check_distinct(MIN_POINTS, "parametric", N=N, D=D)
    if not huber_delta > 0:
        raise ValueError(f"huber_delta must be > 0, got {huber_delta}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    pinned = pinned_theta(fixed)
    logN, logD, logL = np.log(N), np.log(D), np.log(L)
    meta = dict(meta or {})
    if clusters is not None:
        clusters = np.asarray(clusters, dtype=str)
        if clusters.shape != N.shape:
            raise ValueError(
                f"clusters must have one label per row ({len(N)}), got {clusters.shape}"
            )
        n_clusters = len(np.unique(clusters))
        if n_clusters < len(N):
            meta["bootstrap_clusters"] = n_clusters
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
            **meta,
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
        clusters=clusters,
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
