"""Loss-curve laws (analysis.curves): the law against a direct transcription of the papers'
sums, recovery of known coefficients from synthetic curves, joint fits over N, bad input, and
curves read from run directories (a WSD branch spliced onto its trunk)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analysis.curve_data import run_curves, table_curves
from analysis.curve_predict import curve_loss, predict_final
from analysis.curves import CurveError, CurveFit, fit_curves, make_curve, schedule_lrs

TRUE = dict(L0=1.5, A=1.2, alpha=0.5, B=15.0, C=2.0, beta=0.6, gamma=0.5)


def mpl_direct(p, eta, t):
    """Luo et al. 2025 Eq. (3)-(5) summed step by step (no grouping), 1-based steps."""
    w = int(np.argmax(eta)) + 1
    ld = 0.0
    for k in range(w + 1, t + 1):
        drop = eta[k - 2] - eta[k - 1]
        if drop:
            s = eta[k - 1 : t].sum()
            ld += drop * (1 - (p["C"] * eta[k - 1] ** -p["gamma"] * s + 1) ** -p["beta"])
    return p["L0"] + p["A"] * eta[:t].sum() ** -p["alpha"] - p["B"] * ld


def tissue_direct(p, eta, t, lam=0.999):
    """Tissue et al. 2024 Eq. (1) with the momentum form of S2."""
    w = int(np.argmax(eta)) + 1
    m = s2 = 0.0
    for i in range(1, t + 1):
        m = lam * m + (eta[i - 2] - eta[i - 1] if i > w else 0.0)
        s2 += m
    return p["L0"] + p["A"] * eta[:t].sum() ** -p["alpha"] - p["C"] * s2


def sched(kind, T, lr=1e-2):
    extra = {"wsd": dict(decay_fraction=0.2, decay_shape="1-sqrt")}.get(kind, {})
    return schedule_lrs(T, lr=lr, schedule=kind, warmup_fraction=0.05, min_lr_ratio=0.1, **extra)


def synth(name, kind, T, law=mpl_direct, p=TRUE, every=20, n=math.nan, lr=1e-2):
    eta = sched(kind, T, lr)
    steps = np.arange(every, T + 1, every)
    return make_curve(name, steps, [law(p, eta, int(t)) for t in steps], eta, n)


def _fit_with(params, law="multi_power"):
    return CurveFit(law, params, math.nan, False, 0.0, 1e-3, 0.999, 0, 0, (), (), "every point")


def test_law_matches_the_papers_sums():
    # the grouped decay sum (midpoint rule) against the step-by-step sum: cosine changes the LR
    # at every step, WSD only in its decay
    for kind, T in (("cosine", 1500), ("wsd", 900)):
        eta = sched(kind, T)
        steps = [100, 500, T // 2, T - 7, T]
        got = curve_loss(_fit_with(TRUE), eta, steps)
        want = [mpl_direct(TRUE, eta, t) for t in steps]
        np.testing.assert_allclose(got, want, rtol=2e-4)
    p = dict(L0=1.5, A=1.2, alpha=0.5, C=0.5)
    eta = sched("cosine", 700)
    got = curve_loss(_fit_with(p, "tissue"), eta, [50, 350, 700])
    np.testing.assert_allclose(got, [tissue_direct(p, eta, t) for t in (50, 350, 700)], rtol=1e-9)


def test_multi_power_fit_recovers_and_predicts_an_unseen_schedule():
    curves = [synth("wsd", "wsd", 800, every=40), synth("const", "constant", 400, every=40)]
    fit = fit_curves(curves)
    assert not fit.at_bound  # every coefficient is interior: identified by these curves
    for k in ("L0", "A", "alpha"):
        assert fit.params[k] == pytest.approx(TRUE[k], rel=0.01)
    eta = sched("cosine", 1200)  # other shape, 1.5x the longest fitted horizon
    ans = predict_final(fit, eta)
    assert ans["value"] == pytest.approx(mpl_direct(TRUE, eta, 1200), rel=5e-4)
    assert "1.5x past the fitted horizon" in ans["note"]
    assert set(ans) >= {"value", "ci", "pi", "level"}


def test_tissue_fit_recovers_its_own_law():
    p = dict(L0=1.4, A=1.1, alpha=0.45, C=0.8)
    curves = [synth(k, k, T, tissue_direct, p) for k, T in (("wsd", 800), ("cosine", 600))]
    fit = fit_curves(curves, "tissue")
    for k in p:
        assert fit.params[k] == pytest.approx(p[k], rel=0.02)


def test_joint_fit_over_n_predicts_an_unseen_size_with_intervals():
    def at(n):  # L0, A, B as power laws in N around 1e4
        r = n / 1e4
        return dict(TRUE, L0=1.5 * r**-0.1, A=1.2 * r**-0.2, B=15.0 * r**0.1)

    curves = []
    for i, n in enumerate((3e3, 1e4, 3e4)):
        for kind, T in (("wsd", 600), ("constant", 300)):
            c = synth(f"{kind}{i}", kind, T, p=at(n), n=n)
            curves.append(make_curve(c.run, c.steps, c.loss, c.lrs, n, cluster=f"size{i}"))
    fit = fit_curves(curves, n_bootstrap=8, seed=1)
    assert fit.joint and fit.params["k_L0"] == pytest.approx(-0.1, abs=0.01)
    eta = sched("wsd", 600)
    truth = mpl_direct(at(6e4), eta, 600)
    ans = predict_final(fit, eta, n_params=6e4)
    assert ans["value"] == pytest.approx(truth, rel=2e-3)
    tol = 1e-6 * truth  # noiseless curves: every refit lands on the same law
    assert ans["ci"][0] - tol <= ans["value"] <= ans["ci"][1] + tol
    assert ans["pi"][0] - tol <= ans["value"] <= ans["pi"][1] + tol
    assert "2x above the largest fitted N" in ans["note"]
    back = CurveFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert predict_final(back, eta, n_params=6e4)["value"] == pytest.approx(ans["value"])
    with pytest.raises(ValueError, match="give n_params"):
        predict_final(fit, eta)


def test_bad_input_names_the_run_and_the_row():
    eta = sched("cosine", 100)
    ok = dict(steps=[10, 20, 30, 40, 50], loss=[3, 2.5, 2.2, 2.1, 2.0], lrs=eta)
    make_curve("r", **ok)
    with pytest.raises(CurveError, match=r"run r: 4 point\(s\); .* at least 5"):
        make_curve("r", [10, 20, 30, 40], [3, 2, 2, 2], eta)
    with pytest.raises(CurveError, match="run r, row 2: step 20 is not above"):
        make_curve("r", [10, 20, 20, 40, 50], ok["loss"], eta)
    with pytest.raises(CurveError, match=r"run r, row 3 \(step 40\): loss -1"):
        make_curve("r", ok["steps"], [3, 2.5, 2.2, -1, 2.0], eta)
    with pytest.raises(CurveError, match=r"run r, row 1 \(step 20\): loss nan"):
        make_curve("r", ok["steps"], [3, math.nan, 2.2, 2.1, 2.0], eta)
    bad = eta.copy()
    bad[60] = 0.0
    with pytest.raises(CurveError, match="run r, step 61: learning rate 0.0"):
        make_curve("r", ok["steps"], ok["loss"], bad)
    cyclic = np.concatenate([eta[:50], eta[:50]])  # a second warmup: not representable
    with pytest.raises(CurveError, match="run r: the LR rises again at step 52 .* re-warmup"):
        make_curve("r", ok["steps"], ok["loss"], cyclic)
    with pytest.raises(CurveError, match="the schedule has 40 steps but the curve reaches"):
        make_curve("r", ok["steps"], ok["loss"], eta[:40])
    with pytest.raises(ValueError, match="law must be one of"):
        fit_curves([make_curve("r", **ok)], law="kaplan")


def test_block_bootstrap_of_one_curve_gives_intervals_that_cover_the_truth():
    rng = np.random.default_rng(0)
    c = synth("wsd", "wsd", 800, every=40)
    noisy = make_curve("wsd", c.steps, c.loss * np.exp(rng.normal(0, 0.003, c.loss.size)), c.lrs)
    fit = fit_curves([noisy, synth("const", "constant", 400, every=40)], n_bootstrap=10, seed=0)
    assert fit.bootstrap_unit == "block of 5 points"
    ans = predict_final(fit, c.lrs)  # the noisy run's own end: the noise-free value is covered
    assert ans["pi"][0] < c.loss[-1] < ans["pi"][1]
    assert ans["ci"][0] < ans["ci"][1] and ans["pi"][1] - ans["pi"][0] > 0.004 * ans["value"]


def _write_run(root, name, cfg_extra, rows, status="complete"):
    d = root / "sw" / name
    d.mkdir(parents=True)
    base = {
        "n_tokens": 0,
        "batch_size_tokens": 10,
        "seed": 0,
        "sweep_name": "sw",
        "model": {
            "n_layers": 1,
            "d_model": 16,
            "n_heads": 2,
            "d_mlp": 64,
            "vocab_size": 256,
            "seq_len": 16,
        },
    }
    base.update(cfg_extra)
    (d / "config.json").write_text(json.dumps({"run_name": name, "config": base}))
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if status == "complete":
        summary = {
            "status": "complete",
            "step": rows[-1]["step"],
            "n_params_non_embedding": 3e3,
            "n_params_total": 1e4,
            "val/loss": rows[-1]["val/loss"],
        }
        (d / "summary.json").write_text(json.dumps(summary))


def test_run_directories_give_branch_curves_spliced_onto_their_trunk(tmp_path):
    lr = 1e-2
    trunk_opt = dict(lr=lr, schedule="constant", warmup_fraction=0.05)
    eta_t = schedule_lrs(800, **trunk_opt)
    steps_t = list(range(20, 801, 20))
    _write_run(
        tmp_path,
        "trunk",
        {"n_tokens": 8000, "optim": trunk_opt, "keep_checkpoint_steps": [400, 800]},
        [{"step": t, "val/loss": mpl_direct(TRUE, eta_t, t)} for t in steps_t],
    )
    for T in (500, 1000):
        opt = dict(
            lr=lr, schedule="wsd", warmup_fraction=40 / T, decay_fraction=0.2, decay_shape="1-sqrt"
        )
        eta = schedule_lrs(T, **opt)
        own = range(int(0.8 * T) + 20, T + 1, 20)
        _write_run(
            tmp_path,
            f"b{T}",
            {
                "n_tokens": 10 * T,
                "optim": opt,
                "branch_from": {"run_name": "trunk", "step": int(0.8 * T)},
            },
            [{"step": t, "val/loss": mpl_direct(TRUE, eta, t)} for t in own],
        )
    curves, skipped = run_curves(tmp_path)
    assert not skipped and [c.run for c in curves] == ["b1000", "b500"]
    b = curves[0]
    assert b.cluster == "trunk" and b.steps[0] == 20 and b.steps[-1] == 1000
    assert b.planned_steps == 1000 and b.n_params == 3e3
    fit = fit_curves(curves[1:])  # the short branch alone predicts the long one's end
    ans = predict_final(fit, b.lrs)
    assert ans["value"] == pytest.approx(b.loss[-1], rel=3e-3)


def test_table_curves_use_the_logging_interval_and_refuse_bad_rows(tmp_path):
    eta = sched("cosine", 400)
    rows = ["run,step,lr,loss,N"]
    for t in range(20, 401, 20):
        rows.append(f"a,{t},{eta[t - 1]},{mpl_direct(TRUE, eta, t)},1000")
    p = tmp_path / "c.csv"
    p.write_text("\n".join(rows) + "\n")
    (c,) = table_curves(p, run_col="run", step_col="step", lr_col="lr", loss_col="loss", n_col="N")
    assert c.steps[-1] == 20 and c.planned_steps == 20 and c.n_params == 1000
    p.write_text("\n".join(rows[:3] + [rows[2]] + rows[4:]) + "\n")
    with pytest.raises(CurveError, match="run a, row 2: step 40 is not above"):
        table_curves(p, run_col="run", step_col="step", lr_col="lr", loss_col="loss")
    with pytest.raises(CurveError, match="no lr column 'eta'"):
        table_curves(p, run_col="run", step_col="step", lr_col="eta", loss_col="loss")


def test_cli_fit_curves_then_optimal_then_refusals(tmp_path, capsys):
    from scaling.cli import main

    eta = schedule_lrs(600, lr=1e-2, schedule="wsd", warmup_fraction=0.05, decay_fraction=0.2)
    opt = dict(lr=1e-2, schedule="wsd", warmup_fraction=0.05, decay_fraction=0.2)
    _write_run(
        tmp_path,
        "w600",
        {"n_tokens": 6000, "optim": opt},
        [{"step": t, "val/loss": mpl_direct(TRUE, eta, t)} for t in range(30, 601, 30)],
    )
    out = tmp_path / "curves.json"
    assert (
        main(
            [
                "fit",
                "--runs-dir",
                str(tmp_path),
                "--approach",
                "curves",
                "--law",
                "tissue",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    d = json.loads(out.read_text())
    assert d["approach"] == "curves" and d["runs"][0]["schedule"]["n_steps"] == 600
    capsys.readouterr()
    assert (
        main(["optimal", "--fit", str(out), "--params", "3e3", "--tokens", "6000", "--json"]) == 0
    )
    ans = json.loads(capsys.readouterr().out)
    assert ans["loss"]["value"] == pytest.approx(mpl_direct(TRUE, eta, 600), rel=0.01)
    assert main(["optimal", "--fit", str(out), "--flops", "1e15"]) == 2
    assert "a curve fit answers --params N --tokens D" in capsys.readouterr().err
    assert (
        main(
            [
                "fit",
                "--runs-dir",
                str(tmp_path),
                "--approach",
                "parametric",
                "--law",
                "tissue",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "--law only apply to --approach curves" in capsys.readouterr().err


def test_early_inputs_hide_what_the_run_had_not_seen_at_its_cut():
    from analysis.curve_eval import early_inputs

    def branch(name, T, n, trunk):  # a WSD branch of T steps spliced onto its trunk
        c = synth(name, "wsd", T, n=n, every=10)
        return make_curve(name, c.steps, c.loss, c.lrs, n, cluster=trunk)

    short, long_ = branch("s", 100, 1e3, "t0"), branch("l", 1000, 1e3, "t0")
    seed1 = branch("l_seed1", 1000, 1e3, "t1")  # same size, another trunk
    other = branch("o", 1000, 2e3, "t2")
    seen, cut = early_inputs([short, long_, seed1, other], long_, 0.3)
    by = {c.run: c for c in seen}
    assert cut == 300 and set(by) == {"s", "l", "l_seed1", "o"}
    assert by["l"].steps[-1] == 300 and by["l_seed1"].steps[-1] == 300
    assert by["s"].steps[-1] == 100 and by["o"].steps[-1] == 1000  # done before the cut; other N
    seen, _ = early_inputs([short, long_, other], short, 0.3)
    assert {c.run for c in seen} == {"s", "o"}  # the long sibling is only trunk rows by step 30


def test_running_predictions_give_an_incomplete_run_its_final_loss(tmp_path):
    from analysis.curve_eval import running_predictions

    for name, T, status in (("done", 800, "complete"), ("live", 800, "incomplete")):
        opt = dict(lr=1e-2, schedule="wsd", warmup_fraction=0.05, decay_fraction=0.2)
        eta = schedule_lrs(T, **opt)
        last = T if status == "complete" else 400
        rows = [{"step": t, "val/loss": mpl_direct(TRUE, eta, t)} for t in range(40, last + 1, 40)]
        _write_run(tmp_path, name, {"n_tokens": 10 * T, "optim": opt}, rows, status)
    got = running_predictions(tmp_path / "sw", ["live", "missing"], law="tissue")
    assert got["live"]["value"] == pytest.approx(mpl_direct(TRUE, eta, 800), rel=0.01)
    assert got["missing"] == "fewer than 2 val/loss points yet"
