import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from scaling import rundir
from scaling.cli import main as cli_main
from scaling.config import ConfigError, DataConfig, ModelConfig, OptimConfig
from scaling.counting import param_counts, training_flops
from scaling.data import DataError
from scaling.models.gpt2 import GPT
from scaling.optim import lr_at
from scaling.rundir import CheckpointError, read_metrics, read_summary
from scaling.train import RunSummary, train

# the summary.json keys of the run-directory contract (docs: /tmp/common.md), written out
CONTRACT_SUMMARY_KEYS = {
    "status", "step", "n_steps", "n_tokens", "train/loss", "val/loss", "val/bpb",
    "n_params_total", "n_params_non_embedding", "n_params_embedding", "n_params_position",
    "n_params_lm_head", "flops", "flops_with_embedding", "flops_6nd", "flops_6nd_non_embedding",
    "flops_kaplan", "flops_budget", "tokens_per_param", "wall_time_s", "tokens_per_sec",
    "world_size", "diverged_step", "seed", "lr", "n_layers", "d_model", "n_heads", "d_mlp",
    "vocab_size", "seq_len", "sweep_name", "point_key", "epochs",
    "flops_marginal", "role", "parent_run", "parent_step",  # WSD lineage (issue 9)
    "stop_reason",  # early stopping (issue 21): why a "stopped" run stopped, else null
}  # fmt: skip
ROW_KEYS = {
    "step",
    "tokens",
    "flops",
    "train/loss",
    "lr",
    "grad_norm",
    "tokens_per_sec",
    "elapsed_s",
}
TIMING_KEYS = {"tokens_per_sec", "elapsed_s"}


def _snapshot(run_dir: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run_dir.iterdir())}


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def test_tiny_run_writes_the_contract(tiny_cfg, tmp_path):
    run_dir = tmp_path / "sweep" / "tiny"
    summary = train(tiny_cfg, run_dir, progress=False)
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.pt", "config.json", "metrics.jsonl", "summary.json",
    ]  # fmt: skip

    # summary.json: exactly the contract keys, equal to the returned RunSummary
    stored = read_summary(run_dir)
    assert set(stored) == CONTRACT_SUMMARY_KEYS
    assert stored == summary.to_dict() and RunSummary.from_dict(stored) == summary
    counts = param_counts(tiny_cfg.model)
    n_tokens = 40 * 512
    assert summary.status == "complete" and summary.step == summary.n_steps == 40
    assert summary.n_tokens == n_tokens and summary.diverged_step is None
    assert summary.n_params_total == counts.total
    assert counts.total == sum(p.numel() for p in GPT(tiny_cfg.model).parameters())
    assert summary.flops == training_flops(tiny_cfg.model, n_tokens)
    assert summary.flops_6nd == 6 * counts.total * n_tokens
    assert summary.tokens_per_param == n_tokens / counts.total
    # it learned: well below the uniform-byte loss ln(256) = 5.55 nats
    assert summary.val_loss < math.log(256) - 1.5
    assert summary.val_bpb == pytest.approx(summary.val_loss / math.log(2))

    # config.json holds the config and the data provenance
    doc = rundir.read_config(run_dir)
    assert doc["config"] == tiny_cfg.to_dict() and doc["run_name"] == "tiny"
    assert doc["data"]["source"] == "text" and doc["data"]["n_files_val"] >= 1

    # metrics.jsonl: a row every 5 steps, evaluation at 20 and 40 (eval_interval 20 steps)
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == list(range(5, 41, 5))
    for r in rows:
        evaluated = r["step"] in (20, 40)
        assert set(r) == ROW_KEYS | ({"val/loss", "val/bpb"} if evaluated else set())
        assert r["tokens"] == r["step"] * 512
        assert r["flops"] == training_flops(tiny_cfg.model, r["tokens"])
        assert r["lr"] == lr_at(r["step"] - 1, 40, tiny_cfg.optim)
    assert rows[-1]["lr"] == pytest.approx(0.1 * tiny_cfg.optim.lr)  # cosine ends at min_lr
    assert rows[-1]["val/loss"] == summary.val_loss and rows[-1]["train/loss"] == summary.train_loss
    assert rows[0]["train/loss"] > rows[-1]["train/loss"]
    ckpt = rundir.load_checkpoint(run_dir)
    assert ckpt["step"] == 40


