"""End-to-end: `scaling fit | optimal | report`, queries, and the no-torch guarantee."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, shared_data

from analysis.fits import fit_parametric
from analysis.query import compute_optimal, flops_for_loss, optimal_tokens
from analysis.synthetic import write_synthetic_sweep
from scaling.cli import main

REPO = Path(__file__).resolve().parents[1]
EPOCH = SHARED_DATA / "chinchilla-epoch" / "svg_extracted_data.csv"
# `scaling fit` flags reading the Epoch CSV: its N, loss and C columns
EPOCH_CSV_ARGS = [
    "--csv",
    str(EPOCH),
    "--n-col",
    "Model Size",
    "--loss-col",
    "loss",
    "--c-col",
    "Training FLOP",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return write_synthetic_sweep(root, lrs=(1e-3, 2e-3, 5e-4))


def test_fit_epoch_csv_then_optimal(tmp_path, capsys):
    shared_data("chinchilla-epoch/svg_extracted_data.csv")  # skip, or fail under CI=true
    out = tmp_path / "fit.json"
    rc = main(
        [
            "fit",
            *EPOCH_CSV_ARGS,
            "--drop-highest",
            "5",
            "--approach",
            "parametric",
            "--bootstrap",
            "30",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    d = json.loads(out.read_text())
    assert (
        d["approach"] == "parametric"
        and d["n_convention"] == "total"
        and d["flop_formula"] == "6nd"
    )
    for k in ("E", "A", "B", "alpha", "beta", "objective", "alpha_ci", "beta_ci", "E_ci"):
        assert k in d
    assert d["objective"] <= 1.01828e-3
    capsys.readouterr()
    assert main(["optimal", "--fit", str(out), "--flops", "5.76e23", "--json"]) == 0
    ans = json.loads(capsys.readouterr().out)
    for k in ("n_params", "n_tokens", "tokens_per_param", "loss"):
        assert set(ans[k]) >= {"value", "ci"} and len(ans[k]["ci"]) == 2
    # Epoch's parameters at the Gopher budget give N_opt ~ 72.2B, ~18 tokens/param
    assert ans["n_params"]["value"] == pytest.approx(72.2e9, rel=0.05)
    assert ans["tokens_per_param"]["value"] == pytest.approx(18.4, rel=0.1)
    assert ans["n_params"]["ci"][0] < ans["n_params"]["value"] < ans["n_params"]["ci"][1]
    assert "architectures" in ans


def test_isoflop_csv_with_budget_bins(tmp_path):
    shared_data("chinchilla-epoch/svg_extracted_data.csv")  # skip, or fail under CI=true
    out = tmp_path / "iso.json"
    rc = main(
        [
            "fit",
            *EPOCH_CSV_ARGS,
            "--approach",
            "isoflop",
            "--bootstrap",
            "50",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["approach"] == "isoflop" and "a_ci" in d and len(d["optima"]) >= 5
    # Chinchilla Table 2, approach 2: a = 0.49 (digitised data, loose)
    assert 0.4 < d["a"] < 0.6


def test_fit_runs_dir_and_query_architectures(sweep, tmp_path, capsys):
    out = tmp_path / "fit.json"
    assert (
        main(
            [
                "fit",
                "--runs-dir",
                str(sweep),
                "--approach",
                "isoflop",
                "--bootstrap",
                "50",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    d = json.loads(out.read_text())
    assert d["meta"]["shape_rule"]["kind"] == "aspect_ratio"
    capsys.readouterr()
    assert main(["optimal", "--fit", str(out), "--flops", "1e16", "--json"]) == 0
    ans = json.loads(capsys.readouterr().out)
    archs = ans["architectures"]
    assert archs, ans["note"]
    from scaling.config import ModelConfig
    from scaling.counting import param_counts

    a = archs[0]
    m = ModelConfig(
        n_layers=a["n_layers"], d_model=a["d_model"], n_heads=a["n_heads"], d_mlp=a["d_mlp"]
    )
    assert param_counts(m).total == a["n_params_total"]  # counted exactly, not estimated
    assert 0.5 < a["n_params_total"] / ans["n_params"]["value"] < 2
    assert main(["optimal", "--fit", str(out), "--params", "1e6"]) == 0
    assert "n_tokens" in capsys.readouterr().out


def test_bad_cli_input_is_one_line_error(tmp_path, capsys):
    rc = main(
        [
            "fit",
            "--runs-dir",
            str(tmp_path),
            "--approach",
            "parametric",
            "--out",
            str(tmp_path / "f.json"),
        ]
    )
    assert rc == 2
    assert "no run directories" in capsys.readouterr().err


def test_queries_are_consistent():
    import numpy as np

    N, D = (x.ravel() for x in np.meshgrid(np.geomspace(1e7, 1e10, 7), np.geomspace(1e8, 1e11, 7)))
    L = 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28
    fit = fit_parametric(N, D, L, n_convention="total", flop_formula="6nd", n_bootstrap=20)
    opt = compute_optimal(1e21, fit)
    # optimal_tokens(N_opt(C)) must give back D_opt(C), and flops_for_loss(L_opt(C)) gives C
    back = optimal_tokens(opt.n_params.value, fit)
    assert back.values["n_tokens"].value == pytest.approx(opt.n_tokens.value, rel=1e-6)
    assert back.values["flops"].value == pytest.approx(1e21, rel=1e-6)
    c = flops_for_loss(opt.loss.value, fit)
    assert c.values["flops"].value == pytest.approx(1e21, rel=1e-4)
    with pytest.raises(ValueError, match="irreducible"):
        flops_for_loss(1.0, fit)
    with pytest.raises(ValueError, match="flops"):
        compute_optimal(-1, fit)


def test_report_on_synthetic_runs(sweep, tmp_path):
    from analysis.report import make_report
    from analysis.rung import write_forecast

    # a forecast rung's record found in the report folder is composed into the pages
    pred = {"value": 2.5, "ci": [2.4, 2.6], "pi": [2.3, 2.7], "level": 0.95}
    rung = {"role": "optimum", "n_params": 1000, "predicted_loss": pred, "actual_loss": 2.55}
    rung |= {"rel_error": 2.5 / 2.55 - 1, "inside_pi": True}
    arch = {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_mlp": 256}
    write_forecast(
        tmp_path / "rep" / "forecast.json",
        rung
        | {"flops": 3e15, "architecture": arch, "n_convention": "total", "n_tokens": 10**6}
        | {"fit": {"extrapolation_factor": 3.0}},
    )
    # the synthetic law is written in N_total (the default convention is non_embedding)
    rep = make_report(
        sweep,
        tmp_path / "rep",
        n_bootstrap=30,
        workers=1,
        n_convention="total",
        forecast_bootstrap=20,
    )
    names = {p.name for p in rep.files}
    for stem in (
        "isoflop",
        "n_opt",
        "d_opt",
        "loss_curves",
        "parametric_contours",
        "residuals",
        "sensitivity",
    ):
        assert f"{stem}.png" in names and f"{stem}.svg" in names
    for appr in ("parametric", "isoflop", "envelope", "kaplan"):
        assert f"fit_{appr}.json" in names, rep.errors
    html = (tmp_path / "rep" / "index.html").read_text()
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert html.count("data:image/png;base64,") >= 7 and "src='isoflop" not in html
    assert "http://" not in html and "https://" not in html  # self-contained, no network
    # same content, same order in both documents: answer first, the rung's check of it, then
    # exponents vs published, forecasts, sensitivity, figures, fits
    order = [
        "Answer",
        "Forecast rung: predicted vs actual",
        "rel. error -1.96%; inside PI",
        "Exponents",
        "Chinchilla approach 2",
        "Kaplan et al. 2020",
        "Forecasts on held-out data",
        "(largest budget)",
        "Sensitivity to analysis choices",
        "Figures",
        "Fits in full",
    ]
    for doc in (html, md):
        pos = [doc.find(s) for s in order]
        assert all(p >= 0 for p in pos) and pos == sorted(pos), (order, pos)
    assert html.count("<details>") == md.count("<details>") >= 5
    text = rep.text()
    assert "a = " in text and "backtest" in text and "train: n_layers=" in text
    # issue 25: the regime check in every fit file, calibration, the collapse figure
    assert {"limits.json", "collapse.png"} <= names and "scaling collapse spread" in text
    for doc in (html, md):
        assert doc.find("Limits: regime") > doc.find("Answer") and "local exponent 1e+14" in doc
    fit_file = json.loads((tmp_path / "rep" / "fit_parametric.json").read_text())
    assert len(fit_file["regime"]["local"]) == 3 and fit_file["dropped_budgets"] == []
    cal = rep.limits["calibration"]["by_approach"]["parametric"]
    assert cal["n"] == 3 and [round(x) for x, _ in cal["errors"]] == [3, 10, 3]
    lo, hi = cal["headline"]
    pi = rep.optimal["parametric"].loss.pi
    assert hi - lo >= pi[1] - pi[0] and lo < rep.optimal["parametric"].loss.value < hi
    # LR variants 0.5x / 2x of every point, the middle LR best by construction, one seed
    checked = rep.limits["lr_check"]["points"]
    assert len(checked) >= 20 and "LR check (seed spread unknown" in md
    # the point's own LR is the middle one; the variants' penalty (0.02 nats) vs noise (~0.02)
    assert all(p["lr"] == 1e-3 for p in checked) and sum(p["gain"] for p in checked) < 0
    # synthetic truth: a = 0.28 / 0.62 = 0.452 (Chinchilla Eq. 10 law)
    a = rep.exponent("isoflop", "a")
    assert abs(a.value - 0.452) < 0.05
    assert rep.target_flops == pytest.approx(10 * rep.fits["isoflop"].meta["max_flops"])
    # forecasts: every approach refitted without each of the 4 budgets
    rows = rep.forecast["rows"]
    assert rep.forecast["design"] == "isoflop" and len(rows) == 4 * 3
    largest = rep.largest_budget_rows()
    assert set(largest) == {"envelope", "isoflop", "parametric"}
    assert abs(largest["isoflop"]["N_err"]) < 0.2 and abs(largest["parametric"]["N_err"]) < 0.2
    for r in rows:
        assert r["N_err"] == pytest.approx(r["N_pred"] / r["N_obs"] - 1)
        assert isinstance(r["L_in_pi"], bool)
    # sensitivity: 2 N conventions x 2 C formulas x (approach 2 + approach 3 at 2 deltas)
    sens = rep.sensitivity["rows"]
    assert len(sens) == 12 and not [r for r in sens if "error" in r]
    by = {(r["n_convention"], r["flop_formula"], r["approach"], r["huber_delta"]): r for r in sens}
    for c_form in ("counted", "6nd"):
        for key in (("isoflop", None), ("parametric", 1e-3)):
            # the law is in total N and the embedding's share shrinks as models grow, so
            # non-embedding N grows faster with C: a larger exponent (Pearce & Song 2024)
            assert by[("non_embedding", c_form, *key)]["a"] > by[("total", c_form, *key)]["a"]


def test_analysis_never_imports_torch(sweep, tmp_path):
    code = (
        "import sys, warnings\n"
        "from analysis.fit_inputs import data_from_runs, run_fit\n"
        "from analysis import plots, report, query, cli\n"
        f"d = data_from_runs({str(sweep)!r})\n"
        "run_fit('isoflop', d, n_convention='total', flop_formula='counted', n_bootstrap=5)\n"
        "run_fit('parametric', d, n_convention='total', flop_formula='counted')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
