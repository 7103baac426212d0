"""How the local executor starts the process that trains one run.

A run's process must import torch, wandb and ``scaling.train`` before it trains: 1.5-6.5 s of a
fresh interpreter's time on a 2-core CPU, paid again by every run (most of a sweep of many small
runs). Two starters with one interface, ``start(cfg_dict, run_dir, log_path, env) ->
RunProcess``:

- ``"forkserver"`` (the default): one server process per launch imports those modules once
  (``multiprocessing`` forkserver with preloaded modules, started with the single-thread
  environment) and forks one fresh child per run. Forking a warm server costs milliseconds; the
  child is a copy of a process that has imported but never trained, so no state passes from one
  run to the next.
- ``"fresh"`` (the first release's path): a new interpreter per run, ``python -m
  sweeps.execute RUN_DIR`` with the config JSON on stdin. Kept for comparison
  (``benchmarks/launcher_overhead.py``) and as a fallback.

Both run ``sweeps.execute.run_one`` in a process of their own, so the guarantees do not change:

- isolation: one process per run; a run that raises, segfaults or is killed takes down only its
  own process (the server never trains); its output goes to its own log file; its environment is
  the launcher's plus the single-thread variables, set in the child before training.
- lock: the child takes the run's ``flock`` (``run_one``), released by the kernel when it dies.
- kill: the child is a separate process with its own pid: ``kill -9`` ends the run at once
  (``checkpoint.pt`` stays; the next launch resumes it); ``terminate()`` sends SIGTERM as
  ``subprocess.Popen.terminate`` does. The server exits when the launcher exits.
- exit status: the child's exit code is ``sweeps.execute.main``'s (0 complete, 1 failed, 75 lock
  held); a negative code is the signal that killed it.

As in any program that starts processes with ``multiprocessing``, each child re-imports the
launcher's main module (as ``__mp_main__``): a script that calls ``launch(...,
executor="local")`` must guard its entry point with ``if __name__ == "__main__":`` (the
``scaling`` command and ``python -m`` modules are fine); ``local_start="fresh"`` has no such
requirement.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

STARTERS = ("forkserver", "fresh")

# imported once by the fork server: what a run imports before its first step. Two lazy imports
# cost more than torch itself and are listed explicitly: torch._dynamo (imported by the first
# optimizer built, ~1-2.5 s with sympy) and wandb's public API and launch modules (imported by
# wandb.init, ~1-2.7 s, with requests, yaml and opentelemetry); found by diffing sys.modules
# around a first run.
PRELOAD = (
    "sweeps.workers",
    "sweeps.execute",
    "numpy",
    "torch",
    "torch._dynamo",
    "torch.distributed",
    "torch.optim",
    "wandb",
    "wandb.sdk.launch",
    "wandb.apis.public",
    "requests",
    "yaml",
    "opentelemetry.sdk.trace",
    "tqdm.auto",
    "scaling.train",
    "scaling.models.gpt2",
    "scaling.data",
    "scaling.optim",
    "scaling.loggers",
    "scaling.distributed",
)


class RunProcess(Protocol):
    """A started run's process (``subprocess.Popen`` has this interface)."""

    pid: int | None

    def poll(self) -> int | None:
        """Exit code when finished (negative: killed by that signal), else None."""

    def terminate(self) -> None:
        """Send SIGTERM."""

    def wait(self) -> int:
        """Block until it exits; return the exit code."""


def start_fresh(cfg_dict: dict[str, Any], run_dir: Path, log_path: Path, env: dict) -> Any:
    """Start ``python -m sweeps.execute RUN_DIR`` (config JSON on stdin), output to ``log_path``."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweeps.execute", str(run_dir)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(cfg_dict).encode())
    proc.stdin.close()
    return proc


class ForkedRun:
    """A run forked from the warm server; ``RunProcess`` interface over ``multiprocessing``."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int | None = process.pid

    def poll(self) -> int | None:
        """Exit code when finished (negative: killed by that signal), else None."""
        return self._process.exitcode

    def terminate(self) -> None:
        """Send SIGTERM to the run's process."""
        self._process.terminate()

    def wait(self) -> int:
        """Block until the run's process exits; return its exit code."""
        self._process.join()
        return int(self._process.exitcode)


def _forked_main(cfg_dict: dict[str, Any], run_dir: str, log_path: str, env: dict) -> None:
    # runs in the forked child: own log, the launcher's environment, then the same code as
    # `python -m sweeps.execute`
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    # tqdm's default lock is a multiprocessing RLock: a named semaphore registered with the
    # launcher's resource tracker, which a child stopped by Ctrl-C never unregisters (the
    # tracker then warns of a leaked semaphore on the launcher's stderr). A run writes only its
    # own log, so a thread lock is all its bars need.
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    from sweeps.execute import exit_code, run_one

    try:
        code = exit_code(run_one(cfg_dict, run_dir))
    finally:
        # a fresh interpreter runs its exit handlers (wandb's service teardown among them);
        # multiprocessing children end with os._exit, which skips them
        atexit._run_exitfuncs()
    sys.exit(code)


def _ensure_server(env: dict[str, str]) -> Any:
    """The forkserver context, its server started (once per launcher process) under ``env``.

    The server inherits the environment it is started with (read by OpenMP/MKL/OpenBLAS when
    numpy and torch are imported), so the single-thread variables are set in ``os.environ`` just
    for the start. A fork needs a single-threaded server (the child gets only the forking
    thread; a lock another thread held would stay locked in the child): the preloaded modules
    start no Python threads, and OpenBLAS, which starts one per extra core when numpy is
    imported without these variables, stops its pool around a fork (its own atfork handler).
    """
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    changed = {k: os.environ.get(k) for k in env if os.environ.get(k) != env[k]}
    os.environ.update({k: env[k] for k in changed})
    try:
        forkserver.ensure_running()
    finally:
        for k, v in changed.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return ctx


def start_forked(cfg_dict: dict[str, Any], run_dir: Path, log_path: Path, env: dict) -> ForkedRun:
    """Fork a child of the warm server that runs ``run_one(cfg_dict, run_dir)``.

    The child's stdout and stderr go to ``log_path`` (appended); its environment is ``env``;
    its working directory is the launcher's (multiprocessing sets it).
    """
    ctx = _ensure_server(env)
    process = ctx.Process(
        target=_forked_main,
        args=(cfg_dict, str(run_dir), str(log_path), dict(env)),
        name=f"run {Path(run_dir).name}",
    )
    process.start()
    return ForkedRun(process)


def starter(name: str) -> Any:
    """The start function for ``name`` (one of ``STARTERS``).

    Raises:
        ValueError: unknown name.
    """
    if name == "forkserver":
        return start_forked
    if name == "fresh":
        return start_fresh
    raise ValueError(f"local start must be one of {STARTERS}, got {name!r}")
