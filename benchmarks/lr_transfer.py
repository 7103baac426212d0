"""LR transfer: does the optimal learning rate move with width (SP, muP) and depth (CompleteP)?

Usage::

    .venv/bin/python benchmarks/lr_transfer.py --quick   # 96 runs per seed x 3 seeds (~90 min
                                                         # on 2 shared cores, 2026-12-03)
    .venv/bin/python benchmarks/lr_transfer.py --quick --seeds 0   # issue 10's one-seed grid
    .venv/bin/python benchmarks/lr_transfer.py           # the full grid (hours on 2 cores)

Design (fixed before looking at the outcome). Every run is a real ``scaling.train.train`` run on
the embedded corpus (the interpreter's standard library, byte tokens, ``DataConfig()``), with
the project's default optimizer (AdamW, betas 0.9/0.95, weight decay 0.1, clipping at 1.0,
5% warmup then cosine to 10%), 16 sequences of 64 tokens per step, seeds ``--seeds`` (default
0, 1, 2: issue 20; issue 10 ran seed 0 only), fixed tokens per run; the loss is the final
validation loss (16,384 fixed tokens). Models: GPT with 4 heads (so
``d_head`` grows with the width) and ``d_mlp = 4 d_model``.

- Width (quick): ``d_model`` 32, 64, 128, 256 (8x) at 2 layers, SP against muP with base width 32
  (``MupLR``: the same LR at every width), 200 steps (204,800 tokens).
- Depth (quick): CompleteP at ``d_model`` 64 (its base width), 2, 4, 8, 16 layers (8x) with
  base depth 2, 200 steps (depth 16 added by issue 20; issue 10 ran 2-8).
- LRs (quick): 8 values a factor 2 apart, 2^-10 .. 2^-3 (9.8e-4 .. 0.125).
- Full mode: widths 32..512 (16x), depths 2..16 (8x, and muP at the same depths for
  comparison), 11 LRs 2^-12 .. 2^-2, 600 steps.

Optimum per width (or depth), located on the seed-mean curve (issue 20): a parabola in log2(LR)
through the grid's best point and up to two neighbours on each side (finite losses only; diverged
runs are left out and reported); its vertex when the parabola is convex and the vertex lies
inside the fitted points, else the best grid LR. An optimum at the grid's edge is flagged (the
spread is then a bound, not a measurement). Spread = the largest optimum LR / the smallest,
across widths (or depths); muP and CompleteP target <= 1.5 (issue 20; <= 2 in issue 10).

Confidence intervals (with two or more seeds): a bootstrap over seeds (``N_BOOT`` = 1000
resamples, fixed generator): each resample draws, for every (shape, LR) point independently, as
many seeds as were run, with replacement, and averages them; the optimum of each shape and the
spread are recomputed from the resampled curves. Reported: the 2.5-97.5% percentiles of each
optimum LR and of the spread (the seed noise only; the grid's spacing and the parabola are held
fixed).

Runs are written under ``--out``/runs and reused when complete, so a rerun only plots. Outputs:
``lr_transfer.png`` (loss against LR, a line per width or depth, the optima marked) and
``lr_transfer.json`` (every loss and optimum). Last line:
``lr_transfer: sp_spread=X mup_spread=Y completep_depth_spread=Z``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from scaling.counting import param_counts

SEQ_LEN, BATCH, N_HEADS = 64, 16, 4
BASE_WIDTH, DEPTH_WIDTH, BASE_DEPTH, WIDTH_DEPTH = 32, 64, 2, 2
N_BOOT = 1000  # bootstrap resamples over seeds for the optimum LRs' and the spread's CIs


@dataclass(frozen=True)
class Grid:
    """One benchmark mode: the widths, depths, LR exponents (base 2) and steps."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    lr_exponents: tuple[int, ...]
    n_steps: int
    mup_depths: bool  # also run muP (no depth rule) over the depths, for comparison


QUICK = Grid((32, 64, 128, 256), (2, 4, 8, 16), tuple(range(-10, -2)), 200, False)
FULL = Grid((32, 64, 128, 256, 512), (2, 4, 8, 16), tuple(range(-12, -1)), 600, True)


def run_config(
    parametrization: dict, d_model: int, n_layers: int, lr: float, n_steps: int, seed: int = 0
) -> RunConfig:
    """The ``RunConfig`` of one point of the benchmark (see the module docstring).

    ``parametrization``: the ``ModelConfig`` fields, e.g. ``{"parametrization": "mup",
    "base_d_model": 32}``.
    """
    model = ModelConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=N_HEADS,
        d_mlp=4 * d_model,
        seq_len=SEQ_LEN,
        **parametrization,
    )
    tokens = BATCH * SEQ_LEN
    return RunConfig(
        model=model,
        data=DataConfig(val_tokens=16_384),
        optim=OptimConfig(lr=lr),
        n_tokens=tokens * n_steps,
        batch_size_tokens=tokens,
        micro_batch_size=BATCH,
        seed=seed,
        eval_interval_tokens=tokens * n_steps,
        log_interval_steps=50,
        checkpoint_interval_steps=n_steps,
        device="cpu",
        n_threads=1,
        wandb_mode="disabled",
    )


