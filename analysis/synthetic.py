"""Synthetic run directories drawn from a known loss law, for tests, demos and report checks.

Writes exactly the run-directory contract (``config.json``, ``metrics.jsonl``, ``summary.json``)
plus ``sweep.json``, through ``scaling.rundir`` (its one writer), with real shapes from
``scaling.shapes.AspectRatioRule`` and exact counts from ``scaling.counting``; the loss of a
run that has seen D tokens is L(N_total, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022
Eq. 2) times a log-normal noise factor. No training happens; nothing here imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from scaling import rundir
from scaling.config import OptimConfig, RunConfig
from scaling.counting import flops_per_token, param_counts, training_flops

CHINCHILLA_LAW = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def law_loss(N: Any, D: Any, law: dict[str, float]) -> np.ndarray:
    """L(N, D) = E + A/N^alpha + B/D^beta (nats/token)."""
    N = np.asarray(N, dtype=float)
    D = np.asarray(D, dtype=float)
    return law["E"] + law["A"] / N ** law["alpha"] + law["B"] / D ** law["beta"]


def write_synthetic_sweep(
    root: str | Path,
    *,
    budgets: tuple[float, ...] = (3e13, 1e14, 3e14, 1e15),
    n_models: int = 7,
    spread: float = 8.0,
    law: dict[str, float] | None = None,
    noise: float = 0.002,
    lrs: tuple[float, ...] = (1e-3,),
    lr_penalty: float = 0.02,
    seeds: tuple[int, ...] = (0,),
    n_log: int = 20,
    sweep_name: str = "synthetic",
    aspect_ratio: float = 32.0,
    d_head: int = 16,
    vocab_size: int = 256,
    seq_len: int = 256,
    rng_seed: int = 0,
) -> Path:
    """Write an IsoFLOP sweep of synthetic run directories under ``root/sweep_name``.

    For each budget C, ``n_models`` shapes log-spaced in N_total from N_opt/spread to
    N_opt*spread around the law's closed-form optimum (AspectRatioRule), each with
    n_tokens = C / flops_per_token (counted FLOPs). Learning-rate variants (``lrs``) of a point
    add ``lr_penalty * |log2(lr / lrs[0])|`` to the loss (so ``lrs[0]`` is best); seeds redraw
    the noise.

    Returns:
        The sweep folder.
    """
    from scaling.shapes import AspectRatioRule

    law = dict(law or CHINCHILLA_LAW)
    rng = np.random.default_rng(rng_seed)
    rule = AspectRatioRule(aspect_ratio=aspect_ratio, d_head=d_head)
    sweep = Path(root) / sweep_name
    sweep.mkdir(parents=True, exist_ok=True)
    G = (law["alpha"] * law["A"] / (law["beta"] * law["B"])) ** (1 / (law["alpha"] + law["beta"]))
    a = law["beta"] / (law["alpha"] + law["beta"])
    plan = []
    for C in budgets:
        n_opt = G * (C / 6) ** a
        shapes = {}
        for n in np.geomspace(n_opt / spread, n_opt * spread, n_models):
            m = rule.shape_for(float(n), "total", vocab_size, seq_len)
            shapes[(m.n_layers, m.d_model)] = m
        for m in shapes.values():
            fpt = flops_per_token(m)
            batch = 4 * seq_len
            n_tokens = max(batch, int(C / fpt) // batch * batch)
            point_key = f"C{C:.0e}_L{m.n_layers}_d{m.d_model}"
            for lr in lrs:
                for seed in seeds:
                    cfg = RunConfig(
                        model=m,
                        n_tokens=n_tokens,
                        batch_size_tokens=batch,
                        micro_batch_size=4,
                        seed=seed,
                        sweep_name=sweep_name,
                        flops_budget=float(C),
                        point_key=point_key,
                        optim=OptimConfig(lr=lr),
                        wandb_mode="disabled",
                    )
                    name = f"{point_key}_lr{lr:.0e}_s{seed}"
                    _write_run(
                        sweep / name,
                        name,
                        cfg,
                        law,
                        noise,
                        lr_penalty * abs(math.log2(lr / lrs[0])),
                        n_log,
                        rng,
                    )
                    plan.append({"run_name": name, "config": cfg.to_dict()})
    rundir.write_sweep(
        sweep,
        name=sweep_name,
        spec={"kind": "synthetic", "law": law, "budgets": list(budgets)},
        shape_rule=rule.to_dict(),
        plan=plan,
        versions={},
    )
    return sweep


def _write_run(run_dir: Path, name: str, cfg: RunConfig, law, noise, penalty, n_log, rng) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    m = cfg.model
    pc = param_counts(m)
    N = pc.total
    rundir.write_config(run_dir, cfg, name, {}, provenance_record={})
    fpt = flops_per_token(m)
    steps = cfg.n_steps
    rows = []
    eps = rng.normal(0.0, noise)  # one noise draw per run (run-level noise, as seeds differ)
    for k in range(1, n_log + 1):
        step = max(1, round(steps * k / n_log))
        tokens = step * cfg.batch_size_tokens
        loss = float(law_loss(N, tokens, law)) * math.exp(eps) + penalty
        rows.append(
            {
                "step": step,
                "tokens": tokens,
                "flops": fpt * tokens,
                "train/loss": loss + 0.01,
                "val/loss": loss,
                "val/bpb": loss / math.log(2),
                "lr": cfg.optim.lr,
            }
        )
    rundir.write_metrics(run_dir, rows)
    n_tokens = steps * cfg.batch_size_tokens
    final = rows[-1]["val/loss"]
    summary = {
        "status": "complete",
        "step": steps,
        "n_steps": steps,
        "n_tokens": n_tokens,
        "train/loss": final + 0.01,
        "val/loss": final,
        "val/bpb": final / math.log(2),
        "n_params_total": pc.total,
        "n_params_non_embedding": pc.non_embedding,
        "n_params_embedding": pc.embedding,
        "n_params_position": pc.position,
        "n_params_lm_head": pc.lm_head,
        "flops": training_flops(m, n_tokens),
        "flops_with_embedding": training_flops(m, n_tokens, True),
        "flops_6nd": 6.0 * pc.total * n_tokens,
        "flops_6nd_non_embedding": 6.0 * pc.non_embedding * n_tokens,
        "flops_kaplan": None,
        "flops_budget": cfg.flops_budget,
        "tokens_per_param": n_tokens / pc.total,
        "wall_time_s": 1.0,
        "tokens_per_sec": float(n_tokens),
        "diverged_step": None,
        "seed": cfg.seed,
        "lr": cfg.optim.lr,
        "n_layers": m.n_layers,
        "d_model": m.d_model,
        "n_heads": m.n_heads,
        "d_mlp": m.d_mlp,
        "vocab_size": m.vocab_size,
        "seq_len": m.seq_len,
        "sweep_name": cfg.sweep_name,
        "point_key": cfg.point_key,
    }
    rundir.write_summary(run_dir, summary)


def isoflop_arrays(
    law: dict[str, float],
    budgets: tuple[float, ...] = (1e18, 1e19, 1e20, 1e21),
    n_models: int = 7,
    spread: float = 8.0,
    noise: float = 0.01,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An IsoFLOP design as arrays (6 N D FLOPs, log-normal noise).

    Per budget C, ``n_models`` N log-spaced over N_opt/spread .. N_opt*spread around the
    law's closed-form optimum, D = C / (6 N), and L drawn from the law times
    exp(Normal(0, noise)).

    Returns:
        (N, D, C, L), each of shape (len(budgets) * n_models,).
    """
    rng = rng or np.random.default_rng(0)
    G = (law["alpha"] * law["A"] / (law["beta"] * law["B"])) ** (1 / (law["alpha"] + law["beta"]))
    a = law["beta"] / (law["alpha"] + law["beta"])
    N = np.concatenate(
        [G * (C / 6) ** a * np.geomspace(1 / spread, spread, n_models) for C in budgets]
    )
    C = np.repeat(np.asarray(budgets, dtype=float), n_models)
    D = C / (6 * N)
    L = law_loss(N, D, law) * np.exp(rng.normal(0.0, noise, N.size))
    return N, D, C, L


