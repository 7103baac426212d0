"""Parametrizations (SP, muP, CompleteP): config, init, multipliers, optimizer groups, training."""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import subprocess
import sys

import pytest
import torch
from test_train import kill_9_after_checkpoint

from scaling import parametrization, rundir
from scaling.config import ConfigError, ModelConfig, OptimConfig, RunConfig
from scaling.counting import param_counts, training_flops
from scaling.models.gpt2 import GPT
from scaling.optim import build_optimizer, set_lr
from scaling.parametrization import INIT_STD
from scaling.train import train
from sweeps.lr import FixedLR, LRRuleError, MupLR, WidthScaledLR, lr_rule_from_dict
from sweeps.registry import load_sweep

SHAPE = dict(n_layers=2, d_model=32, n_heads=4, d_mlp=128, vocab_size=64, seq_len=16)


def _model_cfg(**changes) -> ModelConfig:
    return ModelConfig(**{**SHAPE, **changes})


def _build(cfg: ModelConfig, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(cfg)


def _batch(cfg: ModelConfig, b: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, cfg.vocab_size, (b, cfg.seq_len), generator=g)
    return idx, torch.randint(0, cfg.vocab_size, (b, cfg.seq_len), generator=g)


def _adamw_losses(model: GPT, n_steps: int = 8, lr: float = 1e-2) -> list[float]:
    optim = OptimConfig(lr=lr, weight_decay=0.1)
    opt = build_optimizer(model.param_groups(optim.weight_decay, optim.eps), optim)
    idx, targets = _batch(model.cfg)
    losses = []
    for _ in range(n_steps):
        _, loss = model(idx, targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def _groups_by_param_name(model: GPT, groups: list[dict]) -> dict[str, dict]:
    ids = {id(p): n for n, p in model.named_parameters()}
    return {ids[id(p)]: g for g in groups for p in g["params"]}


# -- config -------------------------------------------------------------------------------------
def test_sp_is_the_default_and_leaves_config_json_unchanged():
    cfg = RunConfig(model=_model_cfg())
    assert cfg.model.parametrization == "sp"
    assert not {"parametrization", "base_d_model", "base_n_layers"} & set(cfg.to_dict()["model"])


def test_mup_and_completep_configs_round_trip_through_json():
    for model in (
        _model_cfg(parametrization="mup", base_d_model=16),
        _model_cfg(parametrization="completep", base_d_model=16, base_n_layers=1),
    ):
        cfg = RunConfig(model=model)
        d = json.loads(cfg.to_json())
        assert d["model"]["parametrization"] == model.parametrization
        assert RunConfig.from_dict(d) == cfg


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"parametrization": "mu-p"}, "ModelConfig.parametrization must be one of"),
        ({"parametrization": "mup"}, "ModelConfig.base_d_model is required"),
        ({"parametrization": "completep", "base_d_model": 16}, "base_n_layers is required"),
        ({"base_d_model": 16}, "base_d_model has no effect with parametrization='sp'"),
        (
            {"parametrization": "mup", "base_d_model": 16, "base_n_layers": 1},
            "base_n_layers has no effect with parametrization='mup'",
        ),
        ({"parametrization": "mup", "base_d_model": 0}, "base_d_model must be a positive"),
    ],
)
def test_bad_parametrization_fields_name_the_field(changes, needle):
    with pytest.raises(ConfigError, match=needle):
        _model_cfg(**changes)


def test_mup_with_sgd_is_refused():
    with pytest.raises(ConfigError, match="use optim.optimizer='adamw'"):
        RunConfig(
            model=_model_cfg(parametrization="mup", base_d_model=16),
            optim=OptimConfig(optimizer="sgd"),
        )


