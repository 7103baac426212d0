"""Local executor's warm fork server (``sweeps.workers``): kill -9, isolation, resume, Ctrl-C."""

import dataclasses
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from test_sweeps_launch import curve, long_spec

from scaling import rundir
from sweeps.execute import lock_held
from sweeps.launch import LaunchError, launch
from sweeps.plan import plan


def wait_for_mid_run(run_dir, proc_alive, timeout=120):
    """Wait until the run wrote a checkpoint and logged past it (so a kill loses some steps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc_alive():
        rows = rundir.read_metrics(run_dir)
        if (run_dir / rundir.CHECKPOINT).exists() and rows and rows[-1]["step"] % 20 != 0:
            return
        time.sleep(0.02)
    pytest.fail("the run finished (or never started) before it could be interrupted")


def test_kill9_of_a_forked_run_spares_the_others_and_the_run_resumes(tmp_path, tiny_corpus):
    spec = dataclasses.replace(long_spec(tiny_corpus), seeds=(0, 1))
    first, second = plan(spec)
    ref = launch(spec, tmp_path / "ref", executor="debug", progress=False)
    assert ref.ok
    ref_curve = curve(tmp_path / "ref" / "long" / first.run_name)

    root = tmp_path / "killed"
    results = []
    launcher = threading.Thread(
        target=lambda: results.append(launch(spec, root, "local", 1, progress=False))
    )
    launcher.start()
    run_dir = root / "long" / first.run_name
    wait_for_mid_run(run_dir, launcher.is_alive)
    # the run's process is a child forked from the warm server, not the launcher itself
    (child,) = [p for p in multiprocessing.active_children() if first.run_name in p.name]
    assert child.pid != os.getpid()
    os.kill(child.pid, signal.SIGKILL)
    # the server that forks the runs holds one thread (a fork copies only the forking thread;
    # a preloaded module that started a thread would fail this)
    from multiprocessing import forkserver

    server = forkserver._forkserver._forkserver_pid
    assert server and len(os.listdir(f"/proc/{server}/task")) == 1
    launcher.join(timeout=300)
    (result,) = results
    killed, other = result.outcomes
    assert killed.status == "failed" and "killed by signal 9" in killed.error
    # isolation: the server outlived the killed run and forked the next one from a clean state
    assert other.status == "complete"
    assert curve(root / "long" / second.run_name) == curve(
        tmp_path / "ref" / "long" / second.run_name
    )
    assert rundir.run_state(run_dir) == "failed" and not lock_held(run_dir)
    killed_at = rundir.last_step(run_dir)
    assert 0 < killed_at < first.config.n_steps

    # the relaunch (here through a fresh interpreter, the other start path) resumes it
    again = launch(spec, root, "local", 1, progress=False, local_start="fresh")
    assert again.ok and again.n_submitted == 1
    assert curve(run_dir) == ref_curve


def test_ctrl_c_of_the_launcher_stops_its_forked_runs(tmp_path, tiny_corpus):
    definition = tmp_path / "long_def.py"
    definition.write_text(
        "from pathlib import Path\n"
        "from test_sweeps_launch import long_spec\n\n\n"
        f"def sweep():\n    return long_spec(Path({str(tiny_corpus)!r}), n_steps=3000)\n"
    )
    (run,) = plan(long_spec(tiny_corpus, n_steps=3000))
    run_dir = tmp_path / "runs" / "long" / run.run_name
    cmd = [sys.executable, "-m", "scaling.cli", "sweep", "launch", str(definition)]
    cmd += ["--executor", "local", "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    tests_dir = os.path.dirname(__file__)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_mid_run(run_dir, lambda: proc.poll() is None)
        assert lock_held(run_dir)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    # the launcher terminated its run before exiting: the lock is free, the run resumable
    assert not lock_held(run_dir)
    assert rundir.run_state(run_dir) in ("incomplete", "failed")
    assert (run_dir / rundir.CHECKPOINT).exists()


def test_unknown_local_start_is_refused_before_anything_runs(tmp_path, tiny_corpus):
    spec = long_spec(tiny_corpus)
    with pytest.raises(LaunchError, match="local_start must be one of"):
        launch(spec, tmp_path, "local", local_start="threads")
    assert not (tmp_path / "long").exists()