def pi_coverage(
    n_sweeps: int,
    *,
    law: dict[str, float] | None = None,
    noise: float = 0.01,
    n_bootstrap: int = 100,
    target_factor: float = 10.0,
    seed: int = 0,
    fast: bool = False,
    level: float = 0.95,
) -> dict[str, Any]:
    """Coverage of ``analysis.forecast.predict_loss``'s PI on simulated sweeps with a known law.

    Each sweep: ``isoflop_arrays`` (4 budgets x 7 models, log-normal ``noise``), an approach-3 fit
    with ``n_bootstrap`` resamples, then the PI at two queries, each compared with ONE fresh
    noisy draw of the true law there: the compute-optimal (N, D) of the true law at
    ``target_factor`` x the largest budget (extrapolation, what the report answers), and an
    interior point (the middle budget's optimum). ``fast`` starts the fit from the truth and
    four perturbations of it instead of the 4500-point grid and refines with the bootstrap's
    Gauss-Newton iterations only (``method="gauss_newton"``; same objective, same bootstrap).

    Returns:
        ``{"n_sweeps", "coverage_target", "coverage_interior", "mean_pi_width_target" (relative
        to the true loss), "level", "noise"}``.
    """
    from analysis.forecast import predict_loss
    from analysis.parametric import closed_form_optimum, fit_parametric

    law = dict(law or CHINCHILLA_LAW)
    rng = np.random.default_rng(seed)
    budgets = (1e18, 1e19, 1e20, 1e21)
    queries = {
        "target": closed_form_optimum(target_factor * budgets[-1], **law),
        "interior": closed_form_optimum(budgets[1] * 3, **law),
    }
    truth = np.array(
        [math.log(law["A"]), math.log(law["B"]), math.log(law["E"]), law["alpha"], law["beta"]]
    )
    starts = None
    if fast:
        starts = truth + np.array(
            [
                [0, 0, 0, 0, 0],
                [1, 0, 0, 0.05, 0],
                [0, 1, 0, 0, 0.05],
                [-1, 0, 0.1, -0.05, 0],
                [0, -1, -0.1, 0, -0.05],
            ]
        )
    hits = {k: 0 for k in queries}
    widths = []
    for _ in range(n_sweeps):
        N, D, _, L = isoflop_arrays(law, budgets, noise=noise, rng=rng)
        fit = fit_parametric(
            N,
            D,
            L,
            n_convention="total",
            flop_formula="6nd",
            n_bootstrap=n_bootstrap,
            seed=int(rng.integers(1 << 31)),
            workers=1,
            starts=starts,
            identifiability_threshold=1.0,
            method="gauss_newton" if fast else "screened",
        )
        for k, (nq, dq) in queries.items():
            ans = predict_loss(fit, float(nq), float(dq), level)
            true_l = float(law_loss(nq, dq, law))
            fresh = true_l * math.exp(rng.normal(0.0, noise))
            hits[k] += ans["pi"][0] <= fresh <= ans["pi"][1]
            if k == "target":
                widths.append((ans["pi"][1] - ans["pi"][0]) / true_l)
    return {
        "n_sweeps": n_sweeps,
        "coverage_target": hits["target"] / n_sweeps,
        "coverage_interior": hits["interior"] / n_sweeps,
        "mean_pi_width_target": float(np.mean(widths)),
        "level": level,
        "noise": noise,
    }


def isoflop_arrays_with_break(
    law: dict[str, float],
    budgets: tuple[float, ...],
    *,
    break_flops: float,
    head_shift: float,
    n_models: int = 7,
    noise: float = 0.01,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``isoflop_arrays`` with a known change of regime below ``break_flops``.

    Runs of budgets C < ``break_flops`` have their loss multiplied by
    ``(C / break_flops) ** head_shift``: with ``head_shift > 0`` the head of the range sits
    below the law's trend (as 1-layer models at the smallest budgets do), so a law fitted across
    the break extrapolates pessimistically. Budgets at or above the break follow the law.

    Returns:
        (N, D, C, L) as ``isoflop_arrays``.
    """
    N, D, C, L = isoflop_arrays(law, budgets, n_models=n_models, noise=noise, rng=rng)
    factor = np.where(C < break_flops, (C / break_flops) ** head_shift, 1.0)
    return N, D, C, L * factor