# -- SP is unchanged; muP equals SP at the base shape --------------------------------------------
def test_sp_init_draws_exactly_gpt2s_numbers():
    # GPT-2's init as the model did it before parametrizations, written out: N(0, 0.02) for
    # Linears and embeddings, N(0, 0.02 / sqrt(2L)) for residual outputs, LayerNorm 1 / 0,
    # in modules() order; from the same seed it must draw the same numbers
    cfg = _model_cfg()
    model = _build(cfg)
    torch.manual_seed(5)
    model.reset_parameters()
    new = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(5)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                resid = getattr(module, "is_residual_proj", False)
                std = INIT_STD / math.sqrt(2 * cfg.n_layers) if resid else INIT_STD
                module.weight.normal_(0.0, std)
            elif isinstance(module, torch.nn.Embedding):
                module.weight.normal_(0.0, INIT_STD)
            elif isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
    for n, p in model.named_parameters():
        assert torch.equal(p, new[n]), n
    assert model.attn_scale == 1 / math.sqrt(cfg.d_head)
    assert model.residual_multiplier == 1.0 and model.output_multiplier == 1.0


@pytest.mark.parametrize(
    "changes",
    [
        {"parametrization": "mup", "base_d_model": 32},
        {"parametrization": "completep", "base_d_model": 32, "base_n_layers": 2},
    ],
)
def test_at_the_base_shape_everything_but_the_attention_scale_equals_sp(changes):
    sp, mu = _build(_model_cfg()), _build(_model_cfg(**changes))
    for (n, a), (_, b) in zip(sp.named_parameters(), mu.named_parameters(), strict=True):
        assert torch.equal(a, b), n
    assert (mu.residual_multiplier, mu.output_multiplier) == (1.0, 1.0)
    strip = [{k: v for k, v in g.items() if k != "params"} for g in mu.param_groups(0.1)]
    assert strip == [{k: v for k, v in g.items() if k != "params"} for g in sp.param_groups(0.1)]
    # the one rule that differs at the base shape: 1/d_head instead of 1/sqrt(d_head)
    assert mu.attn_scale == pytest.approx(sp.attn_scale / math.sqrt(sp.cfg.d_head))


def test_at_the_base_shape_with_one_dim_heads_mup_trains_exactly_like_sp():
    # d_head = 1: 1/d_head = 1/sqrt(d_head), so every rule coincides and so must every loss
    one = {"n_heads": 32}
    sp_losses = _adamw_losses(_build(_model_cfg(**one)))
    mup_losses = _adamw_losses(_build(_model_cfg(**one, parametrization="mup", base_d_model=32)))
    assert sp_losses == mup_losses and sp_losses[-1] < sp_losses[0] - 0.3
    # away from the base width they part
    wide = _model_cfg(**one, parametrization="mup", base_d_model=16)
    assert _adamw_losses(_build(wide)) != _adamw_losses(_build(_model_cfg(**one)))


