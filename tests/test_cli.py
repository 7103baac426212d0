"""The ``scaling`` command as a new user meets it: bad input, locks, Ctrl-C, help, version."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_sweeps_launch import curve

from scaling import __version__, rundir
from scaling.cli import main
from scaling.lock import run_lock
from scaling.train import train


def run_cli(argv, capsys):
    """``main(argv)`` -> (exit code, stdout, stderr); argparse's own exits count too."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(rc, err):
    lines = [ln for ln in err.splitlines() if ln.strip() and "note:" not in ln]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


TINY = ["--n-layers", "1", "--d-model", "32", "--n-heads", "4", "--seq-len", "32"]


@pytest.fixture
def paths(tmp_path, tiny_corpus):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "wrong_fit.json").write_text('{"a": 1}')
    shape = '"model": {"n_layers": 1, "d_model": 32, "n_heads": 4}'
    (tmp_path / "bogus_key.json").write_text("{" + shape + ', "bogus": 1}')
    (tmp_path / "two_layers.json").write_text(shape.replace("1,", '"two",').join("{}"))
    (tmp_path / "syntax_error.py").write_text("def sweep(:\n")
    return {"file": a_file, "dir": tmp_path, "corpus": tiny_corpus, "tmp": tmp_path}


# (argv with {file} {dir} {corpus} {tmp} placeholders, text the one error line must contain)
BAD_INPUTS = [
    # file-vs-folder, both ways, and missing paths
    (["train", "--run-dir", "{file}", *TINY, "--data-path", "{corpus}"], "--run-dir"),
    (["train", "--run-dir", "{tmp}/r", "--config", "{dir}"], "Is a directory"),
    (["train", "--run-dir", "{tmp}/r", "--config", "{file}/c.json"], "Not a directory"),
    (["train", "--run-dir", "{tmp}/r", "--config", "{tmp}/missing.json"], "does not exist"),
    (["train", "--run-dir", "{tmp}/r", *TINY, "--data-path", "{tmp}/missing"], "--data-path"),
    (["train", "--run-dir", "{tmp}/r", *TINY, "--data-path", "{file}/x"], "--data-path"),
    # values: the error names the flag, not the config field
    (["train", "--run-dir", "{tmp}/r", "--n-layers", "1", "--d-model", "30", "--n-heads", "4"],
     "--d-model=30 must be divisible by --n-heads=4"),
    (["train", "--run-dir", "{tmp}/r", *TINY, "--lr", "-1"], "--lr must be > 0"),
    (["train", "--run-dir", "{tmp}/r", *TINY, "--n-tokens", "100"], "--n-tokens=100"),
    (["train", "--run-dir", "{tmp}/r", *TINY, "--micro-batch-size", "3"], "--micro-batch-size"),
    (["train", "--run-dir", "{tmp}/r", *TINY, "--val-fraction", "0.7"], "--val-fraction"),
    (["train", "--run-dir", "{tmp}/r", "--d-model", "32"], "give --n-layers, --n-heads"),
    (["train", "--run-dir", "{tmp}/r", *TINY, "--n-tokens", "8000.5"], "--n-tokens"),
    (["train", "--run-dir", "{tmp}/r", *TINY, "--n-tokens", "lots"], "--n-tokens"),
    (["train", "--run-dir", "{tmp}/r", *TINY, "--data-source", "tokens"], "--data-path"),
    (["train", "--run-dir", "{tmp}/r", *TINY, "--data-source", "tokens", "--data-path",
      "{corpus}"], "train.bin"),
    (["train", "--run-dir", "{tmp}/r", "--config", "{tmp}/list.json"], "JSON object"),
    (["train", "--run-dir", "{tmp}/r", "--config", "{tmp}/bogus_key.json"],
     "unknown config key 'bogus'"),
    (["train", "--run-dir", "{tmp}/r", "--config", "{tmp}/two_layers.json"],
     "--n-layers must be a positive integer, got 'two'"),
    (["train"], "--run-dir"),
    # sweeps
    (["sweep", "launch", "smoke", "--executor", "debug", "--runs-dir", "{file}"],
     "Not a directory"),
    (["sweep", "status", "smoke", "--runs-dir", "{file}"], "Not a directory"),
    (["sweep", "plan", "no_such_sweep"], "no sweep definition named 'no_such_sweep'"),
    (["sweep", "plan", "{tmp}/syntax_error.py"], "syntax_error.py, line 1"),
    (["sweep", "launch", "{file}", "--runs-dir", "{tmp}/runs"], "a_file"),
    (["sweep", "launch", "smoke", "--runs-dir", "{tmp}/runs", "--parallel", "2",
      "--executor", "debug"], "parallel"),
    (["sweep", "launch", "smoke", "--runs-dir", "{tmp}/runs", "--executor", "slurm",
      "--timeout-min", "1", "--signal-delay-s", "60"], "--signal-delay-s"),
    (["sweep", "launch", "smoke", "--runs-dir", "{tmp}/runs", "--executor", "slurm",
      "--slurm-arg", "constraint"], "--slurm-arg must be KEY=VALUE"),
    # analysis: a fit file of the wrong shape, a folder for a file (the catch-all covers them)
    (["optimal", "--fit", "{tmp}/wrong_fit.json", "--flops", "1e20"], "fit approach"),
    (["optimal", "--fit", "{dir}", "--flops", "1e20"], "is a folder; give a file"),
    (["optimal", "--fit", "{tmp}/missing.json", "--flops", "1e20"], "missing.json"),
    (["fit", "--csv", "{dir}", "--n-col", "N", "--loss-col", "L", "--c-col", "C",
      "--approach", "parametric",
      "--out", "{tmp}/fit.json"], "is a folder; give a file"),
    (["fit", "--runs-dir", "{file}", "--approach", "parametric", "--out", "{tmp}/fit.json"],
     "a_file"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "needle"), BAD_INPUTS)
