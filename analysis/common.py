"""Shared helpers for the analysis room: input validation, percentile CIs, typed estimates.

Torch-free and scipy-free (numpy only) so that every analysis module can import it cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

NConvention = Literal["non_embedding", "total"]
FlopFormula = Literal["counted", "6nd"]
N_CONVENTIONS: tuple[str, ...] = ("non_embedding", "total")
FLOP_FORMULAS: tuple[str, ...] = ("counted", "6nd")


def check_convention(n_convention: str, flop_formula: str) -> None:
    """Validate the N convention and the C formula every fit must state explicitly.

    Raises:
        ValueError: naming the argument and its legal values.
    """
    if n_convention not in N_CONVENTIONS:
        raise ValueError(
            f"n_convention must be one of {N_CONVENTIONS} (Kaplan uses 'non_embedding', "
            f"Chinchilla 'total'), got {n_convention!r}"
        )
    if flop_formula not in FLOP_FORMULAS:
        raise ValueError(
            f"flop_formula must be one of {FLOP_FORMULAS} ('counted' = App. F count, "
            f"'6nd' = 6*N*D), got {flop_formula!r}"
        )


def positive_array(
    name: str, values: Any, min_points: int | None = None, fit: str = ""
) -> np.ndarray:
    """Return ``values`` as a 1-D float array after checking it is finite and positive.

    Args:
        name: the quantity's name, used in the error message (e.g. ``"N"``).
        values: anything ``np.asarray`` accepts.
        min_points: minimum number of entries the fit needs, or ``None``.
        fit: the fit's name, for the message.

    Raises:
        ValueError: on NaN/inf (naming how many and the first index), non-positive values, a
            non-1-D input, or fewer than ``min_points`` entries.
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN/inf value(s) (first at index {int(np.argmax(bad))}); "
            "drop or fix those rows before fitting"
        )
    nonpos = arr <= 0
    if nonpos.any():
        i = int(np.argmax(nonpos))
        raise ValueError(
            f"{name} has {int(nonpos.sum())} non-positive value(s) (first at index {i}: {arr[i]}); "
            "power laws need strictly positive values"
        )
    if min_points is not None and arr.size < min_points:
        what = f"the {fit} fit" if fit else "this fit"
        raise ValueError(f"{what} needs at least {min_points} points, got {arr.size} for {name}")
    return arr


def same_length(**arrays: np.ndarray) -> None:
    """Raise ``ValueError`` naming the arrays if their lengths differ."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs must have equal lengths, got {lengths}")


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


def check_level(level: float) -> None:
    """Raise ``ValueError`` unless ``0 < level < 1``."""
    if not 0 < level < 1:
        raise ValueError(f"ci_level must be in (0, 1), e.g. 0.95, got {level}")


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
