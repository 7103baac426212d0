"""The run lock: one process trains a run directory at a time.

A non-blocking exclusive ``fcntl.flock`` on ``run_dir/.lock``. ``scaling train`` and every
sweep executor (``sweeps.execute.run_one``) take it before touching the run, so a second
trainer on the same directory refuses (``scaling train``) or reports the run as ``"running"``
(a sweep launch) instead of interleaving rows into ``metrics.jsonl``. The kernel releases the
lock when the holder dies, so a killed or preempted job never leaves a stale lock. (On cluster
file systems ``flock`` must work across nodes, e.g. Lustre mounted with ``-o flock``; NFSv4 and
GPFS support it.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

LOCK = ".lock"
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


class RunLockedError(OSError):
    """Another process holds the run's lock; the message names the run directory and the fix."""


@contextlib.contextmanager
def run_lock(run_dir: str | Path, retries: int = 3, wait_s: float = 0.05) -> Iterator[bool]:
    """Hold ``run_dir``'s exclusive lock for the block; yields False if another process holds it.

    Non-blocking; retries a few times (``retries`` x ``wait_s`` seconds) so a momentary holder
    (a status probe) is not mistaken for a running trainer. Creates ``run_dir``.

    Raises:
        OSError: ``run_dir`` cannot be created or the lock file cannot be opened.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        held = False
        for attempt in range(retries + 1):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except OSError as e:
                if e.errno not in _BUSY:
                    raise
                if attempt < retries:
                    time.sleep(wait_s)
        yield held
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def lock_held(run_dir: str | Path) -> bool:
    """Whether some process holds ``run_dir``'s lock right now (i.e. the run is training)."""
    path = Path(run_dir) / LOCK
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in _BUSY:
                return True
            raise
        return False
    finally:
        os.close(fd)


def locked_message(run_dir: str | Path, flag: str = "--run-dir") -> str:
    """The one-line refusal for a run whose lock another process holds."""
    path = Path(run_dir)
    return (
        f"run directory {path} is being trained by another process (it holds {path / LOCK}); "
        f"wait for it to finish (then this command resumes or reports it), or use another {flag}"
    )