# -- the width and depth rules -------------------------------------------------------------------
def test_mup_param_groups_carry_the_width_multipliers():
    cfg = _model_cfg(parametrization="mup", base_d_model=8)  # m_N = 4
    model = _build(cfg)
    groups = model.param_groups(0.1, eps=1e-8)
    by_name = _groups_by_param_name(model, groups)
    assert [g["name"] for g in groups] == ["hidden", "readout", "embedding+vector+block_vector"]
    for n in ("blocks.0.attn.qkv.weight", "blocks.1.attn.proj.weight", "blocks.0.mlp.fc.weight"):
        g = by_name[n]
        assert g["lr_multiplier"] == 0.25 and g["weight_decay"] == pytest.approx(0.4)
        assert g["eps"] == pytest.approx(0.25e-8)
    assert by_name["lm_head.weight"]["lr_multiplier"] == 1.0
    assert by_name["lm_head.weight"]["weight_decay"] == 0.1
    for n in ("tok_emb.weight", "pos_emb.weight", "blocks.0.ln_1.weight", "ln_f.bias"):
        assert by_name[n]["lr_multiplier"] == 1.0 and by_name[n]["weight_decay"] == 0.0
    # the optimizer's groups follow the schedule at their own multiple
    opt = build_optimizer(groups, OptimConfig(lr=1e-2))
    assert [g["lr"] for g in opt.param_groups] == [2.5e-3, 1e-2, 1e-2]
    set_lr(opt, 4e-3)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 4e-3, 4e-3]
    assert [g["eps"] for g in opt.param_groups] == pytest.approx([0.25e-8] * 3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_mup_init_and_output_multiplier_scale_with_width():
    cfg = _model_cfg(n_layers=2, d_model=256, n_heads=4, d_mlp=1024, parametrization="mup",
                     base_d_model=64)  # fmt: skip
    model = _build(cfg)
    hidden = INIT_STD / 2  # m_N = 4: std / sqrt(4)
    for block in model.blocks:
        assert block.attn.qkv.weight.std().item() == pytest.approx(hidden, rel=0.05)
        assert block.mlp.fc.weight.std().item() == pytest.approx(hidden, rel=0.05)
        resid = hidden / math.sqrt(2 * cfg.n_layers)
        assert block.mlp.proj.weight.std().item() == pytest.approx(resid, rel=0.05)
    for w in (model.tok_emb.weight, model.lm_head.weight):
        assert w.std().item() == pytest.approx(INIT_STD, rel=0.05)
    assert model.output_multiplier == 0.25 and model.attn_scale == 1 / 64
    idx, _ = _batch(cfg, b=2)
    with torch.no_grad():
        logits, _ = model(idx)
        x = model.tok_emb(idx) + model.pos_emb(model.pos[: cfg.seq_len])
        for block in model.blocks:
            x = block(x)
        unscaled = model.lm_head(model.ln_f(x))
    torch.testing.assert_close(logits, unscaled * 0.25)


def test_completep_adds_the_depth_rules():
    cfg = _model_cfg(n_layers=8, parametrization="completep", base_d_model=16, base_n_layers=2)
    model = _build(cfg)  # m_N = 2, m_L = 4
    assert model.residual_multiplier == 0.25
    assert all(b.residual_multiplier == 0.25 for b in model.blocks)
    by_name = _groups_by_param_name(model, model.param_groups(0.1, eps=1e-8))
    hidden = by_name["blocks.7.mlp.fc.weight"]
    assert hidden["lr_multiplier"] == 0.5  # m_N^-1 m_L^(alpha-1), alpha = 1
    assert hidden["eps"] == pytest.approx(1e-8 / 2 / 4)  # m_N^-1 m_L^-alpha
    assert hidden["weight_decay"] == pytest.approx(0.2)
    block_vec, final_vec = by_name["blocks.3.ln_2.weight"], by_name["ln_f.weight"]
    assert block_vec["lr_multiplier"] == final_vec["lr_multiplier"] == 1.0
    assert block_vec["eps"] == pytest.approx(1e-8 / 8) and final_vec["eps"] == pytest.approx(5e-9)
    # residual outputs keep the base depth's 1/sqrt(2 L_base): the multiplier does the rest
    big = _build(dataclasses.replace(cfg, d_model=256, n_heads=4, d_mlp=1024, base_d_model=64))
    want = INIT_STD / 2 / math.sqrt(2 * 2)
    assert big.blocks[5].attn.proj.weight.std().item() == pytest.approx(want, rel=0.05)


def test_tied_embeddings_under_mup_are_one_embedding_tensor():
    cfg = _model_cfg(tie_embeddings=True, parametrization="mup", base_d_model=16)
    model = _build(cfg)
    groups = model.param_groups(0.1)
    by_name = _groups_by_param_name(model, groups)
    assert "lm_head.weight" not in by_name and by_name["tok_emb.weight"]["lr_multiplier"] == 1.0
    assert model.tok_emb.weight.std().item() == pytest.approx(INIT_STD, rel=0.1)


@pytest.mark.parametrize("tie", [False, True])
def test_parameter_and_flop_counts_do_not_depend_on_the_parametrization(tie):
    sp = _model_cfg(tie_embeddings=tie)
    for other in (
        dataclasses.replace(sp, parametrization="mup", base_d_model=8),
        dataclasses.replace(sp, parametrization="completep", base_d_model=8, base_n_layers=1),
    ):
        assert param_counts(other) == param_counts(sp)
        assert sum(p.numel() for p in _build(other).parameters()) == param_counts(sp).total
        assert training_flops(other, 10_000) == training_flops(sp, 10_000)


def test_role_of_works_from_names_for_any_family():
    # a Llama-style naming (issue 11): roles come from names, module types and ndim
    emb = torch.nn.Embedding(10, 4)
    ids = {id(emb.weight)}
    assert parametrization.role_of("tok_embeddings.weight", emb.weight, ids) == "embedding"
    w = torch.zeros(4, 4)
    assert parametrization.role_of("layers.0.attention.wq.weight", w, ids) == "hidden"
    assert parametrization.role_of("output.weight", w, ids) == "readout"
    assert parametrization.role_of("layers.11.ffn_norm.weight", torch.ones(4), ids) == (
        "block_vector"
    )
    assert parametrization.role_of("norm.weight", torch.ones(4), ids) == "vector"


# -- sweeps ---------------------------------------------------------------------------------------
def test_mup_lr_gives_one_lr_and_refuses_sp():
    rule = MupLR(base_lr=3e-3)
    for d in (32, 64, 1024):
        assert rule.lr_for(_model_cfg(d_model=d, parametrization="mup", base_d_model=32)) == 3e-3
    with pytest.raises(LRRuleError, match="MupLR needs ModelConfig.parametrization"):
        rule.lr_for(_model_cfg())
    assert lr_rule_from_dict(rule.to_dict()) == rule
    with pytest.raises(LRRuleError, match="MupLR.base_lr must be a positive"):
        MupLR(base_lr=0)
    assert lr_rule_from_dict(FixedLR(1e-3).to_dict()) == FixedLR(1e-3)
    # a width-scaled rule on a muP model would scale the hidden LR by 1/width twice
    with pytest.raises(LRRuleError, match="use MupLR"):
        WidthScaledLR(1e-2, 32).lr_for(_model_cfg(parametrization="mup", base_d_model=32))


def test_cluster_example_plans_every_run_in_mup_at_one_lr():
    configs = load_sweep("cluster_example").expand()
    assert len({c.model.d_model for c in configs}) >= 5
    for c in configs:
        assert (c.model.parametrization, c.model.base_d_model, c.optim.lr) == ("mup", 768, 6e-4)
        d = parametrization.describe(c)["groups"]
        assert d["hidden"]["lr"] == pytest.approx(6e-4 * 768 / c.model.d_model)
        assert d["readout"]["lr"] == d["embedding"]["lr"] == 6e-4


# -- training: config.json, resume -----------------------------------------------------------------
def test_config_json_records_the_parametrization_and_each_groups_lr(make_cfg, tmp_path):
    model = ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=128, seq_len=32,
                        parametrization="mup", base_d_model=16)  # fmt: skip
    cfg = make_cfg(model=model, n_tokens=512 * 10, eval_interval_tokens=512 * 10)
    summary = train(cfg, tmp_path / "r", progress=False)
    assert summary.status == "complete"
    doc = rundir.read_config(tmp_path / "r")
    p = doc["parametrization"]
    assert doc["config"]["model"]["parametrization"] == "mup" and p["name"] == "mup"
    assert p["width_multiplier"] == 2.0 and p["output_multiplier"] == 0.5
    assert p["groups"]["hidden"]["lr"] == pytest.approx(cfg.optim.lr / 2)
    assert p["groups"]["hidden"]["weight_decay"] == pytest.approx(2 * cfg.optim.weight_decay)
    assert p["groups"]["readout"]["lr"] == cfg.optim.lr
    sp = make_cfg(n_tokens=512 * 10)
    train(sp, tmp_path / "sp", progress=False)
    sp_doc = rundir.read_config(tmp_path / "sp")
    assert sp_doc["parametrization"]["name"] == "sp"
    assert {g["lr"] for g in sp_doc["parametrization"]["groups"].values()} == {sp.optim.lr}


