"""Sweep specs, LR rules, validation, registry and `scaling sweep plan` (no training)."""

import dataclasses
import json
import math
import textwrap

import pytest

from scaling.cli import main
from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from scaling.counting import flop_breakdown, param_counts
from scaling.shapes import AspectRatioRule, ChinchillaGridRule
from sweeps.lr import FixedLR, LRRuleError, LRTable, WidthScaledLR, lr_rule_from_dict
from sweeps.plan import plan
from sweeps.registry import SweepNotFoundError, available_sweeps, load_sweep
from sweeps.spec import (
    GridSweep,
    IsoFlopSweep,
    LadderSweep,
    PlanError,
    SweepSpecError,
    corpus_train_tokens,
    run_name,
)


def base_config(**changes) -> RunConfig:
    cfg = RunConfig(
        model=ModelConfig(n_layers=1, d_model=32, n_heads=2, d_mlp=128, vocab_size=256, seq_len=64),
        data=DataConfig(source="stdlib", val_tokens=2048),
        optim=OptimConfig(lr=1e-2),
        n_tokens=4096,
        batch_size_tokens=1024,
        micro_batch_size=16,
        wandb_mode="disabled",
    )
    return cfg.replace(**changes)


def independent_training_flops(model: ModelConfig, n_tokens: int) -> float:
    """Chinchilla App. F training FLOPs per token written out again from the formula."""
    d, s, h, L, V, f = (
        model.d_model,
        model.seq_len,
        model.n_heads,
        model.n_layers,
        model.vocab_size,
        model.d_mlp,
    )
    per_layer = 2 * 3 * d * d + 2 * d * d + 2 * s * d + 3 * h * s + 2 * s * d + 2 * 2 * d * f
    forward = L * per_layer + 2 * d * V
    return 3 * forward * n_tokens


# -- IsoFLOP ------------------------------------------------------------------------------------
def test_isoflop_runs_land_on_budget_within_1_percent():
    spec = IsoFlopSweep(
        name="iso",
        base=base_config(),
        budgets=(3e11, 1e12, 3e12),
        depths=(1, 2, 3),
        shape_rule=AspectRatioRule(aspect_ratio=32, d_head=16),
        lr_rule=WidthScaledLR(1.5e-2, 32),
        seeds=(0, 1),
        lr_multipliers=(0.5, 1.0, 2.0),
    )
    runs = plan(spec)
    assert len(runs) == 3 * 3 * 2 * 3
    for r in runs:
        c = r.config
        assert c.n_tokens % c.batch_size_tokens == 0
        assert abs(independent_training_flops(c.model, c.n_tokens) / c.flops_budget - 1) <= 0.01
        assert r.flops == independent_training_flops(c.model, c.n_tokens)
        assert c.sweep_name == "iso"
        assert r.n_params_total == param_counts(c.model).total
        assert r.tokens_per_param == pytest.approx(c.n_tokens / r.n_params_total)
    # variants of one point share point_key; different points never do
    groups: dict[str, set] = {}
    for r in runs:
        c = r.config
        groups.setdefault(c.point_key, set()).add((c.optim.lr, c.seed))
        assert str(c.model.n_layers) in c.point_key
    assert len(groups) == 9 and all(len(v) == 6 for v in groups.values())
    # LR variants are multiples of the width rule's LR
    for r in runs:
        base_lr = 1.5e-2 * 32 / r.config.model.d_model
        assert min(abs(r.config.optim.lr / base_lr - m) for m in (0.5, 1, 2)) < 1e-3


def test_isoflop_explicit_shapes_and_param_targets():
    spec = IsoFlopSweep(
        name="iso2",
        base=base_config(),
        budgets=(1e12,),
        shapes=((1, 48, 3), (2, 64, 4)),
    )
    models = [c.model for c in spec.expand()]
    assert [(m.n_layers, m.d_model, m.n_heads, m.d_mlp) for m in models] == [
        (1, 48, 3, 192),
        (2, 64, 4, 256),
    ]
    rule = AspectRatioRule(aspect_ratio=32, d_head=16)
    spec = IsoFlopSweep(
        name="iso3",
        base=base_config(),
        budgets=(1e12,),
        n_params=(1e4, 1e5),
        shape_rule=rule,
    )
    for cfg, target in zip(spec.expand(), (1e4, 1e5), strict=True):
        assert cfg.model == rule.shape_for(target, "non_embedding", 256, 64)


