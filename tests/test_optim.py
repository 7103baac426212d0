import math

import pytest
import torch

from scaling.config import ModelConfig, OptimConfig
from scaling.models.gpt2 import GPT
from scaling.optim import build_optimizer, clip_grad_norm, lr_at, set_lr, warmup_steps

# Hand-computed values. cosine, n_steps=101, warmup_fraction=0.1 -> W=10 warmup steps,
# decay over steps 10..100 (90 intervals), lr_min = 0.1 * 1e-3.
COSINE = OptimConfig(lr=1e-3, schedule="cosine", warmup_fraction=0.1, min_lr_ratio=0.1)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 1e-4),  # first step: 1/10 of peak
        (4, 5e-4),  # 5/10
        (9, 1e-3),  # end of warmup: peak
        (10, 1e-3),  # cosine p=0
        (55, 5.5e-4),  # p=0.5: 1e-4 + 9e-4 * 0.5
        (100, 1e-4),  # last step: lr_min
    ],
)
def test_cosine_literal_values(step, expected):
    assert lr_at(step, 101, COSINE) == pytest.approx(expected, rel=1e-12)


def test_cosine_quarter_point():
    cfg = OptimConfig(lr=2.0, schedule="cosine", warmup_fraction=0.0, min_lr_ratio=0.0)
    # n_steps=5, no warmup: steps 0..4, p = step/4
    assert lr_at(1, 5, cfg) == pytest.approx(1.0 + math.cos(math.pi / 4))  # 2*(1+cos)/2
    assert lr_at(2, 5, cfg) == pytest.approx(1.0)
    assert lr_at(0, 5, cfg) == pytest.approx(2.0)
    assert lr_at(4, 5, cfg) == pytest.approx(0.0, abs=1e-15)


# wsd, n_steps=100, warmup 10 steps, decay_fraction 0.2 -> K=20 decay steps (80..99)
def _wsd(shape):
    return OptimConfig(
        lr=1.0,
        schedule="wsd",
        warmup_fraction=0.1,
        decay_fraction=0.2,
        min_lr_ratio=0.1,
        decay_shape=shape,
    )


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.1), (9, 1.0), (50, 1.0), (79, 1.0), (80, 0.955), (89, 0.55), (99, 0.1)],
)
def test_wsd_linear_literal_values(step, expected):
    assert lr_at(step, 100, _wsd("linear")) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("step", "expected"),
    # p = (step - 80 + 1) / 20; lr = 0.1 + 0.9 * (1 - sqrt(p))
    [(79, 1.0), (84, 0.55), (98, 0.1 + 0.9 * (1 - math.sqrt(0.95))), (99, 0.1)],
)
def test_wsd_one_minus_sqrt_literal_values(step, expected):
    assert lr_at(step, 100, _wsd("1-sqrt")) == pytest.approx(expected, rel=1e-12)


def test_constant_with_warmup():
    cfg = OptimConfig(lr=3e-3, schedule="constant", warmup_fraction=0.25)
    assert warmup_steps(8, cfg) == 2
    assert [lr_at(s, 8, cfg) for s in range(8)] == pytest.approx([1.5e-3] + [3e-3] * 7)


def test_schedule_rejects_out_of_range_step():
    with pytest.raises(ValueError, match="step must be in"):
        lr_at(10, 10, COSINE)
    with pytest.raises(ValueError, match="n_steps"):
        lr_at(0, 0, COSINE)


def test_adamw_decays_only_matrices_of_linear_layers():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32, seq_len=8))
    cfg = OptimConfig(lr=0.1, weight_decay=0.5)
    opt = build_optimizer(model.param_groups(cfg.weight_decay), cfg)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["eps"] == 1e-8
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # Adam's update is 0 with zero gradients: only decay acts
    opt.step()
    for name, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if (p.dim() == 2 and "emb" not in name) else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor, msg=name)
    decayed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "tok_emb.weight" not in decayed and "pos_emb.weight" not in decayed
    assert "lm_head.weight" in decayed and "blocks.0.attn.qkv.weight" in decayed


def test_sgd_with_momentum_and_set_lr():
    model = torch.nn.Linear(3, 2)
    cfg = OptimConfig(optimizer="sgd", lr=0.5, momentum=0.8)
    opt = build_optimizer([{"params": list(model.parameters()), "weight_decay": 0.0}], cfg)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.8
    set_lr(opt, 0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25]


def test_clip_grad_norm_reports_pre_clip_norm_and_clips():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(1))
    a.grad = torch.tensor([3.0, 0.0])
    b.grad = torch.tensor([4.0])  # global norm sqrt(9 + 16) = 5
    assert clip_grad_norm([a, b], 1.0) == pytest.approx(5.0)
    assert float(torch.cat([a.grad, b.grad]).norm()) == pytest.approx(1.0, rel=1e-5)
    a.grad = torch.tensor([3.0, 0.0])
    b.grad = torch.tensor([4.0])
    assert clip_grad_norm([a, b], 0.0) == pytest.approx(5.0)  # 0: measure only
    assert b.grad.item() == 4.0
