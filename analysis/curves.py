"""Loss-curve laws: the whole ``(step, lr, loss)`` curve of a run, not only its last point.

Two schedule-aware laws, fitted to one run's curve or jointly to a family of runs:

**Multi-power law** (``law="multi_power"``; Luo et al. 2025, "A Multi-Power Law for Loss Curve
Prediction Across Learning Rate Schedules", arXiv:2503.12811, Eq. (3)-(5))::

    L(t) = L0 + A * S1(t)^(-alpha) - LD(t)
    S1(t) = sum_{tau=1..t} eta_tau            (the area under the LR, warmup included)
    LD(t) = B * sum_{k=W+1..t} (eta_{k-1} - eta_k) * G(eta_k^(-gamma) * S_k(t))
    G(x)  = 1 - (C * x + 1)^(-beta),      S_k(t) = sum_{tau=k..t} eta_tau

**Tissue et al.** (``law="tissue"``; "Scaling Law with Learning Rate Annealing", arXiv:2408.11029,
Eq. (1) and the momentum form of S2, their Eq. (5))::

    L(t) = L0 + A * S1(t)^(-alpha) - C * S2(t)
    S2(t) = sum_{i=1..t} m_i,   m_i = lam * m_{i-1} + (eta_{i-1} - eta_i)  (i > W),  lam = 0.999

Legend: t the number of optimizer steps taken (a metrics row's ``step``); eta_tau the LR of the
tau-th step (1-based; ``scaling.optim.lr_at(tau - 1, ...)``); W the step at which the LR first
reaches its peak (the end of warmup: the decay sums start there, eta_W is the peak, and the
warmup counts only through S1, as Luo et al.'s S_W term); L0, A, alpha, B, C, beta, gamma the
law's coefficients (Luo et al.'s names; Tissue et al.'s annealing coefficient is also called C).
Both laws represent warmup followed by a non-increasing LR; a schedule whose LR rises again
after its peak (re-warmup, cyclic) is refused by name.

**Family (joint) fit**: with runs of several sizes, L0, A and B (Tissue: L0, A, C) are power
laws in N around a reference size N_ref (the geometric mean of the fitted runs' N):
``theta(N) = theta * (N / N_ref)^k_theta``; alpha, C, beta, gamma are shared. This is our own
extension (the papers fit one model size at a time): it is what lets a family's curves predict
an unseen size. With one size the k's are not fitted.

**Fitting** (as Luo et al.'s code and Besiroglu et al. 2024 for approach 3): Huber loss
(delta = 1e-3) on log residuals log L_hat - log L, summed over every point of every curve;
L-BFGS-B from a grid of starts. Where we deviate, and why:

- the start grid spans (alpha, beta, gamma, C) only; at each grid point L0, A, B start at their
  linear least-squares values (the law is linear in them), and the best 4 grid points are refined
  with L-BFGS-B using analytic gradients (a full grid over 7-10 parameters costs minutes);
- the decay sum over k is taken in groups of consecutive steps (at most ``max_groups`` per
  curve, never straddling a fitted point), each with the group's LR drop and G at its middle
  step: the midpoint rule, exact where G is linear in k; it makes a 5,000-step curve cost ~60
  terms per point instead of ~1,000;
- the bootstrap resamples runs (their ``cluster``: a WSD trunk with its branches is one unit) and
  refits from the full fit's optimum (one L-BFGS-B start), not from the whole grid. With fewer
  than 3 clusters it resamples blocks of 5 consecutive points of the curve (a moving-block
  bootstrap, Kuensch 1989), since points of one curve are correlated.

Predictions (``analysis.curve_predict``) answer ``{"value", "ci", "pi", "level"}`` like
``analysis.forecast.predict_loss``:
``ci`` the percentile interval of the bootstrap fits' predictions, ``pi`` those predictions
combined with the fit's log residuals at each run's last point (inflated by sqrt(n/(n-p)),
``analysis.forecast.prediction_interval``); with fewer runs than free parameters, the residuals
of every point are used instead (the note says so).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.estimates import percentile_ci, to_jsonable
from analysis.inputs import check_level

LAWS: tuple[str, ...] = ("multi_power", "tissue")
#: Fewest finite points a curve needs (a law has up to 7 coefficients; a run adds its own L0/A
#: information only with several points).
MIN_POINTS = 5
HUBER_DELTA = 1e-3
TISSUE_LAMBDA = 0.999
#: Relative LR rise after the peak tolerated as rounding (a larger one is a re-warmup).
_RISE_TOL = 1e-9

# parameters of each law: (shared names, size-dependent names)
_NAMES = {
    "multi_power": ("L0", "A", "alpha", "B", "C", "beta", "gamma"),
    "tissue": ("L0", "A", "alpha", "C"),
}
#: Coefficients of each law fitted to one run (a prediction interval needs more points than this).
N_COEFFICIENTS = {law: len(names) for law, names in _NAMES.items()}
_SIZE_DEPENDENT = {"multi_power": ("L0", "A", "B"), "tissue": ("L0", "A", "C")}
_LOG_PARAMS = {"multi_power": ("A", "B", "C"), "tissue": ("A", "C")}
_BOUNDS = {
    "L0": (1e-3, 50.0),
    "A": (-30.0, 30.0),  # log
    "alpha": (1e-3, 3.0),
    "B": (-30.0, 30.0),  # log
    "C": (-30.0, 30.0),  # log
    "beta": (1e-3, 5.0),
    "gamma": (0.0, 2.0),
}
_K_BOUND = (-3.0, 3.0)


class CurveError(ValueError):
    """A curve or schedule the law cannot use; the message names the run and the row."""


# ---------------------------------------------------------------------------------------------
# Curves and schedules
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """One run's loss curve and its planned learning-rate schedule.

    Attributes:
        run: the run's name (errors name it).
        steps: optimizer steps taken at each point, shape (P,), strictly increasing, >= 1.
        loss: loss at each point (nats/token), shape (P,).
        lrs: the LR of every step of the planned schedule, shape (T,), ``lrs[tau - 1]`` the LR
            of step tau; T >= ``steps[-1]`` (the run's planned length).
        n_params: N of the run (any convention, stated by the caller), NaN if unknown.
        cluster: bootstrap unit (a WSD trunk and its branches share one); default ``run``.
    """

    run: str
    steps: np.ndarray
    loss: np.ndarray
    lrs: np.ndarray
    n_params: float = math.nan
    cluster: str = ""

    @property
    def planned_steps(self) -> int:
        """T, the length of the planned schedule (steps)."""
        return int(self.lrs.size)


def make_curve(
    run: str,
    steps: Sequence[float],
    loss: Sequence[float],
    lrs: Sequence[float],
    n_params: float = math.nan,
    cluster: str | None = None,
    min_points: int = MIN_POINTS,
) -> Curve:
    """Validate one run's rows and its schedule into a ``Curve``.

    Args:
        run: the run's name.
        steps: optimizer steps at each point, shape (P,).
        loss: loss at each point (nats/token), shape (P,).
        lrs: per-step LR of the planned schedule, shape (T,), T >= the last step.
        n_params: N (finite and positive, or NaN for a one-size fit).
        cluster: bootstrap unit (default: the run).
        min_points: fewest points accepted.

    Raises:
        CurveError: fewer than ``min_points`` points; steps not whole, not >= 1 or not strictly
            increasing; a non-finite or non-positive loss or LR; a schedule shorter than the
            curve; an LR that rises again after its peak. Each names the run and the row (or
            step).
    """
    s = np.asarray(steps, dtype=float)
    y = np.asarray(loss, dtype=float)
    eta = np.asarray(lrs, dtype=float)
    if s.shape != y.shape or s.ndim != 1:
        raise CurveError(f"run {run}: steps and loss must be 1-D of equal length")
    for i in range(s.size):
        if not (math.isfinite(s[i]) and s[i] >= 1 and s[i] == round(s[i])):
            raise CurveError(f"run {run}, row {i}: step {s[i]} is not a whole number >= 1")
        if i and s[i] <= s[i - 1]:
            raise CurveError(
                f"run {run}, row {i}: step {s[i]:g} is not above the previous row's "
                f"{s[i - 1]:g}; steps must increase (sort the rows, drop duplicates)"
            )
        if not (math.isfinite(y[i]) and y[i] > 0):
            raise CurveError(
                f"run {run}, row {i} (step {s[i]:g}): loss {y[i]} is not finite and positive"
            )
    if s.size < min_points:
        raise CurveError(
            f"run {run}: {s.size} point(s); the curve law needs at least {min_points} "
            "(rows with a finite loss)"
        )
    bad = ~(np.isfinite(eta) & (eta > 0))
    if bad.any():
        j = int(np.argmax(bad))
        raise CurveError(
            f"run {run}, step {j + 1}: learning rate {eta[j]} is not finite and positive; the "
            "laws take log(lr) and need lr > 0 at every step"
        )
    if eta.size < s[-1]:
        raise CurveError(
            f"run {run}: the schedule has {eta.size} steps but the curve reaches step "
            f"{s[-1]:g}; give the planned schedule of the whole run"
        )
    peak = int(np.argmax(eta))
    rise = np.diff(eta[peak:]) > _RISE_TOL * eta[peak]
    if rise.any():
        j = peak + int(np.argmax(rise)) + 1
        raise CurveError(
            f"run {run}: the LR rises again at step {j + 1} after its peak at step {peak + 1} "
            "(a re-warmup or cyclic schedule); the multi-power and Tissue et al. laws represent "
            "a warmup followed by a non-increasing LR only"
        )
    n = float(n_params)
    if not (math.isnan(n) or (math.isfinite(n) and n > 0)):
        raise CurveError(f"run {run}: n_params {n_params} is not finite and positive")
    return Curve(run, s.astype(np.int64), y, eta, n, cluster or run)


def schedule_lrs(n_steps: int, **optim: Any) -> np.ndarray:
    """The per-step LRs of one of the toolkit's schedules, shape (n_steps,).

    Args:
        n_steps: the run's planned optimizer steps.
        **optim: ``scaling.config.OptimConfig`` fields (``lr``, ``schedule`` = ``"cosine"`` |
            ``"wsd"`` | ``"constant"``, ``warmup_fraction``, ``min_lr_ratio``,
            ``decay_fraction``, ``decay_shape``).

    Raises:
        ValueError: an unknown schedule or field (OptimConfig's own message, which names it).
    """
    from scaling.config import OptimConfig
    from scaling.optim import lr_at

    try:
        cfg = OptimConfig(**optim)
    except TypeError as e:
        raise ValueError(f"schedule: {e}; fields are those of OptimConfig") from None
    return np.array([lr_at(i, int(n_steps), cfg) for i in range(int(n_steps))])


# ---------------------------------------------------------------------------------------------
# Design: everything about a set of curves that does not depend on the law's coefficients
# ---------------------------------------------------------------------------------------------


@dataclass
class _Design:
    curve_of_point: np.ndarray  # (P,) curve index
    loss: np.ndarray  # (P,)
    s1: np.ndarray  # (P,)
    s2: np.ndarray  # (P,) Tissue's S2
    log_n: np.ndarray  # (P,) log(N / N_ref), 0 without N
    pair_point: np.ndarray  # (Q,) point of each decay term
    pair_deta: np.ndarray  # (Q,)
    pair_log_eta: np.ndarray  # (Q,)
    pair_s: np.ndarray  # (Q,) S_k(t)


def _peak_step(eta: np.ndarray) -> int:
    """W: 1-based step at which the LR first reaches its maximum."""
    return int(np.argmax(eta)) + 1


def _curve_terms(eta: np.ndarray, steps: np.ndarray, max_groups: int, lam: float):
    """S1, S2 at ``steps`` and the grouped decay terms (point index, deta, log eta, S)."""
    cum = np.concatenate([[0.0], np.cumsum(eta)])  # cum[t] = S1(t)
    s1 = cum[steps]
    w = _peak_step(eta)
    # Tissue's momentum S2
    d = np.zeros(eta.size + 1)
    d[w + 1 :] = eta[w - 1 : -1] - eta[w:]  # d[i] = eta_{i-1} - eta_i for i > W
    m = np.zeros_like(d)
    for i in range(1, d.size):
        m[i] = lam * m[i - 1] + d[i]
    s2 = np.cumsum(m)[steps]
    # decay steps k > W with a non-zero LR drop, grouped
    ks = np.nonzero(d[1:] != 0)[0] + 1  # 1-based steps k with eta_{k-1} != eta_k
    pts, dets, logs, ss = [], [], [], []
    if ks.size:
        width = max(1, math.ceil(ks.size / max_groups))
        bounds = set(int(t) for t in steps)
        groups: list[list[int]] = []
        cur: list[int] = []
        for k in ks:
            cur.append(int(k))
            if len(cur) >= width or int(k) in bounds:
                groups.append(cur)
                cur = []
        if cur:
            groups.append(cur)
        for g in groups:
            first, last = g[0], g[-1]
            mid = g[len(g) // 2]
            deta = eta[first - 2] - eta[last - 1] if first >= 2 else 0.0
            # points whose step t >= last see the whole group
            sel = np.nonzero(steps >= last)[0]
            if not sel.size or deta == 0:
                continue
            pts.append(sel)
            dets.append(np.full(sel.size, deta))
            logs.append(np.full(sel.size, math.log(eta[mid - 1])))
            ss.append(cum[steps[sel]] - cum[mid - 1])
    cat = lambda a, dt: np.concatenate(a) if a else np.zeros(0, dtype=dt)  # noqa: E731
    return s1, s2, cat(pts, np.int64), cat(dets, float), cat(logs, float), cat(ss, float)


def _design(
    curves: Sequence[Curve],
    n_ref: float,
    max_groups: int,
    lam: float,
    upto: Sequence[np.ndarray] | None = None,
) -> _Design:
    parts = []
    offset = 0
    for i, c in enumerate(curves):
        steps = c.steps if upto is None else np.asarray(upto[i], dtype=np.int64)
        s1, s2, pp, de, le, ss = _curve_terms(c.lrs, steps, max_groups, lam)
        ln = math.log(c.n_params / n_ref) if n_ref and math.isfinite(c.n_params) else 0.0
        loss = c.loss if upto is None else np.full(steps.size, np.nan)
        parts.append(
            (np.full(steps.size, i), loss, s1, s2, np.full(steps.size, ln), pp + offset, de, le, ss)
        )
        offset += steps.size
    cols = list(zip(*parts, strict=True))
    arr = [np.concatenate(x) for x in cols]
    return _Design(*arr)


# ---------------------------------------------------------------------------------------------
# The laws and their gradients
# ---------------------------------------------------------------------------------------------


def _layout(law: str, joint: bool) -> list[str]:
    names = list(_NAMES[law])
    if joint:
        names += [f"k_{n}" for n in _SIZE_DEPENDENT[law]]
    return names


def _unpack(law: str, names: list[str], z: np.ndarray) -> dict[str, float]:
    p = dict(zip(names, map(float, z), strict=True))
    for n in _LOG_PARAMS[law]:
        p[n] = math.exp(p[n])
    return p


def _pack(law: str, names: list[str], p: dict[str, float]) -> np.ndarray:
    return np.array(
        [math.log(p[n]) if n in _LOG_PARAMS[law] else p.get(n, 0.0) for n in names], dtype=float
    )


def _evaluate(law: str, names: list[str], z: np.ndarray, d: _Design, grad: bool = True):
    """Predicted loss at every point, shape (P,), and d pred / d z, shape (P, len(z))."""
    p = dict(zip(names, z, strict=True))
    ln = d.log_n
    l0 = p["L0"] * np.exp(p.get("k_L0", 0.0) * ln)
    a = np.exp(p["A"] + p.get("k_A", 0.0) * ln)
    log_s1 = np.log(d.s1)
    t1 = a * np.exp(-p["alpha"] * log_s1)
    cols: dict[str, np.ndarray] = {}
    if law == "tissue":
        c = np.exp(p["C"] + p.get("k_C", 0.0) * ln)
        t2 = c * d.s2
        pred = l0 + t1 - t2
        if grad:
            cols = {"C": -t2, "k_C": -t2 * ln}
    else:
        b = np.exp(p["B"] + p.get("k_B", 0.0) * ln)
        cc, beta, gamma = math.exp(p["C"]), p["beta"], p["gamma"]
        x = np.exp(-gamma * d.pair_log_eta) * d.pair_s
        q = 1.0 + cc * x
        qb = np.exp(-beta * np.log(q))
        n_pts = d.loss.size
        ld = np.bincount(d.pair_point, d.pair_deta * (1.0 - qb), minlength=n_pts)
        pred = l0 + t1 - b * ld
        if grad:
            common = d.pair_deta * beta * qb / q * cc * x  # deta * dG/dlnC
            cols = {
                "B": -b * ld,
                "k_B": -b * ld * ln,
                "C": -b * np.bincount(d.pair_point, common, minlength=n_pts),
                "beta": -b * np.bincount(d.pair_point, d.pair_deta * qb * np.log(q), n_pts),
                "gamma": b * np.bincount(d.pair_point, common * d.pair_log_eta, n_pts),
            }
    if not grad:
        return pred, None
    cols.update(
        {
            "L0": l0 / p["L0"],
            "k_L0": l0 * ln,
            "A": t1,
            "k_A": t1 * ln,
            "alpha": -t1 * log_s1,
        }
    )
    return pred, np.stack([cols[n] for n in names], axis=1)


def _objective(law, names, d: _Design, delta: float, weights: np.ndarray):
    """Summed Huber loss of log residuals, divided by delta^2 (the same minimiser).

    L-BFGS-B's ``ftol`` is relative to max(|f|, 1), so an objective of ~1e-6 would stop early.
    """
    log_y = np.log(d.loss)
    scale = 1.0 / delta**2

    def f(z: np.ndarray) -> tuple[float, np.ndarray]:
        pred, jac = _evaluate(law, names, z, d)
        if not np.all(pred > 0) or not np.all(np.isfinite(pred)):
            return 1e10, np.zeros_like(z)
        r = np.log(pred) - log_y
        a = np.abs(r)
        h = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))
        dh = np.clip(r, -delta, delta) * weights / pred
        return float(np.sum(weights * h)) * scale, (dh @ jac) * scale

    return f


# ---------------------------------------------------------------------------------------------
# Fit
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveFit:
    """A fitted loss-curve law (``fit_curves``).

    Attributes:
        law: ``"multi_power"`` or ``"tissue"``.
        params: the coefficients at N_ref (``L0, A, alpha, ...``; with a joint fit also
            ``k_L0, k_A, k_B`` (Tissue: ``k_C``), the exponents of their power laws in N).
        n_ref: N_ref (NaN for a one-size fit).
        joint: True when the coefficients vary with N.
        objective: the summed Huber loss at the optimum.
        huber_delta, lam: the Huber delta; Tissue's momentum lambda.
        n_points, n_runs: fitted points and curves.
        runs: per fitted run: ``{"run", "n_params", "cluster", "last_step", "planned_steps"}``.
        residuals: log residuals used for prediction intervals (see ``residual_kind``).
        residual_kind: ``"last point per run"`` or ``"every point"``.
        boot_params: the bootstrap fits' coefficients (may be empty).
        ci: percentile CI of every coefficient over the bootstrap.
        level: CI level; seed: bootstrap seed; bootstrap_unit: ``"run cluster"`` or
            ``"block of 5 points"``.
        n_range: (min, max) N of the fitted runs (NaN without N).
        max_fitted_step: the longest fitted curve's last step.
        at_bound: coefficients that ended at a bound of the search box (not identified by
            these curves; predictions that lean on them are extrapolations).
    """

    law: str
    params: dict[str, float]
    n_ref: float
    joint: bool
    objective: float
    huber_delta: float
    lam: float
    n_points: int
    n_runs: int
    runs: tuple[dict[str, Any], ...]
    residuals: tuple[float, ...]
    residual_kind: str
    boot_params: tuple[dict[str, float], ...] = ()
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    level: float = 0.95
    seed: int = 0
    bootstrap_unit: str = ""
    n_range: tuple[float, float] = (math.nan, math.nan)
    max_fitted_step: int = 0
    at_bound: tuple[str, ...] = ()

    approach = "curves"

    @property
    def n_free(self) -> int:
        """Fitted coefficients (the PI's n - p inflation uses it)."""
        return len(self.params)

    def coefficients(self, n_params: float | None = None) -> dict[str, float]:
        """The law's coefficients for a run of ``n_params`` (the shared ones at N_ref)."""
        return _at_size(self.law, self.params, self.n_ref, n_params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary (``scaling fit --approach curves --out curves.json``)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["approach"] = "curves"
        d["ci"] = {k: list(v) for k, v in self.ci.items()}
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CurveFit:
        """Rebuild from ``to_dict()`` (e.g. a loaded ``curves.json``).

        Raises:
            ValueError: not a curve-law fit.
        """
        if d.get("approach") != "curves" or d.get("law") not in LAWS:
            raise ValueError(
                f"not a curve-law fit (approach {d.get('approach')!r}, law {d.get('law')!r}); "
                "write one with `scaling fit --approach curves`"
            )
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        fl = lambda x: math.nan if x is None else float(x)  # noqa: E731
        kw["params"] = {k: fl(v) for k, v in d["params"].items()}
        kw["n_ref"] = fl(d.get("n_ref"))
        kw["runs"] = tuple(d.get("runs", ()))
        kw["residuals"] = tuple(fl(x) for x in d.get("residuals", ()))
        kw["boot_params"] = tuple(
            {k: fl(v) for k, v in b.items()} for b in d.get("boot_params", ())
        )
        kw["ci"] = {k: (fl(v[0]), fl(v[1])) for k, v in d.get("ci", {}).items()}
        kw["n_range"] = tuple(fl(x) for x in d.get("n_range", (None, None)))
        kw["at_bound"] = tuple(d.get("at_bound", ()))
        return cls(**kw)

    def report(self) -> str:
        """Human-readable summary: law, coefficients with CIs, data and objective."""
        lines = [
            f"Loss-curve law: {self.law} ({'joint over N' if self.joint else 'one size'}), "
            f"{self.n_runs} runs, {self.n_points} points, Huber delta {self.huber_delta:g} on "
            f"log residuals, objective {self.objective:.6g}",
        ]
        for k, v in self.params.items():
            lo, hi = self.ci.get(k, (math.nan, math.nan))
            ci = f" [{lo:.4g}, {hi:.4g}]" if math.isfinite(lo) else ""
            lines.append(f"  {k} = {v:.5g}{ci}")
        if self.joint:
            lines.append(
                f"  N_ref = {self.n_ref:.4g}; N fitted {self.n_range[0]:.3g}-{self.n_range[1]:.3g}"
            )
        if self.at_bound:
            lines.append(
                f"  at a bound of the search box (not identified): {', '.join(self.at_bound)}"
            )
        if self.boot_params:
            lines.append(
                f"  bootstrap: {len(self.boot_params)} refits over {self.bootstrap_unit}s, "
                f"{100 * self.level:g}% CIs"
            )
        return "\n".join(lines)


def _at_size(law: str, params: dict[str, float], n_ref: float, n: float | None):
    p = dict(params)
    if n is not None and math.isfinite(n_ref) and n_ref > 0 and math.isfinite(n):
        ln = math.log(n / n_ref)
        for name in _SIZE_DEPENDENT[law]:
            p[name] = p[name] * math.exp(p.get(f"k_{name}", 0.0) * ln)
    for name in _SIZE_DEPENDENT[law]:
        p.pop(f"k_{name}", None)
    return p


def _check_law(law: str) -> None:
    if law not in LAWS:
        raise ValueError(f"law must be one of {LAWS}, got {law!r}")


def _starts(law: str, names, d: _Design, n: int):
    """Grid over the nonlinear coefficients; L0, A, B (or C) by linear least squares."""
    import scipy.optimize as so

    grids = {
        "alpha": (0.2, 0.5, 1.0),
        "C": (math.log(0.3), math.log(3.0), math.log(30.0)),
        "beta": (0.3, 1.0),
        "gamma": (0.2, 0.6),
    }
    keys = [
        k
        for k in ("alpha", "C", "beta", "gamma")
        if k in names and not (law == "tissue" and k == "C")
    ]
    out = []
    y = d.loss
    for combo in itertools.product(*(grids[k] for k in keys)):
        z = np.zeros(len(names))
        p = dict(zip(keys, combo, strict=True))
        for i, nme in enumerate(names):
            z[i] = p.get(nme, 0.0)
        z[names.index("L0")], z[names.index("A")] = 1.0, 0.0
        if law == "multi_power":
            z[names.index("B")] = 0.0
        else:
            z[names.index("C")] = 0.0
        # at A = B = 1 the law is L0 + A*f1 - B*f2: (L0, A, B) >= 0 by non-negative least
        # squares on the columns [1, f1, -f2] (jac of B at B = 1 is -f2)
        _, jac = _evaluate(law, names, z, d)
        lin = "B" if law == "multi_power" else "C"
        X = np.stack([np.ones_like(y), jac[:, names.index("A")], jac[:, names.index(lin)]], 1)
        coef, _ = so.nnls(X, y)
        l0, a, b = (max(float(v), 1e-6) for v in coef)
        z[names.index("L0")] = min(max(l0, _BOUNDS["L0"][0]), _BOUNDS["L0"][1])
        z[names.index("A")] = math.log(a)
        z[names.index(lin)] = math.log(b)
        out.append(z)
    return out


def _bounds(names: list[str]) -> list[tuple[float, float]]:
    return [_K_BOUND if n.startswith("k_") else _BOUNDS[n] for n in names]


def _minimize(f, z0, names):
    import scipy.optimize as so

    res = so.minimize(
        f,
        z0,
        jac=True,
        method="L-BFGS-B",
        bounds=_bounds(names),
        options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-8},
    )
    return res.x, float(res.fun)


def _fit_design(law, names, d, delta, weights, n_refine=4, z0=None):
    f = _objective(law, names, d, delta, weights)
    if z0 is not None:
        return _minimize(f, z0, names)
    starts = _starts(law, names, d, n_refine)
    scored = sorted(((f(z)[0], i) for i, z in enumerate(starts)))
    best = (None, math.inf)
    for _, i in scored[:n_refine]:
        z, val = _minimize(f, starts[i], names)
        if val < best[1]:
            best = (z, val)
    return best


def fit_curves(
    curves: Sequence[Curve],
    law: str = "multi_power",
    *,
    joint: bool | None = None,
    n_bootstrap: int = 0,
    huber_delta: float = HUBER_DELTA,
    lam: float = TISSUE_LAMBDA,
    level: float = 0.95,
    seed: int = 0,
    max_groups: int = 64,
) -> CurveFit:
    """Fit a loss-curve law to one run's curve or jointly to several (module docstring).

    Args:
        curves: ``Curve`` objects (``make_curve``, ``analysis.curve_data``).
        law: ``"multi_power"`` (Luo et al. 2025) or ``"tissue"`` (Tissue et al. 2024).
        joint: coefficients as power laws in N; default True when the curves have >= 2
            distinct finite N.
        n_bootstrap: bootstrap refits (0: none; CIs and ``ci`` of predictions are NaN).
        huber_delta: Huber delta on log residuals (1e-3 as Luo et al.).
        lam: Tissue et al.'s momentum factor.
        level: CI level in (0, 1).
        seed: bootstrap seed.
        max_groups: decay-sum groups per curve (module docstring).

    Raises:
        ValueError: an unknown law, no curves, a joint fit without N on every curve or with
            one size, or a bad level.
    """
    _check_law(law)
    check_level(level)
    if not curves:
        raise ValueError("fit_curves needs at least one curve")
    ns = np.array([c.n_params for c in curves], dtype=float)
    distinct = np.unique(ns[np.isfinite(ns)])
    if joint is None:
        joint = bool(distinct.size >= 2 and np.isfinite(ns).all())
    if joint:
        if not np.isfinite(ns).all():
            missing = [c.run for c in curves if not math.isfinite(c.n_params)][:3]
            raise ValueError(f"a joint fit needs N for every curve; missing for {missing}")
        if distinct.size < 2:
            raise ValueError("a joint fit over N needs curves of at least 2 sizes")
    n_ref = float(np.exp(np.mean(np.log(ns)))) if joint else math.nan
    names = _layout(law, joint)
    d = _design(curves, n_ref if joint else 0.0, max_groups, lam)
    w = np.ones(d.loss.size)
    z, obj = _fit_design(law, names, d, huber_delta, w)
    obj *= huber_delta**2  # back to the summed Huber loss
    params = _unpack(law, names, z)
    bounds = _bounds(names)
    at_bound = tuple(
        n
        for n, x, (lo, hi) in zip(names, z, bounds, strict=True)
        if min(x - lo, hi - x) <= 1e-6 * max(1.0, abs(x))
    )
    pred, _ = _evaluate(law, names, z, d, grad=False)
    r = np.log(pred) - np.log(d.loss)
    last = np.array([np.nonzero(d.curve_of_point == i)[0][-1] for i in range(len(curves))])
    if len(curves) > len(names):
        resid, kind = r[last], "last point per run"
    else:
        resid, kind = r, "every point"
    boots, unit = _bootstrap(law, names, curves, d, z, huber_delta, n_bootstrap, seed)
    ci = {}
    if boots:
        for k in params:
            ci[k] = percentile_ci([b[k] for b in boots], level)
    finite_n = ns[np.isfinite(ns)]
    return CurveFit(
        law=law,
        params=params,
        n_ref=n_ref,
        joint=joint,
        objective=obj,
        huber_delta=huber_delta,
        lam=lam,
        n_points=int(d.loss.size),
        n_runs=len(curves),
        runs=tuple(
            {
                "run": c.run,
                "n_params": c.n_params,
                "cluster": c.cluster,
                "last_step": int(c.steps[-1]),
                "planned_steps": c.planned_steps,
            }
            for c in curves
        ),
        residuals=tuple(map(float, resid)),
        residual_kind=kind,
        boot_params=tuple(boots),
        ci=ci,
        level=level,
        seed=seed,
        bootstrap_unit=unit,
        n_range=(float(finite_n.min()), float(finite_n.max()))
        if finite_n.size
        else (math.nan, math.nan),
        max_fitted_step=int(max(c.steps[-1] for c in curves)),
        at_bound=at_bound,
    )


def _bootstrap(law, names, curves, d, z, delta, n_boot, seed):
    if n_boot <= 0:
        return [], ""
    rng = np.random.default_rng(seed)
    clusters = sorted({c.cluster for c in curves})
    out = []
    if len(clusters) >= 3:
        unit = "run cluster"
        cl_of_curve = np.array([clusters.index(c.cluster) for c in curves])
        cl_of_point = cl_of_curve[d.curve_of_point]
        for _ in range(n_boot):
            counts = np.bincount(
                rng.integers(0, len(clusters), len(clusters)), minlength=len(clusters)
            )
            w = counts[cl_of_point].astype(float)
            sizes = {curves[i].n_params for i in range(len(curves)) if counts[cl_of_curve[i]]}
            if "k_L0" in names and len(sizes) < 2:
                continue  # a resample with one size cannot fit the power laws in N
            zb, _ = _fit_design(law, names, d, delta, w, z0=z)
            out.append(_unpack(law, names, zb))
    else:
        unit = "block of 5 points"
        n = d.loss.size
        blocks = max(1, n // 5)
        for _ in range(n_boot):
            starts = rng.integers(0, max(1, n - 4), blocks)
            idx = np.concatenate([np.arange(s, min(s + 5, n)) for s in starts])
            w = np.bincount(idx, minlength=n).astype(float)
            zb, _ = _fit_design(law, names, d, delta, w, z0=z)
            out.append(_unpack(law, names, zb))
    return out, unit
