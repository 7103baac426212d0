"""Benchmark: WSD cooldown branches vs independent cosine runs at the same (N, D) points.

On the embedded corpus (the standard library's ``.py`` files, byte tokens), 3 shapes (2 layers,
d_model 32 / 48 / 64, 16-wide heads) x 4 token counts a factor 2 apart are trained twice with
the toolkit's own launcher (local executor, 2 workers):

- cosine: every point its own run from initialisation, warmup then cosine decay to
  ``0.1 * lr`` over its own length (the toolkit's default schedule);
- WSD: one warmup-constant trunk per shape and one cooldown branch per point
  (``sweeps.branching.WsdBranches()``: 1-sqrt decay over the last 20% of each point's steps, to
  ``0.1 * lr``).

The learning rate of each schedule is chosen the same way, fixed before any result was seen:
both use the peak LR of the toolkit's width rule for these byte-level CPU runs,
``WidthScaledLR(base_lr=1.5e-2, base_d_model=32)`` (the cosine-tuned value of
``sweeps/defs/smoke.py``; 1/width beyond it), with no per-schedule tuning. Hägele et al. 2024
(Sec. 3, Fig. 4) report that WSD's best LR is close to cosine's, which is why one LR is a fair
comparison; a miss would point at this choice first. Warmup: cosine runs warm up over 5% of
their own steps; a trunk family over 5% of its shortest point's steps (a fixed warmup length,
as Hägele et al.).

Printed: per pair the final validation losses (nats/token) and their difference, the FLOPs of
both sets, the wall time of both launches (same machine, same run), approach-3 fits
(``analysis.parametric``) on both point sets with bootstrap CIs of alpha and beta (rows for the
cosine set; rows and trunk clusters for the WSD set), and last:

    wsd_vs_cosine: pairs=K mean_abs_dloss=X max_abs_dloss=Y flops_ratio=Z

where Z = FLOPs of trunks plus branches / FLOPs of the cosine runs (ideal with f = 0.2 and
4 token counts a factor 2 apart: (6.4 + 3) / 15 = 0.63). Targets: X <= 0.02, Z <= 0.65.

A figure (``--out``/wsd_vs_cosine.png): left, the WSD trunks with their branches (val loss vs
FLOPs); right, final loss vs tokens for both schedules per shape.

At their own optima (``--own-optima``, issue 20, design in ``docs/LOG.md`` D2): each schedule
is swept over ``--lr-multipliers`` (default 1/4, 1/2, 1, 2, 4) of the rule's LR with ``--seeds``
(default 0 1) at every point; WSD gets one trunk per (shape, LR, seed). Per (shape, tokens)
pair and schedule, "best" is the lowest seed-mean final loss over the LR grid (a grid point;
flagged when it lies at the grid's edge), and the pair's dloss is best WSD - best cosine.
Approach 3 is then fitted to each set of best points (WSD clustered by the trunk its best came
from), with the compute-optimal exponents a = beta/(alpha+beta), b = alpha/(alpha+beta)
(Hoffmann et al. 2022, Eq. 4) and their CIs. ``flops_ratio`` is still all WSD trunks and branches
over all cosine runs (the same for every LR and seed). ``--widths`` cuts the shapes.

Usage: python benchmarks/wsd_vs_cosine.py [--quick] [--own-optima] [--widths W ...]
[--runs-dir DIR] [--out DIR]
``--quick`` (48-384 steps of 1024 tokens; under 6 minutes on 2 uncontended cores) vs the
default (4x the tokens). The machine may be shared: wall times are noisy; the load average
is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from sweeps.branching import WsdBranches
from sweeps.launch import launch
from sweeps.lr import WidthScaledLR
from sweeps.plan import plan, plan_totals
from sweeps.spec import GridSweep

WIDTHS = (32, 48, 64)
DEPTH = 2


def sweeps(
    quick: bool,
    widths: tuple[int, ...] = WIDTHS,
    lr_multipliers: tuple[float, ...] = (1.0,),
    seeds: tuple[int, ...] = (0,),
) -> tuple[GridSweep, GridSweep]:
    """The cosine sweep and the WSD sweep over the same (N, D) points (12 by default).

    Args:
        quick: 48-384 steps per point (else 4x).
        widths: the shapes' ``d_model`` (a cut of ``WIDTHS``).
        lr_multipliers: multipliers of ``WidthScaledLR``'s LR, every one run for both schedules.
        seeds: seeds per (point, LR).
    """
    n_min_steps = 48 if quick else 192
    batch = 1024
    base = RunConfig(
        model=ModelConfig(n_layers=DEPTH, d_model=32, n_heads=2, d_mlp=128, seq_len=64),
        data=DataConfig(source="stdlib", val_tokens=16384),
        optim=OptimConfig(lr=1.5e-2),
        batch_size_tokens=batch,
        micro_batch_size=16,
        eval_interval_tokens=batch * n_min_steps // 2,
        log_interval_steps=8,
        checkpoint_interval_steps=10_000,
        device="cpu",
        n_threads=1,
        wandb_mode="disabled",
    )
    common = dict(
        base=base,
        widths=tuple(widths),
        depths=(DEPTH,),
        lr_multipliers=tuple(lr_multipliers),
        seeds=tuple(seeds),
        d_head=16,
        n_tokens=tuple(batch * n_min_steps * 2**k for k in range(4)),
        lr_rule=WidthScaledLR(base_lr=1.5e-2, base_d_model=32),
    )
    cosine = GridSweep(name="cosine", **common)
    wsd = GridSweep(name="wsd", branching=WsdBranches(0.2, "1-sqrt"), **common)
    return cosine, wsd


def _final(sweep_dir: Path, runs: list) -> dict:
    from scaling import rundir

    out = {}
    for r in runs:
        s = rundir.read_summary(sweep_dir / r.run_name)
        out[r.run_name] = s
    return out


def best_of_grid(runs: list, summaries: dict) -> dict:
    """Per (d_model, n_tokens): the seed-mean final loss at each LR and the best LR on the grid.

    Args:
        runs: planned runs of one schedule (trunks are skipped).
        summaries: ``{run_name: summary}`` with ``"val/loss"`` (nats/token).

    Returns:
        ``{(d_model, n_tokens): {"lr", "loss", "edge", "curve": {lr: (mean, [per seed])},
        "n_params_total"}}``; ``edge`` is True when the best LR is the grid's smallest or
        largest. A point where any seed's loss is missing or not finite is NaN at that LR.
    """
    by_point: dict = {}
    for r in runs:
        if r.role == "trunk":
            continue
        key = (r.config.model.d_model, r.config.n_tokens)
        loss = summaries[r.run_name].get("val/loss")
        loss = float(loss) if loss is not None else float("nan")
        p = by_point.setdefault(key, {"n_params_total": r.n_params_total, "seeds": {}})
        p["seeds"].setdefault(r.config.optim.lr, []).append(loss)
    out = {}
    for key, p in by_point.items():
        lrs = sorted(p["seeds"])
        curve = {lr: (float(np.mean(p["seeds"][lr])), p["seeds"][lr]) for lr in lrs}
        finite = [lr for lr in lrs if np.isfinite(curve[lr][0])]
        best = min(finite, key=lambda lr: curve[lr][0]) if finite else float("nan")
        out[key] = {
            "lr": best,
            "loss": curve[best][0] if finite else float("nan"),
            "edge": len(lrs) > 1 and best in (lrs[0], lrs[-1]),
            "curve": curve,
            "n_params_total": p["n_params_total"],
        }
    return out


def _fit(points: list[dict], clusters: list[str] | None, n_bootstrap: int) -> dict:
    from analysis.parametric import fit_parametric

    N = np.array([p["n_params_total"] for p in points], float)
    D = np.array([p["n_tokens"] for p in points], float)
    L = np.array([p["val/loss"] for p in points], float)
    common = dict(n_convention="total", flop_formula="counted", n_bootstrap=n_bootstrap, seed=0)
    fit = fit_parametric(N, D, L, **common)
    res = {"rows": fit}
    if clusters is not None:
        res["clusters"] = fit_parametric(N, D, L, clusters=clusters, **common)
    return res


def _ci(fit, name: str) -> tuple[float, float, float]:
    lo, hi = fit.ci[name]
    return getattr(fit, name), lo, hi


def _figure(runs_dir: Path, pairs: list[dict], out: Path, widths: tuple[int, ...]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.load import load_curves
    from analysis.plots import plot_loss_curves

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.5))
    curves = load_curves(runs_dir / "wsd")
    plot_loss_curves(curves, ax=ax0)
    ax0.set_title("WSD trunks (solid) and cooldown branches (dashed)")
    colors = {w: f"C{i}" for i, w in enumerate(widths)}
    for w in widths:
        ps = sorted((p for p in pairs if p["d_model"] == w), key=lambda p: p["n_tokens"])
        x = [p["n_tokens"] for p in ps]
        ax1.plot(x, [p["cosine"] for p in ps], "o-", color=colors[w], label=f"d{w} cosine")
        ax1.plot(x, [p["wsd"] for p in ps], "s--", color=colors[w], label=f"d{w} WSD branch")
    ax1.set_xscale("log")
    ax1.set_xlabel("D (training tokens)")
    ax1.set_ylabel("final val/loss (nats/token; best seed-mean over the LR grid)")
    ax1.set_title("final loss: cosine runs vs WSD branches")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    path = out / "wsd_vs_cosine.png"
    fig.savefig(path, dpi=100)
    return path


def _print_exponents(f_cos, f_wsd: dict) -> None:
    """alpha, beta, a, b of both fits with their CIs, and whether they agree."""
    for name in ("alpha", "beta", "a", "b"):
        c, c_lo, c_hi = _ci(f_cos, name)
        w, w_lo, w_hi = _ci(f_wsd["rows"], name)
        _, k_lo, k_hi = _ci(f_wsd["clusters"], name)
        overlap = max(c_lo, w_lo) <= min(c_hi, w_hi)
        print(
            f"approach 3 {name}: cosine {c:.3f} [{c_lo:.3f}, {c_hi:.3f}]; WSD {w:.3f} "
            f"[{w_lo:.3f}, {w_hi:.3f}] (rows), [{k_lo:.3f}, {k_hi:.3f}] (trunk clusters); "
            f"row CIs overlap: {overlap}; each estimate inside the other's CI: "
            f"{c_lo <= w <= c_hi and w_lo <= c <= w_hi}"
        )
    print(f"approach 3 E: cosine {f_cos.E:.3f}, WSD {f_wsd['rows'].E:.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="48-384 steps per point (< 6 min)")
    ap.add_argument(
        "--own-optima",
        action="store_true",
        help="sweep each schedule's LR (--lr-multipliers) with --seeds; compare best vs best",
    )
    ap.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS), help="d_model values")
    ap.add_argument(
        "--lr-multipliers",
        type=float,
        nargs="+",
        default=[0.25, 0.5, 1.0, 2.0, 4.0],
        help="--own-optima: multipliers of the rule's LR",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="--own-optima: seeds")
    ap.add_argument("--runs-dir", help="where the runs go (default: a temporary folder)")
    ap.add_argument("--out", default=".", help="folder for the figure")
    ap.add_argument("--parallel", type=int, default=2, help="local workers")
    ap.add_argument("--bootstrap", type=int, default=200, help="approach-3 bootstrap resamples")
    args = ap.parse_args()
    bad = [w for w in args.widths if w <= 0 or w % 16]
    if bad:
        ap.error(f"--widths must be positive multiples of the head width 16, got {bad}")
    if any(not m > 0 for m in args.lr_multipliers):
        ap.error(f"--lr-multipliers must be positive, got {args.lr_multipliers}")
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="wsd_vs_cosine-"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()}  (2 cores; other jobs may be running)")
    mults, seeds = (
        (tuple(args.lr_multipliers), tuple(args.seeds)) if args.own_optima else ((1.0,), (0,))
    )
    cosine, wsd = sweeps(args.quick, tuple(args.widths), mults, seeds)
    p_cos, p_wsd = plan(cosine), plan(wsd)
    print(
        f"runs: cosine {len(p_cos)}, WSD {len(p_wsd)} (trunks and branches); widths "
        f"{args.widths}, LR multipliers {list(mults)}, seeds {list(seeds)}"
    )
    walls = {}
    for spec in (cosine, wsd):
        t0 = time.perf_counter()
        res = launch(spec, runs_dir, executor="local", parallel=args.parallel, progress=False)
        walls[spec.name] = time.perf_counter() - t0
        if not res.ok:
            bad = [(o.run_name, o.status, o.error) for o in res.outcomes if o.status != "complete"]
            print(f"{spec.name}: runs did not finish: {bad}", file=sys.stderr)
            return 1
    b_cos = best_of_grid(p_cos, _final(runs_dir / "cosine", p_cos))
    b_wsd = best_of_grid(p_wsd, _final(runs_dir / "wsd", p_wsd))
    pairs = []
    for (d_model, n_tokens), w in sorted(b_wsd.items()):
        c = b_cos[(d_model, n_tokens)]
        pairs.append(
            {
                "d_model": d_model,
                "n_tokens": n_tokens,
                "lr": c["lr"],
                "lr_wsd": w["lr"],
                "cosine": c["loss"],
                "wsd": w["loss"],
                "dloss": w["loss"] - c["loss"],
                "edge": ("cos " if c["edge"] else "") + ("wsd" if w["edge"] else ""),
                "n_params_total": w["n_params_total"],
            }
        )
    if args.own_optima:
        print("seed-mean final val loss per LR (cosine | WSD):")
        for key in sorted(b_cos):
            cc, ww = b_cos[key]["curve"], b_wsd[key]["curve"]
            print(
                f"  d{key[0]} D={key[1]}: "
                + " ".join(f"{lr:.3g}:{v[0]:.4f}" for lr, v in cc.items())
                + " | "
                + " ".join(f"{lr:.3g}:{v[0]:.4f}" for lr, v in ww.items())
            )
    print(
        f"{'d_model':>7} {'n_tokens':>9} {'lr_cos':>8} {'cosine':>8} {'lr_wsd':>8} {'wsd':>8} "
        f"{'wsd-cos':>8}  best at grid edge"
    )
    for p in pairs:
        print(
            f"{p['d_model']:>7} {p['n_tokens']:>9} {p['lr']:>8.3g} {p['cosine']:>8.4f} "
            f"{p['lr_wsd']:>8.3g} {p['wsd']:>8.4f} {p['dloss']:>+8.4f}  {p['edge']}"
        )
    t_cos, t_wsd = plan_totals(p_cos), plan_totals(p_wsd)
    assert t_wsd["flops_from_scratch"] == t_cos["flops_total"]  # the same points
    flops_ratio = t_wsd["flops_total"] / t_cos["flops_total"]
    print(
        f"FLOPs: cosine {t_cos['flops_total']:.3e}, WSD trunks+branches {t_wsd['flops_total']:.3e}"
        f" (ratio {flops_ratio:.3f}); wall: cosine {walls['cosine']:.0f}s, WSD {walls['wsd']:.0f}s"
        f" (ratio {walls['wsd'] / walls['cosine']:.2f}), {args.parallel} workers"
    )
    signed = np.array([p["dloss"] for p in pairs])
    n_lower = int((signed < 0).sum())
    print(
        f"WSD lower in {n_lower} of {len(pairs)} pairs; signed mean dloss (WSD - cosine) "
        f"{signed.mean():+.4f}"
    )
    # approach 3 on both point sets (a trunk cluster: the shape and the LR the best came from)
    cos_points = [dict(p, **{"val/loss": p["cosine"]}) for p in pairs]
    wsd_points = [dict(p, **{"val/loss": p["wsd"]}) for p in pairs]
    trunks = [f"{p['d_model']}/{p['lr_wsd']:g}" for p in pairs]
    f_cos = _fit(cos_points, None, args.bootstrap)["rows"]
    f_wsd = _fit(wsd_points, trunks, args.bootstrap)
    _print_exponents(f_cos, f_wsd)
    fig = _figure(runs_dir, pairs, out, tuple(args.widths))
    print(f"figure: {fig}; runs: {runs_dir}")
    d = np.abs(signed)
    print(
        f"wsd_vs_cosine: pairs={len(pairs)} mean_abs_dloss={d.mean():.4f} "
        f"max_abs_dloss={d.max():.4f} flops_ratio={flops_ratio:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