def test_bad_input_ends_in_one_line_naming_the_flag_or_path(argv, needle, paths, capsys):
    argv = [a.format(**paths) for a in argv]
    rc, _, err = run_cli(argv, capsys)
    line = one_line_error(rc, err)
    assert needle in line, line
    assert "Config." not in line  # flags, not internal dataclass fields
    assert not (paths["tmp"] / "r").exists()  # nothing written for bad input


def test_failed_slurm_submission_is_one_line(tmp_path, capsys):
    if subprocess.run(["which", "sbatch"], capture_output=True).returncode != 0:
        reason = "no sbatch on PATH (tests/test_slurm.py runs the cluster)"
        if os.environ.get("CI") == "true":  # as tests/test_slurm.py: CI must run it
            pytest.fail(f"CI=true requires the Slurm tests to run; {reason}")
        pytest.skip(reason)
    argv = ["sweep", "launch", "smoke", "--runs-dir", tmp_path, "--executor", "slurm"]
    rc, _, err = run_cli([*argv, "--partition", "no_such_partition", "--no-wait"], capsys)
    line = one_line_error(rc, err)
    assert "sbatch refused" in line and "--partition" in line


def test_token_counts_accept_scientific_notation_and_rounding_is_said(tiny_corpus, capsys):
    argv = ["train", "--run-dir", "unused", *TINY, "--data-path", tiny_corpus, "--dry-run"]
    rc, out, err = run_cli([*argv, "--n-tokens", "1e4", "--batch-size-tokens", "512"], capsys)
    assert rc == 0
    assert json.loads(out)["n_tokens"] == 10_000
    assert "training 19 steps = 9728 tokens" in err and "--n-tokens 9728 or 10240" in err
    rc, out, err = run_cli([*argv, "--n-tokens", "1e12"], capsys)
    assert rc == 0 and json.loads(out)["n_tokens"] == 10**12 and "note" not in err


def test_help_shows_defaults_and_units_and_version(capsys):
    rc, out, _ = run_cli(["train", "--help"], capsys)
    assert rc == 0
    flat = " ".join(out.split())
    for text in (
        "peak learning rate (default: 0.001)",
        "(default: 4096)",  # --batch-size-tokens
        "(default: 1048576)",  # --n-tokens
        "(default: 256)",  # --seq-len and --vocab-size
        "(default: offline)",
        "training tokens D (tokens;",
    ):
        assert text in flat, text
    rc, out, _ = run_cli(["sweep", "launch", "--help"], capsys)
    flat = " ".join(out.split())
    assert rc == 0 and "(minutes)" in flat and "(default: 240)" in flat
    assert "(default: local)" in flat
    rc, out, _ = run_cli(["--version"], capsys)
    assert rc == 0 and out.strip() == f"scaling {__version__}"


