"""Data-parallel training: real torchrun, two CPU processes, the gloo backend."""

import hashlib
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from test_train import kill_9_after_checkpoint

from scaling import rundir
from scaling.config import ConfigError, ModelConfig
from scaling.data import get_batch, load_data
from scaling.distributed import DistEnv, check_run, env_from_environ, micro_steps
from scaling.rundir import read_metrics, read_summary
from scaling.train import train

COMPARED = ("train/loss", "val/loss", "grad_norm")


def _torchrun_done(cfg_path, run_dir, timeout=300, record=None):
    # run torchrun to the end; returns its stdout (rank 0's report)
    proc = _torchrun(cfg_path, run_dir, record=record)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


# a torchrun entry point that records every training micro-batch each rank takes, then runs
# `scaling train` unchanged: rank r appends [step, micro_step, sha256 of x] to <record>.rank<r>
SPY = """
import hashlib, json, os, sys
import scaling.train
from scaling.cli import main

record = open(sys.argv[1] + ".rank" + os.environ["RANK"], "w")
real_get_batch = scaling.train.get_batch

def get_batch(data, cfg, step, micro_step):
    x, y = real_get_batch(data, cfg, step, micro_step)
    digest = hashlib.sha256(x.numpy().tobytes()).hexdigest()
    record.write(json.dumps([step, micro_step, digest]) + "\\n")
    record.flush()
    return x, y

scaling.train.get_batch = get_batch
sys.exit(main(sys.argv[2:]))
"""


def _torchrun(cfg_path, run_dir, nproc=2, record=None, **popen):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
    ]  # fmt: skip
    if record is None:
        cmd += ["-m", "scaling.cli"]
    else:
        spy = record.with_name("spy.py")
        spy.write_text(SPY)
        cmd += [str(spy), str(record)]
    cmd += ["train", "--config", str(cfg_path), "--run-dir", str(run_dir), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, **popen)


def _read_record(path):
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]


def _descendants(pid):
    # every process below pid (torchrun's workers may sit in their own process groups)
    children = {}
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(stat))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _assert_same_curve(rows, ref_rows):
    # the same rows as one process, equal up to float summation order across ranks
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]
    for row, ref in zip(rows, ref_rows, strict=True):
        assert row["tokens"] == ref["tokens"] and row["flops"] == ref["flops"]
        assert row["lr"] == ref["lr"]
        for key in COMPARED:
            if key in ref:
                assert math.isclose(row[key], ref[key], rel_tol=1e-5), (row["step"], key)


def test_env_from_environ_reads_torchrun_variables():
    assert env_from_environ({}) == DistEnv()
    assert env_from_environ({"WORLD_SIZE": "1", "RANK": "0"}) == DistEnv()
    env = env_from_environ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert env == DistEnv(rank=3, local_rank=1, world_size=4)
    assert env.enabled and not env.is_main


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"WORLD_SIZE": "two", "RANK": "0"}, "WORLD_SIZE='two'"),
        ({"WORLD_SIZE": "2"}, "RANK is not"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 must be in [0, WORLD_SIZE=2)"),
        ({"WORLD_SIZE": "0", "RANK": "0"}, "WORLD_SIZE=0"),
    ],
)
def test_bad_launcher_variables_name_the_variable(environ, needle):
    with pytest.raises(ConfigError, match=None) as info:
        env_from_environ(environ)
    assert needle in str(info.value)


def test_micro_batches_are_dealt_round_robin(make_cfg):
    cfg = make_cfg(batch_size_tokens=8 * 32 * 6)  # 6 micro-batches of 8 x 32 tokens
    dealt = [list(micro_steps(cfg, DistEnv(rank=r, world_size=3))) for r in range(3)]
    assert dealt == [[0, 3], [1, 4], [2, 5]]
    assert list(micro_steps(cfg, DistEnv())) == list(range(6))


