"""The forecast rung's runs: chosen shapes at one budget C, built from the study's own sweep.

``rung_sweep(spec, shapes, flops)`` returns an ``IsoFlopSweep`` named ``<spec.name>-rung`` that
trains each shape (``(n_layers, d_model, n_heads, d_mlp)``, e.g. from
``analysis.rung.rung_members``) at the single budget ``flops`` with everything else taken from
``spec``: the base RunConfig (data, batch, optimizer, schedule over the run's own length,
evaluation, wandb), the WSD branching (a branched sweep's rung is a WSD run of its own length,
a trunk and one cooldown, like the points it is judged against), the LR rule, the first seed,
the shape rule, the N convention and the data repetition limits (``allow_repetition``,
``max_epochs``, checked when the rung is planned).
``n_tokens`` is solved as in every IsoFLOP sweep, so the run spends C counted FLOPs.

``forecast_rung`` is the ``scaling sweep forecast`` command's one downward path: it asks
``analysis.rung`` what to train (the fit's named architecture and neighbours) and what it
forecasts, plans the rung once, writes ``forecast.json`` before training, launches, scores the
actual losses read through ``scaling.rundir``, and re-renders the report's pages in ``out``
(``analysis.report_pages.render_pages``, no refit) so they show the check.

The runs live in ``<runs_dir>/<spec.name>-rung/``, beside (not inside) the sweep's folder, so
a report of the sweep never fits the rung it is judged by. Relaunching is idempotent as for any
sweep: a finished rung is not trained again.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.spec import IsoFlopSweep, SweepSpec, SweepSpecError


def rung_name(spec: SweepSpec) -> str:
    """The rung's sweep name: ``<spec.name>-rung``."""
    return f"{spec.name}-rung"


def rung_sweep(
    spec: SweepSpec, shapes: Sequence[tuple[int, int, int, int]], flops: float
) -> IsoFlopSweep:
    """An IsoFLOP sweep of ``shapes`` at the one budget ``flops`` (FLOPs), from ``spec``.

    Args:
        spec: the study's sweep (any family); its fields above are reused.
        shapes: ``(n_layers, d_model, n_heads, d_mlp)`` per model, all with one MLP ratio.
        flops: the rung's budget C (counted FLOPs, Chinchilla App. F without the embedding).

    Raises:
        SweepSpecError: no shapes, or shapes whose ``d_mlp / d_model`` differ or are not
            whole numbers (an IsoFLOP sweep has one ``mlp_ratio``).
    """
    if not shapes:
        raise SweepSpecError("the forecast rung needs at least one shape")
    ratios = {d_mlp / d_model for _, d_model, _, d_mlp in shapes}
    if len(ratios) != 1 or not float(next(iter(ratios))).is_integer():
        raise SweepSpecError(
            f"rung shapes must share one whole d_mlp/d_model ratio, got {sorted(ratios)}"
        )
    return IsoFlopSweep(
        name=rung_name(spec),
        base=spec.base,
        seeds=spec.seeds[:1],
        lr_rule=spec.effective_lr_rule,
        shape_rule=spec.shape_rule,
        n_convention=spec.n_convention,
        allow_repetition=spec.allow_repetition,
        max_epochs=spec.max_epochs,
        branching=spec.branching,
        mlp_ratio=int(next(iter(ratios))),
        budgets=(float(flops),),
        shapes=tuple((n_layers, d_model, n_heads) for n_layers, d_model, n_heads, _ in shapes),
        description=f"forecast rung of {spec.name}: {len(shapes)} model(s) at C={flops:.3g}",
    )


@dataclass
class RungResult:
    """What ``forecast_rung`` did.

    Attributes:
        record: the ``forecast.json`` record (``analysis.rung.score_forecast``).
        forecast_path: where it was written.
        pages: the report pages re-rendered with the check (empty without a report in ``out``).
        launch: the rung's ``sweeps.launch.LaunchResult``.
    """

    record: dict[str, Any]
    forecast_path: Path
    pages: list[Path]
    launch: Any