def test_completep_run_resumes_after_kill_9_exactly(make_cfg, tmp_path):
    model = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=128, seq_len=32,
                        parametrization="completep", base_d_model=16, base_n_layers=1)  # fmt: skip
    cfg = make_cfg(model=model, n_tokens=512 * 150, log_interval_steps=1,
                   checkpoint_interval_steps=20, eval_interval_tokens=512 * 50)  # fmt: skip
    reference = train(cfg, tmp_path / "reference", progress=False)
    run_dir = tmp_path / "killed"
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    cmd = [sys.executable, "-m", "scaling.cli", "train", "--config", str(tmp_path / "cfg.json")]
    proc = subprocess.Popen([*cmd, "--run-dir", str(run_dir), "--no-progress"])
    killed_at = kill_9_after_checkpoint(proc, run_dir, min_step=25, pids=lambda: [proc.pid])
    assert killed_at is not None and proc.returncode == -signal.SIGKILL
    ckpt = rundir.load_checkpoint(run_dir)
    assert [g["lr_multiplier"] for g in ckpt["optimizer"]["param_groups"]][0] == 0.5
    resumed = train(cfg, run_dir, progress=False)
    strip = [{k: v for k, v in r.items() if k not in ("tokens_per_sec", "elapsed_s")}
             for r in rundir.read_metrics(run_dir)]  # fmt: skip
    ref = [{k: v for k, v in r.items() if k not in ("tokens_per_sec", "elapsed_s")}
           for r in rundir.read_metrics(tmp_path / "reference")]  # fmt: skip
    assert strip == ref and resumed.val_loss == reference.val_loss


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mup_run_on_cuda_bf16(make_cfg, tmp_path):
    model = ModelConfig(n_layers=2, d_model=64, n_heads=4, d_mlp=256, seq_len=32,
                        parametrization="completep", base_d_model=32, base_n_layers=1)  # fmt: skip
    summary = train(make_cfg(model=model, device="cuda"), tmp_path / "g", progress=False)
    assert summary.status == "complete" and summary.val_loss < math.log(256) - 1.0


