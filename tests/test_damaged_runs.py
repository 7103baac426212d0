"""Damaged run directories: a truncated summary.json and garbage lines in the middle of
metrics.jsonl. `scaling sweep status` and `scaling report` name the run, say what is wrong and
go on with the rest; the strict readers name the file and line."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from analysis.load import RunsWarning, load_curves, load_runs
from analysis.synthetic import write_synthetic_sweep
from scaling import rundir
from scaling.cli import main
from sweeps.plan import plan
from sweeps.registry import load_sweep
from sweeps.status import count_states, sweep_status


def _truncate(path: Path, keep: float = 0.5) -> None:
    text = path.read_text()
    path.write_text(text[: int(len(text) * keep)])


def _garble_middle(path: Path) -> int:
    """Insert two garbage lines in the middle of metrics.jsonl; returns the first's number."""
    lines = path.read_text().splitlines(keepends=True)
    i = len(lines) // 2
    lines.insert(i, "\x00\x00garbage{{ not json\n")
    lines.insert(i + 1, "[1, 2, 3]\n")  # valid JSON, but not a row object
    path.write_text("".join(lines))
    return i + 1


# ---- strict readers name the file ---------------------------------------------------------


def test_strict_readers_name_the_file_and_line(tmp_path):
    rows = [{"step": s, "train/loss": 5.0 - s / 10} for s in (5, 10, 15, 20)]
    rundir.write_metrics(tmp_path, rows)
    bad_line = _garble_middle(tmp_path / rundir.METRICS)
    with pytest.raises(ValueError, match=rf"metrics.jsonl: line {bad_line} is not a JSON object"):
        rundir.read_metrics(tmp_path)
    problems: list[str] = []
    assert rundir.read_metrics(tmp_path, problems=problems) == rows  # every good row kept
    assert len(problems) == 2 and f"line {bad_line} " in problems[0]
    rundir.write_summary(tmp_path, {"status": "complete", "step": 20})
    _truncate(tmp_path / rundir.SUMMARY)
    with pytest.raises(ValueError, match=r"summary.json is damaged \(not valid JSON.*delete it"):
        rundir.run_state(tmp_path)
    (tmp_path / rundir.SUMMARY).write_text("[1]")
    with pytest.raises(ValueError, match="not a JSON object with a 'status'"):
        rundir.read_summary(tmp_path)


# ---- scaling sweep status ------------------------------------------------------------------


def _write_run(run_dir: Path, cfg, run_name: str, n_rows: int) -> None:
    rundir.write_config(run_dir, cfg, run_name, {"source": "stdlib"})
    rows = [
        {"step": s, "tokens": s * cfg.batch_size_tokens, "train/loss": 5.0 - s / 100}
        for s in range(5, 5 * n_rows + 1, 5)
    ]
    rundir.write_metrics(run_dir, rows)


def test_sweep_status_names_damaged_runs_and_goes_on(tmp_path, capsys):
    spec = load_sweep("smoke")
    runs = plan(spec)
    assert len(runs) >= 4
    sweep_dir = tmp_path / spec.name
    done, truncated, garbled = runs[0], runs[1], runs[2]  # runs[3:] never started: pending
    for r in (done, truncated, garbled):
        _write_run(sweep_dir / r.run_name, r.config, r.run_name, n_rows=6)
    for r in (done, truncated):
        rundir.write_summary(sweep_dir / r.run_name, {"status": "complete", "step": 30})
    _truncate(sweep_dir / truncated.run_name / rundir.SUMMARY)
    bad_line = _garble_middle(sweep_dir / garbled.run_name / rundir.METRICS)

    by_name = {s.run_name: s for s in sweep_status(spec, tmp_path)}
    assert by_name[done.run_name].state == "complete" and by_name[done.run_name].step == 30
    dmg = by_name[truncated.run_name]
    assert dmg.state == "damaged" and dmg.step is None
    assert "summary.json is damaged" in dmg.detail and truncated.run_name in dmg.detail
    inc = by_name[garbled.run_name]
    assert inc.state == "incomplete" and inc.step == 30  # last good row, after the garbage
    assert f"line {bad_line} is not a JSON object" in inc.detail and "1 more" in inc.detail
    assert all(by_name[r.run_name].state == "pending" for r in runs[3:])
    counts = count_states(list(by_name.values()))
    assert counts["damaged"] == 1 and counts["complete"] == 1 and counts["incomplete"] == 1

    assert main(["sweep", "status", "smoke", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith(truncated.run_name))
    assert "damaged" in row and "summary.json is damaged" in row
    assert "damaged 1" in out.splitlines()[-1]
    assert main(["sweep", "status", "smoke", "--runs-dir", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"]["damaged"] == 1


# ---- scaling report ------------------------------------------------------------------------


@pytest.fixture()
def damaged_sweep(tmp_path):
    sweep = write_synthetic_sweep(tmp_path, budgets=(3e13, 1e14, 3e14, 1e15), n_models=5)
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    truncated, garbled = names[0], names[-1]
    _truncate(sweep / truncated / rundir.SUMMARY, 0.3)
    (sweep / names[1] / rundir.CONFIG).write_text('{"config": {"model": ')  # torn config
    bad_line = _garble_middle(sweep / garbled / rundir.METRICS)
    return sweep, truncated, garbled, bad_line, len(names)


def test_load_runs_and_curves_name_damaged_runs(damaged_sweep):
    sweep, truncated, garbled, bad_line, n_runs = damaged_sweep
    with pytest.warns(RunsWarning) as record:
        runs = load_runs(sweep)
    assert len(runs) == n_runs  # the damaged run is listed, not dropped
    row = runs.set_index("run_name").loc[truncated]
    assert row["status"] == "damaged" and "summary.json is damaged" in row["problem"]
    msg = " ".join(str(w.message) for w in record)
    assert f"damaged (2): {truncated} (" in msg and "summary.json is damaged" in msg
    torn = runs[runs["status"] == "damaged"]["problem"]
    assert any("config.json is not valid JSON" in p and "line 1 column" in p for p in torn)
    pattern = rf"{re.escape(garbled)}: .*line {bad_line} is not a JSON object"
    with pytest.warns(RunsWarning, match=pattern):
        curves = load_curves(sweep)
    assert truncated not in set(curves["run_name"])
    assert (curves["run_name"] == garbled).sum() > 0  # the good rows of that run are kept


def test_report_names_damaged_runs_and_fits_the_rest(damaged_sweep, tmp_path, capsys):
    sweep, truncated, garbled, bad_line, n_runs = damaged_sweep
    out = tmp_path / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunsWarning)
        rc = main(["report", "--runs-dir", str(sweep), "--out", str(out), "--bootstrap", "0"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "a = " in text  # the other runs were fitted
    warning_lines = [ln for ln in text.splitlines() if "warning:" in ln]
    assert any(truncated in ln and "summary.json is damaged" in ln for ln in warning_lines)
    assert any(garbled in ln and f"line {bad_line}" in ln for ln in warning_lines)
    assert truncated in (out / "summary.md").read_text()
    assert "index.html" in json.loads((out / "report-files.json").read_text())["files"]
