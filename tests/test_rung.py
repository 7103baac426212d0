"""The forecast rung: the named architecture (and neighbours) trained at C; forecast.json scored."""

import dataclasses
import json
import math

import numpy as np
import pytest

from analysis.fits import fit_from_dict
from analysis.parametric import fit_parametric
from analysis.query import compute_optimal
from analysis.report_pages import Section, render_pages, write_sections
from analysis.rung import rung_members, score_forecast
from scaling import rundir
from scaling.cli import main
from scaling.config import RunConfig
from scaling.counting import training_flops
from scaling.shapes import AspectRatioRule
from sweeps.registry import load_sweep
from sweeps.rung import rung_sweep
from sweeps.spec import SweepSpecError

# a known law L = E + A/N^alpha + B/D^beta whose optimum at C ~ 4e9 FLOPs is a ~20k-parameter
# model, so the smoke sweep's tiny models train the rung in seconds
LAW = {"E": 1.2, "A": 60.0, "B": 60.0, "alpha": 0.5, "beta": 0.5}


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    N, D = (a.ravel() for a in np.meshgrid(np.logspace(3, 5, 6), np.logspace(4.5, 6.5, 5)))
    L = LAW["E"] + LAW["A"] / N ** LAW["alpha"] + LAW["B"] / D ** LAW["beta"]
    L = L * np.exp(rng.normal(0, 0.005, L.size))
    meta = {
        "shape_rule": AspectRatioRule(aspect_ratio=32, d_head=16).to_dict(),
        "vocab_size": 256,
        "seq_len": 32,
        "max_flops": 1.5e9,
    }
    fit = fit_parametric(
        N, D, L, n_convention="non_embedding", flop_formula="counted", n_bootstrap=20, meta=meta
    )
    path = tmp_path_factory.mktemp("fit") / "fit_parametric.json"
    path.write_text(json.dumps(fit.to_dict()))
    return path


def test_rung_trains_the_named_architecture_and_neighbours_and_scores_them(
    tmp_path, fit_file, capsys
):
    fit = fit_from_dict(json.loads(fit_file.read_text()))
    flops = 3 * 1.5e9  # --factor 3 x the fit's largest budget
    cmd = ["sweep", "forecast", "smoke", "--fit", str(fit_file), "--runs-dir", str(tmp_path)]
    cmd += ["--out", str(tmp_path / "report"), "--neighbours", "--executor", "debug"]
    report = tmp_path / "report"  # a report written by `scaling report` before the rung
    report.mkdir()
    sections = [
        Section("Scaling-law report"),
        Section("Answer", ["train this"], css_class="headline"),
        Section("Exponents", ["a = 0.5"]),
    ]
    write_sections(report, sections)
    render_pages(report)
    assert "Forecast rung" not in (report / "index.html").read_text()
    assert main(cmd + ["--no-progress"]) == 0
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "report" / "forecast.json").read_text())

    # the optimum is what `scaling optimal --flops C` names, trained at C
    named = compute_optimal(flops, fit).architectures[0].to_dict()
    assert record["flops"] == pytest.approx(flops) and record["architecture"] == named
    run_dir = tmp_path / "smoke-rung" / record["run_name"]
    summary = rundir.read_summary(run_dir)
    cfg = rundir.read_config(run_dir)["config"]
    assert cfg["model"]["d_model"] == named["d_model"] and summary["status"] == "complete"
    assert summary["n_tokens"] == record["n_tokens"]
    assert summary["n_params_non_embedding"] == record["n_params"]
    model = RunConfig.from_dict(cfg).model
    assert abs(training_flops(model, summary["n_tokens"]) / flops - 1) < 0.05
    # predicted (with CI and PI) against actual
    pred = record["predicted_loss"]
    assert set(pred) == {"value", "ci", "pi", "level"} and pred["ci"][0] < pred["ci"][1]
    assert pred["pi"][0] < pred["value"] < pred["pi"][1]
    law = LAW["E"] + LAW["A"] / record["n_params"] ** 0.5 + LAW["B"] / record["n_tokens"] ** 0.5
    assert pred["value"] == pytest.approx(law, rel=0.03)  # the fit recovered the known law
    assert record["actual_loss"] == summary["val/loss"]
    assert record["rel_error"] == pytest.approx(pred["value"] / summary["val/loss"] - 1)
    assert record["inside_pi"] == (pred["pi"][0] <= summary["val/loss"] <= pred["pi"][1])
    assert record["fit"]["extrapolation_factor"] == pytest.approx(3)
    # neighbours: other shapes near 0.5x and 2x N at the same C; the best one is named
    roles = {m["role"]: m for m in record["members"]}
    assert list(roles) == ["optimum", "half", "double"]
    n_opt = record["n_params"]
    assert 0.25 < roles["half"]["n_params"] / n_opt < 0.8
    assert 1.4 < roles["double"]["n_params"] / n_opt < 4
    for m in roles.values():
        s = rundir.read_summary(tmp_path / "smoke-rung" / m["run_name"])
        assert m["actual_loss"] == s["val/loss"] and s["flops_budget"] == pytest.approx(flops)
    assert record["best"] == min(roles, key=lambda r: roles[r]["actual_loss"])
    assert "forecast rung at C = 4.5e+09" in printed and "rel. error" in printed

    # a relaunch trains nothing and writes the same forecast
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "smoke-rung").rglob("*.pt")}
    assert main(cmd + ["--no-progress"]) == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert json.loads((tmp_path / "report" / "forecast.json").read_text()) == record
    # the report's pages, re-rendered (not spliced), show the check once (the rerun rendered
    # them again), right after the Answer it checks, before the rest of the report
    page = (report / "index.html").read_text()
    assert page.count("Forecast rung: predicted vs actual") == 1
    assert page.index("<h2>Answer") < page.index("train this") < page.index("<h2>Forecast rung")
    assert page.index("<section class='rung'>") < page.index("rel. error")
    assert page.index("rel. error") < page.index("<h2>Exponents") < page.index("</body>")
    md = (report / "summary.md").read_text()
    assert md.startswith("# Scaling-law report") and md.count("## Forecast rung") == 1
    assert md.index("train this") < md.index("## Forecast rung") < md.index("## Exponents")
    assert md.rstrip().endswith("a = 0.5")
    # rendering the report's pages again (as `scaling report` does) keeps the check
    render_pages(report, sections)
    assert (report / "index.html").read_text() == page
    # pages without an Answer section get the check last
    render_pages(report, [Section("Other", ["text"])])
    page = (report / "index.html").read_text()
    assert page.index("text") < page.index("rel. error") < page.index("</body>")
    md = (report / "summary.md").read_text()
    assert md.index("# Other") < md.index("## Forecast rung") and "rel. error" in md