def forecast_rung(
    spec: SweepSpec,
    fit_path: str | Path,
    runs_dir: str | Path,
    out: str | Path,
    *,
    factor: float = 3.0,
    flops: float | None = None,
    neighbours: bool = False,
    executor: str = "local",
    parallel: int | None = None,
    progress: bool = True,
    curve_law: bool = False,
) -> RungResult:
    """Train the rung the approach-3 fit in ``fit_path`` names and score its forecast.

    Args:
        spec: the study's sweep.
        fit_path: its approach-3 fit (``fit_parametric.json``).
        runs_dir: the rung's runs go to ``runs_dir/<spec.name>-rung/``.
        out: folder for ``forecast.json`` (the report's folder, whose pages then show it).
        factor: C = ``factor`` x the fit's largest budget, unless ``flops`` is given.
        flops: the rung's budget C (FLOPs).
        neighbours: also train 0.5x and 2x the optimum's N at the same C.
        executor: ``"debug"`` or ``"local"`` (``sweeps.launch.launch``).
        parallel: local executor: concurrent runs.
        progress: progress bar.
        curve_law: also forecast the rung with the loss-curve law fitted to the sweep's curves
            (``analysis.rung.curve_forecast``), recorded beside approach 3's as
            ``forecast.json``'s ``"curve_law"``; the check stays approach 3's.

    Raises:
        FileNotFoundError, ValueError: a bad fit or budget (``analysis.rung.read_fit``,
            ``rung_budget``, ``rung_members``), or a rung that cannot be planned (``PlanError``,
            e.g. over ``max_epochs``), all before anything trains.
    """
    from analysis import rung as arung
    from analysis.limits import rung_intervals
    from analysis.report_pages import render_pages
    from scaling import rundir
    from sweeps.launch import launch
    from sweeps.plan import plan

    fit = arung.read_fit(fit_path)
    c = arung.rung_budget(fit, fit_path, factor, flops)
    members = arung.rung_members(fit, c, neighbours=neighbours)
    shape_notes = _rung_shape_warnings(spec, members[0])
    for w in shape_notes:
        print(f"warning: {w}", file=sys.stderr)
    rspec = rung_sweep(spec, [m.shape for m in members], c)
    runs = plan(rspec)  # the one plan: PlanError before anything trains
    # each shape's POINT run (a branch on a branched sweep, else the run itself): a WSD trunk
    # has the same shape but never decays its LR, so its loss is not the forecast's
    by_shape: dict[tuple[int, int, int], Any] = {}
    for r in runs:
        if r.role == "trunk":
            continue
        key = (r.config.model.n_layers, r.config.model.d_model, r.config.model.n_heads)
        if key in by_shape:
            raise ValueError(f"the rung plans two point runs of shape {key}; expected one")
        by_shape[key] = r
    rows = arung.forecast_rows(fit, members, by_shape)
    path = Path(out) / "forecast.json"
    curve = None
    if curve_law:  # before training, as approach 3's: nothing of the rung is seen
        from analysis.curve_data import planned_lrs

        schedules = {r.run_name: planned_lrs(r.config.to_dict()) for r in by_shape.values()}
        curve = arung.curve_forecast(
            Path(runs_dir) / spec.name, rows, schedules, n_convention=fit.n_convention
        )
    extra = {"shape_warnings": shape_notes, **({"curve_law": curve} if curve else {})}
    first = {**arung.score_forecast(fit, c, rows, str(fit_path)), **extra}
    first.update(rung_intervals(Path(out) / "limits.json", first))
    arung.write_forecast(path, first)  # before training
    result = launch(
        rspec, runs_dir, executor=executor, parallel=parallel, progress=progress, planned=runs
    )
    for row in rows:
        summary = rundir.read_summary(result.sweep_dir / row["run_name"]) or {}
        if summary.get("status") == "complete":
            row["actual_loss"] = summary.get("val/loss")
    if curve:
        extra["curve_law"] = arung.score_curve_forecast(
            curve, {row["run_name"]: row["actual_loss"] for row in rows}
        )
    record = {**arung.score_forecast(fit, c, rows, str(fit_path)), **extra}
    record.update(rung_intervals(Path(out) / "limits.json", record))
    arung.write_forecast(path, record)
    return RungResult(record, path, render_pages(out), result)


def _rung_shape_warnings(spec: SweepSpec, optimum: Any) -> list[str]:
    """The rung's depth or aspect outside the study's fitted shapes (``scaling.shape_check``)."""
    from scaling.shape_check import PointShape, outside_fitted_range
    from sweeps.plan import plan

    a = optimum.architecture
    rung = PointShape(f"L{a.n_layers} d{a.d_model}", 0.0, a.n_layers, a.d_model)
    fitted = [
        PointShape(
            r.run_name,
            r.config.flops_budget or 0.0,
            r.config.model.n_layers,
            r.config.model.d_model,
        )
        for r in plan(spec)
        if r.role != "trunk"
    ]
    return outside_fitted_range(rung, fitted)
