"""``scaling fit | optimal | report``: the analysis room's commands (registered by ``scaling.cli``).

Heavy imports (numpy, scipy, pandas, matplotlib) happen inside the handlers. Errors a user can
fix are ``ValueError``s, which ``scaling.cli.main`` prints as one line (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


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
        "--drop-highest", type=int, default=0, help="--csv: drop this many highest-loss rows"
    )
    p.add_argument(
        "--approach",
        choices=["parametric", "isoflop", "envelope", "kaplan"],
        help="required unless --sensitivity",
    )
    p.add_argument(
        "--huber-delta", type=float, default=1e-3, help="approach 3 Huber delta (default 1e-3)"
    )
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples over runs for CIs")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--n-convention", choices=["non_embedding", "total"], default="total")
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
        type=float,
        default=None,
        help="--sensitivity: budget C for N_opt (default: 10x the largest C)",
    )
    p.add_argument("--out", help="fit.json to write (required unless --sensitivity)")
    p.set_defaults(func=_fit)

    q = subparsers.add_parser(
        "optimal", help="query a fit: compute-optimal N/D, tokens for N, FLOPs for a loss"
    )
    q.add_argument("--fit", required=True, help="fit.json from `scaling fit`")
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument("--flops", type=float, help="compute budget C (FLOPs)")
    what.add_argument("--params", type=float, help="model size N (the fit's convention)")
    what.add_argument("--loss", type=float, help="target loss (nats/token)")
    q.add_argument(
        "--tokens",
        type=float,
        help="with --params: predicted loss of N params trained on this many tokens (CI + PI)",
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of text")
    q.set_defaults(func=_optimal)

    r = subparsers.add_parser(
        "report", help="all fits, figures, backtest, summary.md and index.html"
    )
    r.add_argument("--runs-dir", required=True)
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--bootstrap", type=int, default=200)
    r.add_argument(
        "--target-flops", type=float, default=None, help="default: 10x the largest swept C"
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--n-convention", choices=["non_embedding", "total"], default="total")
    r.add_argument("--flop-formula", choices=["counted", "6nd"], default="counted")
    r.set_defaults(func=_report)


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


def _fit(args: argparse.Namespace) -> int:
    from analysis.pipeline import data_from_runs, data_from_table, run_fit

    if not args.sensitivity and (not args.approach or not args.out):
        raise ValueError("scaling fit needs --approach and --out (or --sensitivity)")
    fixed = parse_fixed(args.fix)
    if fixed and args.approach != "parametric":
        raise ValueError("--fix pins approach-3 parameters: use it with --approach parametric")
    if fixed:
        from analysis.parametric import pinned_theta

        pinned_theta(fixed)  # names and values checked before any data is read
    if args.runs_dir:
        formula = args.flop_formula or "counted"
        data = data_from_runs(
            args.runs_dir, with_curves=args.approach == "envelope" and not args.sensitivity
        )
    else:
        if not args.n_col or not args.loss_col or not (args.d_col or args.c_col):
            raise ValueError("--csv needs --n-col, --loss-col and --d-col or --c-col")
        formula = args.flop_formula or "6nd"
        data = data_from_table(
            args.csv,
            n_col=args.n_col,
            loss_col=args.loss_col,
            d_col=args.d_col,
            c_col=args.c_col,
            budget_col=args.budget_col,
            flop_formula=formula,
            n_convention=args.n_convention,
            drop_highest_losses=args.drop_highest,
        )
    if args.sensitivity:
        return _sensitivity(data, args)
    fit = run_fit(
        args.approach,
        data,
        n_convention=args.n_convention,
        flop_formula=formula,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        huber_delta=args.huber_delta,
        **({"fixed": fixed} if fixed else {}),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fit.to_dict(), indent=1))
    print(fit.report())
    print(f"wrote {out}")
    return 0


def _sensitivity(data, args: argparse.Namespace) -> int:
    from analysis.common import to_jsonable
    from analysis.sensitivity import format_table, sensitivity_table

    table = sensitivity_table(data, args.target_flops)
    print(format_table(table))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(to_jsonable(table), indent=1))
        print(f"wrote {out}")
    return 0


def _optimal(args: argparse.Namespace) -> int:
    from analysis.fits import fit_from_dict
    from analysis.query import compute_optimal, flops_for_loss, optimal_tokens

    path = Path(args.fit)
    if not path.exists():
        raise FileNotFoundError(
            f"fit file {path} does not exist; run `scaling fit ... --out {path}` first"
        )
    if args.tokens is not None and args.params is None:
        raise ValueError("--tokens needs --params (the loss query is at N params, D tokens)")
    fit = fit_from_dict(json.loads(path.read_text()))
    if args.tokens is not None:
        from analysis.common import to_jsonable
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

    rep = make_report(
        args.runs_dir,
        args.out,
        n_bootstrap=args.bootstrap,
        target_flops=args.target_flops,
        n_convention=args.n_convention,
        flop_formula=args.flop_formula,
        seed=args.seed,
    )
    print(rep.text())
    print(f"wrote {len(rep.files)} files to {rep.out_dir}", file=sys.stderr)
    return 0
