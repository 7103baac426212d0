"""``scaling sweep {plan,launch,status}``: plan, run and inspect a family of runs.

- ``scaling sweep plan SWEEP [--json] [--no-measure]``: the validated plan (shape, N, D, C,
  tokens/param, estimated wall time from a measured throughput) with totals; an invalid plan
  lists every invalid run and exits 2.
- ``scaling sweep launch SWEEP --executor {debug,local,slurm} --runs-dir DIR [...]``: run it
  (idempotent: finished runs skipped, incomplete resumed, failed retried). Exit 0 when every run
  finished, 1 otherwise.
- ``scaling sweep status SWEEP --runs-dir DIR [--json]``: per-run state and counts.
- ``scaling sweep forecast SWEEP --fit FIT --runs-dir DIR --out DIR [--factor 3 | --flops C]
  [--neighbours]``: the forecast rung: train the architecture the approach-3 fit names at C
  (default 3x its largest budget; with 0.5x and 2x N neighbours), write ``OUT/forecast.json``
  (predicted loss with CI and PI, actual loss, relative error, inside the PI), print it and add
  it to OUT's report (``index.html``, ``summary.md``) when one is there. The
  one command that joins the rooms (``analysis.rung`` chooses and scores, ``sweeps.rung``
  trains), so neither imports the other.

SWEEP is a definition name in ``sweeps/defs/`` (e.g. ``smoke``) or a path to a ``.py`` file with
a ``sweep()`` function. Heavy imports (torch, submitit) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

_GROUP_SIZE_HELP = (
    "most same-shape runs (seeds, LR variants) trained as one batch in one process (a local "
    "worker, a Slurm array task); overrides the sweep's group_size (default: 1 on CPU, where "
    "batching measured no gain; 8 on CUDA)"
)


def register(subparsers: Any) -> None:
    """Add the ``sweep`` command and its subcommands to the top-level parser."""
    p = subparsers.add_parser("sweep", help="plan, launch and inspect sweeps of runs")
    sub = p.add_subparsers(dest="sweep_command", required=True, metavar="SUBCOMMAND")

    pp = sub.add_parser("plan", help="print the validated plan with N, D, C and time estimates")
    pp.add_argument("sweep", help="definition name in sweeps/defs or path to a .py file")
    pp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pp.add_argument(
        "--no-measure",
        action="store_true",
        help="estimate time from a documented FLOP/s constant instead of timing real steps",
    )
    pp.add_argument("--group-size", type=int, help=_GROUP_SIZE_HELP)
    pp.add_argument(
        "--lr-check",
        metavar="RUNS_DIR",
        help="after the study ran in RUNS_DIR: also list LR variants (0.5x, 2x) of the best "
        "point of the smallest and largest budgets (sweeps.lr_check)",
    )
    pp.set_defaults(func=_plan)

    pl = sub.add_parser("launch", help="run the sweep (skips finished runs, resumes the rest)")
    pl.add_argument("sweep", help="definition name in sweeps/defs or path to a .py file")
    pl.add_argument(
        "--executor",
        choices=("debug", "local", "slurm"),
        default="local",
        help="debug: in this process; local: a pool of subprocesses; slurm: one job array",
    )
    pl.add_argument(
        "--runs-dir", required=True, help="folder; runs go to RUNS_DIR/<sweep>/<run_name>/"
    )
    pl.add_argument("--parallel", type=int, help="local: concurrent runs (default: CPU cores)")
    pl.add_argument("--no-progress", action="store_true", help="no progress bar")
    pl.add_argument("--group-size", type=int, help=_GROUP_SIZE_HELP)
    pl.add_argument(
        "--lr-check",
        action="store_true",
        help="also train LR variants (0.5x, 2x) of the best point of the smallest and largest "
        "budgets, found among the finished runs in --runs-dir (sweeps.lr_check)",
    )
    es = pl.add_argument_group("early stopping (opt-in; sweeps.early_stop states the rule)")
    es.add_argument(
        "--early-stop",
        action="store_true",
        help="local, or slurm without --no-wait: stop a run once its predicted final val/loss "
        "is worse than a neighbour's (same point_key: its LR and seed variants) by more than "
        "its prediction interval; it ends with status 'stopped' and is never fitted",
    )
    es.add_argument(
        "--early-stop-fraction",
        type=float,
        default=0.3,
        help="fraction of its planned steps a run trains before it may be stopped (default 0.3)",
    )
    es.add_argument(
        "--early-stop-law",
        choices=("tissue", "multi_power"),
        default="tissue",
        help="curve law that predicts (default tissue: a PI from 5 points; multi_power needs 8)",
    )
    es.add_argument(
        "--early-stop-interval",
        type=float,
        default=30.0,
        help="seconds between two checks of the running runs (default 30)",
    )
    es.add_argument(
        "--resume-stopped",
        action="store_true",
        help="resume runs an earlier launch stopped early (default: a stopped run is ended and "
        "skipped)",
    )
    g = pl.add_argument_group("slurm")
    g.add_argument("--partition", help="Slurm partition (default: the cluster's default)")
    g.add_argument("--gpus-per-node", type=int, help="GPUs per node for each run (count)")
    g.add_argument("--cpus-per-task", type=int, help="CPU cores per task (count)")
    g.add_argument(
        "--tasks-per-node",
        type=int,
        help="processes per node for each run, trained data-parallel (DDP); one per GPU, so "
        "usually equal to --gpus-per-node (default 1)",
    )
    g.add_argument(
        "--nodes", type=int, help="nodes per run (default 1); processes = nodes x tasks-per-node"
    )
    g.add_argument(
        "--timeout-min",
        type=int,
        default=240,
        help="time limit of each job (minutes); a job that reaches it is checkpointed, "
        "requeued and resumed (at most 3 times per run: submitit's timeout budget)",
    )
    g.add_argument(
        "--signal-delay-s",
        type=int,
        help="seconds before the time limit at which Slurm signals the job to requeue; "
        "submitit's default 90 suits limits of several minutes and more; keep it well under "
        "the limit (default: 90)",
    )
    g.add_argument("--array-parallelism", type=int, help="most array tasks running at once (count)")
    g.add_argument("--account", help="Slurm account to charge")
    g.add_argument("--qos", help="Slurm quality of service")
    g.add_argument("--mem-gb", type=float, help="memory per node (GB)")
    g.add_argument(
        "--slurm-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra sbatch option, repeatable (e.g. --slurm-arg constraint=a100)",
    )
    g.add_argument("--no-wait", action="store_true", help="return after submitting the job array")
    pl.set_defaults(func=_launch, on_interrupt=_launch_interrupted)

    pf = sub.add_parser(
        "forecast",
        help="train the architecture a fit names beyond its budgets; score predicted vs actual",
    )
    pf.add_argument("sweep", help="the study's sweep (its base config, LR rule, data limits)")
    pf.add_argument("--fit", required=True, help="approach-3 fit.json (fit_parametric.json)")
    pf.add_argument("--runs-dir", required=True, help="rung runs go to RUNS_DIR/<sweep>-rung/")
    pf.add_argument("--out", required=True, help="folder for forecast.json")
    budget = pf.add_mutually_exclusive_group()
    budget.add_argument("--flops", type=float, help="the rung's budget C (FLOPs)")
    budget.add_argument(
        "--factor",
        type=float,
        default=3.0,
        help="C = FACTOR x the largest fitted budget (default 3)",
    )
    pf.add_argument(
        "--neighbours", action="store_true", help="also train 0.5x and 2x the N at the same C"
    )
    pf.add_argument(
        "--curve-law",
        action="store_true",
        help="also forecast the rung with the multi-power loss-curve law fitted to the sweep's "
        "curves, shown beside approach 3's (the check stays approach 3's)",
    )
    pf.add_argument("--executor", choices=("debug", "local"), default="local")
    pf.add_argument("--parallel", type=int, help="local: concurrent runs (default: CPU cores)")
    pf.add_argument("--no-progress", action="store_true", help="no progress bar")
    pf.set_defaults(func=_forecast)

    ps = sub.add_parser("status", help="per-run state of a sweep")
    ps.add_argument("sweep", help="definition name in sweeps/defs or path to a .py file")
    ps.add_argument("--runs-dir", required=True, help="folder the sweep was launched into")
    ps.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ps.add_argument(
        "--predict",
        action="store_true",
        help="add each running or incomplete run's predicted final val/loss with its 95%% PI "
        "(one multi-power curve-law fit to the sweep's curves, analysis.curves)",
    )
    ps.set_defaults(func=_status)


def _fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    cells = [[h for _, h in columns]] + [[str(r.get(k, "")) for k, _ in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells
    )


def _load(name: str) -> Any:
    from sweeps.registry import load_sweep

    return load_sweep(name)


def _plan(args: argparse.Namespace) -> int:
    from sweeps.batches import group_runs, resolve_group_size
    from sweeps.plan import plan, plan_totals
    from sweeps.spec import corpus_train_tokens, sci_notation
    from sweeps.throughput import estimate

    spec = _load(args.sweep)
    runs = plan(spec)  # PlanError (a ValueError) -> listed by scaling.cli, exit 2
    # the flag, else the spec's group_size, else the device's default; refused before measuring
    first = runs[0].config if runs else spec.base
    size = resolve_group_size(args.group_size, spec.group_size, first)
    if args.lr_check:
        from sweeps.lr_check import lr_check_runs

        runs = runs + lr_check_runs(spec, args.lr_check)
    corpus = corpus_train_tokens(spec.base.data)  # None when not cheaply known
    rows = []
    for r in runs:
        row = r.row()
        row["epochs"] = r.config.n_tokens / corpus if corpus else None
        row.update(estimate(r.config, measure=not args.no_measure))
        if r.role == "branch":  # a branch trains only its own steps after the trunk's
            row["est_wall_s"] *= r.flops_marginal / r.flops
        rows.append(row)
    totals = {
        "n_runs": len(rows),
        "flops": plan_totals(runs)["flops_total"],  # what the plan spends (trunks counted once)
        "n_tokens": sum(r["n_tokens"] for r in rows),
        "est_wall_s": sum(r["est_wall_s"] for r in rows),
        **plan_totals(runs),
    }
    groups = group_runs([r.config for r in runs], size)  # same-shape batches
    batched = [g for g in groups if len(g) > 1]
    for k, g in enumerate(batched):
        for i in g:
            rows[i]["batch"] = f"b{k + 1}"
    if args.json:
        print(json.dumps({"sweep": spec.name, "runs": rows, "totals": totals}, indent=2))
        return 0
    show = [
        {
            "run_name": r["run_name"],
            "n_layers": r["n_layers"],
            "d_model": r["d_model"],
            "n_heads": r["n_heads"],
            "n_params_non_embedding": f"{r['n_params_non_embedding']:,}",
            "n_params_total": f"{r['n_params_total']:,}",
            "n_tokens": f"{r['n_tokens']:,}",
            "flops": sci_notation(r["flops"]),
            "tokens_per_param": f"{r['tokens_per_param']:.1f}",
            "epochs": "-" if r["epochs"] is None else f"{r['epochs']:.2f}",
            "lr": sci_notation(r["lr"]),
            "est_time": _fmt_s(r["est_wall_s"]) + ("" if r["source"] == "measured" else "*"),
        }
        for r in rows
    ]
    if any(r["role"] != "run" for r in rows):  # WSD trunks and branches: say which is which
        for r, s in zip(rows, show, strict=True):
            s["role"] = r["role"]
            s["from"] = f"{r['parent_run']}@{r['parent_step']}" if r["parent_run"] else ""
            s["flops_marginal"] = sci_notation(r["flops_marginal"])
    for row, s in zip(rows, show, strict=True):
        if "batch" in row:
            s["batch"] = row["batch"]
    cols = [(k, k) for k in show[0]] if show else []
    print(f"sweep {spec.name} ({spec.kind}): {len(rows)} runs")
    print(_table(show, cols))
    print(
        f"total: {len(rows)} runs, {totals['n_tokens']:,} tokens, "
        f"{sci_notation(totals['flops'])} FLOPs, "
        f"~{_fmt_s(totals['est_wall_s'])} of one worker "
        "(* = from a documented FLOP/s constant, not measured)"
    )
    if any(r["source"] != "measured" for r in rows):
        from sweeps.throughput import CONSTANT_NOTE

        print(f"* assumed: {CONSTANT_NOTE}")
    if totals["flops_total"] != totals["flops_from_scratch"]:
        n_trunks = sum(r["role"] == "trunk" for r in rows)
        print(
            f"WSD: {n_trunks} trunks + {len(rows) - n_trunks} branches spend "
            f"flops_total={sci_notation(totals['flops_total'])} FLOPs; "
            "the same points from scratch: "
            f"flops_from_scratch={sci_notation(totals['flops_from_scratch'])} "
            f"(ratio {totals['flops_total'] / totals['flops_from_scratch']:.2f})"
        )
    if batched:
        print(
            f"batches: {len(batched)} of same-shape runs ({sum(map(len, batched))} runs; "
            f"column batch), {len(groups) - len(batched)} runs alone; one process per batch"
        )
    for w in _shape_warnings(runs):
        print(f"warning: {w}")
    skipped = spec.outside_window() if hasattr(spec, "outside_window") else []
    if skipped:
        print(
            f"not planned (tokens/param outside {spec.tokens_per_param_range}): "
            + "; ".join(skipped)
        )
    return 0


def _point_shapes(runs: list[Any]) -> list[Any]:
    """The fitted points of a plan (trunks excluded: only their branches are points)."""
    from scaling.shape_check import PointShape

    return [
        PointShape(
            r.run_name, r.config.flops_budget, r.config.model.n_layers, r.config.model.d_model
        )
        for r in runs
        if r.role != "trunk" and r.config.flops_budget is not None
    ]


def _shape_warnings(runs: list[Any]) -> list[str]:
    from scaling.shape_check import shape_warnings

    return shape_warnings(_point_shapes(runs))


def _launch(args: argparse.Namespace) -> int:
    from sweeps.launch import LaunchError, launch

    slurm: dict[str, Any] = {}
    if args.executor == "slurm":
        extra = {}
        for item in args.slurm_arg:
            if "=" not in item:
                raise LaunchError(f"--slurm-arg must be KEY=VALUE, got {item!r}")
            key, value = item.split("=", 1)
            extra[key] = value
        slurm = {
            "partition": args.partition,
            "gpus_per_node": args.gpus_per_node,
            "cpus_per_task": args.cpus_per_task,
            "tasks_per_node": args.tasks_per_node,
            "nodes": args.nodes,
            "timeout_min": args.timeout_min,
            "signal_delay_s": args.signal_delay_s,
            "array_parallelism": args.array_parallelism,
            "account": args.account,
            "qos": args.qos,
            "mem_gb": args.mem_gb,
            "slurm_args": extra or None,
        }
        slurm = {k: v for k, v in slurm.items() if v is not None}
    early_stop = None
    if args.early_stop:
        from sweeps.early_stop import EarlyStopRule

        try:
            early_stop = EarlyStopRule(
                min_fraction=args.early_stop_fraction,
                law=args.early_stop_law,
                interval_s=args.early_stop_interval,
            )
        except ValueError as e:
            raise LaunchError(f"--early-stop: {e}") from None
    spec = _load(args.sweep)
    planned = None
    if args.lr_check:  # the study's runs (finished ones are skipped) and the LR variants
        from sweeps.lr_check import lr_check_runs
        from sweeps.plan import plan

        planned = plan(spec) + lr_check_runs(spec, args.runs_dir)
    result = launch(
        spec,
        args.runs_dir,
        executor=args.executor,
        parallel=args.parallel,
        progress=not args.no_progress,
        wait=not args.no_wait,
        group_size=args.group_size,
        planned=planned,
        early_stop=early_stop,
        resume_stopped=args.resume_stopped,
        **slurm,
    )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
    print(
        f"sweep {spec.name}: {result.n_planned} runs, {result.n_submitted} launched "
        f"({args.executor}); {counts}; {result.wall_s:.1f}s; dir {result.sweep_dir}"
    )
    if result.job_ids:
        print(f"slurm job ids: {' '.join(result.job_ids)}")
    for o in result.outcomes:
        if o.status == "failed":
            print(f"  failed {o.run_name}: {o.error}", file=sys.stderr)
        elif o.status == "stopped":
            print(f"  stopped early {o.run_name}", file=sys.stderr)
    return 0 if result.ok or (args.no_wait and args.executor == "slurm") else 1


def _launch_interrupted(args: argparse.Namespace, again: str) -> str:
    # Ctrl-C during a launch: finished runs stay finished, the rest resume from checkpoints
    where = f"{args.runs_dir}/<sweep>/<run_name>/"
    said = (
        f"finished runs in {where} are kept and incomplete ones resume from their last "
        f"checkpoint.pt; relaunch with the same command: {again}"
    )
    if args.executor == "slurm":
        said = "submitted Slurm jobs keep running (see `scaling sweep status`, `squeue`); " + said
    return said


def _forecast(args: argparse.Namespace) -> int:
    """The forecast rung (``sweeps.rung.forecast_rung``: ``analysis.rung`` chooses and scores).

    The forecast is written to ``forecast.json`` before the rung trains, then completed with
    the actual losses; the report's pages in ``--out`` are re-rendered to show it. Exit 0 when
    every rung run finished (whatever the forecast's error).
    """
    from analysis.rung import forecast_text
    from sweeps.rung import forecast_rung

    done = forecast_rung(
        _load(args.sweep),
        args.fit,
        args.runs_dir,
        args.out,
        factor=args.factor,
        flops=args.flops,
        neighbours=args.neighbours,
        curve_law=args.curve_law,
        executor=args.executor,
        parallel=args.parallel,
        progress=not args.no_progress,
    )
    result = done.launch
    print(forecast_text(done.record))
    wrote = ", ".join(str(p) for p in [done.forecast_path, *done.pages])
    print(f"wrote {wrote}; rung runs in {result.sweep_dir}")
    if not done.pages and (Path(args.out) / "index.html").exists():
        print(
            f"{args.out} holds a report without report-sections.json (written before the "
            "report composed the rung): run `scaling report` again to show the check there"
        )
    for o in result.outcomes:
        if o.status not in ("complete", "skipped"):
            print(f"  {o.status} {o.run_name}: {o.error}", file=sys.stderr)
    return 0 if result.ok else 1


def _pred_field(preds: dict, name: str) -> dict:
    if name not in preds:
        return {}
    p = preds[name]
    return {"predicted_final_loss": p} if isinstance(p, dict) else {"prediction_note": p}


def _pred_text(p: object) -> str:
    if p is None:
        return ""
    if isinstance(p, str):
        return f"n/a ({p})"
    lo, hi = p["pi"]
    iv = f" [{lo:.3f}, {hi:.3f}]" if lo == lo else ""  # NaN when the PI cannot be formed
    return f"{p['value']:.3f}{iv}"


def _status(args: argparse.Namespace) -> int:
    from sweeps.status import count_states, sweep_status

    spec = _load(args.sweep)
    statuses = sweep_status(spec, args.runs_dir)
    counts = count_states(statuses)
    preds: dict = {}
    if getattr(args, "predict", False):
        from analysis.curve_eval import running_predictions

        live = [s.run_name for s in statuses if s.state in ("running", "incomplete")]
        sweep_dir = f"{args.runs_dir}/{spec.name}"
        preds = running_predictions(sweep_dir, live) if live else {}
    if args.json:
        runs = [dict(s.to_dict(), **_pred_field(preds, s.run_name)) for s in statuses]
        print(json.dumps({"counts": counts, "runs": runs}, indent=2))
        return 0
    rows = []
    for s in statuses:
        progress = "" if s.step is None else f"{s.step}/{s.n_steps}"
        rows.append(
            {"run_name": s.run_name, "state": s.state, "step": progress, "detail": s.detail or ""}
        )
        if preds:
            rows[-1]["predicted"] = _pred_text(preds.get(s.run_name))
    cols = [("run_name", "run_name"), ("state", "state"), ("step", "step")]
    if any(s.batch for s in statuses):  # trained in batches: each member's own state, its batch
        for row, s in zip(rows, statuses, strict=True):
            row["batch"] = s.batch or ""
        cols.insert(2, ("batch", "batch"))
    if preds:
        cols.append(("predicted", "predicted final val/loss [95% PI]"))
    print(_table(rows, [*cols, ("detail", "detail")]))
    print(f"{len(statuses)} runs: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return 0
