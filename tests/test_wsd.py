"""WSD trunks and cooldown branches: training, lineage checks, sweep expansion, launch, kill -9."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_sweeps_launch import curve, tiny_base

from scaling import rundir
from scaling.cli import main
from scaling.config import BranchFrom, ConfigError, OptimConfig, RunConfig
from scaling.counting import training_flops
from scaling.optim import lr_at, warmup_steps
from scaling.train import train
from sweeps.branching import BranchingError, WsdBranches, check_lineage
from sweeps.execute import lock_held
from sweeps.launch import LaunchError, launch
from sweeps.plan import plan, plan_totals
from sweeps.registry import load_sweep
from sweeps.spec import Candidate, GridSweep, LadderSweep, PlanError, run_name
from sweeps.status import sweep_status


def _trunk_and_branch(cfg: RunConfig, s: int, n: int, w: int = 2) -> tuple[RunConfig, RunConfig]:
    trunk = cfg.replace(
        n_tokens=cfg.batch_size_tokens * s,
        optim=dataclasses.replace(cfg.optim, schedule="constant", warmup_fraction=(w + 0.5) / s),
        keep_checkpoint_steps=(s // 2, s),
    )
    branch = cfg.replace(
        n_tokens=cfg.batch_size_tokens * n,
        optim=dataclasses.replace(
            cfg.optim,
            schedule="wsd",
            decay_fraction=0.2,
            decay_shape="1-sqrt",
            warmup_fraction=(w + 0.5) / n,
        ),
        branch_from=BranchFrom("trunk", s),
    )
    return trunk, branch


def test_branch_is_the_wsd_run_trained_alone(tmp_path, make_cfg):
    # trunk to step 32 (kept checkpoints at 16 and 32), branch decaying over steps 33..40: the
    # branch ends exactly where a 40-step WSD run trained from initialisation ends
    trunk, branch = _trunk_and_branch(make_cfg(log_interval_steps=4), s=32, n=40)
    train(trunk, tmp_path / "trunk", progress=False)
    assert {p.name for p in (tmp_path / "trunk").glob("checkpoint-step*.pt")} == {
        "checkpoint-step16.pt",
        "checkpoint-step32.pt",
    }
    summary = train(branch, tmp_path / "branch", progress=False)
    alone = train(branch.replace(branch_from=None), tmp_path / "alone", progress=False)
    assert summary.val_loss == alone.val_loss  # bit for bit on CPU
    rows, ref = rundir.read_metrics(tmp_path / "branch"), rundir.read_metrics(tmp_path / "alone")
    # steps and tokens count from the trunk's start; rows after the branch point line up
    assert rows[0]["step"] > 32
    keys = ("step", "tokens", "flops", "train/loss", "lr", "val/loss")
    assert [{k: r.get(k) for k in keys} for r in rows] == [
        {k: r.get(k) for k in keys} for r in ref if r["step"] > 32
    ]
    assert [r["lr"] for r in rows] == [lr_at(r["step"] - 1, 40, branch.optim) for r in rows]
    # lineage and FLOPs in the run directory
    parent = rundir.read_config(tmp_path / "branch")["parent"]
    assert parent["run_name"] == "trunk" and parent["step"] == 32
    assert parent["checkpoint_sha256"] == rundir.file_sha256(
        tmp_path / "trunk" / "checkpoint-step32.pt"
    )
    s = rundir.read_summary(tmp_path / "branch")
    b = branch.batch_size_tokens
    assert s["flops"] == training_flops(branch.model, 40 * b) == alone.flops
    assert s["flops_marginal"] == training_flops(branch.model, 8 * b)
    assert (s["role"], s["parent_run"], s["parent_step"]) == ("branch", "trunk", 32)
    assert rundir.read_summary(tmp_path / "trunk")["role"] == "trunk"
    assert alone.flops_marginal == alone.flops and alone.role == "run"


def test_branch_refuses_a_bad_parent_before_writing(tmp_path, make_cfg, tiny_corpus):
    trunk, branch = _trunk_and_branch(make_cfg(), s=16, n=20)
    # no parent yet
    with pytest.raises(ConfigError, match="has no config.json"):
        train(branch, tmp_path / "b0", progress=False)
    # a parent of another seed / shape / data: refused, nothing written in the branch dir
    for name, other in [
        ("seed", trunk.replace(seed=1)),
        ("model", trunk.replace(model=dataclasses.replace(trunk.model, d_model=64))),
        ("data", trunk.replace(data=dataclasses.replace(trunk.data, val_fraction=0.1))),
    ]:
        rundir.write_config(tmp_path / f"p-{name}", other, f"p-{name}", {})
        bad = branch.replace(branch_from=BranchFrom(f"p-{name}", 16))
        with pytest.raises(ConfigError, match=f"{name} differs"):
            train(bad, tmp_path / f"b-{name}", progress=False)
        assert not (tmp_path / f"b-{name}").exists()
    # the right parent, its kept checkpoint damaged: CheckpointError naming it; the file is kept
    train(trunk, tmp_path / "trunk", progress=False)
    kept = tmp_path / "trunk" / "checkpoint-step16.pt"
    data = kept.read_bytes()
    kept.write_bytes(data[: len(data) // 2])
    assert "corrupt" in rundir.checkpoint_problem(kept)
    with pytest.raises(rundir.CheckpointError, match="checkpoint-step16.pt is corrupt"):
        train(branch, tmp_path / "b1", progress=False)
    assert kept.read_bytes() == data[: len(data) // 2]
    # intact zip structure, damaged content: found when loaded (weights_only) and named
    kept.write_bytes(data.replace(b"model", b"mode!", 1))
    if rundir.checkpoint_problem(kept) is None:
        with pytest.raises(rundir.CheckpointError, match="checkpoint-step16.pt"):
            train(branch, tmp_path / "b2", progress=False)


def test_wsd_branches_bad_settings_and_lineage_errors(make_cfg):
    for f in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(BranchingError, match="decay_fraction must be in"):
            WsdBranches(decay_fraction=f)
    with pytest.raises(BranchingError, match="decay_shape"):
        WsdBranches(decay_shape="cosine")
    trunk, branch = _trunk_and_branch(make_cfg(), s=16, n=20)
    name = run_name(trunk)
    ok = branch.replace(branch_from=BranchFrom(name, 16))
    assert check_lineage([trunk, ok], run_name) == []
    cases = {
        "not in the sweep": branch.replace(branch_from=BranchFrom("nope", 16)),
        "beyond the parent's 16 steps": ok.replace(
            n_tokens=ok.batch_size_tokens * 30, branch_from=BranchFrom(name, 24)
        ),
        "keeps no checkpoint at step 12": ok.replace(branch_from=BranchFrom(name, 12)),
        "seed differs": ok.replace(seed=3),
        "model differs": ok.replace(model=dataclasses.replace(ok.model, n_layers=2)),
        "data differs": ok.replace(data=dataclasses.replace(ok.data, val_tokens=1024)),
        "warmup differs": ok.replace(optim=dataclasses.replace(ok.optim, warmup_fraction=4.5 / 20)),
    }
    for reason, bad in cases.items():
        problems = check_lineage([trunk, bad], run_name)
        assert len(problems) == 1 and reason in problems[0][1], (reason, problems)

    # the same errors at plan time, through a sweep, before anything runs
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class HandMade(GridSweep):
        runs: tuple = ()

        def candidates(self):
            return [Candidate(f"run {i}", c) for i, c in enumerate(self.runs)]

    spec = HandMade(
        name="hand",
        base=trunk,
        widths=(32,),
        depths=(1,),
        n_tokens=(512,),
        runs=(trunk, *cases.values()),
    )
    with pytest.raises(PlanError) as e:
        spec.expand()
    assert len(e.value.problems) == len(cases)
    assert "not in the sweep" in str(e.value)
    # a decay so long that the branch point falls inside warmup
    base = make_cfg(optim=OptimConfig(lr=1e-2, warmup_fraction=0.3))
    grid = GridSweep(
        name="g", base=base, widths=(32,), depths=(1,), d_head=16, n_tokens=(512 * 20,),
        branching=WsdBranches(decay_fraction=0.7),
    )  # fmt: skip
    with pytest.raises(PlanError, match="inside the warmup"):
        grid.expand()


def test_fixed_warmup_steps_is_shared_by_every_trunk_and_branch():
    """``WsdBranches(warmup_steps=W)``: every run warms up for exactly W steps, whatever the
    family's shortest point (the default takes 5% of it, so long branches got tiny warmups)."""
    smoke = load_sweep("smoke")
    for bad in (-1, 2.5, True, "10"):
        with pytest.raises(BranchingError, match="warmup_steps must be a whole number"):
            WsdBranches(warmup_steps=bad)
    assert "warmup_steps" not in WsdBranches().to_dict()  # earlier sweep.json files unchanged
    assert WsdBranches(warmup_steps=7).to_dict()["warmup_steps"] == 7
    default = plan(dataclasses.replace(smoke, branching=WsdBranches()))
    fixed = plan(dataclasses.replace(smoke, branching=WsdBranches(warmup_steps=7)))
    assert {r.run_name for r in fixed}.isdisjoint({r.run_name for r in default})
    ws = set()
    for r in fixed:
        cfg = r.config
        w = warmup_steps(cfg.n_steps, cfg.optim)
        ws.add(w)
        # the LR ramps linearly over exactly W steps: peak/W at step 0, the peak at step W-1
        assert lr_at(0, cfg.n_steps, cfg.optim) == pytest.approx(cfg.optim.lr / 7)
        assert lr_at(w - 2, cfg.n_steps, cfg.optim) < cfg.optim.lr
        assert lr_at(w - 1, cfg.n_steps, cfg.optim) == pytest.approx(cfg.optim.lr)
    assert ws == {7}
    # the default differs: 5% of each family's shortest point
    assert {warmup_steps(r.config.n_steps, r.config.optim) for r in default} != {7}
    # a warmup that reaches a branch point is refused at plan time, naming the point
    longest = max(r.config.n_steps for r in fixed)
    with pytest.raises(PlanError, match="inside the warmup"):
        plan(dataclasses.replace(smoke, branching=WsdBranches(warmup_steps=longest)))