def test_train_cli_takes_the_parametrization_flags(capsys):
    from scaling.cli import main as cli_main

    argv = ["train", "--run-dir", "unused", "--dry-run", "--n-layers", "2", "--d-model", "64",
            "--n-heads", "4", "--parametrization", "completep", "--base-d-model", "32",
            "--base-n-layers", "1"]  # fmt: skip
    assert cli_main(argv) == 0
    model = json.loads(capsys.readouterr().out)["model"]
    assert (model["parametrization"], model["base_d_model"], model["base_n_layers"]) == (
        "completep", 32, 1,
    )  # fmt: skip
    bad = ["train", "--run-dir", "x", "--n-layers", "2", "--d-model", "64", "--n-heads", "4",
           "--parametrization", "mup"]  # fmt: skip
    try:  # one line and exit status 2, whether returned or raised
        rc = cli_main(bad)
    except SystemExit as e:
        rc = e.code
    assert rc == 2 and "--base-d-model is required" in capsys.readouterr().err


def test_llama_takes_the_same_rules_as_gpt2():
    # the parametrization acts on any family through names, init and groups: llama under
    # CompleteP at 4x width and 2x depth gets the same multipliers, init and LR groups
    from scaling.models.llama import Llama

    cfg = ModelConfig(n_layers=4, d_model=256, n_heads=4, vocab_size=64, seq_len=16,
                      family="llama", parametrization="completep", base_d_model=64,
                      base_n_layers=2)  # fmt: skip
    torch.manual_seed(0)
    model = Llama(cfg)
    assert model.output_multiplier == 0.25 and model.attn_scale == 1 / 64
    assert model.residual_multiplier == 0.5
    hidden = INIT_STD / 2  # m_N = 4
    for block in model.blocks:
        assert block.residual_multiplier == 0.5
        assert block.attn.qkv.weight.std().item() == pytest.approx(hidden, rel=0.05)
        assert block.mlp.gate.weight.std().item() == pytest.approx(hidden, rel=0.05)
        # residual outputs: 1/sqrt(2 L_base), frozen at the base depth
        resid = hidden / math.sqrt(2 * 2)
        assert block.mlp.proj.weight.std().item() == pytest.approx(resid, rel=0.05)
    by_name = _groups_by_param_name(model, model.param_groups(0.1, eps=1e-8))
    assert by_name["blocks.0.mlp.gate.weight"]["lr_multiplier"] == 0.25
    assert by_name["lm_head.weight"]["lr_multiplier"] == 1.0
    assert by_name["tok_emb.weight"]["lr_multiplier"] == 1.0
    assert by_name["blocks.0.mlp.gate.weight"]["weight_decay"] == pytest.approx(0.4)
    # SP llama is unchanged by the hooks: every multiplier is exactly 1, scale 1/sqrt(d_head)
    sp = Llama(dataclasses.replace(cfg, parametrization="sp", base_d_model=None,
                                   base_n_layers=None))  # fmt: skip
    assert (sp.output_multiplier, sp.residual_multiplier) == (1.0, 1.0)
    assert sp.attn_scale == 1 / math.sqrt(64)