def test_second_train_on_a_locked_run_dir_refuses(make_cfg, tmp_path, capsys):
    cfg = make_cfg()
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.to_json())
    run_dir = tmp_path / "run"
    argv = ["train", "--config", cfg_path, "--run-dir", run_dir, "--no-progress"]
    with run_lock(run_dir) as held:  # another trainer holds the run
        assert held
        rc, _, err = run_cli(argv, capsys)
        line = one_line_error(rc, err)
        assert "being trained by another process" in line and str(run_dir) in line
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written
    rc, out, _ = run_cli(argv, capsys)
    assert rc == 0 and "complete: step 40/40" in out
    assert [r["step"] for r in rundir.read_metrics(run_dir)] == [5, 10, 15, 20, 25, 30, 35, 40]


def test_ctrl_c_says_what_was_saved_and_resumes_exactly(make_cfg, tmp_path):
    cfg = make_cfg(n_tokens=512 * 400, log_interval_steps=1, checkpoint_interval_steps=100)
    train(cfg, tmp_path / "reference", progress=False)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.to_json())
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "scaling.cli", "train", "--config", str(cfg_path)]
    cmd += ["--run-dir", str(run_dir), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        rows = rundir.read_metrics(run_dir)
        if (run_dir / rundir.CHECKPOINT).exists() and rows and rows[-1]["step"] >= 105:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.fail("the run finished before Ctrl-C; make it longer")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    step = rundir.load_checkpoint(run_dir)["step"]
    assert f"checkpoint.pt holds step {step}" in err and "resume exactly" in err
    assert f"--run-dir {run_dir}" in err  # the command to run again
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert curve(run_dir) == curve(tmp_path / "reference")


SWEEP_FILE = """
from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from sweeps.spec import GridSweep


def sweep():
    base = RunConfig(
        model=ModelConfig(n_layers=1, d_model=32, n_heads=2, d_mlp=128, seq_len=32),
        data=DataConfig(source="text", path={corpus!r}, val_fraction=0.2, val_tokens=1024),
        optim=OptimConfig(lr=1e-2),
        batch_size_tokens=256,
        micro_batch_size=8,
        eval_interval_tokens=256 * 100,
        log_interval_steps=5,
        checkpoint_interval_steps=20,
        n_threads=1,
        wandb_mode="disabled",
    )
    return GridSweep(
        name="ctrlc", base=base, widths=(32,), depths=(1,), d_head=16, n_tokens=(256 * 4000,)
    )
"""


def test_ctrl_c_during_a_sweep_launch_says_how_to_resume(tiny_corpus, tmp_path):
    definition = tmp_path / "ctrlc.py"
    definition.write_text(SWEEP_FILE.format(corpus=str(tiny_corpus)))
    runs_dir = tmp_path / "runs"
    cmd = [sys.executable, "-m", "scaling.cli", "sweep", "launch", str(definition)]
    cmd += ["--executor", "local", "--runs-dir", str(runs_dir), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # its own process group, so Ctrl-C reaches the launcher and its workers, as in a terminal
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if list(runs_dir.glob("ctrlc/*/checkpoint.pt")):
            os.killpg(proc.pid, signal.SIGINT)
            break
        time.sleep(0.01)
    _, err = proc.communicate(timeout=60)
    if proc.returncode in (0, 1):
        pytest.fail("the sweep ended before Ctrl-C; make the run longer")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "resume from their last checkpoint.pt" in err and f"--runs-dir {runs_dir}" in err
    (checkpoint,) = runs_dir.glob("ctrlc/*/checkpoint.pt")
    assert rundir.run_state(checkpoint.parent) == "incomplete"
    assert rundir.load_checkpoint(checkpoint.parent)["step"] > 0
