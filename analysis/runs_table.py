"""Read a CSV or JSONL table of runs (published data, a wandb export) into the fit columns.

Every problem with the file ends in one ``TableError`` (a ``ValueError``) that names the file,
the line and the column and says how to fix it, before anything is fitted: a file that is empty,
not valid CSV/JSON, a header naming a column twice, a cell that is not a number, a missing,
infinite, zero or negative N, D, C or loss. Nothing here lets a traceback from deep inside
pandas or numpy reach the user.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.inputs import check_convention


class TableError(ValueError):
    """A table of runs cannot be read; the message names the file, line and column."""


# ---------------------------------------------------------------------------------------------
# Raw reading: a DataFrame of strings/numbers plus the file line of every row
# ---------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: drop the BOM Excel writes
    except UnicodeDecodeError as e:
        raise TableError(
            f"{path} is not UTF-8 text (byte {e.start}); export the table as UTF-8 CSV or JSONL"
        ) from None
    except IsADirectoryError:
        raise TableError(f"{path} is a folder, not a CSV/JSONL file") from None


def _read_csv(path: Path, text: str) -> tuple[pd.DataFrame, list[int]]:
    lines = text.splitlines()
    header_at = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if header_at is None:
        raise TableError(f"{path} is empty; it needs a header line and one row per run")
    try:
        header = next(csv.reader([lines[header_at]]))
    except csv.Error as e:
        raise TableError(f"{path}, line {header_at + 1} (header): {e}") from None
    seen: dict[str, int] = {}
    for name in header:
        seen[name] = seen.get(name, 0) + 1
    twice = [n for n, k in seen.items() if k > 1]
    if twice:
        raise TableError(
            f"{path}, line {header_at + 1} (header): column name(s) {twice} appear more than "
            "once; rename them so that each column has its own name"
        )
    rows: list[list[str]] = []
    line_of: list[int] = []
    try:
        reader = csv.reader(io.StringIO(text))
        for fields in reader:
            line = reader.line_num
            if line <= header_at + 1 or not any(f.strip() for f in fields):
                continue  # the header, or a blank line
            if len(fields) != len(header):
                raise TableError(
                    f"{path}, line {line}: {len(fields)} fields, but the header has "
                    f"{len(header)}; fix the row (a missing or extra comma?)"
                )
            rows.append(fields)
            line_of.append(line)
    except csv.Error as e:
        raise TableError(f"{path}, line {reader.line_num}: not valid CSV ({e})") from None
    return pd.DataFrame(rows, columns=header, dtype=object), line_of


def _read_jsonl(path: Path, text: str) -> tuple[pd.DataFrame, list[int]]:
    records: list[dict[str, Any]] = []
    line_of: list[int] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise TableError(
                f"{path}, line {i}, column {e.colno}: not valid JSON ({e.msg}); each line must "
                "be one JSON object"
            ) from None
        if not isinstance(obj, dict):
            raise TableError(
                f"{path}, line {i}: a JSON {type(obj).__name__}, not an object; each line must "
                'be one object such as {"params": 1e8, "tokens": 2e9, "loss": 3.1}'
            )
        records.append(obj)
        line_of.append(i)
    return pd.DataFrame.from_records(records) if records else pd.DataFrame(), line_of


def _read_json(path: Path, text: str) -> tuple[pd.DataFrame, list[int]]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        if "Extra data" in e.msg:  # several objects, one per line: it is JSONL
            return _read_jsonl(path, text)
        raise TableError(
            f"{path}, line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})"
        ) from None
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise TableError(
            f"{path} must hold a list of JSON objects (one per run) or one object per line"
        )
    # a JSON array carries no per-row line numbers: report the record's 1-based position
    return pd.DataFrame.from_records(obj) if obj else pd.DataFrame(), list(range(1, len(obj) + 1))


def read_raw_table(path: str | Path) -> tuple[pd.DataFrame, list[int], str]:
    """The table's cells as read, the file line (or JSON record) of each row, and its unit.

    ``.jsonl`` is one JSON object per line; ``.json`` a list of objects (or JSONL); anything
    else is CSV with a header line. Blank lines are skipped.

    Returns:
        (DataFrame of the raw cells, ``line_of[i]`` for row ``i``, ``"line"`` or ``"record"``).

    Raises:
        FileNotFoundError: the file is missing.
        TableError: unreadable, empty, malformed, or a header naming a column twice.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table {path} does not exist")
    text = _read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        raw, line_of = _read_jsonl(path, text)
    elif suffix == ".json":
        raw, line_of = _read_json(path, text)
    else:
        raw, line_of = _read_csv(path, text)
    unit = "record" if suffix == ".json" and text.lstrip().startswith("[") else "line"
    if raw.empty:
        raise TableError(f"{path} has no rows; it needs one row per run")
    return raw, line_of, unit


