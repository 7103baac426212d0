"""``smoke``: a 4-run IsoFLOP sweep of tiny models that trains in seconds (used by tests).

Two budgets (4e9 and 8e9 FLOPs) x two depths (1 and 2 layers, aspect ratio 32, 16-wide heads:
d_model 32 and 64), byte-level tokens from the standard library, seq_len 32, 8 sequences per
step, width-scaled LR (1.5e-2 at d_model 32, the measured best in docs/cpu-isoflop-notes.md).
Each run is 30-120 optimizer steps; the whole sweep takes well under 30 s on one core.
"""

from __future__ import annotations

from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from scaling.shapes import AspectRatioRule
from sweeps.lr import WidthScaledLR
from sweeps.spec import IsoFlopSweep


def sweep() -> IsoFlopSweep:
    """The smoke sweep spec."""
    base = RunConfig(
        model=ModelConfig(n_layers=1, d_model=32, n_heads=2, d_mlp=128, vocab_size=256, seq_len=32),
        data=DataConfig(source="stdlib", val_tokens=2048),
        optim=OptimConfig(lr=1.5e-2),
        n_tokens=8192,
        batch_size_tokens=256,
        micro_batch_size=8,
        eval_interval_tokens=16384,
        log_interval_steps=5,
        checkpoint_interval_steps=20,
        device="cpu",
        n_threads=1,
        wandb_mode="disabled",
    )
    return IsoFlopSweep(
        name="smoke",
        base=base,
        budgets=(4e9, 8e9),
        depths=(1, 2),
        shape_rule=AspectRatioRule(aspect_ratio=32, d_head=16),
        lr_rule=WidthScaledLR(base_lr=1.5e-2, base_d_model=32),
        description="tiny CPU IsoFLOP sweep for tests: 2 budgets x 2 depths, seconds per run",
    )
