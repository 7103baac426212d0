"""Kaplan et al. 2020 power laws L(N), L(D), L(C) of final losses.

Legend (paper symbols, used only in fitting code):
    N      parameters; convention explicit (``"non_embedding"``: Kaplan; ``"total"``: Chinchilla)
    D      training tokens
    C      training FLOPs; formula explicit (``"counted"``: App. F count; ``"6nd"``: 6 N D)
    L      loss, nats/token (final validation loss)
    N_c, D_c, C_c, alpha_N, alpha_D, alpha_C
           Kaplan et al. 2020 (arXiv:2001.08361) Eqs. 1.1-1.3: L(X) = (X_c / X)^alpha_X; with an
           irreducible term E: L(X) = E + (X_c / X)^alpha_X (Henighan et al. 2020 form)

Uncertainty: nonparametric bootstrap over runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analysis.estimates import (
    add_cis,
    bootstrap_fields_from_json,
    cis_from_json,
    percentile_ci,
    samples_from_json,
    to_jsonable,
)
from analysis.fits.frontier import linear_fit
from analysis.inputs import (
    check_convention,
    check_distinct,
    check_level,
    positive_array,
    positive_ndcl,
    same_length,
)


@dataclass(frozen=True)
class PowerLawFit:
    """L(X) = E + (X_c / X)^alpha (Kaplan et al. 2020 Eqs. 1.1-1.3 with E = 0).

    Attributes:
        x_name: ``"N"``, ``"D"`` or ``"C"``.
        X_c, alpha, E: fitted constants (E = 0 without an irreducible term).
        irreducible: whether E was fitted.
        n_points: points fitted; points: the (X, L) pairs fitted.
        ci, samples: bootstrap over runs.
    """

    x_name: str
    X_c: float
    alpha: float
    E: float
    irreducible: bool
    n_points: int
    points: tuple[tuple[float, float], ...] = ()
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[str, tuple[float, ...]] = field(default_factory=dict, repr=False)

    def predict(self, X: Any) -> np.ndarray:
        """L at X (nats/token)."""
        return self.E + (self.X_c / np.asarray(X, dtype=float)) ** self.alpha

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary; ``from_dict`` inverts it."""
        d = {
            "x_name": self.x_name,
            "X_c": self.X_c,
            "alpha": self.alpha,
            "E": self.E,
            "irreducible": self.irreducible,
            "n_points": self.n_points,
            "points": self.points,
            "samples": {k: list(v) for k, v in self.samples.items()},
        }
        return to_jsonable(add_cis(d, self.ci))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PowerLawFit:
        """Rebuild from ``to_dict()`` output."""
        return cls(
            x_name=d["x_name"],
            X_c=float(d["X_c"]),
            alpha=float(d["alpha"]),
            E=float(d["E"]),
            irreducible=bool(d["irreducible"]),
            n_points=int(d["n_points"]),
            points=tuple(tuple(p) for p in d.get("points", [])),
            ci=cis_from_json(d),
            samples=samples_from_json(d),
        )


def _power_law_params(
    X: np.ndarray, L: np.ndarray, irreducible: bool
) -> tuple[float, float, float]:
    s, i = linear_fit(np.log(X), np.log(L))  # log L = alpha log X_c - alpha log X
    alpha = -s
    # alpha <= 0 (loss not falling with X) or an astronomically large X_c: no usable law
    X_c = math.exp(i / alpha) if alpha > 0 and abs(i / alpha) < 700 else math.nan
    if not irreducible:
        return X_c, alpha, 0.0
    from scipy.optimize import least_squares

    lx, ll = np.log(X), np.log(L)

    def resid(p):  # p = (log X_c, alpha, log E); residual in log L
        return np.logaddexp(p[2], p[1] * (p[0] - lx)) - ll

    best = None
    for frac in (0.3, 0.6, 0.9):
        p0 = np.array(
            [
                math.log(X_c) if np.isfinite(X_c) else lx.mean(),
                max(alpha, 0.05),
                math.log(frac * L.min()),
            ]
        )
        r = least_squares(resid, p0, method="lm")
        if best is None or r.cost < best.cost:
            best = r
    return float(math.exp(best.x[0])), float(best.x[1]), float(math.exp(best.x[2]))


