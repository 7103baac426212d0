"""``make_report``: every fit on a runs directory, figures, a backtest, markdown and one HTML page.

Writes into ``out_dir``: ``fit_<approach>.json`` (parametric, isoflop, envelope, kaplan),
figures as PNG and SVG (``isoflop``, ``n_opt``, ``d_opt``, ``loss_curves``,
``parametric_contours``, ``residuals``), ``summary.md`` and a self-contained ``index.html``
(PNG figures embedded as base64). An approach that cannot be fitted is reported with its reason,
not dropped.
"""

from __future__ import annotations

import base64
import html
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.common import Estimate
from analysis.fits import FrontierFit, ParametricFit
from analysis.load import RunsWarning
from analysis.pipeline import FitData, data_from_runs, fits_quietly
from analysis.query import ComputeOptimal, compute_optimal


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
        backtest: held-out largest budget: predicted vs observed N_opt and loss.
        warnings: RunsWarning messages and fit flags.
        files: written files.
    """

    out_dir: Path
    fits: dict[str, Any]
    errors: dict[str, str]
    target_flops: float
    optimal: dict[str, ComputeOptimal]
    architecture: dict[str, Any] | None
    backtest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def exponent(self, approach: str, name: str) -> Estimate | None:
        """``a`` or ``b`` (with CI) from an approach, or None."""
        fit = self.fits.get(approach)
        if fit is None:
            return None
        return fit.estimate(name)

    def text(self) -> str:
        """The short summary the lead's main job prints."""
        lines = ["Scaling-law report", f"  output: {self.out_dir}"]
        for appr, label in (
            ("isoflop", "approach 2 (IsoFLOP)"),
            ("parametric", "approach 3 (parametric)"),
            ("envelope", "approach 1 (envelope)"),
        ):
            a, b = self.exponent(appr, "a"), self.exponent(appr, "b")
            if a is None:
                lines.append(f"  {label}: not fitted ({self.errors.get(appr, '?')})")
            else:
                lines.append(f"  {label}: a = {a}, b = {b}")
        lines.append(f"  target C = {self.target_flops:.3e} FLOPs")
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
        bt = self.backtest
        if bt.get("error"):
            lines.append(f"  backtest: not possible ({bt['error']})")
        else:
            for appr, r in bt.get("results", {}).items():
                lines.append(
                    f"  backtest ({appr}, held-out C={bt['heldout_C']:.3g}): N_opt pred "
                    f"{r['N_pred']:.4g} vs "
                    f"obs {bt['N_obs']:.4g} ({r['N_rel_error']:+.1%}); loss pred "
                    f"{r['L_pred']:.4f} vs "
                    f"obs {bt['L_obs']:.4f} ({r['L_error']:+.4f} nats)"
                )
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _save(fig: Any, out_dir: Path, name: str, files: list[Path]) -> None:
    for ext in ("png", "svg"):
        path = out_dir / f"{name}.{ext}"
        fig.savefig(path, dpi=110)
        files.append(path)