def _train(task: tuple[str, RunConfig, str]) -> tuple[str, float, str]:
    from scaling.train import train

    key, cfg, run_dir = task
    s = train(cfg, run_dir, progress=False)
    loss = s.val_loss if s.status == "complete" and s.val_loss is not None else math.nan
    return key, loss, s.status


def optimum(lrs: list[float], losses: list[float]) -> dict:
    """Optimum LR from a parabola in log2(LR) near the best grid point (module docstring).

    Returns:
        ``{"lr", "loss", "method" ("parabola" | "grid"), "edge" (bool), "n_diverged"}``;
        ``lr`` is NaN when every run diverged.
    """
    x = np.log2(np.asarray(lrs, dtype=float))
    y = np.asarray(losses, dtype=float)
    ok = np.isfinite(y)
    if not ok.any():
        return {"lr": math.nan, "loss": math.nan, "method": "none", "edge": True, "n_diverged": 0}
    i = int(np.nanargmin(np.where(ok, y, np.inf)))
    lo, hi = max(0, i - 2), min(len(x), i + 3)
    sel = [j for j in range(lo, hi) if ok[j]]
    out = {"lr": float(2 ** x[i]), "loss": float(y[i]), "method": "grid"}
    if len(sel) >= 3:
        a, b, c = np.polyfit(x[sel], y[sel], 2)
        if a > 0:
            v = -b / (2 * a)
            if x[sel].min() <= v <= x[sel].max():
                out = {"lr": float(2**v), "loss": float(c - b * b / (4 * a)), "method": "parabola"}
    out["edge"] = i in (0, len(x) - 1)
    out["n_diverged"] = int((~ok).sum())
    return out


def _spread(opts: dict) -> float:
    lrs = [o["lr"] for o in opts.values()]
    return max(lrs) / min(lrs) if all(math.isfinite(v) for v in lrs) else math.nan


def seed_mean(per_seed: list[list[float]]) -> list[float]:
    """Seed mean at each LR (``per_seed[s][i]``: seed ``s``, LR ``i``); NaN if one diverged."""
    return [float(np.mean(col)) for col in zip(*per_seed, strict=True)]


def bootstrap_optima(
    lrs: list[float], curves: dict, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[dict, tuple[float, float]]:
    """Seed-bootstrap CIs of each shape's optimum LR and of the spread (module docstring).

    Args:
        lrs: the LR grid.
        curves: ``{shape: per_seed}`` with ``per_seed[s][i]`` the loss of seed ``s`` at LR ``i``.
        n_boot: resamples.
        seed: the resampling generator's seed.

    Returns:
        ``({shape: (lo, hi)}, (spread_lo, spread_hi))``: 2.5-97.5% percentiles; NaNs when fewer
        than two seeds were run.
    """
    n_seeds = min(len(v) for v in curves.values())
    if n_seeds < 2:
        return {k: (math.nan, math.nan) for k in curves}, (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    opt_draws: dict = {k: [] for k in curves}
    spreads = []
    for _ in range(n_boot):
        opts = {}
        for k, per_seed in curves.items():
            y = np.asarray(per_seed, dtype=float)  # [seeds, lrs]
            pick = rng.integers(0, y.shape[0], size=y.shape)  # seeds drawn per LR point
            opts[k] = optimum(lrs, list(np.take_along_axis(y, pick, axis=0).mean(axis=0)))
            opt_draws[k].append(opts[k]["lr"])
        spreads.append(_spread(opts))

    def pct(v: list[float]) -> tuple[float, float]:
        a = np.asarray(v, dtype=float)
        a = a[np.isfinite(a)]
        return (
            (float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5)))
            if a.size
            else (
                math.nan,
                math.nan,
            )
        )

    return {k: pct(v) for k, v in opt_draws.items()}, pct(spreads)


