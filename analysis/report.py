"""``make_report``: every fit on a runs directory, composed into ``summary.md`` and ``index.html``.

This module composes; the numbers come from ``analysis.fit_inputs`` (fits), ``analysis.query``
(the answer at the target budget), ``analysis.backtest`` (forecasts on held-out budgets) and
``analysis.sensitivity`` (how much each analysis choice moves the answer).

Writes into ``out_dir``: ``fit_<approach>.json`` (parametric, isoflop, envelope, kaplan),
``scoring.json`` (the held-out forecast table), ``sensitivity.json``, figures as PNG and SVG
(``isoflop``, ``n_opt``, ``d_opt``, ``loss_curves``, ``parametric_contours``, ``residuals``,
``sensitivity``), the pages' content as ``report-sections.json``, and from it
(``analysis.report_pages.render_pages``) ``summary.md`` and a self-contained ``index.html``
(figures embedded as base64, no network). Both documents carry the same content in the same
order: the headline answer, the forecast rung's check when ``out_dir`` holds its
``forecast.json`` (``scaling sweep forecast``), warnings, the exponents beside the published
ones, the forecast table, the sensitivity table, the figures with captions, and every fit's
full text (collapsible). An approach that cannot be fitted is reported
with its reason, not dropped.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis import limits
from analysis.collapse import scaling_collapse
from analysis.estimates import Estimate, to_jsonable
from analysis.fit_inputs import FitData, data_from_runs, fit_all
from analysis.load import RunsWarning
from analysis.query import ComputeOptimal, compute_optimal
from analysis.regime import format_regime
from analysis.report_pages import Section as _Section
from analysis.report_pages import render_pages, write_sections

LABELS = {
    "envelope": "approach 1 (envelope)",
    "isoflop": "approach 2 (IsoFLOP)",
    "parametric": "approach 3 (parametric)",
    "kaplan": "Kaplan power laws",
    "curves": "curve law (multi-power)",
}
# Published compute-optimal exponents (a: N_opt ∝ C^a, b: D_opt ∝ C^b): Hoffmann et al. 2022
# Table 2 (their approaches 1, 2, 3) and Kaplan et al. 2020 Sec. 6.1 (0.73, 0.27).
PUBLISHED = (
    ("Chinchilla approach 1 (Hoffmann et al. 2022, Table 2)", 0.50, 0.50),
    ("Chinchilla approach 2 (Hoffmann et al. 2022, Table 2)", 0.49, 0.51),
    ("Chinchilla approach 3 (Hoffmann et al. 2022, Table 2)", 0.46, 0.54),
    ("Kaplan et al. 2020 (Sec. 6.1)", 0.73, 0.27),
)
CAPTIONS = {
    "curve_law": "Loss curves are data: each size's validation curves (dots), the multi-power "
    "law fitted jointly to every curve (lines), and the final loss of the size's longest run "
    "predicted from its first 30% of steps plus its schedule (dashed, with the 95% PI; the "
    "vertical line is the cut).",
    "isoflop": "IsoFLOP profiles: final loss against N for each budget, the fitted parabola "
    "(approach 2) and its minimum.",
    "n_opt": "Compute-optimal model size N_opt(C) by approach; bands are bootstrap CIs, dots the "
    "per-budget optima the exponent was fitted to.",
    "d_opt": "Compute-optimal tokens D_opt(C) by approach, as above.",
    "loss_curves": "Every run's loss curve against FLOPs spent, coloured by N; black dots are "
    "approach 1's envelope minima.",
    "parametric_contours": "Approach 3's fitted L(N, D) as contours, the runs (dots) and the "
    "compute-optimal frontier.",
    "residuals": "Approach 3's residuals log L - log L_hat against N; the prediction intervals "
    "resample these.",
    "sensitivity": "Tokens/param at the target budget and the exponent a under each analysis "
    "choice (blue: approach 2, orange: approach 3).",
    "collapse": "Scaling collapse (Qiu et al. 2025): each budget's best run, compute and "
    "reducible loss (L - L0, L0 = approach 3's E) normalised to 1 at the end of training.",
}


@dataclass
class Report:
    """What ``make_report`` found.

    Attributes:
        out_dir: where the files are.
        fits: approach -> fit result (missing when it failed; see ``errors``).
        errors: approach -> why it could not be fitted.
        target_flops: budget C for the recommendation (default 10x the largest swept C).
        optimal: approach -> ComputeOptimal at ``target_flops``.
        architecture: recommended shape (from approach 3 when available, else approach 2).
        forecast: ``analysis.backtest.backtest_forecasts`` output (held-out budgets).
        sensitivity: ``analysis.sensitivity.sensitivity_table`` output (or None).
        warnings: RunsWarning messages and fit flags.
        files: written files.
        limits: ``analysis.limits`` results: ``regime``, ``calibration``, ``collapse``,
            ``dropped`` (the other fit when ``--drop-off-trend`` dropped budgets).
        headline_rule: ``analysis.headline.headline_choice`` of the fits (which approach the
            headline's allocation and loss come from, and why).
        parabola_bias: ``analysis.headline.parabola_bias`` on this sweep's grid at the
            approach-3 law, or None.
    """

    out_dir: Path
    fits: dict[str, Any]
    errors: dict[str, str]
    target_flops: float
    optimal: dict[str, ComputeOptimal]
    architecture: dict[str, Any] | None
    forecast: dict[str, Any]
    sensitivity: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)
    headline_rule: dict[str, Any] = field(default_factory=dict)
    parabola_bias: dict[str, Any] | None = None

    def exponent(self, approach: str, name: str) -> Estimate | None:
        """``a`` or ``b`` (with CI) from an approach, or None."""
        fit = self.fits.get(approach)
        if fit is None:
            return None
        return fit.estimate(name)

    def largest_budget_rows(self) -> dict[str, dict[str, Any]]:
        """The forecast rows that hold out the largest budget (the backtest), by approach."""
        return {
            r["approach"]: r
            for r in self.forecast.get("rows", [])
            if r.get("largest") and "error" not in r and "N_err" in r
        }

    def headline(self) -> tuple[str | None, ComputeOptimal | None]:
        """(approach, answer) the headline uses: ``headline_rule``'s allocation approach.

        Its answer's loss is approach 3's L(N, D) at that approach's (N_opt, D_opt) whenever
        approach 3 is fitted (``compute_optimal(..., loss_fit=...)``).
        """
        appr = (self.headline_rule or {}).get("allocation")
        if appr in self.optimal:
            return appr, self.optimal[appr]
        for appr in ("parametric", "isoflop", "envelope"):
            if appr in self.optimal:
                return appr, self.optimal[appr]
        return None, None

    def text(self) -> str:
        """The short summary the main job prints."""
        lines = ["Scaling-law report", f"  output: {self.out_dir}"]
        for appr in ("isoflop", "parametric", "envelope"):
            a, b = self.exponent(appr, "a"), self.exponent(appr, "b")
            if a is None:
                lines.append(f"  {LABELS[appr]}: not fitted ({self.errors.get(appr, '?')})")
            else:
                lines.append(f"  {LABELS[appr]}: a = {a}, b = {b}")
        lines.append(f"  target C = {self.target_flops:.3e} FLOPs")
        rule = self.headline_rule or {}
        if rule.get("allocation"):
            lines.append(
                f"  headline: N_opt/D_opt from {rule['allocation']}, loss from {rule['loss']} "
                f"({rule['why']}; analysis.headline.HEADLINE_RULE)"
            )
        for appr, opt in self.optimal.items():
            lines.append(
                f"    {appr}: N_opt = {opt.n_params}, D_opt = {opt.n_tokens}, tokens/param = "
                f"{opt.tokens_per_param}, loss = {opt.loss}"
            )
        if self.architecture:
            a = self.architecture
            lines.append(
                f"  train: n_layers={a['n_layers']} d_model={a['d_model']} n_heads={a['n_heads']} "
                f"d_mlp={a['d_mlp']} (N_total={a['n_params_total']:,}) for "
                f"{a['n_tokens']:.3g} tokens"
            )
        else:
            lines.append("  train: no architecture (no shape rule recorded for these runs)")
        if self.forecast.get("error"):
            lines.append(f"  backtest: not possible ({self.forecast['error']})")
        for appr, r in self.largest_budget_rows().items():
            runs = r.get("runs_in_pi")
            lines.append(
                f"  backtest ({appr}, largest usable budget C={r['C']:.3g} held out): N_opt pred "
                f"{r['N_pred']:.4g} vs vertex {r['N_obs']:.4g} ({r['N_err']:+.1%}, "
                f"{_yes_no(r['N_in_iv'])} the CI + vertex se); loss pred {r['L_pred']:.4f} vs "
                f"vertex {r['L_obs']:.4f} ({r['L_err']:+.4f} nats, {_yes_no(r['L_in_iv'])} the "
                "CI + vertex se)"
                + (f"; held-out runs in their one-run 95% PI: {runs[0]}/{runs[1]}" if runs else "")
            )
        lines += _limits_lines(self)
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _save(fig: Any, out_dir: Path, name: str, files: list[Path]) -> None:
    for ext in ("png", "svg"):
        path = out_dir / f"{name}.{ext}"
        fig.savefig(path, dpi=110)
        files.append(path)


def make_report(
    runs_dir: str | Path,
    out_dir: str | Path,
    *,
    n_bootstrap: int = 200,
    target_flops: float | None = None,
    n_convention: str = "non_embedding",
    flop_formula: str = "counted",
    seed: int = 0,
    loss_col: str = "val/loss",
    workers: int | None = None,
    forecast_bootstrap: int = 100,
    sensitivity: bool = True,
    drop_off_trend: bool = False,
    curve_law: bool = False,
) -> Report:
    """Fit approaches 1, 2, 3 and Kaplan on ``runs_dir``; score forecasts; write the report.

    Args:
        runs_dir: sweep folder(s) of run directories.
        out_dir: created if missing.
        n_bootstrap: resamples over runs for every fit's CIs.
        target_flops: budget for the recommendation; default 10x the largest swept C.
        n_convention: N convention for every fit (default Kaplan's ``"non_embedding"``, as the
            main job; Chinchilla's is ``"total"``).
        flop_formula: C formula for every fit (``"counted"`` or ``"6nd"``).
        seed: bootstrap seed.
        loss_col: which loss to fit (``val/loss``, nats/token).
        workers: processes for the approach-3 bootstrap.
        forecast_bootstrap: resamples per held-out refit (capped at ``n_bootstrap``).
        sensitivity: also refit under every analysis choice (``analysis.sensitivity``).
        drop_off_trend: leave out the off-trend head of the budgets (``analysis.regime``'s
            rule) for every fit; the fit on all budgets is shown beside it.
        curve_law: add the loss-curve law's figure (``analysis.curve_plots``; one fit per
            size, so minutes on a large sweep) and the law as a method of the
            leave-one-budget-out backtest (``analysis.backtest``).

    Returns:
        Report (``Report.text()`` is the printable summary).

    Raises:
        FileNotFoundError / ValueError: no runs, or no complete run with a finite loss;
            ``drop_off_trend`` with a rule that cannot apply or would keep < 3 budgets (raised
            before any fit).
    """
    from analysis.backtest import backtest_forecasts
    from analysis.sensitivity import sensitivity_table

    if target_flops is not None and not (math.isfinite(target_flops) and target_flops > 0):
        raise ValueError(f"target_flops must be a finite number of FLOPs > 0, got {target_flops}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunsWarning)
        data = data_from_runs(runs_dir, loss_col)
    msgs = [str(w.message) for w in caught if issubclass(w.category, RunsWarning)]
    for m in msgs:  # re-emit for the caller, and keep them in the report
        warnings.warn(m, RunsWarning, stacklevel=2)
    kw = dict(
        n_convention=n_convention, flop_formula=flop_formula, n_bootstrap=n_bootstrap, seed=seed
    )
    regime = limits.regime_for(data, n_convention, flop_formula, seed)
    all_data, dropped = data, []
    if drop_off_trend:  # refused here, before any fit, when the rule cannot apply
        sub, dropped = limits.without_head(data, regime)
        data = sub if sub is not None else data
    fitted, errors, notes = fit_all(data, workers=workers, **kw)
    msgs += notes
    if regime.get("warning"):
        msgs.append(f"regime: {regime['warning']}")
    files: list[Path] = []
    for appr, fit in fitted.items():
        path = out / f"fit_{appr}.json"
        path.write_text(
            json.dumps(
                {**fit.to_dict(), "regime": to_jsonable(regime), "dropped_budgets": dropped},
                indent=1,
            )
        )
        files.append(path)
    for appr, fit in fitted.items():
        msgs += [f"{appr}: {f}" for f in getattr(fit, "flags", ())]
    edge = int(data.points["lr_at_edge"].sum()) if "lr_at_edge" in data.points else 0
    if edge:
        msgs.append(f"{edge} point(s) have their best LR at the edge of the LR grid")
    max_c = max((f.meta.get("max_flops", 0) for f in fitted.values()), default=0) or float(
        np.nanmax(data.arrays(n_convention, flop_formula)["C"])
    )
    target = 10.0 * max_c if target_flops is None else float(target_flops)
    optimal: dict[str, ComputeOptimal] = {}
    par = fitted.get("parametric")
    for appr in ("parametric", "isoflop", "envelope"):
        if appr in fitted:
            optimal[appr] = compute_optimal(
                target, fitted[appr], loss_fit=par if appr != "parametric" else None
            )
    from analysis.headline import headline_choice, parabola_bias

    rule = headline_choice(fitted)
    architecture = None
    first = [rule["allocation"]] if rule["allocation"] else []
    for appr in dict.fromkeys([*first, "parametric", "isoflop", "envelope"]):
        opt = optimal.get(appr)
        if opt and opt.architectures:
            architecture = {
                **opt.architectures[0].to_dict(),
                "approach": appr,
                "n_tokens": opt.n_tokens.value,
                "flops": target,
            }
            if opt.architecture_capped:  # the shape rule ran out of shapes: say so
                msgs.append(f"{appr}: {opt.note}")
            break
    cal = limits.calibration_for(data, n_convention, flop_formula, optimal, target)
    other = None
    if dropped:  # the fit on all budgets, beside the one the rule chose
        alt, alt_err, _ = fit_all(all_data, workers=workers, **kw)
        other = limits.other_fit_text(alt, alt_err, target, dropped, optimal)
    collapse = None
    if data.curves is not None and len(data.curves):
        par_fit = fitted.get("parametric")
        collapse = scaling_collapse(
            data.curves, data.points, data.loss_col, getattr(par_fit, "E", None)
        )
    window = fitted["isoflop"].meta.get("window") if "isoflop" in fitted else None
    forecast = backtest_forecasts(
        data,
        n_convention=n_convention,
        flop_formula=flop_formula,
        n_bootstrap=min(forecast_bootstrap, n_bootstrap),
        seed=seed,
        window=window,
        workers=workers,
        curve_law=curve_law,
    )
    sens = None
    if sensitivity:
        own = [fitted[k] for k in ("isoflop", "parametric") if k in fitted]
        sens = sensitivity_table(data, target, window=window, done=own)
    # held-out scoring as scoring.json: forecast.json is the forecast rung's (sweeps.rung)
    for name, obj in (("scoring", forecast), ("sensitivity", sens)):
        if obj is not None:
            (out / f"{name}.json").write_text(json.dumps(to_jsonable(obj), indent=1))
            files.append(out / f"{name}.json")
    _figures(data, fitted, n_convention, flop_formula, out, files, target, sens)
    if curve_law:
        from analysis.curve_plots import curve_figure

        try:
            _save(curve_figure(runs_dir, loss_col=loss_col), out, "curve_law", files)
        except ValueError as e:
            msgs.append(f"curve-law figure not drawn: {e}")
    from analysis.load import load_runs
    from analysis.optimality import lr_optimality

    lr_check = lr_optimality(load_runs(runs_dir, warn=False), loss_col)
    lim = {
        "regime": regime,
        "calibration": cal,
        "collapse": collapse,
        "dropped": other,
        "lr_check": lr_check,
    }
    (out / "limits.json").write_text(json.dumps(to_jsonable(limits.jsonable(lim)), indent=1))
    files.append(out / "limits.json")
    if collapse is not None and not collapse.get("error"):
        from analysis import plots

        _save(plots.plot_collapse(collapse), out, "collapse", files)
    rep = Report(
        out, fitted, errors, target, optimal, architecture, forecast, sens, msgs, files, lim
    )
    bias = None
    if par is not None and "isoflop" in fitted:
        arr = data.arrays(n_convention, flop_formula)
        try:
            bias = parabola_bias(
                par,
                arr["N"],
                arr["D"],
                arr["C"],
                arr["budget"],
                n_convention=n_convention,
                flop_formula=flop_formula,
                window=window,
            )
        except ValueError as e:
            msgs.append(f"parabola bias (Czech et al. 2026) not simulated: {e}")
    rep.headline_rule, rep.parabola_bias = rule, bias
    sections = _sections(rep, data)
    files.append(write_sections(out, sections))
    files += render_pages(out, sections)  # summary.md, index.html (with forecast.json's rung)
    return rep


def _figures(
    data: FitData,
    fitted: dict[str, Any],
    n_conv: str,
    c_form: str,
    out: Path,
    files: list[Path],
    target: float,
    sens: dict[str, Any] | None,
) -> None:
    from analysis import plots

    arr = data.arrays(n_conv, c_form)
    if "isoflop" in fitted:
        budget = (
            arr["budget"]
            if arr["budget"] is not None and np.all(np.isfinite(arr["budget"]))
            else None
        )
        _save(
            plots.plot_isoflop(fitted["isoflop"], arr["N"], arr["L"], arr["C"], budget),
            out,
            "isoflop",
            files,
        )
    side = {k: fitted[k] for k in ("envelope", "isoflop", "parametric") if k in fitted}
    if side:
        cmin = float(np.nanmin(arr["C"])) / 2
        for which in ("N", "D"):
            fig = plots.plot_optimal_allocation(side, which, c_range=(cmin, target * 1.5))
            _save(fig, out, f"{which.lower()}_opt", files)
    if data.curves is not None and len(data.curves):
        _save(
            plots.plot_loss_curves(
                data.curves, f"n_params_{n_conv}", data.loss_col, fitted.get("envelope")
            ),
            out,
            "loss_curves",
            files,
        )
    if "parametric" in fitted:
        par = fitted["parametric"]
        _save(
            plots.plot_parametric_contours(par, arr["N"], arr["D"]),
            out,
            "parametric_contours",
            files,
        )
        _save(plots.plot_residuals(par, arr["N"], arr["D"], arr["L"]), out, "residuals", files)
    if sens is not None and any("error" not in r for r in sens["rows"]):
        _save(plots.plot_sensitivity(sens), out, "sensitivity", files)


# ---------------------------------------------------------------------------------------------
# Content: a list of sections, rendered to markdown and to HTML (same content in both)
# ---------------------------------------------------------------------------------------------


def _fmt_number(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def _fmt_estimate(e: Estimate, digits: int = 3) -> str:
    s = _fmt_number(e.value, digits)
    if math.isfinite(e.ci[0]):
        s += f" [{_fmt_number(e.ci[0], digits)}, {_fmt_number(e.ci[1], digits)}]"
    return s


def _fmt_interval(iv: Any, digits: int = 4) -> str:
    if iv is None or iv[0] is None or not math.isfinite(iv[0]):
        return "–"
    return f"[{_fmt_number(iv[0], digits)}, {_fmt_number(iv[1], digits)}]"


def _yes_no(x: bool | None) -> str:
    return "n/a" if x is None else ("inside" if x else "OUTSIDE")


def _headline(rep: Report) -> _Section:
    appr, opt = rep.headline()
    sec = _Section("Answer", css_class="headline")
    if opt is None:
        sec.paragraphs.append(
            "No compute-optimal answer: no approach could be fitted (see the fit sections)."
        )
        return sec
    conv = opt.n_convention.replace("_", "-")
    pi = opt.loss.pi
    pi_s = (
        f"; a single run lands in {_fmt_interval(pi)} (95% PI)"
        if pi and math.isfinite(pi[0])
        else ""
    )
    head = limits.headline_for(rep.limits, appr)
    if head is not None:
        pi_s = f"; a single run lands in {_fmt_interval(head[0])} (95%, {head[1]})"
    sec.paragraphs.append(
        f"At C = {rep.target_flops:.3g} FLOPs ({opt.flop_formula} FLOPs), train a model of "
        f"**{_fmt_estimate(opt.n_params)}** {conv} parameters on "
        f"**{_fmt_estimate(opt.n_tokens)}** tokens "
        f"(**{_fmt_estimate(opt.tokens_per_param)}** tokens/param). Expected loss "
        f"**{_fmt_estimate(opt.loss, 4)}** nats/token{pi_s}. Brackets are 95% bootstrap CIs; from "
        f"{LABELS[appr]}."
    )
    a = rep.architecture
    if a:
        sec.paragraphs.append(
            f"Architecture to train: **n_layers={a['n_layers']}, d_model={a['d_model']}, "
            f"n_heads={a['n_heads']}, d_mlp={a['d_mlp']}** (N_total={a['n_params_total']:,}, "
            f"N_non_embedding={a['n_params_non_embedding']:,}; nearest shape under the sweep's "
            f"shape rule, from {LABELS[a['approach']]}) for {a['n_tokens']:.3g} tokens."
        )
    else:
        sec.paragraphs.append("Architecture: none named (no shape rule recorded for these runs).")
    head = ["approach", "N_opt", "D_opt", "tokens/param", "loss [CI]", "loss 95% PI"]
    rows = [
        [
            LABELS[k],
            _fmt_estimate(o.n_params),
            _fmt_estimate(o.n_tokens),
            _fmt_estimate(o.tokens_per_param),
            _fmt_estimate(o.loss, 4),
            _fmt_interval(o.loss.pi),
        ]
        for k, o in rep.optimal.items()
    ]
    sec.table = (head, rows)
    rule = rep.headline_rule or {}
    if rule.get("allocation"):
        from analysis.headline import HEADLINE_RULE

        sec.paragraphs.append(
            f"{HEADLINE_RULE} Here: {rule['why']}, so N_opt and D_opt come from "
            f"{LABELS[rule['allocation']]} and the loss from {LABELS[rule['loss']]}."
        )
    bias = rep.parabola_bias
    if bias and bias["rows"]:
        worst = max(bias["rows"], key=lambda r: abs(r["N_bias"]))
        sec.paragraphs.append(
            "Approach 2's parabola bias on this grid (Czech et al. 2026, arXiv:2603.22339; "
            "simulated without noise at the approach-3 law, each vertex against the law's "
            f"minimum on its budget): N_opt off by {worst['N_bias']:+.1%} at worst (C = "
            f"{worst['C']:.3g}), loss by {max(abs(r['L_bias']) for r in bias['rows']):.4f} nats "
            f"at worst; exponent a {bias['a_vertex']:.3f} from the vertices against "
            f"{bias['a_true']:.3f} from the law's minima ({bias['a_bias']:+.3f})."
        )
    notes = [o.note for o in rep.optimal.values() if o.note]
    if notes:
        sec.paragraphs.append("Note: " + notes[0])
    return sec


def _exponents(rep: Report) -> _Section:
    sec = _Section("Exponents: N_opt ∝ C^a, D_opt ∝ C^b")
    rows = []
    for appr in ("envelope", "isoflop", "parametric"):
        if appr in rep.fits:
            a, b = rep.exponent(appr, "a"), rep.exponent(appr, "b")
            rows.append([f"this sweep: {LABELS[appr]}", _fmt_estimate(a), _fmt_estimate(b)])
        else:
            rows.append([f"this sweep: {LABELS[appr]}", "not fitted", rep.errors.get(appr, "")])
    rows += [[name, f"{a:.2f}", f"{b:.2f}"] for name, a, b in PUBLISHED]
    sec.table = (["", "a [95% CI]", "b [95% CI]"], rows)
    sec.paragraphs.append(
        "Chinchilla's approaches put a ≈ b ≈ 0.5 (equal scaling of N and D); Kaplan's "
        "a = 0.73 favours model size. Conventions here: "
        f"N = {next(iter(rep.fits.values())).n_convention if rep.fits else '?'} parameters."
    )
    return sec


def _forecast(rep: Report) -> _Section:
    fc = rep.forecast
    sec = _Section("Forecasts on held-out data")
    if fc.get("error"):
        sec.paragraphs.append(f"Not possible: {fc['error']}")
        return sec
    sec.paragraphs.append(fc.get("note", ""))
    rows = []
    for r in fc["rows"]:
        if "error" in r:
            rows.append([r["held_out"], LABELS[r["approach"]], "refit failed", r["error"], "", ""])
            continue
        shared = r.get("shared")
        held = r["held_out"] + (
            f"; {shared[0]}/{shared[1]} share a trunk" if shared and shared[0] else ""
        )
        runs = r.get("runs_in_pi")
        runs_s = f"{runs[0]}/{runs[1]}" if runs else "–"
        if "N_err" in r:
            n_cell = (
                f"{_fmt_number(r['N_pred'])} vs {_fmt_number(r['N_obs'])} "
                f"({r['N_err']:+.1%}) {_yes_no(r['N_in_iv'])}"
            )
            l_cell = (
                f"{r['L_pred']:.4f} vs {r['L_obs']:.4f} ({r['L_err']:+.4f}) {_yes_no(r['L_in_iv'])}"
            )
        elif "run_rel_errs" in r:  # the curve law: each held-out run's final loss
            n_cell = "–"
            errs = ", ".join(f"{e:+.1%}" for e in r["run_rel_errs"])
            l_cell = f"held-out runs' final loss: errors {errs} (mean {r['run_L_err']:+.4f})"
            if r.get("n_held_without_curve"):
                l_cell += f"; {r['n_held_without_curve']} run(s) with too short a curve"
        else:  # one held-out run against its one-run PI
            n_cell = "–"
            l_cell = (
                f"{r['L_pred']:.4f} vs {r['L_obs']:.4f} ({r['L_err']:+.4f}); PI "
                f"{_fmt_interval(r['L_pi'])} {_yes_no(r['L_in_pi'])}"
            )
        rows.append([held, LABELS[r["approach"]], r.get("kind", ""), n_cell, l_cell, runs_s])
    sec.table = (
        [
            "held out",
            "approach",
            "kind",
            "N_opt pred vs vertex (err), in CI + vertex se",
            "loss pred vs obs (err, nats), in interval",
            "held-out runs in one-run 95% PI",
        ],
        rows,
    )
    flagged = [
        f"{r['held_out']} ({', '.join(f.split(':')[0] for f in r['flags'])})"
        for r in fc["rows"]
        if r.get("flags") and r["approach"] == "parametric"
    ]
    if flagged:
        sec.paragraphs.append(
            "Approach-3 refits whose bootstrap flags a parameter as not identified (fewer "
            "budgets left): " + "; ".join(flagged) + "."
        )
    for appr, s in fc.get("summary", {}).items():
        parts = [f"{LABELS[appr]}: {s['n']} refit(s)"]
        if "mean_abs_N_err" in s:
            parts.append(
                f"mean |N_opt error| {s['mean_abs_N_err']:.1%}, vertex N_opt in CI + vertex se "
                f"{s['N_in_iv']}/{s['n']}, vertex loss in CI + vertex se {s['L_in_iv']}/{s['n']}"
                + (f" ({s['iv_na']} without an interval)" if s.get("iv_na") else "")
            )
        if "mean_abs_L_err" in s:
            parts.append(f"mean |loss error| {s['mean_abs_L_err']:.4f} nats")
        if "median_abs_run_rel_err" in s:
            parts.append(f"median |relative error| of a run {s['median_abs_run_rel_err']:.2%}")
        if "runs_in_pi" in s:
            k, m = s["runs_in_pi"]
            lo, hi = s["runs_in_pi_ci"]
            parts.append(
                f"held-out runs in their one-run 95% PI {k}/{m}"
                + (f" (Wilson 95% [{lo:.0%}, {hi:.0%}])" if m else "")
            )
        sec.paragraphs.append("; ".join(parts) + ".")
    return sec


def _sensitivity(rep: Report) -> _Section:
    sec = _Section("Sensitivity to analysis choices")
    tab = rep.sensitivity
    if tab is None:
        sec.paragraphs.append("Not computed (make_report(sensitivity=False)).")
        return sec
    from analysis.sensitivity import spread

    lo, hi = spread(tab, "tokens_per_param")
    alo, ahi = spread(tab, "a")
    sec.paragraphs.append(
        f"The same runs refitted under each N convention x C formula x Huber delta x approach "
        f"(point estimates at C = {tab['target_flops']:.3g}). Tokens/param ranges "
        f"{_fmt_number(lo)} to {_fmt_number(hi)}, a from {_fmt_number(alo)} to {_fmt_number(ahi)}."
    )
    rows = []
    for r in tab["rows"]:
        lead = [
            r["n_convention"],
            r["flop_formula"],
            "2" if r["approach"] == "isoflop" else "3",
            "–" if r["huber_delta"] is None else f"{r['huber_delta']:g}",
        ]
        if "error" in r:
            rows.append(lead + ["not fitted", r["error"][:80], "", ""])
        else:
            rows.append(
                lead
                + [
                    f"{r['a']:.3f}",
                    f"{r['b']:.3f}",
                    _fmt_number(r["n_opt"]),
                    _fmt_number(r["tokens_per_param"]),
                ]
            )
    sec.table = (
        ["N convention", "C formula", "approach", "Huber δ", "a", "b", "N_opt", "tokens/param"],
        rows,
    )
    return sec


def _sections(rep: Report, data: FitData) -> list[_Section]:
    intro = _Section(
        "Scaling-law report",
        [
            f"Source: `{data.meta.get('source')}`; {data.selection}. Target budget "
            f"C = {rep.target_flops:.3g} FLOPs."
        ],
    )
    out = [intro, _headline(rep)]
    if rep.warnings:
        out.append(_Section("Warnings", ["- " + w for w in rep.warnings], css_class="warn"))
    if rep.limits:
        lim = rep.limits
        out.append(
            _Section(
                "Limits: regime, calibrated intervals, scaling collapse",
                limits.limits_paragraphs(
                    lim["regime"], lim["calibration"], lim["collapse"], lim["dropped"]
                )
                + [lim["lr_check"]["text"]],
                pre=format_regime(lim["regime"]),
            )
        )
    out += [_exponents(rep), _forecast(rep), _sensitivity(rep)]
    figs = _Section("Figures")
    for f in rep.files:
        if f.suffix == ".png":
            figs.figures.append((f, CAPTIONS.get(f.stem, f.stem)))
    out.append(figs)
    fits = _Section("Fits in full")
    for appr, fit in rep.fits.items():
        fits.details.append((LABELS[appr], fit.report()))
    for appr, err in rep.errors.items():
        fits.details.append((f"{LABELS[appr]}: not fitted", err))
    for appr, opt in rep.optimal.items():
        fits.details.append((f"{LABELS[appr]}: answer at the target budget", opt.report()))
    fits.details.append(("Summary printed by `scaling report`", rep.text()))
    out.append(fits)
    return out


def _limits_lines(rep: Report) -> list[str]:
    lim = rep.limits
    if not lim:
        return []
    lines = []
    reg = lim["regime"]
    if not reg.get("judged"):
        lines.append(f"  regime: {reg['reason']}")
    else:
        loc = ", ".join(f"{r['from']:.3g}->{r['to']:.3g} {r['exponent']:.3f}" for r in reg["local"])
        lof = reg.get("constant_exponent")
        test = f"; one exponent: p = {lof['p_value']:.3g}" if lof else ""
        lines.append(f"  regime: local exponents {loc}{test}")
    appr, _ = rep.headline()
    head = limits.headline_for(lim, appr)
    if head is not None:
        lines.append(f"  headline interval ({appr}): {_fmt_interval(head[0])} ({head[1]})")
    col = lim.get("collapse")
    if col and not col.get("error"):
        lines.append(f"  scaling collapse spread: {col['spread']:.4f}")
    return lines
