"""Write a report into a folder that may hold an older report, without mixing the two.

``scaling report --out DIR`` run twice must not leave the first report's files beside the
second's (a figure or fit the new report no longer writes would look current), and must never
delete a file it did not write. A report folder therefore carries ``report-files.json``, the
list of entries the report wrote. Before a new report is built, exactly those entries are moved
aside; on success they are deleted, on failure (or Ctrl-C) whatever the new build wrote is
removed and the old report is put back. A non-empty folder without that list is refused: its
files cannot be told apart from the user's (except a folder holding nothing but what a report of
the first release wrote: ``index.html``, ``summary.md``, ``fit_*.json`` and figures).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from scaling.rundir import atomic_write_text

MANIFEST = "report-files.json"

T = TypeVar("T")


class ReportDirError(ValueError):
    """The output folder cannot take a report; the message names it and the fix."""


def owned_entries(out: Path) -> list[str]:
    """Names of the entries of ``out`` that the previous report wrote (from ``MANIFEST``).

    Raises:
        ReportDirError: ``out`` is a file, or a non-empty folder without a readable manifest.
    """
    if out.exists() and not out.is_dir():
        raise ReportDirError(f"--out {out} is a file; give a folder for the report")
    above = next((p for p in out.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise ReportDirError(f"--out {out}: {above} is a file, not a folder")
    if not out.exists():
        return []
    entries = set(os.listdir(out))
    if not entries:
        return []
    if MANIFEST not in entries and _is_legacy_report(entries):
        return sorted(entries)
    try:
        listed = json.loads((out / MANIFEST).read_text())["files"]
        if not (isinstance(listed, list) and all(isinstance(x, str) for x in listed)):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise ReportDirError(
            f"--out {out} is not empty and holds no readable {MANIFEST} (the list of files a "
            "report wrote), so its files cannot be told apart from yours; give a new or empty "
            "folder, or delete the old report folder first"
        ) from None
    # only plain names inside `out` (a hand-edited manifest must not reach outside it)
    owned = [n for n in listed if n in entries and "/" not in n and n not in (".", "..")]
    return owned + [MANIFEST]


# what a report written before the manifest existed holds (analysis.report, first release)
_LEGACY_NAMES = re.compile(r"(fit_[a-z]+\.json|[a-z_]+\.(png|svg)|summary\.md|index\.html)")


def _is_legacy_report(entries: set[str]) -> bool:
    """A folder written by a report from before ``MANIFEST``: its index and nothing else."""
    return {"index.html", "summary.md"} <= entries and all(
        _LEGACY_NAMES.fullmatch(n) for n in entries
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def write_report_dir(out: str | Path, build: Callable[[Path], T]) -> T:
    """Run ``build(out)`` so that ``out`` ends up holding the new report and no old one.

    Args:
        out: the report folder (created if missing).
        build: writes the report into the folder it is given and returns a result.

    Returns:
        What ``build`` returned; ``out/report-files.json`` lists the entries it wrote.

    Raises:
        ReportDirError: see ``owned_entries`` (raised before anything is moved or written).
        Whatever ``build`` raises, after the previous report has been restored.
    """
    out = Path(out)
    owned = owned_entries(out)
    out.mkdir(parents=True, exist_ok=True)
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.previous-report-", dir=out.parent))
    moved: list[str] = []
    before: set[str] | None = None
    try:
        for name in owned:
            os.replace(out / name, aside / name)
            moved.append(name)
        before = set(os.listdir(out))  # the user's own files, kept as they are
        result = build(out)
        written = sorted(set(os.listdir(out)) - before)
        atomic_write_text(out / MANIFEST, json.dumps({"files": written}, indent=1) + "\n")
    except BaseException:
        if before is not None:  # remove what the failed build wrote, then restore the old report
            for name in set(os.listdir(out)) - before:
                _remove(out / name)
        for name in moved:
            os.replace(aside / name, out / name)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return result