def test_run_name_deterministic_and_sensitive_to_every_field():
    spec = load_sweep("smoke")
    a, b = spec.expand(), load_sweep("smoke").expand()
    assert [run_name(c) for c in a] == [run_name(c) for c in b]
    assert len({run_name(c) for c in a}) == len(a)
    cfg = a[0]
    name = run_name(cfg)
    assert name.startswith(f"L{cfg.model.n_layers}-d{cfg.model.d_model}-h{cfg.model.n_heads}-C4e9-")
    changed = [
        cfg.replace(seed=7),
        cfg.replace(log_interval_steps=cfg.log_interval_steps + 1),
        cfg.replace(optim=dataclasses.replace(cfg.optim, weight_decay=0.0)),
        cfg.replace(data=dataclasses.replace(cfg.data, val_tokens=4096)),
    ]
    assert len({run_name(c) for c in changed} | {name}) == 5


def test_whole_plan_validation_lists_every_problem():
    spec = IsoFlopSweep(
        name="bad",
        base=base_config(),
        budgets=(1e6, 1e12),  # 1e6 FLOPs is far below one batch of any model
        depths=(1, 1),  # duplicate point -> duplicate run names
        shape_rule=AspectRatioRule(aspect_ratio=32, d_head=16),
        lr_rule=LRTable(((64, 1e-2), (128, 5e-3))),  # d_model 32 is outside the table
    )
    with pytest.raises(PlanError) as e:
        spec.expand()
    reasons = [p.reason for p in e.value.problems]
    assert any("add an entry for d_model=32" in r for r in reasons)
    assert str(e.value).count("\n") == len(e.value.problems)
    spec = dataclasses.replace(spec, lr_rule=None)
    with pytest.raises(PlanError) as e:
        spec.expand()
    reasons = [p.reason for p in e.value.problems]
    assert sum("too small for one batch" in r for r in reasons) == 2
    assert sum("duplicate run name" in r for r in reasons) == 1
    # a budget reachable only with too few steps misses by more than 1%
    spec = IsoFlopSweep(
        name="coarse",
        base=base_config(),
        budgets=(2.2e9,),
        depths=(1,),
        shape_rule=AspectRatioRule(32, 16),
    )
    with pytest.raises(PlanError, match="misses budget"):
        spec.expand()


def test_grid_sweep_divisibility_and_tokens_per_param():
    spec = GridSweep(
        name="grid",
        base=base_config(),
        widths=(32, 40, 48),  # 40 is not a multiple of d_head=16
        depths=(1, 2),
        d_head=16,
        tokens_per_param=(10, 20),
    )
    configs, problems = spec.check()
    assert len(problems) == 2 and all("not divisible by d_head=16" in p.reason for p in problems)
    assert len(configs) == 2 * 2 * 2
    for c in configs:
        n = param_counts(c.model).non_embedding
        ratio = c.n_tokens / n
        assert min(abs(ratio - r) for r in (10, 20)) <= c.batch_size_tokens / n
        assert c.flops_budget is None and f"D{c.n_tokens}" in c.point_key


def test_ladder_sweep_multiples_of_20_tokens_per_param():
    spec = LadderSweep(
        name="ladder",
        base=base_config(),
        depths=(2, 3),
        shape_rule=AspectRatioRule(aspect_ratio=32, d_head=16),
    )
    configs = spec.expand()
    assert len(configs) == 2 * 5
    for c in configs:
        n_total = param_counts(c.model).total
        mult = c.n_tokens / (20 * n_total)
        nearest = min((0.5, 1, 2, 5, 10), key=lambda m: abs(m - mult))
        assert abs(c.n_tokens - nearest * 20 * n_total) <= c.batch_size_tokens / 2


