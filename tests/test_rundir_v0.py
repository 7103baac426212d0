"""Run directories written before the contract had one owner (tests/data/rundir_v0) still load.

The fixture was written by main's code at a8ca21e (its README says how); these tests read it
through today's readers and check that today's writers write the same content.
"""

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from analysis.fit_inputs import find_sweep_json
from analysis.load import RunsWarning, load_curves, load_runs
from analysis.synthetic import write_synthetic_sweep
from scaling import rundir
from scaling.parametrization import describe

V0 = Path(__file__).parent / "data" / "rundir_v0"
COMPLETE = "L1-d8-h2-D1.28e3-lr1e-2-s0-7c6299d2"
INCOMPLETE = "L1-d8-h2-D1.92e3-lr1e-2-s0-21194090"


def test_old_trained_runs_load_through_the_readers():
    sweep = V0 / "trained"
    assert rundir.run_state(sweep / COMPLETE) == "complete"
    assert rundir.run_state(sweep / INCOMPLETE) == "incomplete"
    assert rundir.last_step(sweep / COMPLETE) == 20 and rundir.last_step(sweep / INCOMPLETE) == 30
    for name in (COMPLETE, INCOMPLETE):
        cfg = rundir.read_run_config(sweep / name)
        assert rundir.check_config(sweep / name, cfg) is True  # a relaunch would resume it
        assert rundir.read_config(sweep / name)["parametrization"] == describe(cfg)
    # the resume reader: the incomplete run's checkpoint at its last step
    state = rundir.load_checkpoint(sweep / INCOMPLETE)
    assert state["step"] == 30 and "optimizer" in state
    doc = rundir.read_sweep(sweep)
    assert [r["run_name"] for r in doc["plan"]] == [COMPLETE, INCOMPLETE]
    assert doc["shape_rule"] is None and doc["spec"]["kind"] == "grid"
    with pytest.warns(RunsWarning, match=INCOMPLETE):
        runs = load_runs(sweep)
    st = dict(zip(runs["run_name"], runs["status"], strict=True))
    assert st == {COMPLETE: "complete", INCOMPLETE: "incomplete"}
    curves = load_curves(sweep)
    assert set(curves["run_name"]) == {COMPLETE, INCOMPLETE}
    assert curves.groupby("run_name")["step"].max().to_dict() == {COMPLETE: 20, INCOMPLETE: 30}


def test_todays_config_writer_writes_the_old_bytes(tmp_path):
    """``write_config`` (parametrization passed in) writes what the old one computed itself."""
    old = rundir.read_config(V0 / "trained" / COMPLETE)
    cfg = rundir.read_run_config(V0 / "trained" / COMPLETE)
    rundir.write_config(
        tmp_path,
        cfg,
        old["run_name"],
        old["data"],
        parametrization=describe(cfg),
        provenance_record=old["provenance"],
    )
    new_bytes = (tmp_path / rundir.CONFIG).read_bytes()
    assert new_bytes == (V0 / "trained" / COMPLETE / rundir.CONFIG).read_bytes()


def test_old_synthetic_sweep_loads_as_todays_writer_writes_it(tmp_path):
    """The synthetic sweep, written by hand before and through ``scaling.rundir`` now."""
    old = V0 / "synthetic"
    new = write_synthetic_sweep(tmp_path, budgets=(1e14, 1e15), n_models=3, n_log=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunsWarning)  # every run complete and in the plan
        a, b = load_runs(old), load_runs(new)
    assert len(a) == 6
    pd.testing.assert_frame_equal(a.drop(columns="run_dir"), b.drop(columns="run_dir"))
    ca, cb = load_curves(old), load_curves(new)
    pd.testing.assert_frame_equal(ca, cb)
    for doc in (find_sweep_json(old), find_sweep_json(new)):
        assert doc["shape_rule"]["kind"] == "aspect_ratio" and len(doc["plan"]) == 6
    assert rundir.read_sweep(old)["plan"] == rundir.read_sweep(new)["plan"]
    for name in a["run_name"]:
        for f in (rundir.CONFIG, rundir.SUMMARY):
            x = rundir.read_config if f == rundir.CONFIG else rundir.read_summary
            assert x(old / name) == x(new / name), (name, f)
        assert rundir.read_metrics(old / name) == rundir.read_metrics(new / name)


def test_sweep_json_rewritten_only_when_the_plan_changes(tmp_path):
    shutil.copytree(V0 / "trained", tmp_path / "s")
    doc = rundir.read_sweep(tmp_path / "s")
    keep = {k: doc[k] for k in ("name", "spec", "shape_rule", "plan")}
    before = (tmp_path / "s" / rundir.SWEEP).read_bytes()
    rundir.write_sweep(tmp_path / "s", versions={"x": 1}, **keep)
    assert (tmp_path / "s" / rundir.SWEEP).read_bytes() == before  # unchanged: not rewritten
    rundir.write_sweep(tmp_path / "s", versions={"x": 1}, **{**keep, "plan": keep["plan"][:1]})
    new = rundir.read_sweep(tmp_path / "s")
    assert len(new["plan"]) == 1 and new["versions"] == {"x": 1}
    assert not list((tmp_path / "s").glob("*.tmp"))
    (tmp_path / "s" / rundir.SWEEP).write_text("[1, 2")
    with pytest.raises(ValueError, match=r"sweep\.json is damaged \(not valid JSON"):
        rundir.read_sweep(tmp_path / "s")
    rundir.write_sweep(tmp_path / "s", versions={}, **keep)  # a damaged file is rewritten
    assert rundir.read_sweep(tmp_path / "s")["plan"] == keep["plan"]