def fit_power_law(X: Any, L: Any, x_name: str, irreducible: bool = False) -> PowerLawFit:
    """Fit L = E + (X_c/X)^alpha (least squares in log L; E = 0 unless ``irreducible``).

    Raises:
        ValueError: NaN/non-positive input, fewer than 3 points (4 with ``irreducible``).
    """
    need = 4 if irreducible else 3
    X = positive_array(x_name, X, need, f"L({x_name})")
    L = positive_array("L", L, need, f"L({x_name})")
    same_length(X=X, L=L)
    check_distinct(need, f"L({x_name})", **{x_name: X})
    X_c, alpha, E = _power_law_params(X, L, irreducible)
    return PowerLawFit(
        x_name, X_c, alpha, E, irreducible, len(X), tuple(zip(X.tolist(), L.tolist(), strict=True))
    )


def _frontier_min(X: np.ndarray, L: np.ndarray, dex: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Minimum L per distinct X (or per ``dex``-wide log10 bin).

    With ``dex`` (the compute frontier) only points that beat every smaller X are kept.
    """
    key = X if dex is None else np.round(np.log10(X) / dex)
    xs, ls = [], []
    for k in np.unique(key):
        idx = np.flatnonzero(key == k)
        i = idx[np.argmin(L[idx])]
        xs.append(X[i])
        ls.append(L[i])
    order = np.argsort(xs)
    xs, ls = np.asarray(xs)[order], np.asarray(ls)[order]
    if dex is not None:  # compute frontier: keep only points below every cheaper point
        keep = ls <= np.minimum.accumulate(ls)
        xs, ls = xs[keep], ls[keep]
    return xs, ls


@dataclass(frozen=True)
class KaplanFit:
    """Kaplan et al. 2020 power laws L(N), L(D), L(C) (each may be None with a reason).

    L(N): per distinct N, the lowest final loss (best-trained run) -- Eq. 1.1.
    L(D): per distinct D, the lowest final loss over N -- Eq. 1.2.
    L(C): the compute frontier: per 0.1-dex bin of C the lowest loss, keeping points that beat
    every cheaper one -- Eq. 1.3 (Kaplan fit L(C_min) on the frontier of training curves; here
    final losses of runs).
    """

    L_N: PowerLawFit | None
    L_D: PowerLawFit | None
    L_C: PowerLawFit | None
    n_points: int
    n_convention: str
    flop_formula: str
    irreducible: bool
    reasons: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    n_bootstrap: int = 0
    ci_level: float = 0.95
    selection: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    approach = "kaplan"

    def report(self) -> str:
        """Human-readable summary of the fit with CIs."""
        lines = [
            f"Kaplan et al. 2020 power laws; N = {self.n_convention} params, C = "
            f"{self.flop_formula}; {self.n_points} runs"
        ]
        for name, law in (("L(N)", self.L_N), ("L(D)", self.L_D), ("L(C)", self.L_C)):
            if law is None:
                lines.append(f"  {name}: not fitted ({self.reasons.get(name, '')})")
                continue
            ci = law.ci.get("alpha")
            ci_s = f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci and not math.isnan(ci[0]) else ""
            e_s = f"{law.E:.4g} + " if law.irreducible else ""
            lines.append(
                f"  {name} = {e_s}({law.X_c:.4g}/{law.x_name})^{law.alpha:.4f}{ci_s}  "
                f"({law.n_points} points)"
            )
        if self.selection:
            lines.append(f"  selection: {self.selection}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary; ``from_dict`` inverts it."""
        d = {
            "approach": "kaplan",
            "n_points": self.n_points,
            "n_convention": self.n_convention,
            "flop_formula": self.flop_formula,
            "irreducible": self.irreducible,
            "reasons": self.reasons,
            "seed": self.seed,
            "n_bootstrap": self.n_bootstrap,
            "ci_level": self.ci_level,
            "selection": self.selection,
            "meta": self.meta,
        }
        for key, law in (("L_N", self.L_N), ("L_D", self.L_D), ("L_C", self.L_C)):
            d[key] = None if law is None else law.to_dict()
            if law is not None:  # flat paper names for scripts
                sym = {"L_N": "N", "L_D": "D", "L_C": "C"}[key]
                d[f"alpha_{sym}"] = law.alpha
                d[f"{sym}_c"] = law.X_c
                if "alpha" in law.ci:
                    d[f"alpha_{sym}_ci"] = list(law.ci["alpha"])
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KaplanFit:
        """Rebuild from ``to_dict()`` output."""

        def law(x):
            return None if x is None else PowerLawFit.from_dict(x)

        return cls(
            L_N=law(d.get("L_N")),
            L_D=law(d.get("L_D")),
            L_C=law(d.get("L_C")),
            n_points=int(d["n_points"]),
            n_convention=d["n_convention"],
            flop_formula=d["flop_formula"],
            irreducible=bool(d["irreducible"]),
            reasons=d.get("reasons", {}),
            **bootstrap_fields_from_json(d),
        )


def _kaplan_laws(N, D, C, L, irreducible):
    out: dict[str, Any] = {}
    for name, X, dex in (("L(N)", N, None), ("L(D)", D, None), ("L(C)", C, 0.1)):
        xs, ls = _frontier_min(X, L, dex)
        try:
            out[name] = fit_power_law(xs, ls, name[2], irreducible)
        except ValueError as e:
            out[name] = str(e)
    return out


def fit_kaplan(
    N: Any,
    D: Any,
    C: Any,
    L: Any,
    *,
    n_convention: str,
    flop_formula: str,
    irreducible: bool = False,
    n_bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
    selection: str = "",
    meta: dict[str, Any] | None = None,
) -> KaplanFit:
    """Kaplan et al. 2020 L(N), L(D) and L(C) power laws from final losses of runs.

    Args:
        N: parameters N (n,), in the ``n_convention`` convention; per run (n,).
        D: training tokens D (n,).
        C: training FLOPs C (n,), following ``flop_formula``.
        L: loss (n,), nats/token.
        n_convention: ``"non_embedding"`` or ``"total"``; recorded in the result; conventions
            (Kaplan used non-embedding N).
        flop_formula: ``"counted"`` or ``"6nd"``; recorded in the result.
        selection: note on how rows were selected (recorded).
        meta: provenance stored with the result.
        irreducible: also fit an irreducible loss E in each law.
        n_bootstrap: bootstrap resamples over runs (0 = none); bootstrap over runs.
        seed: bootstrap seed.
        ci_level: CI coverage, e.g. 0.95.

    Raises:
        ValueError: NaN/non-positive inputs, fewer than 3 distinct (N, D) runs, or none of the
            three laws has enough distinct points (3, or 4 with ``irreducible``).
    """
    check_convention(n_convention, flop_formula)
    check_level(ci_level)
    N, D, C, L = positive_ndcl(N, D, C, L, 3, "kaplan")
    same_length(N=N, D=D, C=C, L=L)
    check_distinct(3, "kaplan", N=N, D=D)
    laws = _kaplan_laws(N, D, C, L, irreducible)
    if all(isinstance(v, str) for v in laws.values()):
        raise ValueError(f"no Kaplan law could be fitted: {laws}")
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws: dict[str, list[tuple[float, float, float]]] = {k: [] for k in laws}
        for _ in range(n_bootstrap):
            idx = rng.integers(0, len(N), len(N))
            for k in laws:
                xs, ls = _frontier_min(
                    (N, D, C)["NDC".index(k[2])][idx], L[idx], 0.1 if k == "L(C)" else None
                )
                try:
                    if len(xs) < (4 if irreducible else 3):
                        raise ValueError
                    draws[k].append(_power_law_params(xs, ls, irreducible))
                except (ValueError, RuntimeError, OverflowError, np.linalg.LinAlgError):
                    draws[k].append((math.nan, math.nan, math.nan))
        for k, law in laws.items():
            if isinstance(law, str):
                continue
            arr = np.asarray(draws[k])
            samples = {"X_c": tuple(arr[:, 0]), "alpha": tuple(arr[:, 1]), "E": tuple(arr[:, 2])}
            laws[k] = replace(
                law, samples=samples, ci={n: percentile_ci(v, ci_level) for n, v in samples.items()}
            )
    return KaplanFit(
        L_N=None if isinstance(laws["L(N)"], str) else laws["L(N)"],
        L_D=None if isinstance(laws["L(D)"], str) else laws["L(D)"],
        L_C=None if isinstance(laws["L(C)"], str) else laws["L(C)"],
        n_points=len(N),
        n_convention=n_convention,
        flop_formula=flop_formula,
        irreducible=irreducible,
        reasons={k: v for k, v in laws.items() if isinstance(v, str)},
        seed=seed,
        n_bootstrap=n_bootstrap,
        ci_level=ci_level,
        selection=selection,
        meta=dict(meta or {}),
    )
