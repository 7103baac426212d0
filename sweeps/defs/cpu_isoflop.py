"""``cpu_isoflop``: the main job's IsoFLOP sweep, sized for a 2-core CPU (second edition, issue 15).

Four compute budgets C = 6e10, 2e11, 6e11, 2e12 FLOPs (counted, Chinchilla App. F without the
embedding lookup; 1.52 decades, half a decade apart) x nine explicit shapes from 0.8k to 99k
non-embedding parameters, on the embedded standard-library corpus (test folders left out: ~11.1M
byte tokens of training text, the same corpus for every run and for the forecast rung) with
byte tokens (vocab 256), seq_len 128, 2048 tokens per step. A tokens-per-parameter window (15 to
2350 tokens per non-embedding parameter) keeps the 21 (budget, size) points where a model is
not hopeless at that budget: 6, 6, 5 and 4 sizes per budget; every point is a WSD cooldown
branch, so the plan has 9 trunks + 21 branches = 30 runs (``scaling sweep plan cpu_isoflop``
lists them and the points the window leaves out).

Why each choice (measured on this machine kind, 2 cores, fp32, torch 2.13 CPU; pilots in
``docs/LOG.md``, issue 15 section):

- Budgets: 1.5 decades is the issue's floor, and the top budget sets the cost twice (its points
  and the forecast rung at 3x it, a single-thread run of ~6e12 FLOPs). Starting at 6e10 rather
  than 1e11 keeps the rung at 6e12 and the whole job near 6 minutes (5 min 58 s measured from a
  fresh clone on this machine, set-up and rung included). Below 6e10 the optimum
  would fall under d_model 12 and seed noise would swamp neighbouring sizes.
- Seeds: one. Seed noise measured at C = 1e11 (3 seeds, d_model 8 / 16 / 24): spreads 0.003 /
  0.024 / 0.072 nats (standard deviations 0.001 / 0.012 / 0.036). The window puts each budget's
  smallest and largest sizes >= ~4x from its optimum in N, where the pilot of this exact sweep
  found them worse than the best by 0.083 / 0.439 (6e10), 0.122 / 0.416 (2e11), 0.097 / 0.512
  (6e11) and 0.105 / 0.140 (2e12) nats, above the largest spread measured; a second seed at
  every point would double the job (the spec has one seed list for all budgets).
- WSD branches (``WsdBranches(0.2, "1-sqrt")``): the points of one shape at different budgets
  differ only in their token count, so they are cooldown branches of one warmup-stable-decay
  trunk run to the longest of them (Hägele et al. 2024); 1.02e13 FLOPs instead of 1.26e13
  from scratch (0.82). A branch is a WSD run of its own length, so the rung is one too
  (``sweeps.rung`` passes the branching on). Issue 9 measured WSD ending ~0.085 nats below
  cosine at the same peak LR at these horizons: the fits see WSD losses throughout.
- LR: a measured per-width table, not muP. muP transfers the optimum LR across widths (spread
  2.15 over widths 32-256 against SP's >= 12, issue 10) but its best loss at 200 steps was
  ~0.3 nats worse than SP's at width 256 and its cause is not found, so one muP base LR would
  bias the larger sizes of every curve. The table comes from cosine LR probes on this corpus
  (``../shared/docs/cpu-isoflop-notes.md``: d_model <= 32 best at 1-2e-2, 64 at 4-6e-3, 96 at
  ~3e-3) and a WSD probe at 2e12 for d_model 48 and 64 (issue 15; see ``LR_TABLE``): the
  first edition's 4.5e-3 at d_model 48 cost 0.19 nats against 9e-3 under WSD, more than the
  gap between neighbouring sizes, so the table was corrected before the study was run.
  Caveat found in the study itself: the probe's trunk warmed up for 87 steps (5% of its one
  point), the study's d_model 48 trunk for 26 (5% of its shortest point, at 6e11), and there
  9e-3 reached 1.827 at 2e12, worse than the pilot's 1.797 at 4.5e-3: at these LRs the loss
  depends on the warmup length as much as on the LR (``docs/LOG.md``).
- Sizes: widths 8-64 with 1-3 layers, about a factor 1.5-2 apart in N. Small models are bound
  by per-step overhead (~9 ms per 2048-token step), so a small model at a large budget costs
  time, not FLOPs: the window's upper bound (2350) keeps d_model 8 at 6e10 and leaves out
  d_model 24 at 2e12 (3822 tokens/param, ~100 core-seconds, 3.5x below the best size the
  pilot found there).
- Data repetition: the longest point (d_model 32, 1 layer at 2e12) sees 11.5M tokens, 1.03
  epochs; the forecast rung at 6e12 can see ~3 (a small model for 3x the tokens).
  ``max_epochs=4`` makes the plan (and the rung's plan) refuse any run beyond 4 passes
  (Muennighoff et al. 2023 find little loss up to there); ``summary.json`` records ``epochs``.
- Batch 16 x 128 tokens: small enough for hundreds of steps at the smallest budget per
  model, large enough that per-step overhead does not dominate the tiny models.
- AdamW (0.9, 0.95), weight decay 0.1; linear warmup for 5% of the shortest point of each
  trunk (``sweeps.branching``: one warmup per trunk family), constant LR, then a 1-sqrt decay
  over each point's last 20% to 10% of the peak.

Shape rule: ``AspectRatiosRule((16, 24, 32), d_head=16)`` names the architecture for a budget
beyond the sweep (``scaling optimal``, the forecast rung). One aspect ratio (32) has shapes ~8x
apart in N between 1 and 2 layers (12.5k, 99k), so the named shape could sit far from N_opt; the
union over aspect ratios 16-32 (the range of the sweep's own shapes) has 25k, 56k, 84k, 99k,
148k non-embedding parameters around the rung's N_opt. Chosen before the rung was trained.
"""

from __future__ import annotations

from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from sweeps.branching import WsdBranches
from sweeps.lr import LRTable
from sweeps.shapes import AspectRatiosRule
from sweeps.spec import IsoFlopSweep

#: (n_layers, d_model, n_heads); N_non_embedding 0.8k, 1.8k, 3.2k, 4.9k, 7.1k, 12.5k, 24.9k,
#: 55.8k and 99k.
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
)

#: Compute budgets C (counted FLOPs): 1.5 decades, half a decade apart.
BUDGETS = (6e10, 2e11, 6e11, 2e12)

#: Peak LR per d_model (log-log interpolated between entries by ``LRTable``). d_model <= 32 and
#: 96 from cosine probes (``../shared/docs/cpu-isoflop-notes.md``); 48 and 64 from the WSD probe at
#: C = 2e12 (issue 15): d_model 48 (2 layers) reached 1.797 / 1.610 / 1.790 nats at LR 4.5e-3 /
#: 9e-3 / 1.49e-2, d_model 64 1.742 / 1.749 / 1.926 at 4e-3 / 8e-3 / 1.32e-2.
LR_TABLE = LRTable(
    entries=(
        (8, 2e-2),
        (12, 2e-2),
        (16, 2e-2),
        (24, 2e-2),
        (32, 1.5e-2),
        (48, 9e-3),
        (64, 5.5e-3),
        (96, 3e-3),
    )
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
        shape_rule=AspectRatiosRule(aspect_ratios=(16, 24, 32), d_head=16),
        n_params_kind="non_embedding",
        tokens_per_param_range=(15.0, 2350.0),
        max_epochs=4.0,
        description=(
            "CPU IsoFLOP sweep for the main job: 4 budgets x 4-6 sizes as WSD branches, "
            "~5 min on 2 cores"
        ),
    )
