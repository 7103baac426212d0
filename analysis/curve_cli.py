"""``scaling fit --approach curves`` and ``scaling optimal`` on a curve fit (``analysis.curves``).

``scaling fit --runs-dir DIR --approach curves --out curves.json [--law tissue] [--bootstrap B]``
fits the multi-power law (default) to every complete run's ``val/loss`` curve, jointly over N
when the runs have several sizes. ``scaling fit --csv FILE --approach curves --run-col run
--step-col step (or --tokens-col tokens) --lr-col lr --loss-col loss [--n-col N]`` fits published
curves. ``scaling optimal --fit curves.json --params N --tokens D [--schedule cosine]`` predicts
the final loss of a run of N parameters trained on D tokens, with the schedule and peak LR of
the fitted run nearest in N (``--schedule`` swaps the schedule's shape), as
``{"value", "ci", "pi", "level"}``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

_SCHEDULE_KEYS = (
    "lr",
    "schedule",
    "warmup_fraction",
    "min_lr_ratio",
    "decay_fraction",
    "decay_shape",
)


def fit_command(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    """``scaling fit --approach curves``: fit, write ``--out``, print the report."""
    from analysis.curve_data import run_curves, table_curves
    from analysis.curves import fit_curves

    if not args.out:
        raise usage_error("scaling fit --approach curves needs --out (e.g. curves.json)")
    law = args.law or "multi_power"
    seed = 0 if args.seed is None else args.seed
    if args.runs_dir:
        given = [f for f in ("run_col", "step_col", "tokens_col", "lr_col") if getattr(args, f)]
        if given or args.n_col or args.loss_col:
            raise usage_error(
                "--run-col/--step-col/--tokens-col/--lr-col/--n-col/--loss-col only "
                "apply to --csv: drop them"
            )
        conv = args.n_convention or "non_embedding"
        curves, skipped = run_curves(args.runs_dir, n_convention=conv)
        for s in skipped:
            print(f"skipped {s}")
        if not curves:
            raise usage_error(f"--runs-dir {args.runs_dir}: no complete run has a usable curve")
        schedules = _schedules(args.runs_dir)
    else:
        if not (args.run_col and args.lr_col and args.loss_col):
            raise usage_error(
                "--csv with --approach curves needs --run-col, --lr-col, "
                "--loss-col and --step-col or --tokens-col"
            )
        curves = table_curves(
            args.csv,
            run_col=args.run_col,
            loss_col=args.loss_col,
            lr_col=args.lr_col,
            step_col=args.step_col,
            tokens_col=args.tokens_col,
            n_col=args.n_col,
        )
        conv, schedules = args.n_convention or "total", {}
    fit = fit_curves(curves, law, n_bootstrap=args.bootstrap, seed=seed)
    d = fit.to_dict()
    d["n_convention"] = conv
    d["source"] = str(args.runs_dir or args.csv)
    for r in d["runs"]:
        r["schedule"] = schedules.get(r["run"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(d, indent=1))
    tmp.replace(out)
    print(fit.report())
    print(f"wrote {out}")
    return 0


def _schedules(root: str) -> dict[str, dict[str, Any]]:
    """Run name -> its schedule fields, ``n_steps`` and ``batch_size_tokens`` (config.json)."""
    from analysis.load import find_run_dirs

    out = {}
    for d in find_run_dirs(root):
        try:
            rec = json.loads((d / "config.json").read_text())
            cfg = rec["config"]
            sched = {k: cfg["optim"][k] for k in _SCHEDULE_KEYS if k in cfg["optim"]}
            sched["batch_size_tokens"] = int(cfg["batch_size_tokens"])
            sched["n_steps"] = int(cfg["n_tokens"]) // sched["batch_size_tokens"]
            out[rec.get("run_name", d.name)] = sched
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def is_curve_fit(path: str | Path) -> bool:
    """True when ``path`` is a JSON object written by ``scaling fit --approach curves``."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and d.get("approach") == "curves"


def optimal_command(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    """``scaling optimal --fit curves.json --params N --tokens D [--schedule S]``."""
    from analysis.curve_predict import predict_final
    from analysis.curves import CurveFit, schedule_lrs
    from analysis.estimates import to_jsonable

    if args.params is None or args.tokens is None:
        raise usage_error(
            "a curve fit answers --params N --tokens D (the final loss of that run "
            "under a schedule); N_opt at --flops or --loss needs approach 2 or 3"
        )
    d = json.loads(Path(args.fit).read_text(encoding="utf-8"))
    fit = CurveFit.from_dict(d)
    runs = [r for r in d.get("runs", []) if r.get("schedule")]
    if not runs:
        raise usage_error(
            f"--fit {args.fit}: its runs carry no schedule (a fit from a table); "
            "use analysis.curves.predict_final with your schedule's LRs"
        )
    n = args.params
    ref = min(runs, key=lambda r: abs(math.log(n / r["n_params"])) if r["n_params"] else 0.0)
    sched = dict(ref["schedule"])
    batch = sched.pop("batch_size_tokens")
    ref_steps = sched.pop("n_steps")
    n_steps = int(args.tokens // batch)
    if n_steps < 1:
        raise usage_error(f"--tokens {args.tokens:g} is less than one step of {batch} tokens")
    # keep the reference run's warmup length in steps (not its fraction of another length)
    warm = int(sched.get("warmup_fraction", 0.0) * ref_steps)
    sched["warmup_fraction"] = min(warm / n_steps, 0.5)
    if args.schedule:
        sched["schedule"] = args.schedule
        if (
            args.schedule == "wsd"
            and sched.get("warmup_fraction", 0) + sched.get("decay_fraction", 0.2) > 1
        ):
            sched["decay_fraction"] = 1 - sched["warmup_fraction"]
    lrs = schedule_lrs(n_steps, **sched)
    ans = predict_final(fit, lrs, n_params=n if fit.joint else None)
    note = (
        f"schedule of the fitted run nearest in N ({ref['run']}): "
        + ", ".join(f"{k}={v}" for k, v in sched.items())
        + f"; {n_steps} steps of {batch} tokens ({warm} warmup steps, as that run)"
    )
    ans["note"] = "; ".join(x for x in (ans["note"], note) if x)
    out = {"query": {"n_params": n, "n_tokens": args.tokens}, "loss": ans, "law": fit.law}
    if args.json:
        print(json.dumps(to_jsonable(out), indent=1))
    else:
        lvl = f"{100 * ans['level']:g}%"
        iv = lambda x: "n/a" if not math.isfinite(x[0]) else f"[{x[0]:.4g}, {x[1]:.4g}]"  # noqa: E731
        print(f"Predicted final loss ({fit.law} curve law) at N = {n:.4g}, D = {args.tokens:.4g}:")
        print(f"  loss = {ans['value']:.4f} nats/token")
        print(f"  {lvl} CI of the mean: {iv(ans['ci'])}")
        print(f"  {lvl} prediction interval (one run): {iv(ans['pi'])}")
        print(f"  note: {ans['note']}")
    return 0
