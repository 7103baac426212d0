"""``scaling fit | optimal | report``: the analysis room's commands (registered by ``scaling.cli``).

Heavy imports (numpy, scipy, pandas, matplotlib) happen inside the handlers. Errors a user can
fix are ``ValueError``s, which ``scaling.cli.main`` prints as one line (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from scaling import rundir


class UsageError(ValueError):
    """A flag that does not apply to the chosen input, or a file of the wrong kind."""


# ---- argparse value types: a bad value is refused by argparse with the flag's name ----------


def _count(text: str) -> int:
    """An integer >= 0 (``--bootstrap``, ``--drop-highest``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _positive(text: str) -> float:
    """A finite float > 0 (FLOPs, parameters, losses, Huber delta), e.g. ``1e21``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number > 0 such as 1e21, got {text!r}"
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fit``, ``optimal`` and ``report`` subcommands."""
    p = subparsers.add_parser("fit", help="fit a scaling law to run directories or a CSV of runs")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--runs-dir", help="folder of run directories (searched recursively)")
    src.add_argument("--csv", help="CSV (or JSONL) of runs, one row per run")
    p.add_argument("--n-col", help="--csv: column holding N (parameters)")
    p.add_argument("--loss-col", help="--csv: column holding the final loss (nats/token)")
    p.add_argument("--d-col", help="--csv: column holding D (tokens)")
    p.add_argument("--c-col", help="--csv: column holding C (FLOPs); D = C/(6N) without --d-col")
    p.add_argument(
        "--budget-col", help="--csv: IsoFLOP budget label column (default: bin log10 C to 0.1 dex)"
    )
    p.add_argument(
        "--drop-highest", type=_count, help="--csv: drop this many highest-loss rows (default 0)"
    )
    p.add_argument(
        "--approach",
        choices=["parametric", "isoflop", "envelope", "kaplan", "curves"],
        help="required unless --sensitivity; 'curves': a loss-curve law fitted to every point "
        "of every curve (analysis.curves)",
    )
    _add_curve_flags(p)
    p.add_argument(
        "--huber-delta",
        type=_positive,
        help="--approach parametric: Huber delta (default 1e-3, as published)",
    )
    p.add_argument(
        "--bootstrap", type=_count, default=0, help="bootstrap resamples over runs for CIs"
    )
    p.add_argument("--seed", type=int, help="bootstrap seed (needs --bootstrap; default 0)")
    p.add_argument(
        "--n-convention",
        choices=["non_embedding", "total"],
        help="which N: default 'non_embedding' for --runs-dir (as the main job and `scaling "
        "report`), 'total' for --csv (what published tables such as Chinchilla's hold)",
    )
    p.add_argument(
        "--flop-formula",
        choices=["counted", "6nd"],
        default=None,
        help="C formula; default 'counted' for --runs-dir, '6nd' for --csv",
    )
    p.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="approach 3: pin a parameter (E, A, B, alpha, beta) instead of fitting it; "
        "repeatable, e.g. --fix E=1.69 --fix alpha=0.34",
    )
    p.add_argument(
        "--sensitivity",
        action="store_true",
        help="print a, b, N_opt, tokens/param across N convention x C formula x Huber delta x "
        "approach 2/3 (instead of one fit); with --out, write it as JSON",
    )
    p.add_argument(
        "--target-flops",
        type=_positive,
        default=None,
        help="--sensitivity: budget C for N_opt (default: 10x the largest C)",
    )
    p.add_argument(
        "--drop-off-trend",
        action="store_true",
        help="leave out the off-trend head of the budgets (analysis.regime's rule; refused when "
        "it would keep fewer than 3 budgets); fit.json records the regime check either way",
    )
    p.add_argument("--out", help="fit.json to write (required unless --sensitivity)")
    p.set_defaults(func=_fit)

    q = subparsers.add_parser(
        "optimal", help="query a fit: compute-optimal N/D, tokens for N, FLOPs for a loss"
    )
    q.add_argument("--fit", required=True, help="fit.json from `scaling fit`")
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument("--flops", type=_positive, help="compute budget C (FLOPs)")
    what.add_argument("--params", type=_positive, help="model size N (the fit's convention)")
    what.add_argument("--loss", type=_positive, help="target loss (nats/token)")
    q.add_argument(
        "--tokens",
        type=_positive,
        help="with --params: predicted loss of N params trained on this many tokens (CI + PI)",
    )
    q.add_argument(
        "--schedule",
        choices=["cosine", "wsd", "constant"],
        help="curve fits: the schedule of the run asked with --params/--tokens (default: that "
        "of the fitted run nearest in N)",
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of text")
    q.set_defaults(func=_optimal)

    r = subparsers.add_parser(
        "report",
        help="all fits, forecasts on held-out budgets, sensitivity, figures, summary.md and "
        "index.html",
    )
    r.add_argument("--runs-dir", required=True, help="folder of run directories")
    r.add_argument(
        "--out",
        required=True,
        help="output folder; a previous report there is replaced (files it lists in "
        "report-files.json), other files are kept",
    )
    r.add_argument("--bootstrap", type=_count, default=200, help="resamples (0 = no CIs)")
    r.add_argument(
        "--target-flops", type=_positive, help="budget C (FLOPs); default 10x the largest swept C"
    )
    r.add_argument("--seed", type=int, help="bootstrap seed (needs --bootstrap > 0; default 0)")
    r.add_argument(
        "--n-convention",
        choices=["non_embedding", "total"],
        default="non_embedding",
        help="which N every fit uses (the main job's choice)",
    )
    r.add_argument("--flop-formula", choices=["counted", "6nd"], default="counted")
    r.add_argument(
        "--drop-off-trend",
        action="store_true",
        help="fit without the off-trend head of the budgets (analysis.regime's rule); the report "
        "shows the fit on all budgets beside it",
    )
    r.add_argument(
        "--curve-law",
        action="store_true",
        help="add a figure of every curve, the multi-power curve law's fit and each size's "
        "final loss predicted from its first 30%% of steps (one fit per size), and the curve "
        "law as a method of the leave-one-budget-out backtest",
    )
    r.set_defaults(func=_report)


def _add_curve_flags(p: argparse.ArgumentParser) -> None:
    """Flags of ``--approach curves`` (``analysis.curve_cli``)."""
    p.add_argument(
        "--law",
        choices=["multi_power", "tissue"],
        help="--approach curves: Luo et al. 2025's multi-power law (default) or Tissue et al. "
        "2024's",
    )
    p.add_argument("--run-col", help="--csv --approach curves: column naming each row's run")
    p.add_argument("--step-col", help="--csv --approach curves: optimizer-step column")
    p.add_argument("--tokens-col", help="--csv --approach curves: tokens-seen column (or steps)")
    p.add_argument("--lr-col", help="--csv --approach curves: learning-rate column")


def parse_fixed(items: list[str]) -> dict[str, float]:
    """``["E=1.69", "alpha=0.34"]`` -> ``{"E": 1.69, "alpha": 0.34}``.

    Raises:
        ValueError: an item without ``=``, a value that is not a number, or a name given twice.
    """
    out: dict[str, float] = {}
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = None
        if not eq or not name or number is None:
            raise ValueError(f"--fix {item!r}: expected NAME=VALUE, e.g. --fix E=1.69")
        if name in out:
            raise ValueError(f"--fix {name} given twice")
        out[name] = number
    return out


_CSV_ONLY = ("n_col", "loss_col", "d_col", "c_col", "budget_col", "drop_highest")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _check_dir(flag: str, path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{flag} {p} does not exist")
    if not p.is_dir():
        raise UsageError(f"{flag} {p} is a file; give the folder that holds the run directories")
    return p


def _check_file(flag: str, path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{flag} {p} does not exist")
    if p.is_dir():
        raise UsageError(f"{flag} {p} is a folder; give a file")
    return p


def _check_seed(args: argparse.Namespace) -> int:
    if args.seed is not None and not args.bootstrap:
        raise UsageError(
            "--seed only seeds the bootstrap; give --bootstrap N (N > 0) or drop --seed"
        )
    return 0 if args.seed is None else args.seed


def _check_fit_flags(args: argparse.Namespace) -> None:
    """Refuse flags that do not apply to the chosen input or approach (before any work)."""
    if args.runs_dir:
        _check_dir("--runs-dir", args.runs_dir)
        given = [_flag(d) for d in _CSV_ONLY if getattr(args, d) is not None]
        if given:
            raise UsageError(
                f"{', '.join(given)} only apply to --csv; run directories name their own "
                "columns: drop them"
            )
    else:
        _check_file("--csv", args.csv)
        if not args.n_col or not args.loss_col or not (args.d_col or args.c_col):
            raise UsageError("--csv needs --n-col, --loss-col and --d-col or --c-col")
        if args.approach == "envelope":
            raise UsageError(
                "--approach envelope needs loss curves, which a table has not: use --runs-dir"
            )
    if args.sensitivity and args.huber_delta is not None:
        raise UsageError("--sensitivity refits at Huber delta 1e-3 and 1e-4: drop --huber-delta")
    if args.target_flops is not None and not args.sensitivity:
        raise UsageError("--target-flops only applies to --sensitivity")
    if args.huber_delta is not None and not args.sensitivity and args.approach != "parametric":
        raise UsageError(
            f"--huber-delta only applies to --approach parametric, not {args.approach}"
        )
    if args.budget_col is not None and args.approach != "isoflop" and not args.sensitivity:
        raise UsageError(f"--budget-col only applies to --approach isoflop, not {args.approach}")
    if args.out is None:
        return
    if Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a folder; give the fit file to write, e.g. fit.json")
    above = next((p for p in Path(args.out).parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise UsageError(f"--out {args.out}: {above} is a file, not a folder")


def _fit(args: argparse.Namespace) -> int:
    from analysis.estimates import to_jsonable
    from analysis.fit_inputs import data_from_runs, data_from_table, run_fit

    if args.approach == "curves" and not args.sensitivity:
        from analysis.curve_cli import fit_command

        if args.runs_dir:
            _check_dir("--runs-dir", args.runs_dir)
        else:
            _check_file("--csv", args.csv)
        if args.out and Path(args.out).is_dir():
            raise UsageError(f"--out {args.out} is a folder; give the file to write")
        return fit_command(args, UsageError)
    curve_only = [
        f"--{f.replace('_', '-')}"
        for f in ("law", "run_col", "step_col", "tokens_col", "lr_col")
        if getattr(args, f, None)
    ]
    if curve_only:
        raise UsageError(f"{', '.join(curve_only)} only apply to --approach curves")
    if not args.sensitivity and (not args.approach or not args.out):
        raise UsageError("scaling fit needs --approach and --out (or --sensitivity)")
    fixed = parse_fixed(args.fix)
    if args.drop_off_trend and args.sensitivity:
        raise UsageError("--drop-off-trend does not combine with --sensitivity: drop one")
    if fixed and args.sensitivity:
        raise UsageError("--fix does not combine with --sensitivity (it refits every choice)")
    if fixed and args.approach != "parametric":
        raise UsageError("--fix pins approach-3 parameters: use it with --approach parametric")
    if fixed:
        from analysis.parametric import pinned_theta

        pinned_theta(fixed)  # names and values checked before any data is read
    _check_fit_flags(args)
    seed = _check_seed(args)
    if args.runs_dir:
        formula = args.flop_formula or "counted"
        convention = args.n_convention or "non_embedding"
        data = data_from_runs(
            args.runs_dir, with_curves=args.approach == "envelope" and not args.sensitivity
        )
    else:
        formula = args.flop_formula or "6nd"
        convention = args.n_convention or "total"
        data = data_from_table(
            args.csv,
            n_col=args.n_col,
            loss_col=args.loss_col,
            d_col=args.d_col,
            c_col=args.c_col,
            budget_col=args.budget_col,
            flop_formula=formula,
            n_convention=convention,
            drop_highest_losses=args.drop_highest or 0,
        )
    if args.sensitivity:
        return _sensitivity(data, args)
    from analysis import limits

    regime = limits.regime_for(data, convention, formula, seed)
    dropped: list[float] = []
    if args.drop_off_trend:
        sub, dropped = limits.without_head(data, regime)
        data = sub if sub is not None else data
    if regime.get("warning"):
        print(f"warning: regime: {regime['warning']}", file=sys.stderr)
    fit = run_fit(
        args.approach,
        data,
        n_convention=convention,
        flop_formula=formula,
        n_bootstrap=args.bootstrap,
        seed=seed,
        huber_delta=1e-3 if args.huber_delta is None else args.huber_delta,
        **({"fixed": fixed} if fixed else {}),
    )
    out = Path(args.out)
    # atomic: an interrupted write never leaves half a fit file
    record = {**fit.to_dict(), "regime": to_jsonable(regime), "dropped_budgets": dropped}
    rundir.write_json(out, record, indent=1, sort_keys=False)
    print(fit.report())
    if dropped:
        print("--drop-off-trend left out C = " + ", ".join(f"{b:.3g}" for b in dropped))
    print(f"wrote {out}")
    return 0


def _sensitivity(data, args: argparse.Namespace) -> int:
    from analysis.estimates import to_jsonable
    from analysis.sensitivity import format_table, sensitivity_table

    table = sensitivity_table(data, args.target_flops)
    print(format_table(table))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(to_jsonable(table), indent=1))
        print(f"wrote {out}")
    return 0


def read_fit_file(path: str | Path) -> Any:
    """The fit stored in ``path`` by ``scaling fit``.

    Raises:
        FileNotFoundError: no such file.
        UsageError: not JSON (naming line and column), or not a fit of a known approach with
            all its fields.
    """
    path = _check_file("--fit", str(path))
    from analysis.fits import fit_from_dict

    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError(
            f"--fit {path} is not a text file; give the fit.json of `scaling fit`"
        ) from None
    except json.JSONDecodeError as e:
        raise UsageError(
            f"--fit {path}, line {e.lineno}, column {e.colno}: not valid JSON ({e.msg}); "
            "rewrite it with `scaling fit ... --out`"
        ) from None
    if not isinstance(d, dict):
        raise UsageError(
            f"--fit {path} holds a JSON {type(d).__name__}, not a fit; give the fit.json "
            "written by `scaling fit`"
        )
    core = {
        "parametric": ("E", "A", "B", "alpha", "beta"),
        "isoflop": ("a", "b", "k_N", "k_D"),
        "envelope": ("a", "b", "k_N", "k_D"),
    }.get(d.get("approach"), ())
    bad = [k for k in core if not isinstance(d.get(k), (int, float)) or not math.isfinite(d[k])]
    if bad:
        raise UsageError(
            f"--fit {path}: {', '.join(bad)} must be finite number(s) (got "
            f"{', '.join(repr(d.get(k)) for k in bad)}); the fit is damaged or failed: refit"
        )
    try:
        return fit_from_dict(d)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        what = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        raise UsageError(
            f"--fit {path} is not a fit written by `scaling fit` ({what}); rewrite it with "
            "`scaling fit ... --out`"
        ) from None


def _optimal(args: argparse.Namespace) -> int:
    from analysis.query import compute_optimal, flops_for_loss, optimal_tokens

    if args.tokens is not None and args.params is None:
        raise UsageError("--tokens needs --params (the loss query is at N params, D tokens)")
    from analysis.curve_cli import is_curve_fit, optimal_command

    if is_curve_fit(args.fit):
        return optimal_command(args, UsageError)
    if args.schedule:
        raise UsageError("--schedule only applies to a curve fit (--approach curves)")
    fit = read_fit_file(args.fit)
    if args.tokens is not None:
        from analysis.estimates import to_jsonable
        from analysis.forecast import format_loss_query, loss_query

        ans = loss_query(fit, args.params, args.tokens)
        print(json.dumps(to_jsonable(ans), indent=1) if args.json else format_loss_query(ans))
        return 0
    if args.flops is not None:
        ans = compute_optimal(args.flops, fit)
    elif args.params is not None:
        ans = optimal_tokens(args.params, fit)
    else:
        ans = flops_for_loss(args.loss, fit)
    print(json.dumps(ans.to_dict(), indent=1) if args.json else ans.report())
    return 0


def _report(args: argparse.Namespace) -> int:
    from analysis.report import make_report
    from analysis.report_dir import owned_entries, write_report_dir

    _check_dir("--runs-dir", args.runs_dir)
    seed = _check_seed(args)
    owned_entries(Path(args.out))  # refuse a file or a foreign folder before any fitting
    rep = write_report_dir(
        args.out,
        lambda out: make_report(
            args.runs_dir,
            out,
            n_bootstrap=args.bootstrap,
            target_flops=args.target_flops,
            n_convention=args.n_convention,
            flop_formula=args.flop_formula,
            seed=seed,
            drop_off_trend=args.drop_off_trend,
            curve_law=args.curve_law,
        ),
    )
    print(rep.text())
    print(f"wrote {len(rep.files)} files to {rep.out_dir}", file=sys.stderr)
    return 0
