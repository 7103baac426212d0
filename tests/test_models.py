"""Model families: llama blocks, the registry, user families, per-family counting."""

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scaling import rundir
from scaling.config import ConfigError, ModelConfig, RunConfig
from scaling.counting import (
    flop_breakdown,
    flops_per_token,
    kaplan_flops_per_token,
    param_counts,
)
from scaling.families import FamilyError, default_d_mlp, load_family
from scaling.models import build_model, check_counts
from scaling.models.llama import Llama, apply_rope, rope_table
from scaling.shapes import AspectRatioRule, ChinchillaGridRule, shape_rule_from_dict
from scaling.train import train

TESTS = Path(__file__).parent


def llama(**changes) -> ModelConfig:
    base = dict(n_layers=2, d_model=64, n_heads=4, vocab_size=256, seq_len=32, family="llama")
    return ModelConfig(**{**base, **changes})


# -- config ---------------------------------------------------------------------------------------
def test_gpt2_configs_keep_their_json_and_llama_fields_are_recorded():
    gpt2 = ModelConfig(n_layers=2, d_model=64, n_heads=4, d_mlp=256)
    d = RunConfig(model=gpt2).to_dict()["model"]
    assert "family" not in d and "rope_theta" not in d and "qk_norm" not in d
    assert ModelConfig(n_layers=2, d_model=64, n_heads=4).d_mlp == 256  # gpt2 default 4 d
    d = RunConfig(model=llama(qk_norm=True, rope_theta=5e5)).to_dict()["model"]
    assert d["family"] == "llama" and d["qk_norm"] is True and d["rope_theta"] == 5e5
    assert d["d_mlp"] == 160  # resolved and written, so the run name hash covers it
    assert RunConfig.from_dict(RunConfig(model=llama()).to_dict()).model == llama()


@pytest.mark.parametrize(
    "changes, needle",
    [
        (dict(family="gpt3"), "ModelConfig.family"),
        (dict(family="llama", n_heads=64, d_model=64), "even"),  # d_head = 1
        (dict(qk_norm=True), "family='llama'"),
        (dict(family="llama", rope_theta=0.0), "rope_theta"),
    ],
)
def test_bad_family_fields_are_one_line_errors(changes, needle):
    with pytest.raises(ConfigError) as err:
        ModelConfig(**{**dict(n_layers=1, d_model=64, n_heads=4), **changes})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_swiglu_width_rounding_is_the_documented_one():
    # nearest multiple of 32 to 2/3 * 4 * d_model
    assert [default_d_mlp("llama", d) for d in (32, 64, 128, 256, 768, 4096)] == [
        96,
        160,
        352,
        672,
        2048,
        10912,
    ]
    assert default_d_mlp("gpt2", 64) == 256 and default_d_mlp("pkg.mod:fam", 64, 3) == 192


# -- counting -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cfg",
    [
        llama(),
        llama(tie_embeddings=True),
        llama(qk_norm=True, n_layers=3, d_model=48, n_heads=3, d_mlp=100),
        llama(n_layers=1, d_model=16, n_heads=2, vocab_size=11, seq_len=5),
    ],
)
def test_llama_counts_equal_the_built_module(cfg):
    model = build_model(cfg)
    assert isinstance(model, Llama)
    pc = param_counts(cfg)
    assert pc.total == sum(p.numel() for p in model.parameters())
    assert pc.position == 0
    non_embedding = sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith(("tok_emb", "lm_head"))
    )
    assert pc.non_embedding == non_embedding
    check_counts(model, cfg)  # no error


def test_llama_counts_match_the_hand_derivation_in_the_docstring():
    cfg = llama(n_layers=2, d_model=64, n_heads=4, vocab_size=256)
    assert cfg.d_mlp == 160
    pc = param_counts(cfg)
    assert (pc.non_embedding, pc.total, pc.lm_head, pc.embedding) == (94528, 127296, 16384, 16384)
    assert param_counts(dataclasses.replace(cfg, qk_norm=True)).non_embedding == 94528 + 2 * 2 * 16
    # forward FLOPs per token: L*(8 d^2 + 4 s d + 3 h s + 6 d f) + 2 d V, times 3 for training
    d, s, h, f, V, L = 64, 32, 4, 160, 256, 2
    assert flops_per_token(cfg) == 3 * (
        L * (8 * d * d + 4 * s * d + 3 * h * s + 6 * d * f) + 2 * d * V
    )
    assert flop_breakdown(cfg).mlp == L * 2 * 3 * d * f  # SwiGLU: three matrices
    gpt2 = ModelConfig(n_layers=2, d_model=64, n_heads=4, d_mlp=256, seq_len=32)
    assert flop_breakdown(gpt2).mlp == L * 2 * 2 * d * 256  # GELU MLP: two
    assert kaplan_flops_per_token(cfg) == 3 * (2 * 94528 + 2 * L * s * d)


