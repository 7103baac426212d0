"""Executors (debug, local), idempotent relaunch, per-run locks, failures, kill-and-resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scaling import rundir
from scaling.cli import main
from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from scaling.counting import training_flops
from sweeps.execute import lock_held, run_lock, run_one
from sweeps.launch import LaunchError, _run_local, launch
from sweeps.plan import plan
from sweeps.registry import load_sweep
from sweeps.spec import GridSweep
from sweeps.status import count_states, sweep_status

CURVE_KEYS = ("step", "tokens", "flops", "train/loss", "lr", "grad_norm", "val/loss", "val/bpb")


def curve(run_dir: Path) -> list[dict]:
    return [{k: row.get(k) for k in CURVE_KEYS} for row in rundir.read_metrics(run_dir)]


def file_mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def tiny_base(corpus: Path, eval_every_steps: int = 100, log_every_steps: int = 5) -> RunConfig:
    """A 1-layer d_model-32 run on ``corpus``, 256-token steps, checkpoint every 20 steps."""
    return RunConfig(
        model=ModelConfig(n_layers=1, d_model=32, n_heads=2, d_mlp=128, seq_len=32),
        data=DataConfig(source="text", path=str(corpus), val_fraction=0.2, val_tokens=1024),
        optim=OptimConfig(lr=1e-2),
        batch_size_tokens=256,
        micro_batch_size=8,
        eval_interval_tokens=256 * eval_every_steps,
        log_interval_steps=log_every_steps,
        checkpoint_interval_steps=20,
        n_threads=1,
        wandb_mode="disabled",
    )


def long_spec(corpus: Path, name: str = "long", n_steps: int = 300) -> GridSweep:
    """One run of ``n_steps`` steps, checkpoint every 20: long enough to kill in the middle."""
    base = tiny_base(corpus)
    return GridSweep(
        name=name, base=base, widths=(32,), depths=(1,), d_head=16, n_tokens=(256 * n_steps,)
    )


def test_debug_launch_completes_and_relaunch_does_nothing(tmp_path):
    spec = load_sweep("smoke")
    result = launch(spec, tmp_path, executor="debug", progress=False)
    assert result.ok and result.counts == {"complete": len(result.outcomes)}
    assert result.n_submitted == result.n_planned == len(plan(spec))
    sweep = json.loads((tmp_path / "smoke" / "sweep.json").read_text())
    assert [p["run_name"] for p in sweep["plan"]] == [r.run_name for r in plan(spec)]
    assert sweep["shape_rule"]["kind"] == "aspect_ratio" and "torch" in sweep["versions"]
    for run in plan(spec):
        summary = rundir.read_summary(tmp_path / "smoke" / run.run_name)
        assert summary["status"] == "complete" and summary["n_tokens"] == run.config.n_tokens
        # the run spent its IsoFLOP budget (counted FLOPs recomputed from the summary's tokens)
        assert (
            abs(training_flops(run.config.model, summary["n_tokens"]) / run.config.flops_budget - 1)
            <= 0.01
        )
        assert summary["sweep_name"] == "smoke" and summary["point_key"] == run.config.point_key
    before = file_mtimes(tmp_path)
    again = launch(spec, tmp_path, executor="debug", progress=False)
    assert again.n_submitted == 0 and again.counts == {"skipped": len(plan(spec))}
    assert (
        file_mtimes(tmp_path) == before
    )  # zero training work: nothing touched, not even sweep.json
    again = launch(spec, tmp_path, executor="local", progress=False)
    assert again.n_submitted == 0 and file_mtimes(tmp_path) == before
    # epochs: tokens over the training split recorded in config.json, also in load_runs
    from analysis.load import load_runs

    runs = load_runs(tmp_path / "smoke").set_index("run_name")
    for run in plan(spec):
        run_dir = tmp_path / "smoke" / run.run_name
        n_train = rundir.read_config(run_dir)["data"]["n_train_tokens"]
        summary = rundir.read_summary(run_dir)
        assert 0 < summary["epochs"] == pytest.approx(run.config.n_tokens / n_train)
        assert runs.loc[run.run_name, "epochs"] == summary["epochs"]
    del summary["epochs"]  # a summary written before the field existed: derived on load
    rundir.write_summary(run_dir, summary)
    runs = load_runs(tmp_path / "smoke").set_index("run_name")
    assert runs.loc[run_dir.name, "epochs"] == pytest.approx(run.config.n_tokens / n_train)


def test_local_executor_isolates_a_failure_and_relaunch_retries_it(tmp_path, capsys):
    definition = tmp_path / "two_runs.py"  # the smoke sweep at one budget: 2 runs, quick
    definition.write_text(
        "import dataclasses\nfrom sweeps.defs.smoke import sweep as smoke\n\n\n"
        "def sweep():\n    return dataclasses.replace(smoke(), budgets=(4e9,))\n"
    )
    spec = load_sweep(str(definition))
    runs = plan(spec)
    poisoned = tmp_path / "smoke" / runs[1].run_name
    # a run dir holding another run's config: train() refuses it with a ConfigError
    other = runs[0].config.replace(seed=99)
    rundir.write_config(poisoned, other, poisoned.name, {})
    result = launch(spec, tmp_path, executor="local", parallel=2, progress=False)
    statuses = [o.status for o in result.outcomes]
    assert statuses.count("complete") == len(runs) - 1 and statuses[1] == "failed"
    assert "ConfigError" in result.outcomes[1].error
    assert (poisoned / rundir.ERROR).exists()
    for o in result.outcomes:  # launcher overhead per run: subprocess wall minus the run's own
        if o.status == "complete":
            assert o.wall_s > o.run_wall_time_s > 0
            print(
                f"local overhead {o.wall_s - o.run_wall_time_s:.2f}s run {o.run_wall_time_s:.2f}s"
            )
    counts = count_states(sweep_status(spec, tmp_path))
    assert counts["failed"] == 1 and counts["complete"] == len(runs) - 1
    assert main(["sweep", "status", str(definition), "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "ConfigError" in out
    # fix the cause; a relaunch retries only the failed run and clears error.txt
    (poisoned / rundir.CONFIG).unlink()
    again = launch(spec, tmp_path, executor="local", progress=False)
    assert again.n_submitted == 1 and again.ok
    assert not (poisoned / rundir.ERROR).exists()
    assert rundir.run_state(poisoned) == "complete"


def test_held_lock_means_running_and_nothing_is_touched(tmp_path):
    spec = load_sweep("smoke")
    first = plan(spec)[0]
    run_dir = tmp_path / "smoke" / first.run_name
    with run_lock(run_dir) as held:
        assert held and lock_held(run_dir)
        out = run_one(first.config.to_dict(), run_dir)
        assert out.status == "running"
        assert not (run_dir / rundir.CONFIG).exists()
        result = launch(spec, tmp_path, executor="debug", progress=False)
        assert result.outcomes[0].status == "running" and not result.ok
        assert [s.state for s in sweep_status(spec, tmp_path)][0] == "running"
    assert not lock_held(run_dir)
    assert launch(spec, tmp_path, executor="debug", progress=False).ok


def test_launch_while_another_process_holds_a_run_skips_it(tmp_path):
    """Deterministic concurrency: the test holds one run's lock while a real launch runs.

    As documented (sweeps.launch), the launch reports that run as ``"running"`` and leaves its
    directory untouched; the rest train. The executor's own check (a subprocess that finds the
    lock taken after the launcher looked) is exercised directly. After the lock is released a
    relaunch trains only that run.
    """
    spec = load_sweep("smoke")
    runs = plan(spec)
    held_run = runs[0]
    run_dir = tmp_path / "smoke" / held_run.run_name
    cmd = [sys.executable, "-m", "scaling.cli", "sweep", "launch", "smoke", "--executor"]
    cmd += ["debug", "--runs-dir", str(tmp_path), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with run_lock(run_dir) as held:
        assert held
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1, proc.stderr  # not every run finished: one is running
        assert "running 1" in proc.stdout and f"complete {len(runs) - 1}" in proc.stdout
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # untouched
        # the race the launcher cannot see: the lock taken after its check; the subprocess
        # itself finds it held and exits with EXIT_RUNNING
        (outcome,) = _run_local([(held_run, run_dir)], 1, False, tmp_path / "logs")
        assert outcome.status == "running"
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]
    again = launch(spec, tmp_path, executor="debug", progress=False)
    assert again.ok and again.n_submitted == 1
    steps = [row["step"] for row in rundir.read_metrics(run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == held_run.config.n_steps


def test_killed_run_resumes_from_checkpoint_with_the_same_curve(tmp_path, tiny_corpus):
    spec = long_spec(tiny_corpus)
    (run,) = plan(spec)
    # the reference: uninterrupted, in-process
    ref = launch(spec, tmp_path / "ref", executor="debug", progress=False)
    assert ref.ok
    ref_curve = curve(tmp_path / "ref" / "long" / run.run_name)
    # the same run in a subprocess, SIGKILLed after its first checkpoint
    run_dir = tmp_path / "killed" / "long" / run.run_name
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps.execute", str(run_dir)],
        stdin=subprocess.PIPE,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    proc.stdin.write(json.dumps(run.config.to_dict()).encode())
    proc.stdin.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        rows = rundir.read_metrics(run_dir)
        if (run_dir / rundir.CHECKPOINT).exists() and rows and rows[-1]["step"] % 20 != 0:
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.fail("the run finished before it could be killed; make long_spec longer")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert rundir.run_state(run_dir) == "incomplete"
    killed_at = rundir.last_step(run_dir)
    assert 0 < killed_at < run.config.n_steps
    assert not lock_held(run_dir)  # the kernel released the dead process's lock
    result = launch(spec, tmp_path / "killed", executor="debug", progress=False)
    assert result.ok and result.n_submitted == 1
    resumed = curve(run_dir)
    steps = [r["step"] for r in resumed]
    assert steps == sorted(set(steps))  # no duplicated rows
    assert resumed == ref_curve


def test_launch_argument_errors(tmp_path):
    spec = load_sweep("smoke")
    with pytest.raises(LaunchError, match="executor"):
        launch(spec, tmp_path, executor="kubernetes")
    with pytest.raises(LaunchError, match="Slurm options"):
        launch(spec, tmp_path, executor="local", partition="gpu")
    with pytest.raises(LaunchError, match="timeout-min"):
        launch(spec, tmp_path, executor="slurm", timeout_min=0)
    accum = {r.config.grad_accum_steps for r in plan(spec)}
    assert all(a % 3 for a in accum)  # so 3 processes per run cannot share a step
    with pytest.raises(LaunchError, match="= 3 processes per run"):
        launch(spec, tmp_path, executor="slurm", tasks_per_node=3)
    with pytest.raises(LaunchError, match="= 3 processes per run"):
        launch(spec, tmp_path, executor="slurm", nodes=3)
    assert not (tmp_path / "smoke").exists()  # nothing written before the arguments are valid


def test_slurm_options_reach_the_sbatch_script(tmp_path):
    import submitit

    from sweeps.slurm import slurm_parameters

    params = slurm_parameters(
        partition="gpu",
        gpus_per_node=2,
        cpus_per_task=8,
        tasks_per_node=2,
        nodes=3,
        timeout_min=90,
        array_parallelism=4,
        account="acct",
        qos="high",
        mem_gb=64,
        slurm_args={"constraint": "a100"},
    )
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm")
    executor.update_parameters(**params)
    text = executor._executor._make_submission_file_text("true", "uid")
    for line in [
        "--partition=gpu",
        "--gpus-per-node=2",
        "--cpus-per-task=8",
        "--ntasks-per-node=2",
        "--nodes=3",
        "--time=90",
        "--account=acct",
        "--qos=high",
        "--mem=64GB",
        "--constraint=a100",
    ]:
        assert f"#SBATCH {line}\n" in text
    assert params["slurm_array_parallelism"] == 4
