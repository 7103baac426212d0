"""Loading run directories and tables; selection of points; warnings for unfinished runs."""

import json
import re
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.load import RunsWarning, load_curves, load_runs, load_table, select_points
from analysis.synthetic import write_synthetic_sweep
from scaling import rundir


@pytest.fixture
def sweep(tmp_path):
    return write_synthetic_sweep(
        tmp_path, budgets=(1e14, 1e15), n_models=5, lrs=(1e-3, 2e-3), seeds=(0, 1)
    )


def test_load_runs_one_row_per_run(sweep):
    runs = load_runs(sweep)
    n_dirs = sum(1 for p in sweep.iterdir() if p.is_dir())
    assert len(runs) == n_dirs
    assert set(runs["status"]) == {"complete"}
    row = runs.iloc[0]
    summary = json.loads((sweep / row["run_name"] / "summary.json").read_text())
    assert row["n_params_total"] == summary["n_params_total"]
    assert row["flops"] == summary["flops"] and row["val/loss"] == summary["val/loss"]
    assert row["n_layers"] == summary["n_layers"] and row["lr"] == summary["lr"]
    assert row["tokens_per_param"] == pytest.approx(row["n_tokens"] / row["n_params_total"])


def test_unfinished_runs_are_warned_not_dropped(sweep):
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    inc, failed, div = names[0], names[1], names[2]
    (sweep / inc / "summary.json").unlink()
    (sweep / failed / "summary.json").unlink()
    (sweep / failed / "error.txt").write_text("Traceback: boom")
    s = json.loads((sweep / div / "summary.json").read_text())
    s.update(status="diverged", diverged_step=3)
    rundir.write_summary(sweep / div, s)
    with pytest.warns(RunsWarning) as rec:
        runs = load_runs(sweep)
    msg = str(rec[0].message)
    for name in (inc, failed, div):
        assert name in msg
    st = dict(zip(runs["run_name"], runs["status"], strict=True))
    assert st[inc] == "incomplete" and st[failed] == "failed" and st[div] == "diverged"
    assert len(runs) == len(names)  # still listed
    # incomplete: parameter count from the config (pure counting), no final loss
    r = runs[runs["run_name"] == inc].iloc[0]
    assert r["n_params_total"] > 0 and np.isnan(r["val/loss"])
    sel, _ = select_points(runs)
    assert not set(sel["run_name"]) & {inc, failed, div}  # only complete runs represent a point
    assert (sel["status"] == "complete").all()


def test_select_points_best_lr_mean_over_seeds_and_edge_flag(sweep):
    runs = load_runs(sweep)
    sel, note = select_points(runs)
    assert len(sel) == runs["point_key"].nunique()
    assert "best learning rate" in note and "mean over seeds" in note
    for _, row in sel.iterrows():
        pts = runs[(runs["point_key"] == row["point_key"])]
        means = pts.groupby("lr")["val/loss"].mean()
        assert row["lr"] == means.idxmin()
        assert row["val/loss"] == pytest.approx(means.min())
        assert row["n_seeds"] == 2
    # the generator makes the smallest LR best: the edge of a 2-LR grid, which must be flagged
    assert sel["lr_at_edge"].all() and "edge of its LR grid" in note


def test_load_curves_tolerates_torn_last_line(sweep):
    name = sorted(p.name for p in sweep.iterdir() if p.is_dir())[0]
    path = sweep / name / "metrics.jsonl"
    n_rows = len(path.read_text().splitlines())
    with path.open("a") as f:
        f.write('{"step": 99, "tok')  # killed mid-write
    curves = load_curves(sweep)
    mine = curves[curves["run_name"] == name]
    assert len(mine) == n_rows
    assert {"step", "tokens", "flops", "val/loss", "n_params_total"} <= set(curves.columns)


def test_no_runs_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no run directories"):
        load_runs(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_runs(tmp_path / "missing")


def test_load_table_c_only_and_d_only(tmp_path):
    df = pd.DataFrame(
        {
            "N": [1e8, 2e8, 4e8],
            "C": [6e18, 1.2e19, 2.4e19],
            "loss": [3.0, 2.9, 2.8],
            "T": [1e10] * 3,
        }
    )
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    t = load_table(path, n_col="N", loss_col="loss", c_col="C")
    np.testing.assert_allclose(t["n_tokens"], df["C"] / (6 * df["N"]))  # D = C / (6N)
    t2 = load_table(path, n_col="N", loss_col="loss", d_col="T")
    np.testing.assert_allclose(t2["flops"], 6 * df["N"] * 1e10)
    with pytest.raises(ValueError, match="cannot derive D from C"):
        load_table(path, n_col="N", loss_col="loss", c_col="C", flop_formula="counted")
    with pytest.raises(ValueError, match="'Nx' is not a column"):
        load_table(path, n_col="Nx", loss_col="loss", c_col="C")
    with pytest.raises(ValueError, match="give d_col"):
        load_table(path, n_col="N", loss_col="loss")
    jl = tmp_path / "runs.jsonl"
    jl.write_text("".join(json.dumps(r) + "\n" for r in df.to_dict("records")))
    t3 = load_table(jl, n_col="N", loss_col="loss", c_col="C", drop_highest_losses=1)
    assert len(t3) == 2 and t3["val/loss"].max() == 2.9


def test_load_runs_finds_nested_sweeps(tmp_path):
    a = write_synthetic_sweep(tmp_path, budgets=(1e14,), n_models=3, sweep_name="a")
    write_synthetic_sweep(tmp_path, budgets=(1e14,), n_models=3, sweep_name="b")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunsWarning)  # all complete: no warning expected
        runs = load_runs(tmp_path)
    assert set(runs["sweep_name"]) == {"a", "b"}
    shutil.rmtree(a)
    assert set(load_runs(tmp_path)["sweep_name"]) == {"b"}


def test_runs_missing_from_the_current_plan_are_warned_and_kept(sweep):
    doc = rundir.read_sweep(sweep)
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunsWarning)
        load_runs(sweep)  # every run is planned: no warning
    plan = [r for r in doc["plan"] if r["run_name"] != names[0]]
    keep = {k: doc[k] for k in ("name", "spec", "shape_rule", "versions")}
    rundir.write_sweep(sweep, plan=plan, **keep)
    with pytest.warns(
        RunsWarning, match=rf"not in their sweep.s current plan.*{re.escape(names[0])}"
    ):
        runs = load_runs(sweep)
    assert names[0] in set(runs["run_name"])  # still fitted, not dropped
