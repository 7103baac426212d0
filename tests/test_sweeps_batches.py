"""Executors group same-shape runs into batches (``sweeps.batches``); real training throughout."""

from __future__ import annotations

import math

import pytest
from test_sweeps_launch import tiny_base

from scaling import rundir
from scaling.config import BranchFrom
from sweeps import batches
from sweeps.execute import run_group, run_lock
from sweeps.launch import LaunchError, launch
from sweeps.plan import plan
from sweeps.spec import GridSweep
from sweeps.status import sweep_status


def lr_seed_spec(corpus, name="lrseeds", widths=(32, 48), group_size=None):
    """Widths x two seeds x two LRs, 12 steps each: one class of four same-shape runs per width."""
    base = tiny_base(corpus, eval_every_steps=6, log_every_steps=2)
    return GridSweep(name=name, base=base, widths=widths, depths=(1,), d_head=16,
                     n_tokens=(256 * 12,), seeds=(0, 1), lr_multipliers=(0.5, 1.0),
                     group_size=group_size)  # fmt: skip


def test_group_runs_groups_same_shape_runs_only(tiny_corpus):
    runs = plan(lr_seed_spec(tiny_corpus))
    cfgs = [r.config for r in runs]
    assert len(cfgs) == 8
    groups = batches.group_runs(cfgs, 4)
    assert sorted(i for g in groups for i in g) == list(range(8))
    assert sorted(len(g) for g in groups) == [4, 4]
    for g in groups:
        assert len({cfgs[i].model.d_model for i in g}) == 1  # one shape per batch
        assert len({(cfgs[i].seed, cfgs[i].optim.lr) for i in g}) == 4
    assert sorted(len(g) for g in batches.group_runs(cfgs, 3)) == [1, 1, 3, 3]
    assert batches.group_runs(cfgs, 1) == [[i] for i in range(8)]
    # on CPU the default is to train alone (batching measured no gain there)
    assert batches.default_group_size(cfgs[0].replace(device="cpu")) == 1
    assert batches.default_group_size(cfgs[0].replace(device="cuda")) == batches.CUDA_GROUP_SIZE
    # device "auto" on Slurm: the job's GPUs decide (--gpus-per-node), not the launching machine
    auto = cfgs[0].replace(device="auto")
    assert batches.default_group_size(auto, cuda=True) == batches.CUDA_GROUP_SIZE
    assert batches.default_group_size(auto, cuda=False) == 1
    branch = cfgs[0].replace(branch_from=BranchFrom(run_name="trunk", step=2))
    assert batches.group_runs([branch, cfgs[1]], 4) == [[0], [1]]  # branches wait alone


def test_debug_launch_trains_batches_equal_to_runs_alone_and_status_names_them(
    tiny_corpus, tmp_path
):
    spec = lr_seed_spec(tiny_corpus)
    alone = launch(spec, tmp_path / "alone", executor="debug", progress=False, group_size=1)
    assert alone.ok and not (tmp_path / "alone" / spec.name / batches.BATCHES_JSONL).exists()
    # one run is being trained by another process: the launch leaves it alone
    runs = plan(spec)
    held_name = runs[1].run_name
    with run_lock(tmp_path / "b" / spec.name / held_name) as held:
        assert held
        first = launch(spec, tmp_path / "b", executor="debug", progress=False, group_size=4)
    assert first.counts == {"complete": 7, "running": 1}
    assert rundir.run_state(tmp_path / "b" / spec.name / held_name) == "pending"
    statuses = {s.run_name: s for s in sweep_status(spec, tmp_path / "b")}
    assert {s.batch for s in statuses.values()} == {"batch 1 (3 runs)", "batch 2 (4 runs)", None}
    assert statuses[held_name].state == "pending" and statuses[held_name].batch is None
    # the relaunch trains the one left (alone: its batch partners are finished)
    again = launch(spec, tmp_path / "b", executor="debug", progress=False, group_size=4)
    assert again.ok and again.counts == {"skipped": 7, "complete": 1}
    # a batch whose member's lock is taken after the launch planned it: that member is left
    # to its holder, the others train
    pair = [tmp_path / "g" / "x", tmp_path / "g" / "y"]
    with run_lock(pair[1]) as held:
        assert held
        out = run_group([runs[0].config.to_dict(), runs[1].config.to_dict()], pair)
    assert [o.status for o in out] == ["complete", "running"]
    assert rundir.read_summary(pair[1]) is None
    for run in plan(spec):
        a = rundir.read_metrics(tmp_path / "alone" / spec.name / run.run_name)
        b = rundir.read_metrics(tmp_path / "b" / spec.name / run.run_name)
        assert [r["step"] for r in a] == [r["step"] for r in b]
        for ra, rb in zip(a, b, strict=True):
            for key in ("train/loss", "val/loss"):
                if key in ra:
                    assert math.isclose(ra[key], rb[key], rel_tol=1e-5), (run.run_name, key)