def test_rung_refuses_bad_inputs_before_training(tmp_path, fit_file, capsys):
    base = ["sweep", "forecast", "smoke", "--runs-dir", str(tmp_path), "--out", str(tmp_path)]
    assert main(base + ["--fit", str(tmp_path / "missing.json")]) == 2
    assert "missing.json does not exist; run `scaling report`" in capsys.readouterr().err
    isoflop = tmp_path / "fit_isoflop.json"
    isoflop.write_text(json.dumps(json.loads(fit_file.read_text()) | {"approach": "envelope"}))
    assert main(base + ["--fit", str(isoflop)]) == 2
    assert "pass fit_parametric.json" in capsys.readouterr().err
    assert main(base + ["--fit", str(fit_file), "--flops", "-1"]) == 2
    assert "must be > 0 FLOPs" in capsys.readouterr().err
    # the study's data-repetition limit holds for the rung too (checked when it is planned)
    spec = load_sweep("smoke")
    over = rung_sweep(dataclasses.replace(spec, max_epochs=1e-4), [(1, 32, 2, 128)], 4e9)
    with pytest.raises(ValueError, match="max_epochs"):
        over.expand()
    with pytest.raises(SweepSpecError, match="d_mlp/d_model"):
        rung_sweep(spec, [(1, 32, 2, 128), (1, 48, 3, 100)], 4e9)
    assert not (tmp_path / "smoke-rung").exists()


def test_score_without_a_prediction_interval_or_actual_loss():
    fit = fit_parametric(
        [1e3, 3e3, 1e4, 3e4, 1e5, 1e3, 1e4, 1e5],
        [1e6, 1e6, 1e6, 1e6, 1e6, 1e5, 1e5, 1e5],
        [3.0, 2.6, 2.3, 2.1, 2.0, 3.2, 2.5, 2.2],
        n_convention="non_embedding",
        flop_formula="counted",
    )
    member = {
        "role": "optimum",
        "architecture": {},
        "n_params": 1000,
        "n_tokens": 10,
        "run_name": "r",
        "predicted_loss": {"value": 2.0, "ci": [math.nan] * 2, "pi": [math.nan] * 2, "level": 0.95},
    }
    rec = score_forecast(fit, 1e9, [member | {"actual_loss": None}])
    assert rec["actual_loss"] is None and rec["rel_error"] is None and rec["inside_pi"] is None
    rec = score_forecast(fit, 1e9, [member | {"actual_loss": 2.5}])
    assert rec["rel_error"] == pytest.approx(-0.2) and rec["inside_pi"] is None
    with pytest.raises(ValueError, match="approach-3"):
        rung_members(object(), 1e9)