def test_swiglu_at_8_3_matches_gpt2_mlp_params_and_flops():
    # d_model 768: 8/3 * 768 = 2048 exactly, so the MLPs have the same size
    a = ModelConfig(n_layers=2, d_model=768, n_heads=12, family="llama")
    b = ModelConfig(n_layers=2, d_model=768, n_heads=12)
    assert flop_breakdown(a).mlp == flop_breakdown(b).mlp
    assert param_counts(b).non_embedding - param_counts(a).non_embedding == 2 * (2 * 768) + 768


# -- the llama module -----------------------------------------------------------------------------
def test_llama_has_no_biases_and_exposes_parametrization_hooks():
    model = Llama(llama(qk_norm=True))
    assert all("bias" not in n for n, _ in model.named_parameters())
    assert model.attn_scale == pytest.approx(1 / 4.0)  # 1/sqrt(d_head=16)
    assert model.residual_multiplier == 1.0 and model.output_multiplier == 1.0
    names = {n for n, _ in model.named_parameters()}
    assert {"blocks.0.attn.q_norm.weight", "blocks.0.mlp.gate.weight", "norm_f.weight"} <= names


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    table = rope_table(16, 8, 10000.0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    qs, ks = q.expand(1, 16, 1, 8), k.expand(1, 16, 1, 8)
    rq, rk = apply_rope(qs, table)[0, :, 0], apply_rope(ks, table)[0, :, 0]
    s = rq @ rk.T  # s[i, j] = <R_i q, R_j k> depends on i - j only
    assert torch.allclose(s[3, 1], s[10, 8], atol=1e-5) and torch.allclose(s[5, 5], s[0, 0])
    assert not torch.allclose(s[3, 1], s[3, 2])
    # the rotation keeps norms, and position 0 is the identity
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(16), atol=1e-5)
    assert torch.allclose(rq[0], q[0, 0, 0])
    # pair (2i, 2i+1) turns by position * theta**(-2i/d_head): channel pair 1 at position 3
    angle = 3 * 10000.0 ** (-2 / 8)
    x = torch.zeros(1, 16, 1, 8)
    x[..., 2] = 1.0
    out = apply_rope(x, table)[0, 3, 0]
    assert torch.allclose(out[2:4], torch.tensor([math.cos(angle), math.sin(angle)]), atol=1e-6)


def test_llama_is_causal_and_tied_head_is_the_embedding():
    torch.manual_seed(0)
    model = Llama(llama(tie_embeddings=True)).eval()
    assert model.lm_head.weight is model.tok_emb.weight
    x = torch.randint(0, 256, (2, 12))
    y = x.clone()
    y[:, 8:] = (y[:, 8:] + 1) % 256  # change the future only
    with torch.no_grad():
        a, b = model(x)[0], model(y)[0]
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-5) and not torch.allclose(a[:, 8:], b[:, 8:])


def test_llama_learns(tmp_path, make_cfg):
    cfg = make_cfg(model=llama(n_layers=1, d_model=32, n_heads=2, seq_len=32))
    summary = train(cfg, tmp_path / "run", progress=False)
    rows = rundir.read_metrics(tmp_path / "run")
    assert summary.status == "complete" and summary.n_params_total == param_counts(cfg.model).total
    assert rows[-1]["train/loss"] < rows[0]["train/loss"] - 0.5  # from ~ln 256 = 5.5 downwards
    assert (
        json.loads((tmp_path / "run" / "config.json").read_text())["config"]["model"]["family"]
        == "llama"
    )


# -- shape rules ----------------------------------------------------------------------------------
def test_shape_rules_build_and_count_each_family():
    rule = AspectRatioRule(aspect_ratio=32, d_head=16, family="llama")
    m = rule.shape_for(1e5, "non_embedding", 256, 64)
    assert m.family == "llama" and m.d_mlp == default_d_mlp("llama", m.d_model)
    assert param_counts(m).total == sum(p.numel() for p in build_model(m).parameters())
    assert shape_rule_from_dict(rule.to_dict()) == rule
    assert "family" not in AspectRatioRule(aspect_ratio=32, d_head=16).to_dict()
    grid = ChinchillaGridRule(family="llama").shapes(32000, 2048)
    assert all(s.family == "llama" for s in grid) and grid[0].d_mlp == 1376  # 2/3*2048 -> 32s
    assert shape_rule_from_dict(ChinchillaGridRule(family="llama").to_dict()).family == "llama"