def test_finished_run_is_returned_without_any_work(tiny_cfg, tmp_path):
    first = train(tiny_cfg, tmp_path / "r", progress=False)
    before = _snapshot(tmp_path / "r")
    again = train(tiny_cfg, tmp_path / "r", progress=False)
    assert again == first
    assert _snapshot(tmp_path / "r") == before  # no file rewritten or touched


def test_run_dir_with_a_different_config_is_refused_untouched(tiny_cfg, tmp_path):
    train(tiny_cfg, tmp_path / "r", progress=False)
    before = _snapshot(tmp_path / "r")
    other = tiny_cfg.replace(seed=1, optim=OptimConfig(lr=5e-3))
    with pytest.raises(ConfigError) as err:
        train(other, tmp_path / "r", progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "optim.lr" in msg and "seed" in msg
    assert _snapshot(tmp_path / "r") == before


def kill_9_after_checkpoint(proc, run_dir, min_step, pids, timeout=120):
    """SIGKILL ``pids()`` once ``run_dir`` has a checkpoint and rows up to ``min_step``.

    Returns the last logged step at the kill, or ``None`` if ``proc`` ended first.
    """
    killed_at = None
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            rows = read_metrics(run_dir)
            # kill once a checkpoint exists and rows were logged after it
            if (run_dir / "checkpoint.pt").exists() and rows and rows[-1]["step"] >= min_step:
                for pid in pids():
                    os.kill(pid, signal.SIGKILL)
                killed_at = rows[-1]["step"]
                break
            time.sleep(0.002)
    finally:
        proc.communicate(timeout=60)
    return killed_at


def test_resume_after_kill_9_equals_uninterrupted_run(make_cfg, tmp_path):
    cfg = make_cfg(
        n_tokens=512 * 300,
        log_interval_steps=1,
        checkpoint_interval_steps=20,
        eval_interval_tokens=512 * 50,
    )
    reference = train(cfg, tmp_path / "reference", progress=False)
    ref_rows = read_metrics(tmp_path / "reference")

    run_dir = tmp_path / "killed"
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    cmd = [sys.executable, "-m", "scaling.cli", "train", "--config", str(tmp_path / "cfg.json")]
    proc = subprocess.Popen([*cmd, "--run-dir", str(run_dir), "--no-progress"])
    killed_at = kill_9_after_checkpoint(proc, run_dir, min_step=25, pids=lambda: [proc.pid])
    assert killed_at is not None and proc.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists() and rundir.run_state(run_dir) == "incomplete"
    ckpt_step = rundir.load_checkpoint(run_dir)["step"]
    assert 20 <= ckpt_step < 300 and ckpt_step % 20 == 0

    resumed = train(cfg, run_dir, progress=False)
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == list(range(1, 301))  # no duplicated or missing rows
    assert _without_timing(rows) == _without_timing(ref_rows)  # every logged digit
    assert resumed.val_loss == reference.val_loss and resumed.train_loss == reference.train_loss
    assert resumed.step == 300 and resumed.status == "complete"


def test_killed_before_first_checkpoint_starts_over(tiny_cfg, tmp_path):
    ref = train(tiny_cfg, tmp_path / "ref", progress=False)
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    # a run that wrote config.json and two rows, then died before its first checkpoint
    for name in ("config.json", "metrics.jsonl"):
        (run_dir / name).write_bytes((tmp_path / "ref" / name).read_bytes())
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 45, "tra')  # torn row
    rundir.write_error(run_dir, "Traceback: killed\n")
    again = train(tiny_cfg, run_dir, progress=False)
    assert _without_timing(read_metrics(run_dir)) == _without_timing(read_metrics(tmp_path / "ref"))
    assert again.val_loss == ref.val_loss
    assert not (run_dir / "error.txt").exists()  # removed when the run started again


def test_killed_after_last_checkpoint_only_writes_the_summary(tiny_cfg, tmp_path):
    run_dir = tmp_path / "r"
    first = train(tiny_cfg, run_dir, progress=False)
    (run_dir / "summary.json").unlink()  # died between the final checkpoint and the summary
    metrics_before = (run_dir / "metrics.jsonl").read_bytes()
    again = train(tiny_cfg, run_dir, progress=False)
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics_before  # no step redone
    assert dataclasses.replace(again, wall_time_s=0, tokens_per_sec=0) == dataclasses.replace(
        first, wall_time_s=0, tokens_per_sec=0
    )


def test_resume_on_a_changed_corpus_is_refused(make_cfg, tiny_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in tiny_corpus.iterdir():
        (corpus / p.name).write_bytes(p.read_bytes())
    cfg = make_cfg(
        data=DataConfig(source="text", path=str(corpus), val_fraction=0.2, val_tokens=2048)
    )
    train(cfg, tmp_path / "r", progress=False)
    (tmp_path / "r" / "summary.json").unlink()
    with open(corpus / "csv.py", "a") as f:
        f.write("# edited\n")
    with pytest.raises(DataError) as err:
        train(cfg, tmp_path / "r", progress=False)
    assert "corpus changed" in str(err.value) and "\n" not in str(err.value)


def test_divergence_stops_the_run_and_is_recorded(make_cfg, tmp_path):
    # a real blow-up: AdamW at lr 1e10 without clipping overflows the attention logits
    cfg = make_cfg(optim=OptimConfig(lr=1e10, grad_clip=0.0))
    summary = train(cfg, tmp_path / "d", progress=False)
    assert summary.status == "diverged" and rundir.run_state(tmp_path / "d") == "diverged"
    assert summary.diverged_step is not None and 1 < summary.diverged_step <= 40
    assert summary.step == summary.diverged_step - 1
    assert summary.n_tokens == summary.step * 512
    stored = read_summary(tmp_path / "d")
    assert stored["status"] == "diverged" and stored["diverged_step"] == summary.diverged_step
    for r in read_metrics(tmp_path / "d"):  # rows before the blow-up are finite
        assert r["step"] < summary.diverged_step and math.isfinite(r["train/loss"])


def test_corrupt_checkpoint_is_reported_and_kept(tiny_cfg, tmp_path):
    run_dir = tmp_path / "r"
    train(tiny_cfg, run_dir, progress=False)
    (run_dir / "summary.json").unlink()
    (run_dir / "checkpoint.pt").write_bytes(b"truncated garbage")
    before = _snapshot(run_dir)
    with pytest.raises(CheckpointError) as err:
        train(tiny_cfg, run_dir, progress=False)
    assert str(run_dir / "checkpoint.pt") in str(err.value) and "\n" not in str(err.value)
    assert _snapshot(run_dir) == before  # the file is kept, nothing else changed


@pytest.mark.parametrize("problem", ["missing_path", "seq_len_too_long"])
def test_bad_data_fails_before_anything_is_written(make_cfg, tmp_path, problem):
    cfg = make_cfg()
    if problem == "missing_path":
        cfg = cfg.replace(data=DataConfig(source="text", path=str(tmp_path / "no-such-corpus")))
        field = "data.path"
    else:
        small = tmp_path / "small.txt"
        small.write_text("tiny corpus\n" * 200)  # 2400 bytes
        model = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=64, seq_len=1024)
        cfg = cfg.replace(
            model=model,
            data=DataConfig(source="text", path=str(small), val_tokens=1024),
            batch_size_tokens=1024,
            micro_batch_size=1,
            n_tokens=1024,
        )
        field = "seq_len"
    with pytest.raises(DataError) as err:
        train(cfg, tmp_path / "run", progress=False)
    assert field in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_micro_batch_size_only_changes_float_rounding(make_cfg, tmp_path):
    a = train(make_cfg(micro_batch_size=16), tmp_path / "a", progress=False)
    b = train(make_cfg(micro_batch_size=2), tmp_path / "b", progress=False)  # 8 accum steps
    rows_a, rows_b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert rows_a[0]["train/loss"] == pytest.approx(rows_b[0]["train/loss"], rel=1e-5)
    assert a.val_loss == pytest.approx(b.val_loss, rel=1e-3)


def test_token_files_train_and_report_no_bpb(make_cfg, tiny_corpus, tmp_path):
    rng = np.random.default_rng(0)
    text = np.frombuffer(b"".join(p.read_bytes() for p in sorted(tiny_corpus.iterdir())), np.uint8)
    ids = text.astype(np.uint16) + rng.integers(0, 2, size=text.size).astype(np.uint16) * 256
    ids[:-20000].tofile(tmp_path / "train.bin")  # 512-token vocabulary: byte + a random bit
    ids[-20000:].tofile(tmp_path / "val.bin")
    model = ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=128, seq_len=32, vocab_size=512)
    cfg = make_cfg(
        model=model, data=DataConfig(source="tokens", path=str(tmp_path), val_tokens=2048)
    )
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary.status == "complete" and summary.val_bpb is None
    assert summary.val_loss < math.log(512) - 1.0
    last = read_metrics(tmp_path / "run")[-1]
    assert last["val/bpb"] is None and last["val/loss"] == summary.val_loss


