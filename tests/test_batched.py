"""Batched training (``scaling.batched``): K same-shape runs in one stacked model, real training.

Every member must end as the same run trained alone by ``train()``: the same rows, every logged
loss within ``REL_TOL`` (fp32 CPU; only the batched kernels' summation order differs), the same
files. Divergence stops one member; a real ``kill -9`` and a relaunch resume every member to the
uninterrupted curve; groups that differ in shape are refused before anything is written.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time

import pytest
import torch

from scaling import rundir
from scaling.batched import check_group, group_key, group_mismatches, train_batched
from scaling.config import ConfigError, ModelConfig, OptimConfig
from scaling.rundir import read_metrics, read_summary
from scaling.train import train

#: the stated tolerance: relative difference of every logged loss from the run trained alone
REL_TOL = 1e-5
_CLOCK = ("tokens_per_sec", "elapsed_s")  # wall-clock columns differ by design


def _members(make_cfg, model):
    # a seed, an LR and a schedule/length variant of one shape; the third finishes first
    base = make_cfg(model=model, n_tokens=512 * 12, log_interval_steps=1,
                    eval_interval_tokens=512 * 6, checkpoint_interval_steps=4)  # fmt: skip
    return [
        base,
        base.replace(seed=1, optim=OptimConfig(lr=3e-3)),
        base.replace(seed=2, n_tokens=512 * 8, optim=OptimConfig(lr=2e-2, schedule="wsd")),
    ]


def _assert_same_curve(alone, batched):
    assert [r["step"] for r in alone] == [r["step"] for r in batched]
    for a, b in zip(alone, batched, strict=True):
        assert set(a) == set(b)
        for key in ("step", "tokens", "flops", "lr"):
            assert a[key] == b[key]
        for key in ("train/loss", "val/loss", "grad_norm"):
            if key in a:
                assert math.isclose(a[key], b[key], rel_tol=REL_TOL), (key, a, b)


@pytest.mark.parametrize(
    "family,param",
    [("gpt2", "sp"), ("llama", "sp"), ("gpt2", "mup"), ("llama", "mup")],
)
def test_batched_members_equal_runs_trained_alone(make_cfg, tmp_path, family, param):
    extra = {"parametrization": "mup", "base_d_model": 16} if param == "mup" else {}
    model = ModelConfig(n_layers=1, d_model=32, n_heads=4, seq_len=32, family=family, **extra)
    cfgs = _members(make_cfg, model)
    alone = [train(c, tmp_path / f"alone{i}", progress=False) for i, c in enumerate(cfgs)]
    dirs = [tmp_path / "sweep" / f"run{i}" for i in range(len(cfgs))]
    together = train_batched(cfgs, dirs, progress=False)
    for i, (a, b) in enumerate(zip(alone, together, strict=True)):
        assert b.status == "complete" and b.step == cfgs[i].n_steps
        _assert_same_curve(read_metrics(tmp_path / f"alone{i}"), read_metrics(dirs[i]))
        # the same files, and summary.json equal but for the clock
        names = {p.name for p in (tmp_path / f"alone{i}").iterdir()}
        assert {p.name for p in dirs[i].iterdir()} == names
        sa, sb = read_summary(tmp_path / f"alone{i}"), read_summary(dirs[i])
        for key in sa:
            if key in ("wall_time_s", "tokens_per_sec"):
                continue
            if isinstance(sa[key], float):
                assert math.isclose(sa[key], sb[key], rel_tol=REL_TOL), key
            else:
                assert sa[key] == sb[key], key
        assert a.val_loss is not None and math.isclose(a.val_loss, b.val_loss, rel_tol=REL_TOL)
        # the checkpoint holds this member's tensors only, in train()'s format
        ca, cb = rundir.load_checkpoint(tmp_path / f"alone{i}"), rundir.load_checkpoint(dirs[i])
        assert set(ca) == set(cb) and ca["step"] == cb["step"]
        for k, v in ca["model"].items():
            w = cb["model"][k]
            assert (
                w.shape == v.shape and w.untyped_storage().nbytes() == v.untyped_storage().nbytes()
            )
            assert torch.allclose(v, w, rtol=1e-4, atol=1e-6)
    # the members did differ: batching did not make them one run
    assert len({s.train_loss for s in together}) == 3


def test_a_diverging_member_stops_alone(make_cfg, tmp_path):
    model = ModelConfig(n_layers=1, d_model=32, n_heads=4, seq_len=32)
    good = make_cfg(model=model, n_tokens=512 * 10, log_interval_steps=1)
    # a real blow-up: AdamW at lr 1e10 without clipping (as tests/test_train.py)
    bad = good.replace(seed=1, optim=OptimConfig(lr=1e10, grad_clip=0.0))
    dirs = [tmp_path / "b" / "good", tmp_path / "b" / "bad"]
    s_good, s_bad = train_batched([good, bad], dirs, progress=False)
    alone = train(bad, tmp_path / "bad_alone", progress=False)
    assert s_bad.status == "diverged" == alone.status and rundir.run_state(dirs[1]) == "diverged"
    assert s_bad.diverged_step == alone.diverged_step and s_bad.step == alone.step
    assert s_good.status == "complete" and s_good.step == good.n_steps
    train(good, tmp_path / "good_alone", progress=False)
    _assert_same_curve(read_metrics(tmp_path / "good_alone"), read_metrics(dirs[0]))
    for r in read_metrics(dirs[1]):
        assert r["step"] < s_bad.diverged_step and math.isfinite(r["train/loss"])


_CHILD = """
import sys
from scaling.config import RunConfig
from scaling.batched import train_batched
paths = sys.argv[1:]
cfgs = [RunConfig.from_json_file(p) for p in paths[0::2]]
train_batched(cfgs, paths[1::2], progress=False)
"""


def test_kill_9_and_relaunch_resume_every_member_to_the_uninterrupted_curve(make_cfg, tmp_path):
    from test_train import kill_9_after_checkpoint

    model = ModelConfig(n_layers=1, d_model=32, n_heads=4, seq_len=32)
    base = make_cfg(model=model, n_tokens=512 * 60, log_interval_steps=1,
                    checkpoint_interval_steps=5, eval_interval_tokens=512 * 20)  # fmt: skip
    cfgs = [base, base.replace(seed=1, n_tokens=512 * 45, optim=OptimConfig(lr=4e-3))]
    ref_dirs = [tmp_path / "ref" / "a", tmp_path / "ref" / "b"]
    reference = train_batched(cfgs, ref_dirs, progress=False)

    dirs = [tmp_path / "killed" / "a", tmp_path / "killed" / "b"]
    args = []
    for i, cfg in enumerate(cfgs):
        (tmp_path / f"cfg{i}.json").write_text(cfg.to_json())
        args += [str(tmp_path / f"cfg{i}.json"), str(dirs[i])]
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, *args])
    killed_at = kill_9_after_checkpoint(proc, dirs[1], min_step=8, pids=lambda: [proc.pid])
    assert killed_at is not None and proc.returncode == -signal.SIGKILL
    for d in dirs:
        assert rundir.run_state(d) == "incomplete"
    resumed = train_batched(cfgs, dirs, progress=False)
    for i in range(2):
        strip = [{k: v for k, v in r.items() if k not in _CLOCK} for r in read_metrics(dirs[i])]
        ref = [{k: v for k, v in r.items() if k not in _CLOCK} for r in read_metrics(ref_dirs[i])]
        assert strip == ref and resumed[i].val_loss == reference[i].val_loss
        assert resumed[i].step == cfgs[i].n_steps
    # a finished batch is returned as it is, with no work
    again = train_batched(cfgs, dirs, progress=False)
    assert [s.to_dict() for s in again] == [s.to_dict() for s in resumed]


def test_groups_that_differ_in_shape_are_refused_before_anything_is_written(make_cfg, tmp_path):
    base = make_cfg()
    ok = [base, base.replace(seed=3, n_tokens=512 * 7, optim=OptimConfig(lr=1e-4))]
    check_group(ok, [tmp_path / "x", tmp_path / "y"])
    assert group_mismatches(ok) == [] and group_key(ok[0]) == group_key(ok[1])
    wider = base.model.__class__(**{**base.model.__dict__, "d_model": 64, "d_mlp": 128})
    refused = {
        "model.d_model": base.replace(model=wider),
        "batch_size_tokens": base.replace(batch_size_tokens=1024),
        "micro_batch_size": base.replace(micro_batch_size=4),
        "model.family": base.replace(model=ModelConfig(n_layers=1, d_model=32, n_heads=4,
                                                       d_mlp=128, seq_len=32, family="llama")),
        "model.parametrization": base.replace(model=ModelConfig(
            n_layers=1, d_model=32, n_heads=4, d_mlp=128, seq_len=32, parametrization="mup",
            base_d_model=16)),
        "data.val_tokens": base.replace(data=base.data.__class__(
            **{**base.data.__dict__, "val_tokens": 1024})),
    }  # fmt: skip
    for field, other in refused.items():
        assert group_key(other) != group_key(base)
        dirs = [tmp_path / field / "a", tmp_path / field / "b"]
        with pytest.raises(ConfigError) as err:
            train_batched([base, other], dirs, progress=False)
        assert field in str(err.value) and "\n" not in str(err.value)
        assert not (tmp_path / field).exists()  # refused before anything was written
    with pytest.raises(ConfigError, match="appears twice"):
        train_batched(ok, [tmp_path / "same", tmp_path / "same"], progress=False)
    dropout = ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=128, seq_len=32, dropout=0.1)
    with pytest.raises(ConfigError, match="model.dropout"):
        train_batched([base.replace(model=dropout)], [tmp_path / "d"], progress=False)
    assert not (tmp_path / "d").exists()


def test_batched_branches_start_from_their_trunk_checkpoints(make_cfg, tmp_path):
    # WSD branches from steps 8 and 16 of one trunk: the members start at different steps
    import dataclasses

    from test_wsd import _trunk_and_branch

    from scaling.config import BranchFrom

    trunk, late = _trunk_and_branch(make_cfg(log_interval_steps=2), s=16, n=20)
    early = late.replace(
        n_tokens=late.batch_size_tokens * 12,
        optim=dataclasses.replace(late.optim, warmup_fraction=2.5 / 12),
        branch_from=BranchFrom("trunk", 8),
    )
    train(trunk.replace(keep_checkpoint_steps=(8, 16)), tmp_path / "trunk", progress=False)
    together = train_batched([early, late], [tmp_path / "b0", tmp_path / "b1"], progress=False)
    for i, cfg in enumerate([early, late]):
        alone = train(cfg, tmp_path / f"a{i}", progress=False)
        assert together[i].status == "complete" and together[i].parent_step == alone.parent_step
        assert (
            rundir.read_config(tmp_path / f"b{i}")["parent"]
            == rundir.read_config(tmp_path / f"a{i}")["parent"]
        )
        _assert_same_curve(read_metrics(tmp_path / f"a{i}"), read_metrics(tmp_path / f"b{i}"))


def _wandb_records(run_dir):
    """The records of ``run_dir``'s one offline wandb run, read from its ``.wandb`` file.

    The file is wandb's transaction log (LevelDB's log format: a 7-byte header ``:W&B``, magic
    0xBEE1, version 0; then 32 KiB blocks of records, each a 7-byte header: CRC-32, length,
    type 1 full / 2 first / 3 middle / 4 last) of ``wandb_internal_pb2.Record`` messages.
    """
    (run,) = (run_dir / "wandb").glob("offline-run-*")
    (path,) = run.glob("*.wandb")
    # wandb's service may still be flushing the file when finish() returns: wait for the
    # run's exit record (the last one wandb writes), 30 s at most
    deadline = time.monotonic() + 30
    while True:
        records = _read_wandb_log(path.read_bytes())
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return run, records
        assert time.monotonic() < deadline, f"{path} has no exit record after 30 s"
        time.sleep(0.2)


def _read_wandb_log(data: bytes) -> list:
    import struct

    from wandb.proto import wandb_internal_pb2

    assert data[:7] == b":W&B\xe1\xbe\x00", data[:7]
    records, chunk, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if pos + 7 + length > len(data):  # a record still being written
            break
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(chunk)
            records.append(rec)
            chunk = b""
    return records


def test_each_member_mirrors_to_its_own_offline_wandb_run(make_cfg, tmp_path, monkeypatch):
    # real wandb (offline): K members in one process are K wandb runs, each with its own name,
    # id, config and rows, the same as the run trained alone would have
    import json

    from scaling.loggers import wandb_run_id

    monkeypatch.setenv("WANDB_SILENT", "true")
    base = make_cfg(n_tokens=512 * 6, log_interval_steps=2, wandb_mode="offline",
                    sweep_name="wb")  # fmt: skip
    cfgs = [base, base.replace(seed=1, optim=OptimConfig(lr=3e-3))]
    dirs = [tmp_path / "run_a", tmp_path / "run_b"]
    summaries = train_batched(cfgs, dirs, progress=False)
    assert [s.status for s in summaries] == ["complete", "complete"]
    for cfg, run_dir in zip(cfgs, dirs, strict=True):
        run, records = _wandb_records(run_dir)
        assert run.name.endswith(wandb_run_id(run_dir.name, "wb"))  # its own deterministic id
        headers = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert len(headers) == 1, [r.WhichOneof("record_type") for r in records]
        header = headers[0]
        assert header.display_name == run_dir.name and header.run_group == "wb"
        config = {i.key: json.loads(i.value_json) for i in header.config.update}
        assert config["seed"] == cfg.seed and config["optim"]["lr"] == cfg.optim.lr
        history = [
            {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            for r in records
            if r.WhichOneof("record_type") == "history"
        ]
        rows = read_metrics(run_dir)  # the mirror holds exactly this member's rows
        assert [h["_step"] for h in history] == [r["step"] for r in rows]
        assert [h["train/loss"] for h in history] == [r["train/loss"] for r in rows]
    # the two members' rows differ: no member mirrored the other's
    assert read_metrics(dirs[0])[-1]["train/loss"] != read_metrics(dirs[1])[-1]["train/loss"]