def _backtest(
    data: FitData, n_convention: str, flop_formula: str, seed: int, window: int | None = None
) -> dict[str, Any]:
    """Refit approaches 2 and 3 without the largest IsoFLOP budget; predict its N_opt and loss."""
    kw = dict(n_convention=n_convention, flop_formula=flop_formula)
    full, err = fits_quietly("isoflop", data, window=window, **kw)
    if full is None:
        return {"error": f"approach 2 failed on all data: {err}"}
    usable = [o for o in full.optima if o["used"]]
    if len(usable) < 3:
        return {"error": f"needs >= 3 usable budgets, got {len(usable)}"}
    held = max(usable, key=lambda o: o["C"])
    arr = data.arrays(n_convention, flop_formula)
    from analysis.fits import budget_groups

    budget = (
        arr["budget"] if arr["budget"] is not None and np.all(np.isfinite(arr["budget"])) else None
    )
    groups = budget_groups(arr["C"], budget, full.meta.get("bin_dex", 0.1))
    keep = ~np.isclose(groups, held["flops_budget"], rtol=1e-9)
    sub = FitData(
        data.points[keep].reset_index(drop=True), None, data.loss_col, data.selection, data.meta
    )
    out: dict[str, Any] = {
        "heldout_C": held["C"],
        "N_obs": held["N_opt"],
        "L_obs": held["L_opt"],
        "results": {},
        "note": "observed = the held-out budget's parabola minimum (approach 2 on all data)",
    }
    for appr in ("isoflop", "parametric"):
        extra = {"window": window} if appr == "isoflop" else {}
        fit, err = fits_quietly(appr, sub, seed=seed, **kw, **extra)
        if fit is None:
            out["results"][appr] = {"error": err}
            continue
        loss_fit = fit if isinstance(fit, ParametricFit) else None
        if isinstance(fit, FrontierFit):
            n_pred, l_pred = float(fit.n_opt(held["C"])), float(fit.loss_opt(held["C"]))
        else:
            n_pred = float(fit.compute_optimal(held["C"])[0])
            l_pred = float(loss_fit.predict_loss(*fit.compute_optimal(held["C"])))
        out["results"][appr] = {
            "N_pred": n_pred,
            "L_pred": l_pred,
            "N_rel_error": n_pred / held["N_opt"] - 1,
            "L_error": l_pred - held["L_opt"],
        }
    out["results"] = {k: v for k, v in out["results"].items() if "error" not in v} | {
        k: v for k, v in out["results"].items() if "error" in v
    }
    return out


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
) -> Report:
    """Fit approaches 1, 2, 3 and Kaplan on ``runs_dir``, write figures, JSON, markdown, HTML.

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

    Returns:
        Report (``Report.text()`` is the printable summary).

    Raises:
        FileNotFoundError / ValueError: no runs, or no complete run with a finite loss.
    """
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
    fitted: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for appr in ("parametric", "isoflop", "envelope", "kaplan"):
        fit, err = (
            fits_quietly(appr, data, workers=workers, **kw)
            if appr == "parametric"
            else fits_quietly(appr, data, **kw)
        )
        if fit is None and appr == "isoflop":
            # asymmetric IsoFLOP profiles: a parabola through all points may put its vertex
            # off the grid; retry near the minimum (5 points) and say so
            fit, err2 = fits_quietly(appr, data, window=5, **kw)
            if fit is not None:
                msgs.append(
                    f"isoflop: all-points parabolas failed ({err}); used 5 points per budget"
                )
            err = err if fit is None else None
        if fit is None:
            errors[appr] = err or "unknown error"
            continue
        fitted[appr] = fit
    files: list[Path] = []
    for appr, fit in fitted.items():
        path = out / f"fit_{appr}.json"
        path.write_text(json.dumps(fit.to_dict(), indent=1))
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
    architecture = None
    for appr in ("parametric", "isoflop", "envelope"):
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
    window = fitted["isoflop"].meta.get("window") if "isoflop" in fitted else None
    backtest = _backtest(data, n_convention, flop_formula, seed, window)
    _figures(data, fitted, n_convention, flop_formula, out, files, target)
    rep = Report(out, fitted, errors, target, optimal, architecture, backtest, msgs, files)
    md = _markdown(rep, data)
    (out / "summary.md").write_text(md)
    files.append(out / "summary.md")
    (out / "index.html").write_text(_html(rep, md, out))
    files.append(out / "index.html")
    return rep


def _figures(
    data: FitData,
    fitted: dict[str, Any],
    n_conv: str,
    c_form: str,
    out: Path,
    files: list[Path],
    target: float,
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


def _markdown(rep: Report, data: FitData) -> str:
    lines = [
        "# Scaling-law report",
        "",
        f"Source: `{data.meta.get('source')}`; {data.selection}.",
        "",
        "## Summary",
        "",
        "```",
        rep.text(),
        "```",
        "",
    ]
    for appr, fit in rep.fits.items():
        lines += [f"## {appr}", "", "```", fit.report(), "```", ""]
    for appr, err in rep.errors.items():
        lines += [f"## {appr}", "", f"Not fitted: {err}", ""]
    if rep.optimal:
        lines += ["## Compute-optimal at the target budget", ""]
        for opt in rep.optimal.values():
            lines += ["```", opt.report(), "```", ""]
    lines += ["## Figures", ""]
    for f in rep.files:
        if f.suffix == ".png":
            lines.append(f"![{f.stem}]({f.name})")
    return "\n".join(lines) + "\n"


def _html(rep: Report, md: str, out: Path) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Scaling-law report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}pre{background:#f4f4f4;padding:8px;"
        "overflow-x:auto}img{max-width:100%}</style></head><body>",
        "<h1>Scaling-law report</h1>",
        f"<pre>{html.escape(rep.text())}</pre>",
    ]
    for appr, fit in rep.fits.items():
        parts.append(f"<h2>{html.escape(appr)}</h2><pre>{html.escape(fit.report())}</pre>")
    for appr, err in rep.errors.items():
        parts.append(f"<h2>{html.escape(appr)}</h2><p>Not fitted: {html.escape(err)}</p>")
    for opt in rep.optimal.values():
        parts.append(f"<pre>{html.escape(opt.report())}</pre>")
    parts.append("<h2>Figures</h2>")
    for f in rep.files:
        if f.suffix == ".png":
            b64 = base64.b64encode(f.read_bytes()).decode("ascii")
            parts.append(
                f"<h3>{html.escape(f.stem)}</h3><img alt='{html.escape(f.stem)}' "
                f"src='data:image/png;base64,{b64}'>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
