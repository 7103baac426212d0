"""Coordinate check (Yang et al. 2022, "Tensor Programs V", Sec. 5 and Fig. 5) as a test.

After a few Adam steps at one LR, every block's output RMS must stay within ``MUP_FACTOR``
across widths 32-256 under muP, and grow beyond ``SP_GROWTH`` under SP (Adam under SP moves a
hidden weight by ~lr per entry whatever the fan-in, so ``dW x`` grows like the width). Measured
when written (2026-12-03, seed 0, these settings): muP's max/min over the widths 1.43-1.74 per
block output, SP's growth from width 32 to 256 19-46x, and a muP without the hidden-LR rule
(hidden matrices at ``eta`` instead of ``eta / m``) 22-52x: the first test fails on that mutant
(52 > 3), and the second asserts that it does (> 12).
"""

from __future__ import annotations

import pytest
import torch

from scaling import parametrization
from scaling.config import ModelConfig, OptimConfig
from scaling.models.gpt2 import GPT
from scaling.optim import build_optimizer

WIDTHS = (32, 64, 128, 256)
N_STEPS, LR = 3, 1e-2
MUP_FACTOR = 3.0  # muP: max/min block-output RMS over the widths at most this
SP_GROWTH = 10.0  # SP: some block's output RMS grows by more than this from width 32 to 256


def _block_rms(width: int, parametrization_name: str) -> dict[str, float]:
    """RMS of each block's attention and MLP output on a probe batch after ``N_STEPS`` steps."""
    extra = {} if parametrization_name == "sp" else {"base_d_model": WIDTHS[0]}
    cfg = ModelConfig(
        n_layers=2,
        d_model=width,
        n_heads=4,
        d_mlp=4 * width,
        vocab_size=64,
        seq_len=32,
        parametrization=parametrization_name,
        **extra,
    )
    torch.manual_seed(0)
    model = GPT(cfg)
    optim = OptimConfig(
        lr=LR, weight_decay=0.0, warmup_fraction=0.0, schedule="constant", grad_clip=0.0
    )
    opt = build_optimizer(model.param_groups(0.0, optim.eps), optim)
    g = torch.Generator().manual_seed(1)
    for _ in range(N_STEPS):
        x = torch.randint(0, cfg.vocab_size, (8, cfg.seq_len), generator=g)
        _, loss = model(x, torch.roll(x, -1, dims=1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    rms: dict[str, float] = {}
    hooks = []
    for k, block in enumerate(model.blocks):
        for name in ("attn", "mlp"):

            def save(m, i, out, key=f"{name}{k}"):
                rms[key] = float(out.pow(2).mean().sqrt())

            hooks.append(getattr(block, name).register_forward_hook(save))
    with torch.no_grad():
        model(torch.randint(0, cfg.vocab_size, (8, cfg.seq_len), generator=g))
    for h in hooks:
        h.remove()
    return rms


def _spreads(parametrization_name: str) -> tuple[dict[str, float], dict[str, float]]:
    """Per block output: (max/min RMS over ``WIDTHS``, RMS at the widest / at the narrowest)."""
    by_width = [_block_rms(w, parametrization_name) for w in WIDTHS]
    spread = {k: max(r[k] for r in by_width) / min(r[k] for r in by_width) for k in by_width[0]}
    growth = {k: by_width[-1][k] / by_width[0][k] for k in by_width[0]}
    return spread, growth


def test_mup_activations_stay_flat_in_width_while_sp_grows():
    mup_spread, _ = _spreads("mup")
    _, sp_growth = _spreads("sp")
    assert max(mup_spread.values()) <= MUP_FACTOR, mup_spread
    assert max(sp_growth.values()) > SP_GROWTH, sp_growth


def test_the_coordinate_check_catches_a_mup_without_the_hidden_lr_rule(monkeypatch):
    # the mutant: hidden matrices at the base LR eta at every width (the m_N^-1 rule removed)
    monkeypatch.setitem(parametrization._TABLE["mup"]["lr"], "hidden", (0.0, 0.0))
    mutant_spread, _ = _spreads("mup")
    assert max(mutant_spread.values()) > MUP_FACTOR * 4, mutant_spread


@pytest.mark.parametrize("width", [64])
def test_mup_hidden_lr_rule_is_what_the_mutant_removes(width, monkeypatch):
    # guard for the mutation test above: the patch really changes the hidden group's LR
    cfg = ModelConfig(n_layers=1, d_model=width, n_heads=4, parametrization="mup", base_d_model=32)
    assert parametrization.rules(cfg).lr_multiplier("hidden") == pytest.approx(0.5)
    monkeypatch.setitem(parametrization._TABLE["mup"]["lr"], "hidden", (0.0, 0.0))
    assert parametrization.rules(cfg).lr_multiplier("hidden") == 1.0