def test_rung_of_a_branched_sweep_is_a_wsd_trunk_and_one_cooldown():
    # the rung is trained the way the fitted points were: a WSD run of its own length when the
    # study's points are WSD branches (a cosine rung would be judged against WSD losses)
    from sweeps.branching import WsdBranches

    spec = dataclasses.replace(load_sweep("smoke"), branching=WsdBranches(0.2, "1-sqrt"))
    runs = rung_sweep(spec, [(1, 32, 2, 128)], 4e9).expand()
    roles = sorted("trunk" if c.keep_checkpoint_steps else "branch" for c in runs)
    assert roles == ["branch", "trunk"]
    branch = next(c for c in runs if c.branch_from is not None)
    assert branch.n_steps - branch.branch_from.step == max(1, int(0.2 * branch.n_steps))
    plain = rung_sweep(load_sweep("smoke"), [(1, 32, 2, 128)], 4e9).expand()
    assert len(plain) == 1 and plain[0].branch_from is None


def test_branched_sweep_then_rung_end_to_end(tmp_path, fit_file, capsys):
    # the main job's path: a branched (WSD) sweep trained, its points read back, then the rung;
    # the rung's trunk and branch share a shape, and the forecast must be judged on the BRANCH
    from analysis.fit_inputs import data_from_runs
    from sweeps.launch import launch

    # smoke_wsd with an evaluation every 8 steps, so the curve law (issue 21) has curves of 5+
    # points; the CLI loads the definition from its file
    defn = tmp_path / "smoke_wsd_dense.py"
    defn.write_text(
        "import dataclasses\nfrom sweeps.registry import load_sweep\n\n\ndef sweep():\n"
        "    spec = load_sweep('smoke_wsd')\n"
        "    base = spec.base.replace(eval_interval_tokens=8 * spec.base.batch_size_tokens)\n"
        "    return dataclasses.replace(spec, base=base)\n"
    )
    spec = load_sweep(defn)
    result = launch(spec, tmp_path, executor="debug", progress=False)
    assert result.ok and result.counts == {"complete": 6}  # 2 trunks + 4 branches
    data = data_from_runs(tmp_path / "smoke_wsd")
    assert len(data.points) == 4 and set(data.points["role"]) == {"branch"}
    assert set(data.curves["role"]) == {"trunk", "branch"}  # trunk curves kept for approach 1
    cmd = ["sweep", "forecast", str(defn), "--fit", str(fit_file), "--runs-dir", str(tmp_path)]
    cmd += ["--out", str(tmp_path), "--executor", "debug", "--no-progress", "--curve-law"]
    assert main(cmd) == 0
    record = json.loads((tmp_path / "forecast.json").read_text())
    rung = tmp_path / "smoke_wsd-rung"
    cfg = rundir.read_config(rung / record["run_name"])["config"]
    summary = rundir.read_summary(rung / record["run_name"])
    assert cfg.get("branch_from") is not None and summary["role"] == "branch"
    trunk = rundir.read_summary(rung / cfg["branch_from"]["run_name"])
    assert trunk["role"] == "trunk" and trunk["val/loss"] != summary["val/loss"]
    assert record["actual_loss"] == summary["val/loss"]
    assert record["n_tokens"] == summary["n_tokens"]
    out = capsys.readouterr().out
    assert "forecast rung at C" in out
    # --curve-law: the curve law's forecast of the same rung run beside approach 3's, scored on
    # the same actual loss; the check itself stays approach 3's
    curve = record["curve_law"]
    assert "error" not in curve, curve
    assert curve["law"] == "multi_power" and curve["n_curves"] >= 2
    assert curve["n_curves"] + curve["skipped"] == 4  # the 4 branches (a short one: < 5 points)
    (m,) = curve["members"]
    assert m["run_name"] == record["run_name"] and m["actual_loss"] == record["actual_loss"]
    p = m["predicted_loss"]
    assert p["pi"][0] < p["value"] < p["pi"][1]
    assert m["rel_error"] == pytest.approx(p["value"] / m["actual_loss"] - 1)
    assert record["fit"]["approach"] == "parametric"
    assert "curve law beside it (multi_power" in out and "not the check" in out
