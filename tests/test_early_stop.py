"""Opt-in early stopping (issue 21): a real launch stops a clearly bad run, which no fit reads."""

import warnings

import pytest
from test_sweeps_launch import tiny_base

from analysis.curve_data import run_curves
from analysis.fit_inputs import data_from_runs
from analysis.load import RunsWarning, load_runs, select_points
from scaling import rundir
from scaling.train import train
from sweeps.early_stop import EarlyStopRule
from sweeps.launch import LaunchError, launch
from sweeps.plan import plan
from sweeps.spec import GridSweep
from sweeps.status import sweep_status

N_STEPS = 600  # margin: under load 2 cores, the monitor first judged a 300-step run at step 258


def lr_pair_spec(corpus, name="es", n_steps=N_STEPS):
    """One shape, two LRs (1e-2 and 1e-4): neighbours of one point, the second clearly bad."""
    base = tiny_base(corpus, eval_every_steps=6, log_every_steps=6)
    return GridSweep(
        name=name,
        base=base,
        widths=(32,),
        depths=(1,),
        d_head=16,
        n_tokens=(256 * n_steps,),
        lr_multipliers=(1.0, 0.01),
    )


def _good_bad(spec):
    runs = plan(spec)
    assert len({r.config.point_key for r in runs}) == 1  # neighbours: one point, two LRs
    good, bad = sorted(runs, key=lambda r: -r.config.optim.lr)
    return good, bad


def test_local_launch_stops_the_bad_run_and_no_fit_reads_it(tmp_path, tiny_corpus):
    spec = lr_pair_spec(tiny_corpus)
    good, bad = _good_bad(spec)
    rule = EarlyStopRule(min_fraction=0.3, interval_s=0.5)
    result = launch(spec, tmp_path, executor="local", parallel=2, progress=False, early_stop=rule)
    status = {o.run_name: o.status for o in result.outcomes}
    assert status == {good.run_name: "complete", bad.run_name: "stopped"} and result.ok
    sweep = tmp_path / spec.name
    s_bad = rundir.read_summary(sweep / bad.run_name)
    assert s_bad["status"] == "stopped" and 0.3 * N_STEPS <= s_bad["step"] < N_STEPS
    assert s_bad["stop_reason"].startswith("early stop at step")
    assert good.run_name in s_bad["stop_reason"]  # it names the neighbour it lost to
    request = rundir.read_stop_request(sweep / bad.run_name)
    assert request["pi"][0] > request["neighbour_loss"]  # the rule, as recorded
    good_rows = rundir.read_metrics(sweep / good.run_name)
    at_cut = [r["val/loss"] for r in good_rows if r["step"] <= request["step"] and "val/loss" in r]
    assert request["neighbour_loss"] == at_cut[-1]  # the good run's loss at the same step
    assert rundir.load_checkpoint(sweep / bad.run_name)["step"] == s_bad["step"]
    assert rundir.read_summary(sweep / good.run_name)["step"] == N_STEPS

    # sweep status shows it; fits never read it: points, curve-law curves, approach-1 curves
    states = {s.run_name: (s.state, s.detail) for s in sweep_status(spec, tmp_path)}
    assert states[bad.run_name][0] == "stopped" and "early stop" in states[bad.run_name][1]
    with pytest.warns(RunsWarning, match=r"stopped \(1\)"):
        runs = load_runs(sweep)
    points, _ = select_points(runs, "val/loss")
    assert list(points["run_name"]) == [good.run_name]
    curves, _ = run_curves(sweep)
    assert [c.run for c in curves] == [good.run_name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunsWarning)
        data = data_from_runs(sweep)
    assert set(data.curves["run_name"]) == {good.run_name}

    # a relaunch leaves the stopped run alone; asked to, it resumes where it stopped
    again = launch(spec, tmp_path, executor="local", parallel=2, progress=False)
    assert again.n_submitted == 0 and rundir.run_state(sweep / bad.run_name) == "stopped"
    resumed = launch(
        spec, tmp_path, executor="local", parallel=2, progress=False, resume_stopped=True
    )
    assert resumed.n_submitted == 1 and resumed.ok
    s = rundir.read_summary(sweep / bad.run_name)
    assert s["status"] == "complete" and s["step"] == N_STEPS and s["stop_reason"] is None
    steps = [r["step"] for r in rundir.read_metrics(sweep / bad.run_name)]
    assert steps == sorted(set(steps)) and steps[-1] == N_STEPS  # no row written twice


def test_train_honours_a_stop_request_at_its_next_evaluation(tmp_path, make_cfg):
    cfg = make_cfg(n_tokens=512 * 40, eval_interval_tokens=512 * 5, checkpoint_interval_steps=100)
    rundir.write_stop_request(tmp_path, "asked by the test")
    summary = train(cfg, tmp_path, progress=False)
    assert summary.status == "stopped" and summary.step == 5  # the first evaluation step
    assert summary.stop_reason == "asked by the test"
    assert rundir.load_checkpoint(tmp_path)["step"] == 5  # written at the stop, to resume from
    assert rundir.read_metrics(tmp_path)[-1]["step"] == 5


def test_early_stop_bad_input_is_refused_before_anything_runs(tmp_path, tiny_corpus):
    for bad in ({"min_fraction": 0.0}, {"min_fraction": 1.5}, {"level": 1.0}, {"law": "cosine"}):
        with pytest.raises(ValueError, match="early stop"):
            EarlyStopRule(**bad)
    spec = lr_pair_spec(tiny_corpus)
    with pytest.raises(LaunchError, match="early stopping needs"):
        launch(spec, tmp_path, executor="debug", progress=False, early_stop=EarlyStopRule())
    assert not (tmp_path / spec.name).exists()


def test_a_damaged_run_never_stops_the_launcher(tmp_path, tiny_corpus):
    # the monitor polls inside the launcher's loop: run directories it cannot read (here every
    # config.json is damaged, which once raised KeyError in analysis.curve_data) are skipped
    import io

    from sweeps.early_stop import EarlyStopMonitor

    spec = lr_pair_spec(tiny_corpus)
    good, bad = _good_bad(spec)
    sweep = tmp_path / spec.name
    for r in (good, bad):
        (sweep / r.run_name).mkdir(parents=True)
        (sweep / r.run_name / rundir.CONFIG).write_text("{not json")
    log = io.StringIO()
    monitor = EarlyStopMonitor(sweep, plan(spec), EarlyStopRule(interval_s=0.0), log=log)
    assert monitor.poll() == [] and monitor.check() == []
    assert not any(rundir.stop_requested(sweep / r.run_name) for r in (good, bad))
