"""Estimates with intervals, and the JSON round trip of every fit's numbers.

``Estimate`` (a value, its bootstrap CI and, for losses, a prediction interval),
``percentile_ci``, and the helpers every fit class uses to write and read its ``to_dict()``:
NaN <-> ``None``, ``<name>_ci`` entries and the bootstrap record. Numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def percentile_ci(samples: Any, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``samples`` at ``level`` (NaNs ignored).

    Returns ``(nan, nan)`` when there are no finite samples.
    """
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.percentile(s, [50 * (1 - level), 50 * (1 + level)])
    return (float(lo), float(hi))


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap percentile interval.

    Attributes:
        value: the full-data estimate.
        ci: ``(lo, hi)`` percentile interval, or ``(nan, nan)`` without bootstrap.
        level: the interval's coverage, e.g. 0.95.
        pi: ``(lo, hi)`` prediction interval of a new observation (losses only; see
            ``analysis.forecast``), or None where the quantity has none.
    """

    value: float
    ci: tuple[float, float]
    level: float = 0.95
    pi: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"value", "ci": [lo, hi], "level"}`` (plus ``"pi"`` when set); NaN -> ``None``."""
        d = {"value": _num(self.value), "ci": [_num(c) for c in self.ci], "level": self.level}
        if self.pi is not None:
            d["pi"] = [_num(c) for c in self.pi]
        return d

    def __str__(self) -> str:
        s = f"{self.value:.4g}"
        if not math.isnan(self.ci[0]):
            s += f" [{self.ci[0]:.4g}, {self.ci[1]:.4g}]"
        if self.pi is not None and not math.isnan(self.pi[0]):
            s += f" (PI {self.pi[0]:.4g}-{self.pi[1]:.4g})"
        return s


def _num(x: Any) -> Any:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def to_jsonable(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays, tuples and NaN (-> None) to plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    return obj


def from_json_float(x: Any) -> float:
    """Inverse of ``to_jsonable`` for one float: ``None`` -> NaN."""
    return math.nan if x is None else float(x)


def tuple_ci(x: Sequence[Any] | None) -> tuple[float, float]:
    """Read a ``[lo, hi]`` JSON list (``None`` entries -> NaN) as a tuple."""
    if x is None:
        return (math.nan, math.nan)
    return (from_json_float(x[0]), from_json_float(x[1]))


# ---- JSON round trip of a fit's bootstrap record (shared by every fit class) ------------------


def estimate_of(fit: Any, name: str) -> Estimate:
    """Point estimate ``fit.<name>`` with its interval ``fit.ci[name]`` (NaNs when absent)."""
    return Estimate(float(getattr(fit, name)), fit.ci.get(name, (math.nan, math.nan)), fit.ci_level)


def sample_dicts(
    samples: Mapping[str, Sequence[float]], keys: Sequence[str]
) -> list[dict[str, float]]:
    """Bootstrap parameter sets, one ``{key: value}`` dict per resample ([] without samples)."""
    if not samples:
        return []
    return [
        dict(zip(keys, vals, strict=True)) for vals in zip(*(samples[k] for k in keys), strict=True)
    ]


def bootstrap_record(fit: Any) -> dict[str, Any]:
    """``seed``, ``n_bootstrap``, ``ci_level``, ``selection``, ``meta`` and ``samples`` of a fit.

    The tail of a fit's ``to_dict()``, in that order (``samples`` as lists).
    """
    return {
        "seed": fit.seed,
        "n_bootstrap": fit.n_bootstrap,
        "ci_level": fit.ci_level,
        "selection": fit.selection,
        "meta": fit.meta,
        "samples": {k: list(v) for k, v in fit.samples.items()},
    }


def bootstrap_fields_from_json(d: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of ``bootstrap_record`` without ``samples``: the fields as constructor arguments.

    ``seed``, ``n_bootstrap``, ``ci_level``, ``selection`` and ``meta``, each with its default
    (0, 0, 0.95, "", {}) when absent.
    """
    return {
        "seed": int(d.get("seed", 0)),
        "n_bootstrap": int(d.get("n_bootstrap", 0)),
        "ci_level": float(d.get("ci_level", 0.95)),
        "selection": d.get("selection", ""),
        "meta": d.get("meta", {}),
    }


def add_cis(d: dict[str, Any], ci: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Write each interval of ``ci`` into ``d`` as ``<name>_ci: [lo, hi]``; returns ``d``."""
    for name, interval in ci.items():
        d[f"{name}_ci"] = list(interval)
    return d


def cis_from_json(d: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Inverse of ``add_cis``: every ``<name>_ci`` entry of ``d`` as ``{name: (lo, hi)}``."""
    return {k[:-3]: tuple_ci(v) for k, v in d.items() if k.endswith("_ci")}


def samples_from_json(d: Mapping[str, Any]) -> dict[str, tuple[float, ...]]:
    """``d["samples"]`` (empty when absent) as tuples of floats, ``None`` read as NaN."""
    return {k: tuple(from_json_float(x) for x in v) for k, v in d.get("samples", {}).items()}