def test_repetition_check_uses_corpus_size():
    corpus = corpus_train_tokens(DataConfig(source="stdlib"))
    assert corpus is not None and corpus > 1e6
    spec = GridSweep(
        name="rep",
        base=base_config(),
        widths=(32,),
        depths=(1,),
        n_tokens=(corpus // 2, 2 * corpus),
        allow_repetition=False,
    )
    configs, problems = spec.check()
    assert len(configs) == 1 and len(problems) == 1
    assert "exceeds the training corpus" in problems[0].reason
    assert len(dataclasses.replace(spec, allow_repetition=True).expand()) == 2
    # a token-file corpus that does not exist is unknown, not an error (plans need no data)
    assert corpus_train_tokens(DataConfig(source="tokens", path="/nonexistent/x")) is None


def test_max_epochs_refuses_the_runs_over_it_by_name():
    corpus = corpus_train_tokens(DataConfig(source="stdlib"))
    spec = GridSweep(
        name="rep",
        base=base_config(),
        widths=(32,),
        depths=(1,),
        n_tokens=(int(1.5 * corpus), int(4.5 * corpus)),
        max_epochs=4,
    )
    configs, problems = spec.check()
    assert len(configs) == 1 and abs(configs[0].n_tokens - 1.5 * corpus) <= 1024  # one batch
    (problem,) = problems
    assert "4.50 epochs" in problem.reason and "max_epochs=4" in problem.reason
    with pytest.raises(PlanError) as err:
        spec.expand()
    assert problem.label in str(err.value) and "1 invalid run" in str(err.value)
    # allow_repetition=False is the tighter limit of one epoch
    strict = dataclasses.replace(spec, allow_repetition=False)
    assert strict.epoch_limit == 1 and len(strict.check()[1]) == 2
    assert dataclasses.replace(spec, max_epochs=5).expand()
    for bad in (0, -1, float("inf"), "4"):
        with pytest.raises(SweepSpecError, match="max_epochs"):
            dataclasses.replace(spec, max_epochs=bad)


def test_bad_spec_fields_raise():
    with pytest.raises(SweepSpecError, match="exactly one size axis"):
        IsoFlopSweep(name="x", base=base_config(), budgets=(1e12,))
    with pytest.raises(SweepSpecError, match="seeds"):
        IsoFlopSweep(name="x", base=base_config(), budgets=(1e12,), depths=(1,), seeds=())
    with pytest.raises(SweepSpecError, match="exactly one of n_tokens or tokens_per_param"):
        GridSweep(name="g", base=base_config(), widths=(32,), depths=(1,))


# -- LR rules -----------------------------------------------------------------------------------
def test_lr_rules():
    m = lambda d: ModelConfig(n_layers=1, d_model=d, n_heads=1, d_mlp=4 * d)  # noqa: E731
    rule = WidthScaledLR(base_lr=1.5e-2, base_d_model=32)
    assert rule.lr_for(m(32)) == pytest.approx(1.5e-2)
    assert rule.lr_for(m(64)) == pytest.approx(7.5e-3)
    assert WidthScaledLR(1e-2, 32, exponent=0.5).lr_for(m(128)) == pytest.approx(5e-3)
    assert FixedLR(3e-3).lr_for(m(512)) == 3e-3
    table = LRTable(((96, 3e-3), (32, 1.5e-2), (48, 7e-3)))
    assert table.lr_for(m(48)) == pytest.approx(7e-3)
    # geometric midpoint in width -> geometric mean of LRs (log-log interpolation)
    mid = math.sqrt(48 * 96)
    assert LRTable(((48, 7e-3), (96, 3e-3))).lr_for(m(int(mid))) == pytest.approx(
        math.exp(
            math.log(7e-3) + (math.log(int(mid)) - math.log(48)) / math.log(2) * math.log(3 / 7)
        )
    )
    with pytest.raises(LRRuleError, match="add an entry"):
        table.lr_for(m(128))
    with pytest.raises(LRRuleError):
        FixedLR(0)
    for r in (rule, FixedLR(1e-3), table):
        assert lr_rule_from_dict(json.loads(json.dumps(r.to_dict()))) == r


# -- registry and shipped definitions -----------------------------------------------------------
def test_registry_and_shipped_definitions(tmp_path):
    assert {"smoke", "cluster_example"} <= set(available_sweeps())
    with pytest.raises(SweepNotFoundError, match="known"):
        load_sweep("no_such_sweep")
    smoke = plan(load_sweep("smoke"))
    assert 2 <= len(smoke) <= 8
    assert all(r.config.model.seq_len <= 64 and r.config.n_steps >= 10 for r in smoke)
    cluster = plan(load_sweep("cluster_example"))  # its data path does not exist: still plans
    assert len(cluster) == 35
    assert {r.config.model.vocab_size for r in cluster} == {50304}
    assert {r.config.flops_budget for r in cluster} == {1e17, 3e17, 1e18, 3e18, 1e19}
    assert all(r.config.precision == "bf16" for r in cluster)
    # a definition given as a file path
    path = tmp_path / "mine.py"
    path.write_text(
        textwrap.dedent(
            """
            from sweeps.defs.smoke import sweep as _smoke
            import dataclasses
            def sweep():
                return dataclasses.replace(_smoke(), name="mine", budgets=(4e9,))
            """
        )
    )
    mine = load_sweep(str(path))
    assert mine.name == "mine" and len(mine.expand()) == 2


def test_chinchilla_grid_rule_in_a_sweep_flags_unreachable_sizes():
    spec = IsoFlopSweep(
        name="chin",
        base=base_config(model=ModelConfig(1, 64, 1, 256, vocab_size=32000, seq_len=64)),
        budgets=(1e19,),
        n_params=(1e5, 1e8),
        n_convention="total",
        shape_rule=ChinchillaGridRule(),
    )
    configs, problems = spec.check()
    assert len(configs) == 1 and len(problems) == 1
    assert "cannot reach" in problems[0].reason


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_plan_json_and_invalid_plan(tmp_path, capsys):
    assert main(["sweep", "plan", "smoke", "--json", "--no-measure"]) == 0
    out = json.loads(capsys.readouterr().out)
    runs = out["runs"]
    assert [r["run_name"] for r in runs] == [r.run_name for r in plan(load_sweep("smoke"))]
    assert out["totals"]["flops"] == sum(r["flops"] for r in runs)
    for r in runs:
        assert r["source"] == "constant" and r["est_wall_s"] > 0
        fpt = flop_breakdown(
            ModelConfig(r["n_layers"], r["d_model"], r["n_heads"], r["d_mlp"], seq_len=32)
        ).training()
        assert r["tokens_per_sec"] == pytest.approx(2.5e10 / fpt)
    bad = tmp_path / "bad.py"
    bad.write_text(
        textwrap.dedent(
            """
            from sweeps.defs.smoke import sweep as _smoke
            import dataclasses
            def sweep():
                return dataclasses.replace(_smoke(), name="bad", budgets=(1e3, 4e9, 1e4))
            """
        )
    )
    assert main(["sweep", "plan", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "4 invalid run(s)" in err and err.count("too small for one batch") == 4


def test_cli_plan_table_measures_throughput(capsys):
    assert main(["sweep", "plan", "smoke"]) == 0
    out = capsys.readouterr().out
    for r in plan(load_sweep("smoke")):
        assert r.run_name in out
    assert "total: 4 runs" in out and "*" not in out.splitlines()[2]


def test_isoflop_tokens_per_param_window_keeps_only_points_inside():
    from scaling.config import DataConfig, ModelConfig, RunConfig
    from scaling.shapes import count_params
    from sweeps.spec import IsoFlopSweep, SweepSpecError

    base = RunConfig(
        model=ModelConfig(n_layers=1, d_model=32, n_heads=2, d_mlp=128, seq_len=64),
        data=DataConfig(source="stdlib"),
        n_tokens=1024,
        batch_size_tokens=1024,
        micro_batch_size=16,
    )
    shapes = ((1, 16, 1), (1, 32, 2), (2, 64, 4), (3, 96, 6))
    full = IsoFlopSweep(name="w", base=base, budgets=(1e11, 1e12), shapes=shapes)
    windowed = IsoFlopSweep(
        name="w", base=base, budgets=(1e11, 1e12), shapes=shapes, tokens_per_param_range=(5, 500)
    )
    ratios = {
        (c.flops_budget, c.model.d_model): c.n_tokens / count_params(c.model, "non_embedding")
        for c in full.expand()
    }
    inside = {k for k, r in ratios.items() if 5 <= r <= 500}
    assert 0 < len(inside) < len(ratios)  # the window really cuts something here
    kept = {(c.flops_budget, c.model.d_model) for c in windowed.expand()}
    assert kept == inside
    assert len(windowed.outside_window()) == len(ratios) - len(inside)
    with pytest.raises(SweepSpecError, match="tokens_per_param_range"):
        IsoFlopSweep(
            name="w", base=base, budgets=(1e11,), shapes=shapes, tokens_per_param_range=(5, 1)
        )


def test_isoflop_seeds_by_budget_repeats_only_the_named_budgets():
    base = base_config(n_tokens=1024)
    shapes = ((1, 16, 1), (1, 32, 2))
    kw = dict(name="s", base=base, budgets=(1e10, 1e11), shapes=shapes)
    spec = IsoFlopSweep(**kw, seeds_by_budget=((1e10, (0, 1, 2)),))
    seeds: dict[float, set] = {}
    for c in spec.expand():
        seeds.setdefault(c.flops_budget, set()).add(c.seed)
    assert seeds == {1e10: {0, 1, 2}, 1e11: {0}}
    assert len(spec.expand()) == 3 * 2 + 2
    # seeds of one point share its point_key (analysis.load averages them), names differ
    small = [c for c in spec.expand() if c.flops_budget == 1e10 and c.model.d_model == 16]
    assert len({c.point_key for c in small}) == 1 and len({run_name(c) for c in small}) == 3
    assert spec.to_dict()["seeds_by_budget"] == [[1e10, (0, 1, 2)]]
    assert "seeds_by_budget" not in IsoFlopSweep(**kw).to_dict()
    bad = {
        "not in budgets": ((3e10, (0, 1)),),
        "without repeats": ((1e10, (0, 0)),),
        "non-empty": ((1e10, ()),),
        "names a budget twice": ((1e10, (0,)), (1e10, (1,))),
        "must be .budget, seeds.": ((1e10,),),
        "seeds a tuple of ints": ((1e10, 3),),
        "e.g. .6e10, .0, 1..": (("x", (0,)),),
        "got 5": (5,),
        "got .10000000000.0, .0, 'a'..": ((1e10, (0, "a")),),
    }
    for message, value in bad.items():
        with pytest.raises(SweepSpecError, match=message):
            IsoFlopSweep(**kw, seeds_by_budget=value)


def test_run_names_of_first_release_configs_are_pinned():
    # A relaunch must find runs written before later fields (parametrization, family,
    # branch_from, ...) existed: fields at their default stay out of config.json and the hash.
    # The name below was computed by the first release's RunConfig.to_json.
    cfg = RunConfig(
        model=ModelConfig(n_layers=2, d_model=64, n_heads=4, d_mlp=256), flops_budget=1e12
    )
    assert run_name(cfg) == "L2-d64-h4-C1e12-lr1e-3-s0-f15751cc"
    assert RunConfig.from_dict(json.loads(cfg.to_json())) == cfg


def test_cpu_isoflop_design_holds_at_plan_time():
    # the main job's sweep (issue 15): >= 4 budgets over >= 1.5 decades, every run <= 4 epochs of
    # one corpus, WSD branches, and every budget's sizes wide enough to bracket a minimum
    # (>= 4 sizes spanning >= 6x in non-embedding N); no training
    spec = load_sweep("cpu_isoflop")
    runs = plan(spec)
    budgets = sorted(spec.budgets)
    assert len(budgets) >= 4 and math.log10(budgets[-1] / budgets[0]) >= 1.5
    corpus = corpus_train_tokens(spec.base.data)
    assert corpus and all(r.config.n_tokens / corpus <= 4.0 for r in runs)
    assert len({r.config.data for r in runs}) == 1
    points = [r for r in runs if r.role != "trunk"]
    assert {r.role for r in points} == {"branch"}
    assert all(r.config.branch_from is not None for r in points)
    for budget in budgets:
        sizes = sorted(r.n_params_non_embedding for r in points if r.config.flops_budget == budget)
        assert len(sizes) >= 4 and sizes[-1] / sizes[0] >= 6, (budget, sizes)
    # one warmup length for every run (a trunk family's short point no longer sets it)
    from scaling.optim import warmup_steps

    assert spec.branching.warmup_steps is not None
    assert {warmup_steps(r.config.n_steps, r.config.optim) for r in runs} == {
        spec.branching.warmup_steps
    }


def test_cpu_isoflop_third_edition_depths_and_aspect_ratios_hold_the_rung():
    # issue 25 item 6: every planned run has >= 2 layers and an aspect ratio d_model / n_layers
    # inside the sweep's stated range, and every shape the rung's rule can name (any N_opt) lies
    # inside the fitted depths and that range; the rung budget is >= 3x the largest budget
    from sweeps.defs import cpu_isoflop

    spec = load_sweep("cpu_isoflop")
    low, high = cpu_isoflop.ASPECT_RATIO_RANGE
    runs = plan(spec)
    depths = {r.config.model.n_layers for r in runs}
    assert min(depths) >= 2, depths
    for r in runs:
        m = r.config.model
        assert low <= m.d_model / m.n_layers <= high, (m.n_layers, m.d_model)
    for target in (1e3, 1e4, 3e4, 6e4, 1e5, 2e5, 1e6, 1e8):
        for m in spec.shape_rule.candidates(target, "non_embedding", 256, 128, k=3):
            assert min(depths) <= m.n_layers <= max(depths), (target, m)
            assert low <= m.d_model / m.n_layers <= high, (target, m)
    assert cpu_isoflop.RUNG_FACTOR >= 3
    # the main job's default factor is the pre-registered one
    import re
    from pathlib import Path

    script = (Path(__file__).parents[1] / "scripts" / "main_job.sh").read_text()
    defaults = set(re.findall(r"RUNG_FACTOR:-([0-9.]+)", script))
    assert {float(x) for x in defaults} == {cpu_isoflop.RUNG_FACTOR}, defaults
