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


# Kaplan et al. 2020 (arXiv:2001.08361) Eq. 1.5 with their fitted constants (Sec. 1.2 / Eq. 4.1):
# L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D; not of the approach-3 form.
KAPLAN_LAW = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
COVERAGE_CASES = ("well", "misspecified", "e_near_zero", "clustered")
E_NEAR_ZERO = 0.05  # below the start grid's smallest E (e^-1 = 0.37): refits pile up at a bound


def kaplan_loss(N: Any, D: Any, law: dict[str, float] | None = None) -> np.ndarray:
    """Kaplan et al. 2020 Eq. 1.5, L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D."""
    k = law or KAPLAN_LAW
    N = np.asarray(N, dtype=float)
    D = np.asarray(D, dtype=float)
    return ((k["N_c"] / N) ** (k["alpha_N"] / k["alpha_D"]) + k["D_c"] / D) ** k["alpha_D"]


def _numeric_optimum(loss, C: float) -> tuple[float, float]:
    """The N minimising loss(N, C / (6 N)) (bounded scalar search in log N)."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(
        lambda x: float(loss(math.exp(x), C / (6 * math.exp(x)))),
        bounds=(math.log(1e3), math.log(C / 6 / 1e3)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    n = math.exp(res.x)
    return n, C / (6 * n)


def coverage_case(case: str) -> dict[str, Any]:
    """The truth and design of one ``pi_coverage`` case (chosen before any coverage was seen).

    - ``well``: the Chinchilla law (Hoffmann et al. 2022 Eq. 10), IsoFLOP design.
    - ``misspecified``: Kaplan et al. 2020 Eq. 1.5 (``KAPLAN_LAW``), which has no E and couples
      N and D inside one power: the fitted form is wrong. The grid is centred on the truth's
      own compute-optimal N per budget (a well-placed sweep).
    - ``e_near_zero``: the Chinchilla law with E = 0.05, below the start grid (the bootstrap
      piles up at E's bound and is skewed).
    - ``clustered``: the Chinchilla law on a WSD design: one trunk per shape (N on a factor-2
      grid), a branch at every budget whose 7-point window holds that N; a branch's log loss
      adds the trunk's shared effect u ~ N(0, noise/sqrt 2) and its own e ~ N(0, noise/sqrt 2)
      (one run's total noise stays ``noise``); the fit's bootstrap resamples trunks.

    Returns:
        ``{"loss": callable(N, D), "optimum": callable(C) -> (N, D), "law": dict or None}``.

    Raises:
        ValueError: an unknown case.
    """
    if case not in COVERAGE_CASES:
        raise ValueError(f"case must be one of {COVERAGE_CASES}, got {case!r}")
    if case == "misspecified":
        return {
            "loss": kaplan_loss,
            "optimum": lambda C: _numeric_optimum(kaplan_loss, C),
            "law": None,
        }
    law = dict(CHINCHILLA_LAW, **({"E": E_NEAR_ZERO} if case == "e_near_zero" else {}))
    from analysis.parametric import closed_form_optimum

    return {
        "loss": lambda N, D: law_loss(N, D, law),
        "optimum": lambda C: tuple(float(x) for x in closed_form_optimum(C, **law)),
        "law": law,
    }


def simulated_sweep(case: str, cc: dict[str, Any], budgets, n_models, spread, noise, rng):
    """One simulated sweep of ``case`` (``coverage_case``'s truth ``cc``), drawn with ``rng``.

    Per budget C (FLOPs, C = 6 N D), ``n_models`` N log-spaced over the truth's N_opt(C) / spread
    .. N_opt(C) * spread (the clustered case: shared trunk shapes, see ``coverage_case``), and
    L = truth(N, D) * exp(noise draw).

    Returns:
        (N, D, L, clusters): arrays of one shape (n,); clusters is None except for
        ``"clustered"`` (the trunk label of each branch).
    """
    if case != "clustered":
        rows = []
        for C in budgets:
            n_opt = cc["optimum"](C)[0]
            rows += [(n, C / (6 * n)) for n in n_opt * np.geomspace(1 / spread, spread, n_models)]
        N, D = (np.array(x) for x in zip(*rows, strict=True))
        return N, D, cc["loss"](N, D) * np.exp(rng.normal(0.0, noise, N.size)), None
    step = spread ** (2 / (n_models - 1))  # the 7-point grid's factor between shapes
    lo, hi = cc["optimum"](budgets[0])[0] / spread, cc["optimum"](budgets[-1])[0] * spread
    shapes = lo * step ** np.arange(int(math.log(hi / lo) / math.log(step) + 1.5))
    u = rng.normal(0.0, noise / math.sqrt(2), shapes.size)  # one effect per trunk
    N, D, eps, cl = [], [], [], []
    for C in budgets:
        n_opt = cc["optimum"](C)[0]
        for j in np.flatnonzero(np.abs(np.log(shapes / n_opt)) <= math.log(spread) + 1e-6):
            N.append(shapes[j])
            D.append(C / (6 * shapes[j]))
            eps.append(u[j] + rng.normal(0.0, noise / math.sqrt(2)))
            cl.append(f"trunk{j}")
    N, D = np.array(N), np.array(D)
    return N, D, cc["loss"](N, D) * np.exp(np.array(eps)), np.array(cl)


def _percentile_form_pi(fit: Any, n: float, d: float, level: float) -> tuple[float, float]:
    """The PI used before issue 22 (a diagnostic, not what ``predict_loss`` reports).

    exp of the percentile interval of log L_b(N, D) + e_i sqrt(n / (n - p)) over all pairs,
    with the raw (uncentred) residuals e_i and no reflection.
    """
    from analysis.estimates import percentile_ci
    from analysis.forecast import _law, n_free_params

    with np.errstate(all="ignore"):
        c = np.log([_law(p, n, d) for p in fit.sample_params()])
    c = c[np.isfinite(c)]
    r = np.asarray(fit.residuals, dtype=float)
    r = r * math.sqrt(r.size / (r.size - n_free_params(fit)))
    lo, hi = percentile_ci((c[:, None] + r[None, :]).ravel(), level)
    return math.exp(lo), math.exp(hi)


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (Wilson 1927), via scipy.

    Raises:
        ValueError: n < 1 or k outside [0, n].
    """
    from scipy.stats import binomtest

    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"wilson_interval needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    ci = binomtest(k, n).proportion_ci(level, method="wilson")
    return (float(ci.low), float(ci.high))


def pi_coverage(
    n_sweeps: int,
    *,
    case: str = "well",
    noise: float = 0.01,
    n_bootstrap: int = 100,
    target_factor: float = 10.0,
    seed: int = 0,
    level: float = 0.95,
    budgets: tuple[float, ...] = (1e18, 1e19, 1e20, 1e21),
    n_models: int = 7,
    spread: float = 8.0,
) -> dict[str, Any]:
    """Coverage of ``analysis.forecast.predict_loss``'s PI on simulated sweeps of one case.

    Each sweep draws the case's design (``coverage_case``: 4 budgets x 7 models, log-normal
    ``noise`` per run), fits approach 3 exactly as ``scaling fit`` does (the screened 4500-start
    grid, ``n_bootstrap`` resamples; WSD trunks resampled as clusters), then asks for the PI at
    two queries, each compared with ONE fresh run drawn from the truth there: the truth's
    compute-optimal (N, D) at ``target_factor`` x the largest budget (extrapolation, what the
    report answers; in the clustered case the fresh run has a fresh trunk), and an interior
    point (the truth's optimum at 3x the second budget).

    Returns:
        ``{"case", "n_sweeps", "hits_target", "coverage_target", "coverage_target_ci"
        (Wilson, at ``level``), "hits_interior", "coverage_interior", "mean_pi_width_target"
        (relative to the true loss), "mean_pi_width_interior", "mean_bias_target" (mean
        log(L_hat / L_true) at the target), "hits_target_percentile_form" (diagnostic: the
        same fresh runs inside the pre-issue-22 percentile PI), "level", "noise"}``.

    Raises:
        ValueError: an unknown ``case``.
    """
    from analysis.forecast import predict_loss
    from analysis.parametric import fit_parametric

    cc = coverage_case(case)
    rng = np.random.default_rng(seed)
    queries = {
        "target": cc["optimum"](target_factor * budgets[-1]),
        "interior": cc["optimum"](budgets[1] * 3),
    }
    hits = {k: 0 for k in queries}
    widths: dict[str, list[float]] = {k: [] for k in queries}
    bias = []
    hits_pct = 0
    for _ in range(n_sweeps):
        N, D, L, clusters = simulated_sweep(case, cc, budgets, n_models, spread, noise, rng)
        fit = fit_parametric(
            N,
            D,
            L,
            n_convention="total",
            flop_formula="6nd",
            n_bootstrap=n_bootstrap,
            seed=int(rng.integers(1 << 31)),
            workers=1,
            identifiability_threshold=1.0,
            clusters=clusters,
        )
        for k, (nq, dq) in queries.items():
            ans = predict_loss(fit, float(nq), float(dq), level)
            true_l = float(cc["loss"](nq, dq))
            fresh = true_l * math.exp(rng.normal(0.0, noise))
            hits[k] += bool(ans["pi"][0] <= fresh <= ans["pi"][1])
            widths[k].append((ans["pi"][1] - ans["pi"][0]) / true_l)
            if k == "target":
                bias.append(math.log(ans["value"] / true_l))
                lo, hi = _percentile_form_pi(fit, float(nq), float(dq), level)
                hits_pct += bool(lo <= fresh <= hi)
    return {
        "case": case,
        "n_sweeps": n_sweeps,
        "hits_target": hits["target"],
        "coverage_target": hits["target"] / n_sweeps,
        "coverage_target_ci": wilson_interval(hits["target"], n_sweeps, level),
        "hits_interior": hits["interior"],
        "coverage_interior": hits["interior"] / n_sweeps,
        "mean_pi_width_target": float(np.mean(widths["target"])),
        "mean_pi_width_interior": float(np.mean(widths["interior"])),
        "mean_bias_target": float(np.mean(bias)),
        "hits_target_percentile_form": hits_pct,
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
