"""Faults a run must survive: a hostile checkpoint, a full disk, and CI's missing reference data."""

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import shared_data
from test_cli import one_line_error, run_cli
from test_sweeps_launch import curve, long_spec

from scaling import rundir
from scaling.rundir import CheckpointError
from scaling.train import train
from sweeps.launch import launch
from sweeps.plan import plan

PAGE = os.sysconf("SC_PAGE_SIZE")


# -- reference data under CI ---------------------------------------------------------------------
def test_missing_reference_data_skips_locally_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found"):
        shared_data("no/such/table.csv")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires"):
        shared_data("no/such/table.csv")
    assert shared_data("chinchilla-paper").is_dir()  # present here: returned as is


# -- a checkpoint whose unpickling would run code --------------------------------------------------
class _WritesMarker:
    """Unpickling this calls ``open(marker, "w")``: code execution, harmless but visible."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def write_hostile_checkpoint(path: Path, marker: Path) -> bytes:
    """A ``checkpoint.pt`` with the right keys whose ``model`` entry runs code when unpickled."""
    torch.save({"step": 10, "model": _WritesMarker(marker), "optimizer": {}}, path)
    return path.read_bytes()


def test_the_hostile_checkpoint_would_run_code_if_unpickled_unsafely(tmp_path):
    # the test's premise: without weights_only the file does write its marker
    marker = tmp_path / "pwned"
    write_hostile_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises((pickle.UnpicklingError, RuntimeError)):
        torch.load(tmp_path / "evil.pt", weights_only=True)
    assert not marker.exists()
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def test_scaling_train_refuses_a_hostile_checkpoint_and_keeps_it(make_cfg, tmp_path, capsys):
    cfg = make_cfg()
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.to_json())
    run_dir = tmp_path / "run"
    train(cfg, run_dir, progress=False)
    (run_dir / rundir.SUMMARY).unlink()  # an incomplete run: the next train() resumes
    ckpt = run_dir / rundir.CHECKPOINT
    marker = tmp_path / "pwned"
    evil = write_hostile_checkpoint(ckpt, marker)

    with pytest.raises(CheckpointError) as info:
        train(cfg, run_dir, progress=False)
    assert str(ckpt) in str(info.value) and "io.open" in str(info.value)
    argv = ["train", "--config", cfg_path, "--run-dir", run_dir, "--no-progress"]
    line = one_line_error(*run_cli(argv, capsys)[::2])
    assert str(ckpt) in line and "refused" in line and "delete it" in line
    assert not marker.exists()
    assert ckpt.read_bytes() == evil  # kept, untouched
    assert rundir.run_state(run_dir) == "incomplete"


def test_sweep_launch_refuses_a_hostile_checkpoint_and_keeps_it(tmp_path, tiny_corpus):
    spec = long_spec(tiny_corpus, name="evil", n_steps=40)
    (run,) = plan(spec)
    assert launch(spec, tmp_path, executor="debug", progress=False).ok
    run_dir = tmp_path / "evil" / run.run_name
    (run_dir / rundir.SUMMARY).unlink()
    ckpt = run_dir / rundir.CHECKPOINT
    marker = tmp_path / "pwned"
    evil = write_hostile_checkpoint(ckpt, marker)

    result = launch(spec, tmp_path, executor="local", progress=False)  # a real subprocess
    (outcome,) = result.outcomes
    assert outcome.status == "failed"
    assert "CheckpointError" in outcome.error and str(ckpt) in outcome.error
    assert "CheckpointError" in (run_dir / rundir.ERROR).read_text()
    assert not marker.exists()
    assert ckpt.read_bytes() == evil
    # the documented fix: delete it, relaunch, the run trains again from step 0
    ckpt.unlink()
    assert launch(spec, tmp_path, executor="debug", progress=False).ok
    assert not marker.exists()


# -- a full disk ----------------------------------------------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MiB tmpfs mounted for this test (needs root or CAP_SYS_ADMIN); unmounted after."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        reason = r.stderr.strip() if r.returncode else None
    except (OSError, subprocess.SubprocessError) as e:
        reason = str(e)
    if reason is not None:
        reason = f"cannot mount a tmpfs here ({reason})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the disk-full tests to run; {reason}")
        pytest.skip(reason)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=30)


def _pages(n_bytes: int) -> int:
    return -(-n_bytes // PAGE) * PAGE


def _fill(mount: Path, leave_bytes: int) -> Path:
    # a filler file that leaves exactly `leave_bytes` (whole pages) free on the tmpfs
    st = os.statvfs(mount)
    free = st.f_bavail * st.f_frsize
    filler = mount / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * (free - _pages(leave_bytes)))
    st = os.statvfs(mount)
    assert st.f_bavail * st.f_frsize == _pages(leave_bytes)
    return filler


@pytest.mark.parametrize("fails_on", ["checkpoint", "metrics"])
def test_full_disk_stops_clearly_keeps_state_and_resumes(
    fails_on, make_cfg, tmp_path, small_tmpfs, capsys
):
    # checkpoint: the 2nd checkpoint (step 20) finds no room for its tmp file.
    # metrics: rows every step fill the metrics file's first page before the 2nd checkpoint.
    log_every = 5 if fails_on == "checkpoint" else 1
    cfg = make_cfg(log_interval_steps=log_every, checkpoint_interval_steps=10)
    reference = tmp_path / "reference"
    train(cfg, reference, progress=False)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.to_json())
    ckpt_bytes = (reference / rundir.CHECKPOINT).stat().st_size
    config_bytes = (reference / rundir.CONFIG).stat().st_size
    # room for config.json, one page of metrics and one checkpoint, then less than a second
    # checkpoint (checkpoint case) or no second metrics page (metrics case)
    spare = ckpt_bytes // 2 if fails_on == "checkpoint" else 0
    filler = _fill(small_tmpfs, _pages(config_bytes) + PAGE + _pages(ckpt_bytes) + spare)
    run_dir = small_tmpfs / "run"
    argv = ["train", "--config", cfg_path, "--run-dir", run_dir, "--no-progress"]

    rc, _, err = run_cli(argv, capsys)
    line = one_line_error(rc, err)
    assert "No space left on device" in line and "run the same command again" in line
    assert (
        str(run_dir / (rundir.CHECKPOINT if fails_on == "checkpoint" else rundir.METRICS)) in line
    )
    assert rundir.run_state(run_dir) == "incomplete"
    assert not list(run_dir.glob("*.tmp"))  # the failed write's tmp file is removed
    assert rundir.load_checkpoint(run_dir)["step"] == 10  # the previous checkpoint, intact
    text = (run_dir / rundir.METRICS).read_text()
    assert text.endswith("\n")  # no torn row
    rows = rundir.read_metrics(run_dir)
    ref_rows = curve(reference)[: len(rows)]
    assert [{k: r.get(k) for k in ref_rows[0]} for r in rows] == ref_rows
    last = rows[-1]["step"]
    assert (last == 20) if fails_on == "checkpoint" else (10 < last < 20)

    filler.unlink()  # space freed: the same command resumes and completes
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0 and "complete: step 40/40" in out, err
    assert curve(run_dir) == curve(reference)
    shutil.rmtree(run_dir)  # leave the tmpfs empty for the unmount


def test_exit_in_the_middle_of_a_checkpoint_exits_and_keeps_the_previous_one(tmp_path):
    # submitit's requeue handler calls sys.exit() from a signal handler, which can land inside
    # torch.save; torch's zip writer then fails again in __exit__ ("unexpected pos"), and that
    # RuntimeError used to replace the SystemExit: the run was recorded as failed instead of
    # being requeued (seen once in CI). The exit is raised here from inside the file's write(),
    # the place a signal lands (the one fault that cannot be produced on demand).
    import torch

    from scaling import rundir

    state = {"step": 1, "w": torch.randn(64, 64)}
    rundir.save_checkpoint(tmp_path, state)
    before = (tmp_path / "checkpoint.pt").read_bytes()

    real_save = torch.save
    calls = {"n": 0}

    class ExitMidway:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            calls["n"] += 1
            if calls["n"] == 3:
                sys.exit(-1)
            return self.f.write(b)

        def flush(self):
            self.f.flush()

    def interrupted_save(obj, f, *args, **kwargs):
        return real_save(obj, ExitMidway(f), *args, **kwargs)

    torch.save = interrupted_save
    try:
        with pytest.raises(SystemExit):
            rundir.save_checkpoint(tmp_path, {"step": 2, "w": torch.randn(64, 64)})
    finally:
        torch.save = real_save
    assert calls["n"] >= 3
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert not (tmp_path / "checkpoint.pt.tmp").exists()