def test_every_sweep_family_expands_into_trunks_and_branches(capsys):
    smoke = load_sweep("smoke")
    spec = dataclasses.replace(smoke, branching=WsdBranches(), lr_multipliers=(1.0, 2.0))
    runs = plan(spec)
    trunks = [r for r in runs if r.role == "trunk"]
    branches = [r for r in runs if r.role == "branch"]
    assert len(branches) == len(plan(dataclasses.replace(smoke, lr_multipliers=(1.0, 2.0))))
    # one trunk per (shape, LR, seed), listed first; every branch point is kept by its trunk
    assert len(trunks) == 2 * 2 and runs[: len(trunks)] == trunks
    by_name = {r.run_name: r for r in trunks}
    for r in branches:
        b = r.config.branch_from
        parent = by_name[b.run_name].config
        assert b.step in parent.keep_checkpoint_steps
        assert b.step == r.config.n_steps - max(1, int(0.2 * r.config.n_steps))
        assert (parent.model, parent.optim.lr, parent.seed) == (
            r.config.model,
            r.config.optim.lr,
            r.config.seed,
        )
        assert r.config.optim.schedule == "wsd" and r.config.optim.decay_shape == "1-sqrt"
    assert all(t.config.n_steps == max(t.config.keep_checkpoint_steps) for t in trunks)
    totals = plan_totals(runs)
    assert totals["flops_from_scratch"] == sum(r.flops for r in branches)
    assert totals["flops_total"] == sum(t.flops for t in trunks) + sum(
        r.flops_marginal for r in branches
    )
    assert totals["flops_total"] < totals["flops_from_scratch"]
    base = smoke.base
    grid = GridSweep(
        name="g", base=base, widths=(32,), depths=(1, 2), d_head=16,
        n_tokens=(256 * 50, 256 * 100, 256 * 200, 256 * 400), branching=WsdBranches(0.2, "linear"),
    )  # fmt: skip
    g = plan(grid)
    assert [r.role for r in g].count("trunk") == 2 and len(g) == 2 + 8
    t = plan_totals(g)  # 4 token counts a factor 2 apart, f = 0.2: (6.4 + 3) / 15 = 0.63
    assert 0.62 < t["flops_total"] / t["flops_from_scratch"] < 0.64
    ladder = LadderSweep(
        name="l", base=base, depths=(1,), multiples=(1, 2), branching=WsdBranches(),
        shape_rule=smoke.shape_rule, base_tokens_per_param=40,
    )  # fmt: skip
    assert [r.role for r in plan(ladder)] == ["trunk", "branch", "branch"]
    # the CLI lists trunks and branches and both totals
    assert main(["sweep", "plan", "smoke_wsd", "--no-measure", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["role"] for r in out["runs"]} == {"trunk", "branch"}
    assert out["totals"]["flops_total"] < out["totals"]["flops_from_scratch"]
    assert main(["sweep", "plan", "smoke_wsd", "--no-measure"]) == 0
    text = capsys.readouterr().out
    assert "trunk-" in text and "flops_from_scratch=" in text


def wsd_spec(corpus: Path, name: str = "wsd") -> GridSweep:
    """One shape, 3 token counts a factor 2 apart: one 192-step trunk, branches at 48, 96, 192."""
    base = tiny_base(corpus, eval_every_steps=24, log_every_steps=6)
    return GridSweep(
        name=name,
        base=base,
        widths=(32,),
        depths=(1,),
        d_head=16,
        n_tokens=(256 * 60, 256 * 120, 256 * 240),
        branching=WsdBranches(),
    )


def kill_trunk_after(trunk_dir: Path, cfg: RunConfig, kept_step: int, timeout_s: float = 120):
    """Train the trunk in a subprocess and SIGKILL it once ``checkpoint-step<kept_step>`` exists."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps.execute", str(trunk_dir)],
        stdin=subprocess.PIPE,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    proc.stdin.write(json.dumps(cfg.to_dict()).encode())
    proc.stdin.close()
    kept = rundir.step_checkpoint_path(trunk_dir, kept_step)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        rows = rundir.read_metrics(trunk_dir)
        if kept.exists() and rows and rows[-1]["step"] > kept_step:
            break
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.fail("the trunk finished before it could be killed; make wsd_spec longer")
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_branched_sweep_debug_local_kill9_relaunch(tmp_path, tiny_corpus):
    spec = wsd_spec(tiny_corpus)
    runs = plan(spec)
    (trunk,) = [r for r in runs if r.role == "trunk"]
    assert trunk.config.keep_checkpoint_steps == (48, 96, 192)
    # the reference: debug executor, uninterrupted
    ref = launch(spec, tmp_path / "ref", executor="debug", progress=False)
    assert ref.ok and ref.counts == {"complete": 4}
    # local executor: the trunk is killed -9 after its first branch point, then relaunched
    sweep_dir = tmp_path / "local" / "wsd"
    trunk_dir = sweep_dir / trunk.run_name
    kill_trunk_after(trunk_dir, trunk.config, kept_step=48)
    killed_at = rundir.last_step(trunk_dir)
    assert 48 < killed_at < 192 and not lock_held(trunk_dir)
    states = {s.run_name: s for s in sweep_status(spec, tmp_path / "local")}
    assert states[trunk.run_name].state == "incomplete"
    waiting = [s for s in states.values() if s.detail and s.detail.startswith("waits for")]
    # the branch at step 48 can start; the two others wait for their trunk checkpoints
    assert len(waiting) == 2 and all(s.state == "pending" for s in waiting)
    result = launch(spec, tmp_path / "local", executor="local", parallel=2, progress=False)
    assert result.ok and result.counts == {"complete": 4}, result.outcomes
    for r in runs:
        got = curve(sweep_dir / r.run_name)
        steps = [row["step"] for row in got]
        assert steps == sorted(set(steps))  # no duplicated rows
        assert got == curve(tmp_path / "ref" / "wsd" / r.run_name)  # = uninterrupted
        if r.role == "branch":
            assert steps[0] > r.config.branch_from.step and steps[-1] == r.config.n_steps
    # the branches only started once their trunk checkpoint existed (config.json after it)
    for r in runs:
        if r.role == "branch":
            kept = rundir.step_checkpoint_path(trunk_dir, r.config.branch_from.step)
            assert (sweep_dir / r.run_name / "config.json").stat().st_mtime >= kept.stat().st_mtime
    again = launch(spec, tmp_path / "local", executor="local", progress=False)
    assert again.n_submitted == 0
    # analysis: the branches are the points, each its own trunk's cluster; trunks are not points
    from analysis.load import load_runs, select_points

    table = load_runs(tmp_path / "local")
    points, _ = select_points(table)
    assert sorted(points["run_name"]) == sorted(r.run_name for r in runs if r.role == "branch")
    assert set(points["cluster"]) == {trunk.run_name}
    assert (points["flops"] > points["flops_marginal"]).all()
    # a deleted kept checkpoint: the launch refuses before any compute, status says blocked
    last = max(runs, key=lambda r: r.config.n_steps)
    kept = rundir.step_checkpoint_path(trunk_dir, last.config.branch_from.step)
    kept.unlink()
    import shutil

    shutil.rmtree(sweep_dir / last.run_name)
    with pytest.raises(LaunchError, match=f"{kept.name} is missing"):
        launch(spec, tmp_path / "local", executor="local", progress=False)
    assert not (sweep_dir / last.run_name).exists()
    states = {s.run_name: s for s in sweep_status(spec, tmp_path / "local")}
    assert states[last.run_name].state == "blocked" and "missing" in states[last.run_name].detail


def test_cluster_bootstrap_resamples_trunks_not_rows():
    from analysis.parametric import IdentifiabilityWarning, fit_parametric, resample_counts

    labels = np.array(["t0"] * 4 + ["t1"] * 4 + ["t2"] * 4)
    counts = resample_counts(12, 200, seed=1, clusters=labels)
    for c in counts:  # every row of a cluster enters equally often; 3 clusters drawn in all
        per = [set(c[labels == t]) for t in ("t0", "t1", "t2")]
        assert all(len(p) == 1 for p in per) and sum(p.pop() for p in per) == 3
    assert (counts.sum(axis=1) == 12).all() and (counts == 0).any()
    distinct = np.array([f"r{i}" for i in range(12)])  # one run per cluster: the row bootstrap
    assert np.array_equal(resample_counts(12, 50, 3, distinct), resample_counts(12, 50, 3))
    # branches of one trunk share its noise: L = law(N, D) * exp(trunk offset + small row noise).
    # Resampling rows treats 24 points as independent and gives too narrow a CI; resampling the
    # 6 trunks does not
    rng = np.random.default_rng(0)
    sizes = np.geomspace(2e5, 2e7, 6)
    N = np.repeat(sizes, 4)
    D = np.tile(np.geomspace(2e6, 1.6e7, 4), 6) * N / 1e6
    trunk = np.repeat(np.arange(6), 4)
    law = 1.7 + 400 / N**0.34 + 410 / D**0.28
    L = law * np.exp(rng.normal(0, 0.02, 6)[trunk] + rng.normal(0, 0.002, 24))
    common = dict(n_convention="total", flop_formula="6nd", n_bootstrap=40, seed=0, workers=1)
    rows = fit_parametric(N, D, L, **common)
    # 6 trunks of noisy offsets leave E loosely pinned: resampling them may flag it (expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        clustered = fit_parametric(N, D, L, clusters=trunk.astype(str), **common)
    assert clustered.meta["bootstrap_clusters"] == 6 and "6 clusters" in clustered.report()
    assert (clustered.alpha, clustered.beta) == (rows.alpha, rows.beta)  # same point estimate
    width = {k: f.ci["alpha"][1] - f.ci["alpha"][0] for k, f in (("r", rows), ("c", clustered))}
    assert width["c"] > 1.5 * width["r"], width
    with pytest.raises(ValueError, match="clusters must have one label per row"):
        fit_parametric(N, D, L, clusters=["a"], **common)


def test_local_order_starts_trunks_first_and_branches_when_their_checkpoint_exists(
    tmp_path, tiny_corpus
):
    from sweeps.readiness import blocked_branches, can_start, local_order, next_ready

    spec = wsd_spec(tiny_corpus)
    sweep_dir = tmp_path / "wsd"
    todo = [(r, sweep_dir / r.run_name) for r in plan(spec)]
    (trunk,) = [r for r in plan(spec) if r.role == "trunk"]
    pending = local_order(todo)
    assert todo[pending[0][0]][0].role == "trunk"
    # the trunk starts; no branch can start before its checkpoint exists (the core waits)
    assert next_ready(pending)[1][0] == trunk and next_ready(pending) is None
    assert len(pending) == 3 and blocked_branches(todo, pending, {0: None}) == []
    # the branch point of the shortest branch appears: exactly that branch becomes ready
    trunk_dir = sweep_dir / trunk.run_name
    trunk_dir.mkdir(parents=True)
    rundir.step_checkpoint_path(trunk_dir, 48).write_bytes(b"whole, written atomically")
    _, (run, run_dir) = next_ready(pending)
    assert run.config.branch_from.step == 48 and next_ready(pending) is None
    # the trunk ended (here: failed) without the other two checkpoints: those branches are
    # blocked, reported, and not started
    rundir.write_error(trunk_dir, "Traceback ...\nRuntimeError: boom\n")
    blocked = blocked_branches(todo, pending, {})
    assert len(blocked) == 2 and pending == []
    assert all("without checkpoint-step" in reason for _, reason in blocked)
    # a branch that already has its own checkpoint resumes whatever its trunk's state
    (run_dir / rundir.CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / rundir.CHECKPOINT).write_bytes(b"x")
    (rundir.step_checkpoint_path(trunk_dir, 48)).unlink()
    assert can_start(run, run_dir)