def test_local_launch_runs_a_batch_in_one_process(tiny_corpus, tmp_path):
    spec = lr_seed_spec(tiny_corpus, name="local")
    result = launch(spec, tmp_path, executor="local", parallel=2, progress=False, group_size=4)
    assert result.ok and result.counts == {"complete": 8}
    logs = sorted(p.name for p in (tmp_path / spec.name / ".logs").iterdir())
    assert len(logs) == 2  # two processes, one per batch
    again = launch(spec, tmp_path, executor="local", parallel=2, progress=False, group_size=4)
    assert again.n_submitted == 0 and again.counts == {"skipped": 8}


def test_fresh_interpreter_trains_a_batch_as_the_warm_worker_does(tiny_corpus, tmp_path):
    # local_start="fresh": a batch is `python -m sweeps.execute DIR DIR ...` with the configs'
    # JSON list on stdin, in a new interpreter (a worker without the warm server)
    spec = lr_seed_spec(tiny_corpus, name="fresh", widths=(32,))
    fresh = launch(spec, tmp_path / "fresh", executor="local", progress=False, group_size=4,
                   local_start="fresh")  # fmt: skip
    assert fresh.ok and fresh.counts == {"complete": 4}, [o.error for o in fresh.outcomes]
    assert len(list((tmp_path / "fresh" / spec.name / ".logs").iterdir())) == 1  # one process
    statuses = sweep_status(spec, tmp_path / "fresh")
    assert {(s.state, s.batch) for s in statuses} == {("complete", "batch 1 (4 runs)")}
    # the same batch trained in this process: the same rows, to the bit
    assert launch(spec, tmp_path / "warm", executor="debug", progress=False, group_size=4).ok
    for run in plan(spec):
        curves = [
            [(r["step"], r["train/loss"]) for r in rundir.read_metrics(d / run.run_name)]
            for d in (tmp_path / "fresh" / spec.name, tmp_path / "warm" / spec.name)
        ]
        assert curves[0] == curves[1]
    again = launch(spec, tmp_path / "fresh", executor="local", progress=False, group_size=4,
                   local_start="fresh")  # fmt: skip
    assert again.n_submitted == 0 and again.counts == {"skipped": 4}


def test_a_batch_that_cannot_start_trains_each_run_alone(make_cfg, tmp_path):
    # one member's checkpoint is corrupt: the batch refuses to start, so each run trains alone;
    # the bad one records its own error.txt (its file kept), the other completes
    from scaling.train import train

    good, bad = make_cfg(n_tokens=512 * 4), make_cfg(n_tokens=512 * 4, seed=1)
    train(bad, tmp_path / "bad", progress=False)
    (tmp_path / "bad" / "summary.json").unlink()
    (tmp_path / "bad" / "checkpoint.pt").write_bytes(b"garbage")
    out = run_group([good.to_dict(), bad.to_dict()], [tmp_path / "good", tmp_path / "bad"])
    assert [o.status for o in out] == ["complete", "failed"]
    assert "checkpoint" in out[1].error and (tmp_path / "bad" / "error.txt").exists()
    assert (tmp_path / "bad" / "checkpoint.pt").read_bytes() == b"garbage"


