import json
import subprocess
import sys

import pytest
import torch

from scaling import rundir
from scaling.config import ConfigError, ModelConfig, OptimConfig, RunConfig
from scaling.parametrization import describe
from scaling.rundir import (
    CHECKPOINT,
    CONFIG,
    ERROR,
    METRICS,
    SUMMARY,
    CheckpointError,
    check_config,
    last_step,
    load_checkpoint,
    read_config,
    read_metrics,
    read_run_config,
    read_summary,
    run_state,
    save_checkpoint,
    truncate_metrics,
    write_config,
    write_error,
    write_summary,
)

CFG = RunConfig(model=ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=64, seq_len=16))
DATA = {
    "source": "stdlib",
    "sha256": "0" * 64,
    "train_bytes": 10,
    "val_bytes": 2,
    "n_train_tokens": 10,
    "n_val_tokens": 2,
    "n_files_train": 1,
    "n_files_val": 1,
}


def test_file_names_are_the_contract():
    assert (CONFIG, METRICS, CHECKPOINT, SUMMARY, ERROR) == (
        "config.json",
        "metrics.jsonl",
        "checkpoint.pt",
        "summary.json",
        "error.txt",
    )


def test_rundir_does_not_import_torch():
    code = "import sys, scaling.rundir; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_json_round_trip_and_provenance(tmp_path):
    write_config(tmp_path / "r", CFG, "r", DATA, parametrization=describe(CFG))
    doc = read_config(tmp_path / "r")
    assert set(doc) == {"config", "run_name", "provenance", "data", "parametrization"}
    assert doc["parametrization"]["name"] == "sp"
    assert doc["run_name"] == "r" and doc["data"] == DATA
    assert set(doc["provenance"]) == {
        "scaling_version",
        "torch_version",
        "python_version",
        "git_sha",
        "created_at",
    }
    assert doc["provenance"]["torch_version"] == torch.__version__
    assert read_run_config(tmp_path / "r") == CFG
    assert check_config(tmp_path / "r", CFG) is True
    assert check_config(tmp_path / "other", CFG) is False


def test_different_config_is_refused_naming_fields(tmp_path):
    write_config(tmp_path, CFG, "r", DATA)
    other = CFG.replace(seed=3, optim=OptimConfig(lr=2e-3))
    with pytest.raises(ConfigError) as err:
        check_config(tmp_path, other)
    msg = str(err.value)
    assert "\n" not in msg and "optim.lr" in msg and "seed" in msg and "model" not in msg


def test_run_state_lifecycle(tmp_path):
    d = tmp_path / "run"
    assert run_state(d) == "pending" and last_step(d) is None
    write_config(d, CFG, "run", DATA)
    assert run_state(d) == "incomplete"
    (d / METRICS).write_text('{"step": 10}\n{"step": 20}\n')
    assert last_step(d) == 20
    write_error(d, "Traceback ...\nRuntimeError: boom\n")
    assert run_state(d) == "failed" and (d / ERROR).read_text().endswith("boom\n")
    write_summary(d, {"status": "complete", "step": 30})
    assert run_state(d) == "complete" and last_step(d) == 30
    assert read_summary(d) == {"status": "complete", "step": 30}
    write_summary(d, {"status": "diverged", "step": 7})
    assert run_state(d) == "diverged"
    assert not list(d.glob("*.tmp"))  # atomic writes leave no temp files


def test_read_metrics_tolerates_a_torn_last_line(tmp_path):
    rows = [{"step": 1, "train/loss": 5.0}, {"step": 2, "train/loss": 4.0}]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / METRICS).write_text(text + '{"step": 3, "train/lo')
    assert read_metrics(tmp_path) == rows
    (tmp_path / METRICS).write_text('{"step": 1}\n{"ste\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(tmp_path)
    assert read_metrics(tmp_path / "missing") == []


def test_truncate_metrics(tmp_path):
    (tmp_path / METRICS).write_text('{"step": 1}\n{"step": 2}\n')
    truncate_metrics(tmp_path, len('{"step": 1}\n'))
    assert read_metrics(tmp_path) == [{"step": 1}]
    assert rundir.metrics_size(tmp_path) == len('{"step": 1}\n')


def test_checkpoint_round_trip_weights_only(tmp_path):
    state = {"step": 5, "model": {"w": torch.arange(4.0)}, "rng_cpu": torch.get_rng_state()}
    save_checkpoint(tmp_path, state)
    loaded = load_checkpoint(tmp_path)
    assert loaded["step"] == 5 and torch.equal(loaded["model"]["w"], torch.arange(4.0))
    assert torch.equal(loaded["rng_cpu"], state["rng_cpu"])
    assert not (tmp_path / (CHECKPOINT + ".tmp")).exists()
    assert load_checkpoint(tmp_path / "none") is None


def test_corrupt_checkpoint_is_a_clear_error_and_kept(tmp_path):
    (tmp_path / CHECKPOINT).write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path)
    assert str(tmp_path / CHECKPOINT) in str(err.value) and "\n" not in str(err.value)
    assert (tmp_path / CHECKPOINT).read_bytes() == b"PK\x03\x04 this is not a checkpoint"
