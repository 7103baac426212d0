"""`scaling fit | optimal | report` tried as a new user would: every odd input ends in one line
naming the flag, file or field and the fix, with exit status 2, before any fitting."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analysis.report_dir import MANIFEST, ReportDirError, write_report_dir
from analysis.synthetic import write_synthetic_sweep
from scaling.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    sweep = write_synthetic_sweep(root, budgets=(1e14, 3e14, 1e15), n_models=5)
    good = root / "runs.csv"
    good.write_text(
        "params,tokens,loss,budget\n"
        + "".join(
            f"{n:.3g},{d:.3g},{3 - i / 10},1e19\n"
            for i, (n, d) in enumerate(
                [(1e8, 2e9), (2e8, 1e9), (4e8, 5e8), (8e8, 2.5e8), (1.6e9, 1.2e8), (3e9, 6e7)]
            )
        )
    )
    copies = root / "copies.csv"
    copies.write_text("params,tokens,loss\n" + "1e8,2e9,3.0\n" * 40)
    cell = root / "cell.csv"
    cell.write_text("params,tokens,loss\n1e8,2e9,3.0\n2e8,2e9,n/a\n")
    fit = root / "fit.json"
    assert main(["fit", "--runs-dir", str(sweep), "--approach", "isoflop", "--out", str(fit)]) == 0
    d = json.loads(fit.read_text())
    wrong = {
        "list.json": "[1, 2, 3]",
        "torn.json": fit.read_text()[:200],
        "sweep.json": json.dumps({"name": "x", "plan": []}),
        "nofield.json": json.dumps({k: v for k, v in d.items() if k != "k_L"}),
        "nan.json": json.dumps({**d, "a": None}),
        "binary.json": None,
    }
    for name, text in wrong.items():
        if text is None:
            (root / name).write_bytes(b"\xff\xfe\x00garbage")
        else:
            (root / name).write_text(text)
    (root / "a_file").write_text("x")
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    return {"root": root, "sweep": sweep, "good": good, "copies": copies, "cell": cell, "fit": fit}


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse: usage + "error: argument --flag: ..."
        rc = e.code
    return rc, capsys.readouterr().err


def _fmt(args: list[str], f: dict) -> list[str]:
    return [a.format(**{k: str(v) for k, v in f.items()}) for a in args]


FIT_RUNS = ["fit", "--runs-dir", "{sweep}", "--out", "{root}/o.json"]
FIT_CSV = ["fit", "--csv", "{good}", "--n-col", "params", "--loss-col", "loss", "--d-col", "tokens"]
FIT_CSV += ["--out", "{root}/o.json"]
REPORT = ["report", "--runs-dir", "{sweep}"]

# (arguments, regex the error line must match); one case per class of odd input
CASES = [
    # flags that do not apply to the chosen input or approach
    (FIT_RUNS + ["--approach", "parametric", "--drop-highest", "5"], r"--drop-highest only apply"),
    (
        FIT_RUNS + ["--approach", "isoflop", "--n-col", "N", "--d-col", "D"],
        r"--n-col, --d-col only",
    ),
    (FIT_RUNS + ["--approach", "isoflop", "--huber-delta", "0.01"], r"--huber-delta only applies"),
    (
        FIT_CSV + ["--approach", "parametric", "--budget-col", "budget"],
        r"--budget-col only applies",
    ),
    (FIT_CSV + ["--approach", "envelope"], r"envelope needs loss curves.*--runs-dir"),
    (FIT_RUNS + ["--approach", "isoflop", "--seed", "3"], r"--seed only seeds the bootstrap"),
    (REPORT + ["--out", "{root}/r", "--bootstrap", "0", "--seed", "1"], r"--seed only seeds"),
    # values out of range: refused by argparse with the flag's name
    (FIT_RUNS + ["--approach", "isoflop", "--bootstrap", "-1"], r"--bootstrap: must be an int"),
    (FIT_RUNS + ["--approach", "isoflop", "--bootstrap", "many"], r"--bootstrap: must be an int"),
    (FIT_CSV + ["--approach", "isoflop", "--drop-highest", "-2"], r"--drop-highest: must be"),
    (FIT_RUNS + ["--approach", "parametric", "--huber-delta", "0"], r"--huber-delta: must be a fi"),
    (REPORT + ["--out", "{root}/r", "--target-flops", "0"], r"--target-flops: must be a finite"),
    (REPORT + ["--out", "{root}/r", "--target-flops", "nan"], r"--target-flops: must be a fin"),
    (REPORT + ["--out", "{root}/r", "--bootstrap", "-1"], r"--bootstrap: must be an integer"),
    (["optimal", "--fit", "{fit}", "--flops", "0"], r"--flops: must be a finite number > 0"),
    (["optimal", "--fit", "{fit}", "--params=-1e9"], r"--params: must be a finite number"),
    (["optimal", "--fit", "{fit}", "--loss", "inf"], r"--loss: must be a finite number > 0"),
    (["optimal", "--fit", "{fit}", "--flops", "1e21x"], r"--flops: must be a number > 0 such"),
    # paths of the wrong kind
    (
        ["fit", "--runs-dir", "{root}/a_file", "--approach", "isoflop", "--out", "{root}/o.json"],
        r"--runs-dir .*a_file is a file",
    ),
    (
        [
            "fit",
            "--csv",
            "{root}",
            "--n-col",
            "a",
            "--loss-col",
            "b",
            "--d-col",
            "c",
            "--approach",
            "isoflop",
            "--out",
            "{root}/o.json",
        ],
        r"--csv .* is a folder",
    ),
    (FIT_RUNS[:-1] + ["{root}", "--approach", "isoflop"], r"--out .* is a folder; give the fit"),
    (REPORT + ["--out", "{root}/a_file"], r"--out .*a_file is a file"),
    (REPORT + ["--out", "{root}/a_file/sub"], r"--out .*a_file is a file, not a folder"),
    (FIT_RUNS[:-1] + ["{root}/a_file/f.json", "--approach", "isoflop"], r"a_file is a file, not"),
    (FIT_CSV + ["--approach", "isoflop", "--flop-formula", "counted"], r"'counted' needs c_col"),
    (REPORT + ["--out", "{root}/foreign"], r"foreign is not empty and holds no readable report-"),
    (["report", "--runs-dir", "{root}/a_file", "--out", "{root}/r"], r"--runs-dir .* is a file"),
    (["optimal", "--fit", "{root}", "--flops", "1e20"], r"--fit .* is a folder"),
    # fit files of the wrong shape
    (["optimal", "--fit", "{root}/list.json", "--flops", "1e20"], r"holds a JSON list, not a fit"),
    (["optimal", "--fit", "{root}/torn.json", "--flops", "1e20"], r"torn.json, line \d+, column"),
    (["optimal", "--fit", "{root}/sweep.json", "--flops", "1e20"], r"unknown fit approach None"),
    (["optimal", "--fit", "{root}/nofield.json", "--flops", "1e20"], r"missing field 'k_L'"),
    (["optimal", "--fit", "{root}/nan.json", "--flops", "1e20"], r"a must be finite number"),
    (["optimal", "--fit", "{root}/binary.json", "--flops", "1e20"], r"is not a text file"),
    # table contents: file, line and column; distinct points
    (
        [
            "fit",
            "--csv",
            "{cell}",
            "--n-col",
            "params",
            "--loss-col",
            "loss",
            "--d-col",
            "tokens",
            "--approach",
            "kaplan",
            "--out",
            "{root}/o.json",
        ],
        r"cell.csv, line 3, column 'loss' \(loss\): 'n/a' is not a number",
    ),
    (
        [
            "fit",
            "--csv",
            "{good}",
            "--n-col",
            "Params",
            "--loss-col",
            "loss",
            "--d-col",
            "tokens",
            "--approach",
            "kaplan",
            "--out",
            "{root}/o.json",
        ],
        r"'Params' is not a column.*'params'",
    ),
    (
        [
            "fit",
            "--csv",
            "{copies}",
            "--n-col",
            "params",
            "--loss-col",
            "loss",
            "--d-col",
            "tokens",
            "--approach",
            "parametric",
            "--out",
            "{root}/o.json",
        ],
        r"6 distinct \(N, D\) points, got 1 distinct among 40 rows",
    ),
]


@pytest.mark.parametrize("argv, expected", CASES, ids=[str(i) for i in range(len(CASES))])
def test_odd_input_is_one_line_error(files, capsys, argv, expected):
    rc, err = _run(_fmt(argv, files), capsys)
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert re.search(expected, lines[-1]), err
    if not lines[-1].startswith("usage:") and "error: argument" not in lines[-1]:
        assert len(lines) == 1, err  # our own errors: exactly one line, no traceback
    assert not (files["root"] / "o.json").exists()  # nothing written


def test_make_report_refuses_a_zero_target(files, tmp_path):
    from analysis.report import make_report

    with pytest.raises(ValueError, match="target_flops must be a finite number of FLOPs > 0"):
        make_report(files["sweep"], tmp_path / "r", target_flops=0, n_bootstrap=0)
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_optimal_says_when_the_shape_rule_runs_out(files, capsys):
    fit = str(files["fit"])
    assert main(["optimal", "--fit", fit, "--flops", "1e16", "--json"]) == 0
    inside = json.loads(capsys.readouterr().out)
    assert inside["architecture_capped"] is False and "CAPPED" not in inside["note"]
    assert main(["optimal", "--fit", fit, "--flops", "1e30", "--json"]) == 0
    far = json.loads(capsys.readouterr().out)
    largest = far["architectures"][0]["n_params_non_embedding"]
    assert far["n_params"]["value"] > 100 * largest  # the suggestion is far below N_opt ...
    assert far["architecture_capped"] is True  # ... and the answer says so
    assert "ARCHITECTURE CAPPED" in far["note"] and "n_layers=256" in far["note"]
    assert main(["optimal", "--fit", fit, "--flops", "1e30"]) == 0
    assert "ARCHITECTURE CAPPED" in capsys.readouterr().out
    assert main(["optimal", "--fit", fit, "--flops", "1e8"]) == 0  # below the smallest shape
    assert "below the smallest shape" in capsys.readouterr().out


def test_report_default_convention_is_the_main_jobs():
    main_job = (REPO / "scripts" / "main_job.sh").read_text()
    used = re.findall(r"scaling report .*--n-convention (\w+)", main_job)
    ns = build_parser().parse_args(["report", "--runs-dir", "r", "--out", "o"])
    assert used and all(u == ns.n_convention for u in used)
    fit = build_parser().parse_args(
        ["fit", "--runs-dir", "r", "--approach", "isoflop", "--out", "f.json"]
    )
    assert fit.n_convention is None  # resolved per input: runs dirs -> the same default
    readme = (REPO / "README.md").read_text()
    assert "scaling report --runs-dir /scratch/runs/cluster_example --out report/" in readme


# ---- report --out over an older report ----------------------------------------------------


def _build(names: list[str], fail: bool = False):
    def build(out: Path) -> list[str]:
        for n in names:
            (out / n).write_text(f"new {n}")
        if fail:
            raise ValueError("the fit failed")
        return names

    return build


def test_report_dir_replaces_only_the_old_reports_files(tmp_path):
    out = tmp_path / "rep"
    write_report_dir(out, _build(["index.html", "old_figure.png", "fit_kaplan.json"]))
    assert json.loads((out / MANIFEST).read_text())["files"] == [
        "fit_kaplan.json",
        "index.html",
        "old_figure.png",
    ]
    (out / "my_notes.txt").write_text("keep me")  # the user's own file
    write_report_dir(out, _build(["index.html", "new_figure.png"]))
    assert sorted(p.name for p in out.iterdir()) == [
        "index.html",
        "my_notes.txt",
        "new_figure.png",
        MANIFEST,
    ]  # no stale old_figure.png / fit_kaplan.json beside the new report
    assert (out / "my_notes.txt").read_text() == "keep me"
    assert not list(tmp_path.glob(".rep.previous-report-*"))  # the aside folder is gone


def test_a_failed_report_leaves_the_previous_one_intact(tmp_path):
    out = tmp_path / "rep"
    write_report_dir(out, _build(["index.html", "a.png"]))
    before = {p.name: p.read_text() for p in out.iterdir()}
    with pytest.raises(ValueError, match="the fit failed"):
        write_report_dir(out, _build(["index.html", "b.png"], fail=True))
    assert {p.name: p.read_text() for p in out.iterdir()} == before
    assert not list(tmp_path.glob(".rep.previous-report-*"))


def test_report_dir_refuses_foreign_folders_and_takes_first_release_reports(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("mine")
    with pytest.raises(ReportDirError, match="not empty"):
        write_report_dir(foreign, _build(["index.html"]))
    assert [p.name for p in foreign.iterdir()] == ["data.csv"]
    legacy = tmp_path / "legacy"  # a report written before report-files.json existed
    legacy.mkdir()
    for n in ("index.html", "summary.md", "fit_envelope.json", "loss_curves.png"):
        (legacy / n).write_text("old")
    write_report_dir(legacy, _build(["index.html", "summary.md"]))
    assert sorted(p.name for p in legacy.iterdir()) == ["index.html", MANIFEST, "summary.md"]
    (legacy / "thesis.tex").write_text("mine")  # now tracked: the user's file survives reruns
    write_report_dir(legacy, _build(["index.html"]))
    assert (legacy / "thesis.tex").read_text() == "mine"