# -- user families --------------------------------------------------------------------------------
@pytest.fixture
def on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    load_family.cache_clear()
    yield
    load_family.cache_clear()


def test_user_family_counts_trains_and_is_checked(on_path, make_cfg, tmp_path):
    cfg = make_cfg(
        model=ModelConfig(
            n_layers=1, d_model=32, n_heads=1, seq_len=32, family="family_example:family"
        )
    )
    pc = param_counts(cfg.model)
    assert (pc.non_embedding, pc.total) == (32 * 32, 2 * 256 * 32 + 32 * 32)
    assert flops_per_token(cfg.model) == 3 * (2 * 32 * 32 + 2 * 32 * 256)
    assert (
        flops_per_token(cfg.model, include_embedding=True)
        == flops_per_token(cfg.model) + 3 * 2 * 256 * 32
    )
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary.status == "complete" and summary.n_params_non_embedding == 32 * 32
    rows = rundir.read_metrics(tmp_path / "run")
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]


@pytest.mark.parametrize(
    "family, needle",
    [
        ("family_example:miscounted", "built module has"),
        ("family_example:incomplete", "lacks flops_per_token"),
        ("family_example:nothing", "has no attribute 'nothing'"),
        ("no_such_pkg.models:family", "cannot import module 'no_such_pkg.models'"),
    ],
)
def test_bad_user_family_stops_before_anything_is_written(
    on_path, make_cfg, tmp_path, family, needle
):
    cfg = make_cfg(model=ModelConfig(n_layers=1, d_model=32, n_heads=1, seq_len=32, family=family))
    with pytest.raises(FamilyError) as err:
        train(cfg, tmp_path / "run", progress=False)
    assert needle in str(err.value) and family in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def _train_argv(run_dir, corpus, family):
    return [
        "train",
        "--run-dir",
        str(run_dir),
        "--n-layers",
        "1",
        "--d-model",
        "16",
        "--n-heads",
        "1",
        "--seq-len",
        "16",
        "--data-path",
        str(corpus),
        "--val-tokens",
        "256",
        "--n-tokens",
        "2048",
        "--batch-size-tokens",
        "256",
        "--micro-batch-size",
        "16",
        "--wandb-mode",
        "disabled",
        "--no-progress",
        "--family",
        family,
    ]


def test_user_family_trains_in_a_fresh_process(tmp_path, tiny_corpus):
    # a fresh interpreter (as a local or Slurm executor starts) imports the family by PYTHONPATH
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    argv = _train_argv(tmp_path / "r", tiny_corpus, "family_example:family")
    ok = subprocess.run(
        [sys.executable, "-m", "scaling.cli", *argv], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert rundir.read_summary(tmp_path / "r")["n_params_non_embedding"] == 16 * 16


def test_miscounted_user_family_is_one_cli_line(on_path, tmp_path, tiny_corpus, capsys):
    from scaling.cli import main

    rc = main(_train_argv(tmp_path / "b", tiny_corpus, "family_example:miscounted"))
    err = capsys.readouterr().err
    assert rc == 2 and "family_example:miscounted" in err and "param_counts" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "b").exists()


def test_llama_smoke_sweep_plans_launches_and_reports(tmp_path):
    from analysis.report import make_report
    from scaling.counting import training_flops
    from sweeps.launch import launch
    from sweeps.plan import plan
    from sweeps.registry import load_sweep

    spec = load_sweep("smoke_llama")
    runs = plan(spec)
    assert len(runs) == 4 and all(r.config.model.family == "llama" for r in runs)
    result = launch(spec, tmp_path, executor="debug", progress=False)
    assert result.ok and result.counts == {"complete": 4}
    for run in runs:
        run_dir = tmp_path / "smoke_llama" / run.run_name
        summary = rundir.read_summary(run_dir)
        model = run.config.model
        assert summary["n_params_total"] == param_counts(model).total
        assert summary["n_params_position"] == 0  # rotary positions
        spent = training_flops(model, summary["n_tokens"]) / run.config.flops_budget
        assert abs(spent - 1) <= 0.01  # llama's own FLOP count puts each run on its budget
    sweep = json.loads((tmp_path / "smoke_llama" / "sweep.json").read_text())
    assert sweep["shape_rule"]["family"] == "llama"
    report = make_report(tmp_path, tmp_path / "report", n_bootstrap=10)
    assert (tmp_path / "report" / "index.html").is_file() and report.files


