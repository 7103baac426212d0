"""``cpu_isoflop``: the main job's IsoFLOP sweep, sized for a 2-core CPU (about 10 minutes).

Three compute budgets C = 3e11, 1e12, 3e12 FLOPs (counted, Chinchilla App. F without the
embedding lookup) x nine shapes from 1.8k to 333k non-embedding parameters, on the embedded
standard-library corpus with byte tokens (vocab 256), seq_len 128, 2048 tokens per step.
A tokens-per-parameter window (20 to 4000, non-embedding N) keeps the 16 (budget, size) points
where a model is not hopeless at that budget: 6, 5 and 5 sizes per budget (``scaling sweep plan
cpu_isoflop`` lists them and the 11 points the window leaves out).

How the design was chosen (measured on this machine kind; see ``../shared/docs/
cpu-isoflop-notes.md`` and the issue note for the numbers):

- Budgets: at 3e11-3e12 FLOPs the compute-optimal models have 10^3.5-10^5 non-embedding
  parameters, which a CPU trains in 10-150 s each; one decade of C is what fits in ~10 minutes.
  Below 3e11 seed noise (0.03-0.09 nats) swamps the differences between neighbouring sizes.
- Sizes: widths 16-96 with 1-3 layers, about a factor 2 apart in N. A pilot of this sweep put
  each budget's best size strictly inside the grid: d_model 24 (L1) at 3e11, 32 (L1) at 1e12,
  48 (L2) at 3e12, with the smallest and largest size of every budget clearly worse.
- LR: one LR for every size biases the curves (Porian et al. 2024; a wrong LR costs ~0.1 nats
  here, more than the gap between neighbouring sizes). The per-width table below comes from
  LR probes on this corpus (notes: d_model <= 32 best at 1-2e-2, 64 at 4-6e-3, 96 at ~3e-3;
  our pilot: 48 is better at 3.5e-3 than at 7e-3 or 1.4e-2, 64 equal at 2.5e-3 and 5e-3).
- Batch 16 x 128 tokens: small enough for hundreds of steps at the smallest budget per
  model, large enough that per-step overhead does not dominate the tiny models.
- Data repetition: the corpus' training split holds ~11M byte tokens; the longest run (d_model
  24 at 3e12) sees 25M, 2.3 epochs. ``max_epochs=4`` makes the plan refuse any run beyond 4
  passes (Muennighoff et al. 2023 find little loss up to there); ``summary.json`` records each
  run's ``epochs``.
- AdamW (0.9, 0.95), weight decay 0.1, 5% warmup, cosine to 10% over each run's own length
  (the schedule always matches the run: Hoffmann et al. 2022).

The shape rule (aspect ratio 32, 16-wide heads) is not used to build these explicit shapes; it is
recorded so that ``scaling report`` / ``scaling optimal`` can name the architecture to train at
a budget beyond the sweep.
"""

from __future__ import annotations

from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from sweeps.branching import WsdBranches
from sweeps.lr import LRTable
from sweeps.shapes import AspectRatioRule
from sweeps.spec import IsoFlopSweep

#: (n_layers, d_model, n_heads); N_non_embedding 1.8k, 3.2k, 4.9k, 7.1k, 12.5k, 24.9k, 55.8k,
#: 99k and 333k.
SHAPES = (
    (1, 8, 2),
    (1, 12, 2),
    (1, 16, 2),
    (1, 20, 2),
    (1, 24, 3),
    (1, 32, 2),
    (2, 32, 2),
    (2, 48, 3),
    (2, 64, 4),
    (3, 64, 4),
)

#: Compute budgets C (counted FLOPs): 1.5 decades, half a decade apart.
BUDGETS = (6e10, 2e11, 6e11, 2e12)

#: Peak LR per d_model (log-log interpolated between entries by ``LRTable``).
LR_TABLE = LRTable(
    entries=((8, 2e-2), (12, 2e-2), (16, 2e-2), (24, 2e-2), (32, 1.5e-2), (48, 4.5e-3), (64, 4e-3), (96, 3e-3))
)


def sweep() -> IsoFlopSweep:
    """The main job's CPU IsoFLOP sweep spec."""
    base = RunConfig(
        model=ModelConfig(
            n_layers=1, d_model=32, n_heads=2, d_mlp=128, vocab_size=256, seq_len=128
        ),
        data=DataConfig(source="stdlib", val_tokens=65536),
        optim=OptimConfig(
            lr=1.5e-2, betas=(0.9, 0.95), weight_decay=0.1, warmup_fraction=0.05, min_lr_ratio=0.1
        ),
        n_tokens=2048,
        batch_size_tokens=2048,
        micro_batch_size=16,
        eval_interval_tokens=524_288,
        log_interval_steps=25,
        checkpoint_interval_steps=500,
        device="cpu",
        n_threads=1,
        wandb_mode="offline",
        wandb_project="scaling-cpu-isoflop",
    )
    return IsoFlopSweep(
        name="cpu_isoflop",
        base=base,
        budgets=BUDGETS,
        branching=WsdBranches(decay_fraction=0.2, decay_shape="1-sqrt"),
        shapes=SHAPES,
        lr_rule=LR_TABLE,
        shape_rule=AspectRatioRule(aspect_ratio=32, d_head=16),
        n_params_kind="non_embedding",
        tokens_per_param_range=(15.0, 2350.0),
        budget_tolerance=0.02,
        max_epochs=4.0,
        description="CPU IsoFLOP sweep for the main job: 3 budgets x 5-6 sizes, ~10 min on 2 cores",
    )
