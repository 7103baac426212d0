"""What every fit accepts: the N convention, the C formula, and the checks of its inputs.

Torch-free and scipy-free (numpy only) so that every analysis module can import it cheaply. Each
check raises a one-line ``ValueError`` naming the argument and the fix, before any compute.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from scaling.counting import N_CONVENTIONS, NConvention

__all__ = [  # NConvention and N_CONVENTIONS live in scaling.counting (sweeps use them too)
    "FLOP_FORMULAS",
    "N_CONVENTIONS",
    "FlopFormula",
    "NConvention",
    "check_convention",
    "check_distinct",
    "check_level",
    "positive_array",
    "positive_ndcl",
    "same_length",
]

FlopFormula = Literal["counted", "6nd"]
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


def positive_ndcl(
    N: Any, D: Any, C: Any, L: Any, min_points: int, fit: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """N, D, C, L (each (n,)) checked by ``positive_array``, in that order, with one minimum."""
    return (
        positive_array("N", N, min_points, fit),
        positive_array("D", D, min_points, fit),
        positive_array("C", C, min_points, fit),
        positive_array("L", L, min_points, fit),
    )


def check_distinct(min_points: int, fit: str, **columns: np.ndarray) -> None:
    """Require at least ``min_points`` distinct rows of ``columns`` (e.g. distinct (N, D) points).

    Repeated rows (seeds of one point, a duplicated line) are real data but add no new point: a
    fit on many copies of one point would otherwise "succeed" with objective 0 and an absurd law.

    Raises:
        ValueError: naming the fit, the distinct count and the row count.
    """
    stacked = np.column_stack([np.asarray(v, dtype=float) for v in columns.values()])
    n_distinct = len(np.unique(stacked, axis=0)) if stacked.size else 0
    if n_distinct < min_points:
        what = ", ".join(columns)
        what = f"({what})" if len(columns) > 1 else what
        raise ValueError(
            f"the {fit} fit needs at least {min_points} distinct {what} points, got "
            f"{n_distinct} distinct among {len(stacked)} rows; repeated rows add no new point: "
            "add runs at other sizes or token counts"
        )


def same_length(**arrays: np.ndarray) -> None:
    """Raise ``ValueError`` naming the arrays if their lengths differ."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs must have equal lengths, got {lengths}")


def check_level(level: float) -> None:
    """Raise ``ValueError`` unless ``0 < level < 1``."""
    if not 0 < level < 1:
        raise ValueError(f"ci_level must be in (0, 1), e.g. 0.95, got {level}")