def test_readme_user_family_example_counts_its_module(tmp_path, monkeypatch):
    import re

    from scaling.models import check_family

    guide = (TESTS.parent / "docs" / "guide.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", guide, re.S) if "my_family" in b]
    assert len(blocks) == 1, "docs/guide.md lost its user-family example"
    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg" / "__init__.py").write_text("")
    (tmp_path / "my_pkg" / "my_family.py").write_text(blocks[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    load_family.cache_clear()
    cfg = ModelConfig(
        n_layers=2, d_model=32, n_heads=1, vocab_size=300, family="my_pkg.my_family:family"
    )
    check_family(cfg)  # builds it and compares param_counts with sum(numel)
    pc = param_counts(cfg)
    assert pc.non_embedding == 2 * (2 * 32 * 128 + 128 + 32) and pc.total == sum(
        p.numel() for p in build_model(cfg).parameters()
    )
    load_family.cache_clear()


def test_llama_rmsnorm_is_the_textbook_formula():
    from scaling.models.llama import RMSNorm

    torch.manual_seed(0)
    norm = RMSNorm(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
    x = torch.randn(3, 5, 8)
    ref = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    assert torch.allclose(norm(x), ref, atol=1e-6)


def test_shape_and_lr_rules_work_for_a_user_family(on_path):
    from sweeps.lr import WidthScaledLR

    rule = AspectRatioRule(aspect_ratio=16, d_head=16, family="family_example:family")
    m = rule.shape_for(5e4, "non_embedding", 256, 32)
    # the user family counts d_model**2 non-embedding parameters: 224**2 = 50176 is nearest
    assert m.family == "family_example:family" and param_counts(m).non_embedding == m.d_model**2
    assert abs(m.d_model**2 / 5e4 - 1) < 0.1
    assert WidthScaledLR(base_lr=1e-2, base_d_model=32).lr_for(m) == pytest.approx(
        1e-2 * 32 / m.d_model
    )


# state_dict keys and shapes of both families as main wrote them before issue 19 moved GPT to
# scaling/models/gpt2.py (recorded at a8ca21e): checkpoint.pt stores this dict, so old
# checkpoints load only while these names stay
_KEYS_BEFORE_ISSUE_19 = {
    "gpt2": [
        ("tok_emb.weight", (32, 16)),
        ("pos_emb.weight", (8, 16)),
        ("blocks.0.ln_1.weight", (16,)),
        ("blocks.0.ln_1.bias", (16,)),
        ("blocks.0.attn.qkv.weight", (48, 16)),
        ("blocks.0.attn.proj.weight", (16, 16)),
        ("blocks.0.ln_2.weight", (16,)),
        ("blocks.0.ln_2.bias", (16,)),
        ("blocks.0.mlp.fc.weight", (64, 16)),
        ("blocks.0.mlp.proj.weight", (16, 64)),
        ("ln_f.weight", (16,)),
        ("ln_f.bias", (16,)),
        ("lm_head.weight", (32, 16)),
    ],
    "llama": [
        ("tok_emb.weight", (32, 16)),
        ("blocks.0.norm_1.weight", (16,)),
        ("blocks.0.attn.qkv.weight", (48, 16)),
        ("blocks.0.attn.proj.weight", (16, 16)),
        ("blocks.0.attn.q_norm.weight", (8,)),
        ("blocks.0.attn.k_norm.weight", (8,)),
        ("blocks.0.norm_2.weight", (16,)),
        ("blocks.0.mlp.gate.weight", (32, 16)),
        ("blocks.0.mlp.up.weight", (32, 16)),
        ("blocks.0.mlp.proj.weight", (16, 32)),
        ("norm_f.weight", (16,)),
        ("lm_head.weight", (32, 16)),
    ],
}


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_checkpoints_from_before_the_move_load(family):
    extra = {"family": "llama", "qk_norm": True, "tie_embeddings": True}
    extra = extra if family == "llama" else {}
    cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, vocab_size=32, seq_len=8, **extra)
    model = build_model(cfg)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == _KEYS_BEFORE_ISSUE_19[
        family
    ]
    old = {k: torch.full(shape, 0.5) for k, shape in _KEYS_BEFORE_ISSUE_19[family]}
    model.load_state_dict(old, strict=True)
    assert all(bool((p == 0.5).all()) for p in model.parameters())