# -- the command line ---------------------------------------------------------------------------
def test_cli_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--config", "--run-dir", "--n-layers", "--d-model", "--n-heads", "--d-mlp", "--seq-len",
        "--vocab-size", "--n-tokens", "--batch-size-tokens", "--micro-batch-size", "--lr",
        "--schedule", "--warmup-fraction", "--seed", "--data-source", "--data-path",
        "--eval-interval-tokens", "--n-threads", "--device", "--compile", "--wandb-mode",
    ):  # fmt: skip
        assert flag in out


def test_cli_flags_override_the_config_file(tiny_cfg, tmp_path, capsys):
    (tmp_path / "cfg.json").write_text(tiny_cfg.to_json())
    rc = cli_main(
        ["train", "--config", str(tmp_path / "cfg.json"), "--run-dir", str(tmp_path / "r"),
         "--lr", "0.02", "--seed", "7", "--dry-run"]
    )  # fmt: skip
    assert rc == 0 and not (tmp_path / "r").exists()
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["optim"]["lr"] == 0.02 and resolved["seed"] == 7
    assert resolved["model"] == tiny_cfg.to_dict()["model"]
    # flags alone; d_mlp defaults to 4 * d_model
    rc = cli_main(
        ["train", "--run-dir", str(tmp_path / "r"), "--n-layers", "2", "--d-model", "48",
         "--n-heads", "3", "--dry-run"]
    )  # fmt: skip
    assert rc == 0 and json.loads(capsys.readouterr().out)["model"]["d_mlp"] == 192


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--n-layers", "2"], "--d-model"),
        (["--n-layers", "1", "--d-model", "30", "--n-heads", "4"], "--n-heads"),
        (["--n-layers", "1", "--d-model", "32", "--n-heads", "4", "--data-path", "/no/such"],
         "--data-path"),
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, needle):
    rc = cli_main(["train", "--run-dir", str(tmp_path / "r"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and needle in err


def test_wandb_offline_mirror_writes_under_run_dir(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    summary = train(tiny_cfg.replace(wandb_mode="offline"), tmp_path / "r", progress=False)
    assert summary.status == "complete"
    runs = list((tmp_path / "r" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    assert read_metrics(tmp_path / "r")[-1]["step"] == 40  # the JSONL record is unaffected


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_run(make_cfg, tmp_path):
    summary = train(make_cfg(device="cuda"), tmp_path / "g", progress=False)
    assert summary.status == "complete" and summary.val_loss < math.log(256) - 1.5
    compiled = train(make_cfg(device="cuda", compile=True), tmp_path / "c", progress=False)
    assert compiled.status == "complete"
    assert compiled.val_loss == pytest.approx(summary.val_loss, abs=0.05)  # bf16 rounding only
