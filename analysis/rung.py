"""The forecast rung: which models to train beyond the fitted budgets, and how the forecast scored.

A scaling law is judged by a model it did not see: train the architecture the fit names at a
budget C beyond the largest fitted one (Marin's "rung") and compare its final loss with the
forecast. This module is the torch-free half (the other is ``sweeps.rung``, which turns the
shapes into runs and trains them; the ``scaling sweep forecast`` command joins the two):

1. ``rung_members(fit, C, neighbours)``: the architecture ``compute_optimal(C, fit)`` names
   (what ``scaling optimal --fit FIT --flops C`` prints first), and optionally two neighbours at
   0.5x and 2x its N at the same C, so the forecast's choice of N is checked too;
2. ``predict_member``: the loss forecast for a planned run's exact (N, D):
   ``analysis.forecast.predict_loss`` (approach 3's L(N, D) = E + A/N^alpha + B/D^beta,
   Hoffmann et al. 2022 Eq. 2, with a bootstrap CI of the mean and a prediction interval for one
   new run);
3. ``score_forecast``: predicted against actual, written as ``forecast.json``, printed
   (``forecast_text``) and shown in the report's ``index.html``/``summary.md``, which
   ``analysis.report_pages.render_pages`` composes from what is in the report folder.

4. ``curve_forecast`` (opt-in, ``scaling sweep forecast --curve-law``; issue 21): the loss-curve
   law's forecast of the same runs *beside* approach 3's, recorded as ``forecast.json``'s
   ``"curve_law"``: the multi-power law (Luo et al. 2025, ``analysis.curves``) fitted jointly
   over N to every curve of the study's sweep, predicting each rung run's final loss on its
   planned schedule at its N. It is shown, scored, and never used for the rung check: the check
   is approach 3's, chosen and committed before the rung ran (``sweeps/defs/cpu_isoflop.py``).

``read_fit`` and ``rung_budget`` check the inputs before anything is planned; ``forecast_rows``
turns the planned runs into the members' forecasts. ``sweeps.rung.forecast_rung`` is the one
path through all of this: it asks this module what to train, plans once, trains, and scores.

Units: C in FLOPs under the fit's ``flop_formula`` (``counted`` for runs of this package), N in
the fit's ``n_convention``, D in tokens, losses in nats per token (``val/loss``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.forecast import predict_loss
from analysis.parametric import ParametricFit
from analysis.query import Architecture, architectures_for, compute_optimal
from scaling import rundir

#: neighbour roles and their factor on the optimum's N (same budget C)
NEIGHBOURS = {"half": 0.5, "double": 2.0}


@dataclass(frozen=True)
class RungMember:
    """One model of the rung.

    Attributes:
        role: ``"optimum"`` (the named architecture), ``"half"`` or ``"double"`` (neighbours
            nearest to 0.5x and 2x the optimum's N).
        architecture: the shape, exactly counted.
        target_n_params: the N the member was chosen for (fit convention).
    """

    role: str
    architecture: Architecture
    target_n_params: float

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(n_layers, d_model, n_heads, d_mlp)``."""
        a = self.architecture
        return (a.n_layers, a.d_model, a.n_heads, a.d_mlp)


def _n_params_in(arch: Architecture, n_convention: str) -> int:
    return arch.n_params_non_embedding if n_convention == "non_embedding" else arch.n_params_total


def _same_depth_widths(arch: Architecture, fit: ParametricFit) -> list[Architecture]:
    # shapes at the optimum's depth with other widths (same head width and MLP ratio): a finer
    # ladder than a shape rule whose neighbouring shapes are ~8x apart in N
    from scaling.config import ModelConfig
    from scaling.counting import param_counts

    d_head = arch.d_model // arch.n_heads
    mlp_ratio = arch.d_mlp / arch.d_model
    meta = fit.meta or {}
    out = []
    for n_heads in range(1, 4 * arch.n_heads + 1):
        d_model = n_heads * d_head
        d_mlp = round(mlp_ratio * d_model)
        model = ModelConfig(
            n_layers=arch.n_layers,
            d_model=d_model,
            n_heads=n_heads,
            d_mlp=d_mlp,
            vocab_size=int(meta.get("vocab_size", 256)),
            seq_len=int(meta.get("seq_len", 256)),
        )
        pc = param_counts(model)
        out.append(Architecture(arch.n_layers, d_model, n_heads, d_mlp, pc.total, pc.non_embedding))
    return out


def read_fit(fit_path: str | Path) -> ParametricFit:
    """The approach-3 fit in ``fit_path`` (``fit_parametric.json`` of ``scaling report``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, not a fit written by ``scaling fit``/``scaling report``, or
            (``rung_members``) not approach 3.
    """
    import json

    from analysis.fits import fit_from_dict

    fit_path = Path(fit_path)
    if not fit_path.is_file():
        raise FileNotFoundError(
            f"--fit {fit_path} does not exist; run `scaling report` (fit_parametric.json) first"
        )
    try:
        return fit_from_dict(json.loads(fit_path.read_text()))
    except json.JSONDecodeError as e:
        raise ValueError(f"--fit {fit_path} is not valid JSON: {e}") from None
    except (KeyError, TypeError) as e:
        raise ValueError(
            f"--fit {fit_path} is not a fit written by `scaling fit`/`scaling report` "
            f"(missing {e}); pass fit_parametric.json"
        ) from None


def rung_budget(fit: Any, fit_path: str | Path, factor: float, flops: float | None) -> float:
    """The rung's budget C (FLOPs): ``flops`` if given, else ``factor`` x the largest fitted C.

    Raises:
        ValueError: the fit records no largest budget (and ``flops`` is not given), or C <= 0.
    """
    if flops is None:
        max_c = (getattr(fit, "meta", None) or {}).get("max_flops")
        if not max_c:
            raise ValueError(f"--fit {fit_path} records no largest fitted budget; pass --flops")
        flops = factor * max_c
    if not flops > 0:
        raise ValueError(f"the rung's budget must be > 0 FLOPs, got {flops}")
    return float(flops)


def forecast_rows(
    fit: ParametricFit, members: list[RungMember], planned: dict[tuple[int, int, int], Any]
) -> list[dict[str, Any]]:
    """One ``score_forecast`` member per rung member, forecast at its planned run's exact N, D.

    Args:
        fit: the approach-3 fit.
        members: ``rung_members``.
        planned: the planned run (``run_name``, ``n_tokens`` and ``n_params_<convention>``
            attributes, e.g. ``sweeps.plan.PlannedRun``) by ``(n_layers, d_model, n_heads)``.

    Returns:
        Dicts with ``actual_loss`` None (set it from each run's ``summary.json``).
    """
    n_key = f"n_params_{fit.n_convention}"
    rows = []
    for m in members:
        run = planned[m.shape[:3]]
        n_params = getattr(run, n_key)
        rows.append(
            {
                "role": m.role,
                "architecture": m.architecture.to_dict(),
                "n_params": n_params,
                "n_tokens": run.n_tokens,
                "run_name": run.run_name,
                "predicted_loss": predict_member(fit, n_params, run.n_tokens),
                "actual_loss": None,
            }
        )
    return rows


def rung_members(fit: ParametricFit, flops: float, neighbours: bool = False) -> list[RungMember]:
    """The rung's models at budget ``flops``: the named optimum, then the neighbours if asked.

    The optimum is ``compute_optimal(flops, fit).architectures[0]``: the shape under the fit's
    recorded shape rule nearest to N_opt. A neighbour is the shape nearest (in log N) to 0.5x
    or 2x the optimum's N among the rule's candidates and the optimum's depth at other widths
    (multiples of its head width); it is left out when no shape other than the optimum exists.

    Raises:
        ValueError: ``fit`` is not approach 3, ``flops`` is not positive, or the fit has no
            shape rule to name an architecture (fit a runs directory that has ``sweep.json``).
    """
    if not isinstance(fit, ParametricFit):
        raise ValueError(
            f"the forecast rung needs an approach-3 fit (fit_parametric.json), got "
            f"{getattr(fit, 'approach', type(fit).__name__)!r}"
        )
    opt = compute_optimal(flops, fit)
    if not opt.architectures:
        raise ValueError(f"the fit names no architecture at C={flops:.3g}: {opt.note}")
    best = opt.architectures[0]
    members = [RungMember("optimum", best, float(opt.n_params.value))]
    if not neighbours:
        return members
    n_best = _n_params_in(best, fit.n_convention)
    for role, factor in NEIGHBOURS.items():
        target = factor * n_best
        pool = list(architectures_for(target, fit, k=5)[0]) + _same_depth_widths(best, fit)
        pool = [a for a in pool if (a.n_layers, a.d_model) != (best.n_layers, best.d_model)]
        if pool:
            near = min(
                pool, key=lambda a: abs(math.log(_n_params_in(a, fit.n_convention) / target))
            )
            members.append(RungMember(role, near, target))
    return members


def predict_member(
    fit: ParametricFit, n_params: float, n_tokens: float, level: float = 0.95
) -> dict[str, Any]:
    """Forecast loss of one run: ``{"value", "ci": [lo, hi], "pi": [lo, hi], "level"}``.

    ``analysis.forecast.predict_loss`` at the run's exact N (fit convention) and D (tokens).
    """
    return predict_loss(fit, n_params, n_tokens, level)


def _score(predicted: dict[str, Any], actual: float | None) -> dict[str, Any]:
    if actual is None or not math.isfinite(actual):
        return {"actual_loss": None, "rel_error": None, "inside_pi": None}
    pi = predicted.get("pi")
    has_pi = pi is not None and all(x is not None and math.isfinite(x) for x in pi)
    return {
        "actual_loss": actual,
        "rel_error": predicted["value"] / actual - 1.0,
        "inside_pi": bool(pi[0] <= actual <= pi[1]) if has_pi else None,
    }


def score_forecast(
    fit: ParametricFit, flops: float, members: list[dict[str, Any]], fit_path: str | None = None
) -> dict[str, Any]:
    """The ``forecast.json`` record: the optimum's forecast against its actual loss.

    Args:
        fit: the approach-3 fit that made the forecast.
        flops: the rung's budget C.
        members: one dict per trained model, the optimum first: ``role``, ``architecture``
            (``Architecture.to_dict()``), ``n_params`` (fit convention), ``n_tokens``,
            ``run_name``, ``predicted_loss`` (``predict_member``), ``actual_loss`` (final
            ``val/loss``, None while not trained or when the run failed).
        fit_path: where the fit was read from (recorded).

    Returns:
        ``{"flops", "n_params", "n_tokens", "architecture", "predicted_loss", "actual_loss",
        "rel_error", "inside_pi", ...}`` for the optimum, where ``rel_error = predicted /
        actual - 1`` (positive: the forecast was too pessimistic) and ``inside_pi`` says
        whether the actual loss lies in the prediction interval (None without a PI). With
        neighbours, ``members`` lists all of them (each scored the same way) and ``best`` names
        the role with the lowest actual loss (None until all are trained).
    """
    scored = [{**m, **_score(m["predicted_loss"], m.get("actual_loss"))} for m in members]
    top = scored[0]
    max_c = (fit.meta or {}).get("max_flops")
    out: dict[str, Any] = {
        "flops": float(flops),
        "n_params": top["n_params"],
        "n_convention": fit.n_convention,
        "n_tokens": top["n_tokens"],
        "architecture": top["architecture"],
        "run_name": top["run_name"],
        "predicted_loss": top["predicted_loss"],
        "actual_loss": top["actual_loss"],
        "rel_error": top["rel_error"],
        "inside_pi": top["inside_pi"],
        "loss_metric": "val/loss",
        "fit": {
            "approach": fit.approach,
            "path": fit_path,
            "max_fitted_flops": max_c,
            "extrapolation_factor": float(flops) / max_c if max_c else None,
        },
    }
    if len(scored) > 1:
        out["members"] = scored
        losses = [m["actual_loss"] for m in scored]
        out["best"] = (
            scored[min(range(len(scored)), key=losses.__getitem__)]["role"]
            if all(x is not None for x in losses)
            else None
        )
    return out


#: bootstrap refits of the curve law's rung forecast (each a joint fit; cost in docs/LOG.md)
CURVE_BOOTSTRAP = 20


def curve_forecast(
    curves_root: str | Path,
    members: list[dict[str, Any]],
    schedules: dict[str, Any],
    n_convention: str = "non_embedding",
    law: str = "multi_power",
    n_bootstrap: int = CURVE_BOOTSTRAP,
    level: float = 0.95,
) -> dict[str, Any]:
    """The curve law's forecast of the rung's members, beside approach 3's (module item 4).

    Args:
        curves_root: the study's sweep folder (complete runs' curves; ``analysis.curve_data``).
        members: ``forecast_rows`` (``run_name``, ``n_params`` in ``n_convention``).
        schedules: run name -> its planned per-step LRs, shape (T,) (``planned_lrs``).
        n_convention: the N of the joint fit, as the approach-3 fit's.
        law: ``"multi_power"`` (default) or ``"tissue"``.
        n_bootstrap: bootstrap refits over trunk clusters (CI; the PI adds the residuals).
        level: interval coverage.

    Returns:
        ``{"law", "n_curves", "skipped", "fit_seconds", "note", "members": [{"role",
        "run_name", "n_params", "predicted_loss": {"value", "ci", "pi", "level", "note"},
        "actual_loss": None}]}``; with no fit possible, ``{"law", "error"}`` instead (the rung
        goes on).
    """
    import time

    from analysis.curve_data import run_curves
    from analysis.curve_predict import predict_final
    from analysis.curves import CurveError, fit_curves

    t0 = time.perf_counter()
    curves, skipped = run_curves(curves_root, n_convention=n_convention)
    try:
        fit = fit_curves(curves, law, n_bootstrap=n_bootstrap, level=level)
        rows = [
            {
                "role": m["role"],
                "run_name": m["run_name"],
                "n_params": m["n_params"],
                "predicted_loss": predict_final(
                    fit, schedules[m["run_name"]], n_params=m["n_params"], level=level
                ),
                "actual_loss": None,
            }
            for m in members
        ]
    except (CurveError, ValueError) as e:
        return {"law": law, "error": f"no curve-law forecast: {e}"}
    return {
        "law": law,
        "n_curves": len(curves),
        "skipped": len(skipped),
        "fit_seconds": time.perf_counter() - t0,
        "n_bootstrap": n_bootstrap,
        "note": "beside approach 3's; the rung check is approach 3's, chosen before the rung ran",
        "members": rows,
    }


def score_curve_forecast(record: dict[str, Any] | None, actual: dict[str, float | None]):
    """``curve_forecast``'s record with each member's actual loss, error and PI hit filled in.

    Args:
        record: ``curve_forecast``'s answer (or None).
        actual: run name -> final ``val/loss`` (None when not trained).
    """
    if not record or "members" not in record:
        return record
    members = [
        {**m, **_score(m["predicted_loss"], actual.get(m["run_name"]))} for m in record["members"]
    ]
    return {**record, "members": members}


def write_forecast(path: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as JSON atomically (``rundir.write_json``); NaN is written as null."""

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    path = Path(path)
    rundir.write_json(path, clean(record), indent=1, sort_keys=False)
    return path


def forecast_text(record: dict[str, Any]) -> str:
    """Printable lines: predicted vs actual for the optimum and each neighbour."""
    a = record["architecture"]
    fit = record["fit"]
    ext = fit.get("extrapolation_factor")
    lines = [
        f"forecast rung at C = {record['flops']:.3g} FLOPs"
        + (f" ({ext:.3g}x the largest fitted budget)" if ext else "")
        + f": n_layers={a['n_layers']} d_model={a['d_model']} n_heads={a['n_heads']} "
        f"d_mlp={a['d_mlp']}, N = {record['n_params']:,} ({record['n_convention']}), "
        f"D = {record['n_tokens']:,} tokens"
    ]
    for m in record.get("members") or [record | {"role": "optimum"}]:
        lines.append("  " + _member_line(m))
    if record.get("best"):
        lines.append(f"  best of the three by actual loss: {record['best']}")
    if record.get("headline_interval"):
        lo, hi = record["headline_interval"]
        inside = {True: "inside", False: "OUTSIDE", None: "not yet trained"}
        lines.append(
            f"  headline 95% interval [{lo:.4f}, {hi:.4f}] ({record['headline_source']}): "
            f"actual {inside[record.get('inside_headline')]}"
        )
    lines += _curve_lines(record.get("curve_law"))
    lines += [f"  warning: {w}" for w in record.get("shape_warnings") or []]
    return "\n".join(lines)


def _curve_lines(curve: dict[str, Any] | None) -> list[str]:
    # the curve law's forecast beside approach 3's (never the check)
    if not curve:
        return []
    if "error" in curve:
        return [f"  curve law ({curve['law']}): {curve['error']}"]
    lines = [
        f"  curve law beside it ({curve['law']}, joint fit to {curve['n_curves']} curves, "
        f"{curve['n_bootstrap']} bootstrap refits, {curve['fit_seconds']:.1f} s; not the check, "
        "which is approach 3's, chosen before the rung ran):"
    ]
    for m in curve["members"]:
        lines.append("  " + _member_line(m))
        if m["predicted_loss"].get("note"):
            lines.append(f"          ({m['predicted_loss']['note']})")
    return lines


def _member_line(m: dict[str, Any]) -> str:
    p = m["predicted_loss"]

    def interval(name: str) -> str:
        lo_hi = p.get(name)
        if not lo_hi or any(x is None or not math.isfinite(x) for x in lo_hi):
            return f"{name.upper()} n/a"
        return f"{name.upper()} [{lo_hi[0]:.4f}, {lo_hi[1]:.4f}]"

    level = p.get("level", 0.95)
    head = f"{m['role']:>7} (N = {m['n_params']:,}): predicted {p['value']:.4f} "
    head += f"({100 * level:g}% {interval('ci')}, {interval('pi')})"
    if m.get("actual_loss") is None:
        return head + "; actual: not trained"
    inside = {True: "inside", False: "OUTSIDE", None: "no"}[m["inside_pi"]]
    return head + f"; actual {m['actual_loss']:.4f}; rel. error {m['rel_error']:+.2%}; {inside} PI"