def plot(series: dict, path: Path) -> None:
    """Loss against LR, one panel per sweep, one line per width or depth, optima marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(5.0 * len(series), 4.2), squeeze=False)
    for ax, (title, s) in zip(axes[0], series.items(), strict=True):
        cmap = plt.get_cmap("viridis")
        keys = list(s["losses"])
        for k_i, k in enumerate(keys):
            color = cmap(k_i / max(1, len(keys) - 1))
            ax.plot(
                s["lrs"], s["losses"][k], marker="o", ms=3, color=color, label=f"{s['label']} {k}"
            )
            o = s["optima"][k]
            if math.isfinite(o["lr"]):
                ax.axvline(o["lr"], color=color, ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("peak LR (MupLR base LR for muP / CompleteP)")
        ax.set_ylabel("final val loss (nats/token)")
        finite = [v for k in keys for v in s["losses"][k] if math.isfinite(v)]
        if finite:
            best = min(finite)
            ax.set_ylim(best - 0.05, min(max(finite), best + 1.2))
        lo, hi = s["spread_ci"]
        ax.set_title(f"{title}: spread {s['spread']:.2f}x [{lo:.2f}, {hi:.2f}]")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick grid (~7 min, 2 cores)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/lr_transfer"))
    parser.add_argument("--workers", type=int, default=2, help="parallel runs (1 thread each)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds per point")
    args = parser.parse_args(argv)
    grid = QUICK if args.quick else FULL
    lrs = [2.0**e for e in grid.lr_exponents]

    sp = {"parametrization": "sp"}
    mup_w = {"parametrization": "mup", "base_d_model": BASE_WIDTH}
    mup_d = {"parametrization": "mup", "base_d_model": DEPTH_WIDTH}
    cp = {"parametrization": "completep", "base_d_model": DEPTH_WIDTH, "base_n_layers": BASE_DEPTH}
    widths = [(w, WIDTH_DEPTH) for w in grid.widths]
    depths = [(DEPTH_WIDTH, d) for d in grid.depths]
    sweeps: dict[str, tuple[dict, str, list[tuple[int, int]]]] = {
        "SP, width": (sp, "d_model", widths),
        "muP, width": (mup_w, "d_model", widths),
        "CompleteP, depth": (cp, "n_layers", depths),
    }
    if grid.mup_depths:
        sweeps["muP, depth"] = (mup_d, "n_layers", depths)
    tasks, cost = [], {}
    for title, (p, _, shapes) in sweeps.items():
        for w, depth in shapes:
            for lr in lrs:
                for seed in args.seeds:
                    cfg = run_config(p, w, depth, lr, grid.n_steps, seed)
                    key = f"{title}|{w}|{depth}|{lr}|{seed}"
                    name = f"{p['parametrization']}-b{p.get('base_d_model')}-L{depth}-d{w}-lr{lr:g}"
                    name += f"-s{seed}" if seed else ""  # seed 0 keeps issue 10's run names
                    tasks.append((key, cfg, str(args.out / "runs" / name)))
                    cost[key] = param_counts(cfg.model).total
    tasks.sort(key=lambda t: -cost[t[0]])  # largest first: the pool ends together
    print(f"lr_transfer: {len(tasks)} runs of {grid.n_steps} steps, {args.workers} workers")
    t0 = time.perf_counter()
    results: dict[str, tuple[float, str]] = {}
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for n, (key, loss, status) in enumerate(pool.imap_unordered(_train, tasks), 1):
            results[key] = (loss, status)
            print(f"[{n}/{len(tasks)} {time.perf_counter() - t0:.0f}s] {key}: {loss:.4f} {status}")

    series, report = {}, {}
    for title, (_, label, shapes) in sweeps.items():
        losses, optima, per_seed = {}, {}, {}
        for w, depth in shapes:
            k = w if label == "d_model" else depth
            per_seed[k] = [
                [results[f"{title}|{w}|{depth}|{lr}|{s}"][0] for lr in lrs] for s in args.seeds
            ]
            losses[k] = seed_mean(per_seed[k])
            optima[k] = optimum(lrs, losses[k])
        opt_ci, spread_ci = bootstrap_optima(lrs, per_seed)
        for k in optima:
            optima[k]["ci"] = opt_ci[k]
        series[title] = {
            "label": label,
            "lrs": lrs,
            "losses": losses,
            "per_seed": per_seed,
            "optima": optima,
            "spread": _spread(optima),
            "spread_ci": spread_ci,
        }
        flags = [f"{k}: edge" for k, o in optima.items() if o["edge"]]
        print(
            f"{title}: optimum LR "
            + ", ".join(
                f"{k}: {o['lr']:.3g} [{o['ci'][0]:.3g}, {o['ci'][1]:.3g}] ({o['method']})"
                for k, o in optima.items()
            )
            + f"; spread {series[title]['spread']:.3g} "
            f"[{spread_ci[0]:.3g}, {spread_ci[1]:.3g}] (95% seed bootstrap)"
            + (f"; AT GRID EDGE: {', '.join(flags)}" if flags else "")
        )
        report[title] = series[title]
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / "lr_transfer.png"
    plot(series, png)
    doc = {"grid": grid.__dict__, "wall_s": time.perf_counter() - t0, "sweeps": report}
    (args.out / "lr_transfer.json").write_text(json.dumps(doc, indent=2, default=str))
    print(f"plot: {png}; wall time {time.perf_counter() - t0:.0f}s")
    sp_s, mup_s = series["SP, width"]["spread"], series["muP, width"]["spread"]
    cp_s = series["CompleteP, depth"]["spread"]
    print(
        f"lr_transfer: sp_spread={sp_s:.3g} mup_spread={mup_s:.3g} "
        f"completep_depth_spread={cp_s:.3g}"
    )


if __name__ == "__main__":
    main()
