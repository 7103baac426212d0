"""The GPT module: shapes, causality, tying, initialisation, learning, determinism, errors."""

from __future__ import annotations

import math

import pytest
import torch

from scaling.config import ModelConfig
from scaling.models.gpt2 import GPT, INIT_STD

CFG = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=128, vocab_size=64, seq_len=16)


def _cfg(**changes) -> ModelConfig:
    return ModelConfig(**{**CFG.__dict__, **changes})


def _batch(cfg: ModelConfig, b: int = 3, t: int | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = cfg.seq_len if t is None else t
    idx = torch.randint(0, cfg.vocab_size, (b, t), generator=g)
    targets = torch.randint(0, cfg.vocab_size, (b, t), generator=g)
    return idx, targets


def _build(cfg: ModelConfig, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(cfg)


def test_output_shapes() -> None:
    model = _build(CFG)
    idx, targets = _batch(CFG, b=3)
    logits, loss = model(idx)
    assert logits.shape == (3, CFG.seq_len, CFG.vocab_size) and loss is None
    logits, loss = model(idx, targets)
    assert logits is None and loss.shape == () and loss.dtype == torch.float32
    logits2, loss2 = model(idx, targets, return_logits=True)
    assert logits2.shape == (3, CFG.seq_len, CFG.vocab_size)
    assert torch.equal(loss, loss2)
    # the loss is the mean next-token cross-entropy of the returned logits, in nats
    ref = torch.nn.functional.cross_entropy(
        logits2.reshape(-1, CFG.vocab_size), targets.reshape(-1)
    )
    assert torch.allclose(loss, ref)
    # shorter sequences than seq_len are fine
    short_logits, _ = model(idx[:, :5])
    assert short_logits.shape == (3, 5, CFG.vocab_size)


def test_causality() -> None:
    model = _build(CFG).eval()
    idx, _ = _batch(CFG, b=2)
    j = 7
    changed = idx.clone()
    changed[:, j] = (changed[:, j] + 1) % CFG.vocab_size
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    assert torch.equal(a[:, :j], b[:, :j])  # the past cannot see the future
    assert not torch.allclose(a[:, j], b[:, j])  # position j sees its own token
    assert not torch.allclose(a[:, j + 1 :], b[:, j + 1 :])  # and the future sees it


def test_tied_weights_are_shared() -> None:
    cfg = _cfg(tie_embeddings=True)
    model = _build(cfg)
    assert model.lm_head.weight is model.tok_emb.weight
    idx, targets = _batch(cfg)
    _, loss = model(idx, targets)
    loss.backward()
    # the one tensor collects gradient from both uses: rows of tokens never seen in idx still
    # get gradient through the head
    unseen = torch.ones(cfg.vocab_size, dtype=torch.bool)
    unseen[idx.unique()] = False
    assert unseen.any()
    assert model.tok_emb.weight.grad[unseen].abs().sum() > 0
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-2)
    opt.step()
    assert model.lm_head.weight is model.tok_emb.weight
    # untied: distinct tensors
    untied = _build(CFG)
    assert untied.lm_head.weight is not untied.tok_emb.weight


@pytest.mark.parametrize("tie", [False, True])
def test_initial_loss_is_log_vocab(tie: bool) -> None:
    cfg = ModelConfig(
        n_layers=2, d_model=64, n_heads=4, d_mlp=256, vocab_size=256, seq_len=64, tie_embeddings=tie
    )
    model = _build(cfg)
    idx, targets = _batch(cfg, b=8)
    with torch.no_grad():
        _, loss = model(idx, targets)
    # near-uniform predictions at init: logits have std ~ 0.02 * sqrt(d_model) ~ 0.16
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.05


def test_init_statistics() -> None:
    cfg = ModelConfig(n_layers=4, d_model=128, n_heads=4, d_mlp=512, vocab_size=256, seq_len=64)
    model = _build(cfg)
    resid_std = INIT_STD / math.sqrt(2 * cfg.n_layers)
    for block in model.blocks:
        for w in (block.attn.proj.weight, block.mlp.proj.weight):
            assert w.std().item() == pytest.approx(resid_std, rel=0.05)
        for w in (block.attn.qkv.weight, block.mlp.fc.weight):
            assert w.std().item() == pytest.approx(INIT_STD, rel=0.05)
        assert torch.equal(block.ln_1.weight, torch.ones(cfg.d_model))
        assert torch.equal(block.ln_1.bias, torch.zeros(cfg.d_model))
    for w in (model.tok_emb.weight, model.pos_emb.weight, model.lm_head.weight):
        assert w.std().item() == pytest.approx(INIT_STD, rel=0.05)
        assert abs(w.mean().item()) < 0.002


def _train_steps(
    model: GPT,
    idx: torch.Tensor,
    targets: torch.Tensor,
    *,
    weight_decay: float,
    lr: float,
    n_steps: int,
) -> list[float]:
    """``n_steps`` AdamW steps on one fixed batch; the training loss of each step."""
    opt = torch.optim.AdamW(model.param_groups(weight_decay), lr=lr)
    losses = []
    for _ in range(n_steps):
        _, loss = model(idx, targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def test_training_reduces_loss() -> None:
    model = _build(CFG)
    idx, targets = _batch(CFG, b=4)
    losses = _train_steps(model, idx, targets, weight_decay=0.0, lr=3e-3, n_steps=20)
    assert losses[-1] < losses[0] - 0.5, losses


def _train_a_bit(seed: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    model = _build(CFG, seed=seed)
    idx, targets = _batch(CFG, b=2)
    losses = _train_steps(model, idx, targets, weight_decay=0.1, lr=1e-3, n_steps=3)
    return losses, model.state_dict()


def test_deterministic_with_seed() -> None:
    losses_a, state_a = _train_a_bit(seed=1)
    losses_b, state_b = _train_a_bit(seed=1)
    losses_c, _ = _train_a_bit(seed=2)
    assert losses_a == losses_b
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert losses_a != losses_c


@pytest.mark.parametrize("tie", [False, True])
def test_param_groups(tie: bool) -> None:
    cfg = _cfg(tie_embeddings=tie)
    model = _build(cfg)
    decay, no_decay = model.param_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids_decay = {id(p) for p in decay["params"]}
    ids_no = {id(p) for p in no_decay["params"]}
    assert not ids_decay & ids_no
    assert ids_decay | ids_no == {id(p) for p in model.parameters()}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    # decay: exactly the bias-free Linear matrices (4 per block, plus an untied head)
    assert all(p.dim() == 2 for p in decay["params"])
    assert len(decay["params"]) == 4 * cfg.n_layers + (0 if tie else 1)
    assert id(model.tok_emb.weight) in ids_no and id(model.pos_emb.weight) in ids_no
    assert id(model.ln_f.weight) in ids_no and id(model.ln_f.bias) in ids_no
    with pytest.raises(ValueError, match="weight_decay"):
        model.param_groups(-0.1)


def test_dropout_only_in_training_mode() -> None:
    model = _build(_cfg(dropout=0.5))
    idx, _ = _batch(CFG)
    a, _ = model(idx)
    b, _ = model(idx)
    assert not torch.equal(a, b)
    model.eval()
    with torch.no_grad():
        c, _ = model(idx)
        d, _ = model(idx)
    assert torch.equal(c, d)


def test_bad_input_errors() -> None:
    model = _build(CFG)
    idx, targets = _batch(CFG)
    with pytest.raises(ValueError, match=r"idx must be \[B, T\]"):
        model(idx[0])
    too_long = torch.zeros(1, CFG.seq_len + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="seq_len"):
        model(too_long)
    with pytest.raises(ValueError, match="targets shape"):
        model(idx, targets[:, :-1])
    with pytest.raises(TypeError, match="ModelConfig"):
        GPT({"n_layers": 2})  # type: ignore[arg-type]