# -- sigma (ModelConfig.init_std): the base-width init tunable -----------------------------------
_PARAMETRIZATIONS = [
    {},
    {"parametrization": "mup", "base_d_model": 16},
    {"parametrization": "completep", "base_d_model": 16, "base_n_layers": 1},
]


@pytest.mark.parametrize("changes", _PARAMETRIZATIONS)
def test_init_std_scales_every_matrix_of_every_role(changes):
    # sigma multiplies every role's init std in the table (embedding, hidden, residual output,
    # readout); vectors keep 1 / 0. Doubling sigma is exact in floating point, so from the same
    # seed every matrix must be exactly twice the default's and every vector equal.
    cfg = _model_cfg(**changes)  # m_N = 2 (and m_L = 2) away from the base shape
    base, doubled = _build(cfg), _build(dataclasses.replace(cfg, init_std=2 * INIT_STD))
    roles = set()
    emb_ids = parametrization._embedding_ids(base)
    for (name, p), (_, q) in zip(base.named_parameters(), doubled.named_parameters(), strict=True):
        role = parametrization.role_of(name, p, emb_ids)
        roles.add(role)
        assert torch.equal(q, 2 * p if p.ndim == 2 else p), name
    assert roles >= {"embedding", "hidden", "readout", "vector", "block_vector"}
    r, r2 = parametrization.rules(cfg), parametrization.rules(doubled.cfg)
    for role in ("embedding", "hidden", "readout"):
        for resid in (False, True):
            want = 2 * r.init_std(role, residual_proj=resid)
            assert r2.init_std(role, residual_proj=resid) == pytest.approx(want, rel=1e-15)
    described = parametrization.describe(RunConfig(model=doubled.cfg))["groups"]
    assert described["hidden"]["init_std"] == pytest.approx(2 * r.init_std("hidden"))


@pytest.mark.parametrize("changes", _PARAMETRIZATIONS[1:])
def test_default_init_std_draws_the_table_with_sigma_002(changes):
    # the default leaves the init exactly as before the field existed: the table written out
    # with sigma = 0.02 (m_N = 2; CompleteP freezes the residual init at L_base = 1)
    cfg = _model_cfg(**changes)
    model = _build(cfg)
    torch.manual_seed(5)
    model.reset_parameters()
    new = {n: p.detach().clone() for n, p in model.named_parameters()}
    init_l = 1 if cfg.parametrization == "completep" else cfg.n_layers
    torch.manual_seed(5)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear):
                std = INIT_STD if name == "lm_head" else 0.02 / math.sqrt(2)
                if getattr(module, "is_residual_proj", False):
                    std = std / math.sqrt(2 * init_l)
                module.weight.normal_(0.0, std)
            elif isinstance(module, torch.nn.Embedding):
                module.weight.normal_(0.0, 0.02)
            elif isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
    for n, p in model.named_parameters():
        assert torch.equal(p, new[n]), n


def test_init_std_is_omitted_at_its_default_and_round_trips():
    cfg = RunConfig(model=_model_cfg(parametrization="mup", base_d_model=16))
    assert "init_std" not in cfg.to_dict()["model"]  # old run names and hashes unchanged
    tuned = cfg.replace(model=dataclasses.replace(cfg.model, init_std=0.04))
    d = json.loads(tuned.to_json())
    assert d["model"]["init_std"] == 0.04
    assert RunConfig.from_dict(d) == tuned and RunConfig.from_dict(d) != cfg


@pytest.mark.parametrize("bad", [0.0, -0.02, math.nan, math.inf, "0.02", True, None])
def test_bad_init_std_names_the_field(bad):
    with pytest.raises(ConfigError, match=r"ModelConfig.init_std must be a positive finite"):
        _model_cfg(init_std=bad)