SWEEP_DEF = '''
from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from sweeps.spec import GridSweep


def sweep():
    base = RunConfig(
        model=ModelConfig(n_layers=1, d_model=32, n_heads=2, d_mlp=128, seq_len=32),
        data=DataConfig(source="text", path={corpus!r}, val_fraction=0.2, val_tokens=1024),
        optim=OptimConfig(lr=1e-2), batch_size_tokens=256, micro_batch_size=8, device="cpu",
    )
    return GridSweep(name="grouped", base=base, widths=(32, 48), depths=(1,), d_head=16,
                     n_tokens=(256 * 12,), seeds=(0, 1), lr_multipliers=(0.5, 1.0),
                     group_size={group_size!r})
'''


def test_group_size_from_the_flag_else_the_spec_else_the_device_and_bad_values_refused(
    tiny_corpus, tmp_path, capsys
):
    from test_cli import one_line_error, run_cli

    def plan_cli(group_size, *flags):
        path = tmp_path / f"grouped_{group_size}.py"
        path.write_text(SWEEP_DEF.format(corpus=str(tiny_corpus), group_size=group_size))
        return run_cli(["sweep", "plan", path, "--no-measure", *flags], capsys)

    # two shapes x four same-shape runs: the spec's 2 gives four batches, the flag overrides it
    rc, out, _ = plan_cli(2)
    assert rc == 0 and "batches: 4 of same-shape runs (8 runs; column batch), 0 runs alone" in out
    column = [ln.split()[-1] for ln in out.splitlines() if ln.startswith("L1-")]
    assert sorted(column) == ["b1", "b1", "b2", "b2", "b3", "b3", "b4", "b4"]
    rc, out, _ = plan_cli(2, "--group-size", "4")
    assert rc == 0 and "batches: 2 of same-shape runs (8 runs" in out
    rc, out, _ = plan_cli(None)  # CPU: the default trains every run alone
    assert rc == 0 and "batches:" not in out
    rc, out, _ = plan_cli(None, "--group-size", "3")
    assert rc == 0 and "batches: 2 of same-shape runs (6 runs; column batch), 2 runs alone" in out
    # bad values: one line naming the field, before any run is measured or written
    for value, flags, needle in [
        (2, ("--group-size", "0"), "--group-size must be a positive integer"),
        (2, ("--group-size", "-3"), "--group-size must be a positive integer"),
        (2, ("--group-size", "two"), "--group-size: invalid int value: 'two'"),
        (0, (), "GridSweep.group_size must be a positive integer"),
        (-1, (), "GridSweep.group_size must be a positive integer"),
        (1.5, (), "GridSweep.group_size must be a positive integer"),
        ("4", (), "GridSweep.group_size must be a positive integer"),
        (True, (), "GridSweep.group_size must be a positive integer"),
    ]:
        assert needle in one_line_error(*plan_cli(value, *flags)[::2])
    spec = lr_seed_spec(tiny_corpus, group_size=2)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(LaunchError, match="--group-size must be a positive integer"):
            launch(spec, tmp_path / "runs", executor="debug", progress=False, group_size=bad)
    # a batch is one process: refused with data parallelism, naming where the size came from
    with pytest.raises(LaunchError, match="lrseeds's group_size = 2 with 2 processes per run"):
        launch(spec, tmp_path / "runs", executor="slurm", tasks_per_node=2, progress=False)
    with pytest.raises(LaunchError, match="--group-size = 4 with 2 processes per run"):
        launch(spec, tmp_path / "runs", executor="slurm", nodes=2, group_size=4, progress=False)
    assert not (tmp_path / "runs").exists()  # nothing written for bad input
