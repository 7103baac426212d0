"""Metric loggers with one interface, so the training loop has no ``if wandb:`` branches.

``JsonlLogger`` writes ``metrics.jsonl`` (the source of truth: append-only, flushed after every
row). ``WandbLogger`` mirrors the same rows to Weights & Biases; ``NullLogger`` does nothing;
``MultiLogger`` fans out to several. ``make_logger(cfg, run_dir, run_name)`` builds the standard
pair (JSONL plus the wandb mirror, or a ``NullLogger`` mirror when ``wandb_mode="disabled"``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Protocol

from scaling.config import RunConfig


class Logger(Protocol):
    """What every logger provides."""

    def log(self, row: dict[str, Any]) -> None:
        """Record one row of metrics (must contain ``step``)."""

    def close(self, status: str) -> None:
        """Finish: ``status`` is ``"complete"``, ``"diverged"`` or ``"interrupted"``."""


def _json_value(v: Any) -> Any:
    # strict JSON has no NaN/inf: write non-finite floats as null
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class JsonlLogger:
    """Append rows to a JSON-lines file, flushing (and fsync-free) after every row.

    Args:
        path: the ``metrics.jsonl`` file; created if missing, appended to otherwise.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # unbuffered: each row reaches the file in log(), or log() raises and undoes it
        self._f = open(self.path, "ab", buffering=0)  # noqa: SIM115  closed in close()

    def log(self, row: dict[str, Any]) -> None:
        """Append one row as a JSON object on its own line.

        Raises:
            RunDirWriteError: the row could not be written (e.g. the disk is full); the file is
                cut back to the rows before it, so no torn row is left behind.
        """
        from scaling.rundir import RunDirWriteError

        line = (json.dumps({k: _json_value(v) for k, v in row.items()}) + "\n").encode()
        start = os.fstat(self._f.fileno()).st_size
        try:
            view = memoryview(line)
            while view:  # a raw write may be short
                view = view[self._f.write(view) or 0 :]
        except OSError as e:
            self._f.truncate(start)
            raise RunDirWriteError(
                e.errno,
                f"could not append a row to {self.path} ({e.strerror or e}); the rows before it "
                "are intact: free space and run the same command again to resume from the last "
                "checkpoint",
            ) from None

    def close(self, status: str) -> None:
        """Close the file (``status`` is not recorded here; ``summary.json`` holds it)."""
        if not self._f.closed:
            self._f.close()


class NullLogger:
    """Discards everything."""

    def log(self, row: dict[str, Any]) -> None:
        """Do nothing."""

    def close(self, status: str) -> None:
        """Do nothing."""


def wandb_run_id(run_name: str, sweep_name: str | None = None) -> str:
    """Deterministic wandb run id (16 hex chars of SHA-256 of ``"<sweep>/<run_name>"``).

    The same run resumed (or relaunched) maps to the same wandb run.
    """
    return hashlib.sha256(f"{sweep_name or ''}/{run_name}".encode()).hexdigest()[:16]


class WandbLogger:
    """Mirror rows to wandb (never the source of truth).

    Args:
        cfg: run configuration: ``wandb_mode`` (``"offline"``/``"online"``), ``wandb_project``,
            ``sweep_name`` (the wandb group).
        run_dir: the run directory; wandb writes under ``run_dir/wandb``.
        run_name: the wandb run name; the id is ``wandb_run_id(run_name, sweep_name)``.
    """

    def __init__(self, cfg: RunConfig, run_dir: str | Path, run_name: str) -> None:
        import wandb

        self._run = wandb.init(
            mode=cfg.wandb_mode,
            project=cfg.wandb_project,
            group=cfg.sweep_name,
            name=run_name,
            dir=str(run_dir),
            config=cfg.to_dict(),
            resume="allow",
            id=wandb_run_id(run_name, cfg.sweep_name),
            reinit="create_new",
        )

    def log(self, row: dict[str, Any]) -> None:
        """Log the row at ``row["step"]`` (non-finite values dropped)."""
        values = {k: v for k, v in row.items() if k != "step" and _json_value(v) is not None}
        self._run.log(values, step=int(row["step"]))

    def close(self, status: str) -> None:
        """Finish the wandb run; a diverged or interrupted run is marked failed (exit code 1)."""
        self._run.summary["status"] = status
        self._run.finish(exit_code=0 if status == "complete" else 1)


class MultiLogger:
    """Fan out every call to several loggers, in order."""

    def __init__(self, *loggers: Logger) -> None:
        self.loggers = loggers

    def log(self, row: dict[str, Any]) -> None:
        """Log the row to every logger."""
        for logger in self.loggers:
            logger.log(row)

    def close(self, status: str) -> None:
        """Close every logger."""
        for logger in self.loggers:
            logger.close(status)


def make_logger(cfg: RunConfig, run_dir: str | Path, run_name: str, metrics_path: Path) -> Logger:
    """The standard logger of a run: ``metrics.jsonl`` plus a wandb mirror.

    Args:
        cfg: run configuration (``wandb_mode="disabled"`` makes the mirror a ``NullLogger``).
        run_dir: the run directory.
        run_name: name shown in wandb.
        metrics_path: the ``metrics.jsonl`` path.
    """
    mirror: Logger = (
        NullLogger() if cfg.wandb_mode == "disabled" else WandbLogger(cfg, run_dir, run_name)
    )
    return MultiLogger(JsonlLogger(metrics_path), mirror)