def _numbers(
    raw: pd.DataFrame, col: str, path: Path, line_of: list[int], unit: str, what: str
) -> np.ndarray:
    """Column ``col`` as floats; a cell that is not a number -> TableError naming line/column."""
    values = raw[col]
    out = np.empty(len(values))
    for i, v in enumerate(values):
        try:
            if isinstance(v, bool) or isinstance(v, (dict, list)):
                raise TypeError
            out[i] = math.nan if v is None or (isinstance(v, str) and not v.strip()) else float(v)
        except (TypeError, ValueError, OverflowError):
            raise TableError(
                f"{path}, {unit} {line_of[i]}, column {col!r} ({what}): {v!r} is not a number; "
                "fix the cell or delete the row"
            ) from None
    return out


def _check_positive(
    x: np.ndarray,
    raw: pd.DataFrame,
    col: str,
    path: Path,
    line_of: list[int],
    unit: str,
    what: str,
) -> None:
    bad = ~(np.isfinite(x) & (x > 0))
    if bad.any():
        i = int(np.argmax(bad))
        cell = raw[col].iloc[i]
        if cell is None or (isinstance(cell, float) and math.isnan(cell)):
            kind = "missing"  # JSON: no such key in this object, or null
        elif isinstance(cell, str) and not cell.strip():
            kind = "empty"
        else:
            kind = repr(float(x[i]))
        more = f" (and {int(bad.sum()) - 1} more row(s))" if bad.sum() > 1 else ""
        raise TableError(
            f"{path}, {unit} {line_of[i]}, column {col!r} ({what}): {kind}{more}; power laws "
            "need a finite positive value in every row: fix or delete those rows"
        )


# ---------------------------------------------------------------------------------------------
# load_table
# ---------------------------------------------------------------------------------------------