def test_world_size_that_does_not_divide_the_batch_fails_before_any_write(
    tiny_cfg, tmp_path, monkeypatch
):
    assert tiny_cfg.grad_accum_steps == 2
    with pytest.raises(ConfigError) as info:
        check_run(tiny_cfg, DistEnv(rank=0, world_size=3))
    assert "WORLD_SIZE=3" in str(info.value) and "micro_batch_size" in str(info.value)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="WORLD_SIZE=3"):
        train(tiny_cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_two_processes_train_the_same_run_as_one(tiny_cfg, tmp_path):
    reference = train(tiny_cfg, tmp_path / "one", progress=False)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(tiny_cfg.to_json())
    record = tmp_path / "batches"
    out = _torchrun_done(cfg_path, tmp_path / "two", record=record)

    # the split: each step's micro-batches are dealt out disjointly and together cover it, and
    # each rank trained on the very tokens single-process training uses for those indices
    # (this fails if a rank above 0 idles, or two ranks train on the same micro-batch)
    taken = {r: _read_record(record.with_name(f"batches.rank{r}")) for r in (0, 1)}
    data = load_data(tiny_cfg.data, tiny_cfg.model.vocab_size)
    n_micro = tiny_cfg.grad_accum_steps
    assert n_micro == 2
    for step in range(tiny_cfg.n_steps):
        per_rank = [sorted(m for s, m, _ in taken[r] if s == step) for r in (0, 1)]
        assert per_rank == [[0], [1]], (step, per_rank)  # disjoint, covering, round-robin
    for r in (0, 1):
        assert len(taken[r]) == tiny_cfg.n_steps * n_micro // 2
        for step, micro, digest in taken[r][:: max(1, len(taken[r]) // 8)]:
            x, _ = get_batch(data, tiny_cfg, step, micro)
            assert hashlib.sha256(x.numpy().tobytes()).hexdigest() == digest
    assert out.count("complete: step 40/40") == 1  # rank 0 alone reports
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        ".lock",
        "checkpoint.pt", "config.json", "metrics.jsonl", "summary.json",
    ]  # fmt: skip
    _assert_same_curve(read_metrics(tmp_path / "two"), read_metrics(tmp_path / "one"))
    summary = read_summary(tmp_path / "two")
    assert summary["status"] == "complete" and summary["n_tokens"] == reference.n_tokens
    assert math.isclose(summary["val/loss"], reference.val_loss, rel_tol=1e-5)

    # launching again on the finished run does no work and changes nothing
    before = (tmp_path / "two" / "metrics.jsonl").read_bytes()
    assert _torchrun_done(cfg_path, tmp_path / "two").count("complete: step 40/40") == 1
    assert (tmp_path / "two" / "metrics.jsonl").read_bytes() == before


def test_two_processes_train_a_completep_run_as_one(make_cfg, tmp_path):
    # the parametrization lives in the model and the optimizer groups: DDP sees plain modules
    model = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=128, seq_len=32,
                        parametrization="completep", base_d_model=16, base_n_layers=1)  # fmt: skip
    cfg = make_cfg(model=model, n_tokens=512 * 20, eval_interval_tokens=512 * 10)
    train(cfg, tmp_path / "one", progress=False)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.to_json())
    _torchrun_done(cfg_path, tmp_path / "two")
    _assert_same_curve(read_metrics(tmp_path / "two"), read_metrics(tmp_path / "one"))
    assert rundir.read_config(tmp_path / "two")["parametrization"]["residual_multiplier"] == 0.5


def test_data_parallel_run_resumes_after_kill_9(make_cfg, tmp_path):
    cfg = make_cfg(
        n_tokens=512 * 300,
        log_interval_steps=1,
        checkpoint_interval_steps=20,
        eval_interval_tokens=512 * 50,
    )
    train(cfg, tmp_path / "reference", progress=False)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.to_json())
    run_dir = tmp_path / "killed"
    proc = _torchrun(cfg_path, run_dir)
    # the launcher and every rank (workers may sit in process groups of their own)
    killed_at = kill_9_after_checkpoint(
        proc, run_dir, min_step=25, pids=lambda: [proc.pid, *_descendants(proc.pid)], timeout=240
    )
    assert killed_at is not None, "the run ended before it could be killed"
    assert rundir.run_state(run_dir) == "incomplete"
    assert rundir.load_checkpoint(run_dir)["step"] % 20 == 0

    _torchrun_done(cfg_path, run_dir)
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == list(range(1, 301))  # no duplicated or missing rows
    _assert_same_curve(rows, read_metrics(tmp_path / "reference"))


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA devices"
)
def test_two_gpus_nccl_train_the_same_run_as_one(make_cfg, tmp_path):
    cfg = make_cfg(device="cuda")
    one = train(cfg, tmp_path / "one", progress=False)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.to_json())
    _torchrun_done(cfg_path, tmp_path / "two", timeout=600)
    summary = read_summary(tmp_path / "two")
    assert summary["status"] == "complete" and summary["world_size"] == 2
    assert summary["val/loss"] == pytest.approx(one.val_loss, abs=0.05)  # bf16 rounding only