def load_table(
    path: str | Path,
    n_col: str,
    loss_col: str,
    d_col: str | None = None,
    c_col: str | None = None,
    budget_col: str | None = None,
    flop_formula: str = "6nd",
    n_convention: str = "total",
    drop_highest_losses: int = 0,
) -> pd.DataFrame:
    """Read a CSV or JSONL of runs into the columns the fits use.

    Output columns: ``n_params_<n_convention>``, ``n_tokens`` (D), ``flops`` and ``flops_6nd``
    (C), ``val/loss`` (the loss column), ``flops_budget`` (from ``budget_col`` or NaN),
    ``run_name`` (``row<i>``, i the 0-based data row), ``status`` ("complete"), ``point_key``.

    D and C: with ``d_col`` only, C = 6 N D; with ``c_col`` only, D = C / (6 N) (needs
    ``flop_formula="6nd"``: a table has no architectures to count FLOPs from); with both, both
    are taken as given.

    Args:
        path: ``.csv``, ``.jsonl`` (one object per line) or ``.json`` file.
        n_col: column holding N; column names in the file.
        loss_col: column holding the loss (nats/token).
        d_col: column holding D (tokens).
        c_col: column holding C (FLOPs).
        budget_col: column holding IsoFLOP budget labels (FLOPs, > 0, in every row).
        flop_formula: how the file's C relates to N and D; only ``"6nd"`` can derive D from C.
        n_convention: which N the file holds (names the output column).
        drop_highest_losses: drop this many highest-loss rows (Besiroglu et al. drop 5).

    Raises:
        FileNotFoundError: missing file.
        TableError (a ValueError): the file cannot be read (see ``read_raw_table``); a named
            column is missing (lists the columns); a cell of N, D, C or the loss is not a
            finite positive number (names file, line and column); neither D nor C given; D
            must be derived from C, or C from D, with ``flop_formula="counted"``;
            ``drop_highest_losses`` negative or dropping every row.
    """
    check_convention(n_convention, flop_formula)
    path = Path(path)
    if d_col is None and c_col is None:
        raise TableError("give d_col (tokens D) or c_col (FLOPs C); with only C, D = C/(6N)")
    if d_col is None and flop_formula != "6nd":
        raise TableError(
            f"flop_formula={flop_formula!r} cannot derive D from C for a table (no architecture "
            "to count FLOPs from); give d_col, or use flop_formula='6nd' (D = C/(6N))"
        )
    if c_col is None and flop_formula == "counted":
        raise TableError(
            "flop_formula='counted' needs c_col, the table's counted FLOPs; with only D, C is "
            "6ND: use flop_formula='6nd'"
        )
    if not (isinstance(drop_highest_losses, int) and drop_highest_losses >= 0):
        raise TableError(f"drop_highest_losses must be an integer >= 0, got {drop_highest_losses}")
    raw, line_of, unit = read_raw_table(path)
    for name, col in (
        ("n_col", n_col),
        ("loss_col", loss_col),
        ("d_col", d_col),
        ("c_col", c_col),
        ("budget_col", budget_col),
    ):
        if col is not None and col not in raw:
            near = [c for c in raw.columns if str(c).strip().lower() == str(col).strip().lower()]
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise TableError(
                f"{name}={col!r} is not a column of {path}{hint}; columns: "
                f"{[str(c) for c in raw.columns]}"
            )
    cols = {"N": n_col, "loss": loss_col, "D": d_col, "C": c_col}
    vals = {k: _numbers(raw, c, path, line_of, unit, k) for k, c in cols.items() if c is not None}
    for k, x in vals.items():
        _check_positive(x, raw, cols[k], path, line_of, unit, k)
    budget = np.full(len(raw), math.nan)
    if budget_col:  # labels given: every row needs one (else the fit would silently bin by C)
        budget = _numbers(raw, budget_col, path, line_of, unit, "budget")
        _check_positive(budget, raw, budget_col, path, line_of, unit, "budget")
    order = np.arange(len(raw))
    if drop_highest_losses:
        if drop_highest_losses >= len(raw):
            raise TableError(
                f"drop_highest_losses={drop_highest_losses} would drop every one of the "
                f"{len(raw)} rows of {path}"
            )
        order = np.sort(np.argsort(vals["loss"], kind="stable")[: len(raw) - drop_highest_losses])
    N = vals["N"][order]
    if "D" in vals:
        D = vals["D"][order]
        C = vals["C"][order] if "C" in vals else 6.0 * N * D
    else:
        C = vals["C"][order]
        D = C / (6.0 * N)
    with np.errstate(over="ignore", under="ignore"):
        c6 = 6.0 * N * D
    for name, x in (("D = C/(6N)", D), ("C = 6ND", c6)):
        bad = ~(np.isfinite(x) & (x > 0))
        if bad.any():
            i = int(order[np.argmax(bad)])
            raise TableError(
                f"{path}, {unit} {line_of[i]}: {name} is {float(x[np.argmax(bad)])!r} (over- or "
                "underflows a float); check the units of N, D and C in that row"
            )
    out = pd.DataFrame(
        {
            f"n_params_{n_convention}": N,
            "n_tokens": D,
            "flops": C,
            "flops_6nd": c6,
            "val/loss": vals["loss"][order],
            "flops_budget": budget[order],
        }
    )
    out["run_name"] = [f"row{i}" for i in order]
    out["point_key"] = out["run_name"]
    out["status"] = "complete"
    return out
