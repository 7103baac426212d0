"""``cpu_isoflop``: the main job's IsoFLOP sweep, sized for a 2-core CPU (second edition, issue 15).

Four compute budgets C = 6e10, 2e11, 6e11, 2e12 FLOPs (counted, Chinchilla App. F without the
embedding lookup; 1.52 decades, half a decade apart) x nine explicit shapes from 0.8k to 99k
non-embedding parameters, on the embedded standard-library corpus with its test folders (~30.0M
byte tokens of training text in 1,718 files, 72 held-out files for validation; the same corpus
for every run and for the forecast rung), byte tokens (vocab 256), seq_len 128, 2048 tokens per
step. A tokens-per-parameter window (15 to 2350 tokens per non-embedding parameter) keeps the 21
(budget, size) points where a model is not hopeless at that budget: 6, 6, 5 and 4 sizes per
budget. The two smallest budgets have two seeds, so 33 point runs; every point run is a WSD
cooldown branch, so the plan has 16 trunks + 33 branches = 49 runs (``scaling sweep plan
cpu_isoflop`` lists them and the points the window leaves out).

The design was revised once, after the first run of this study (``docs/LOG.md``, issue 15): its
trunks warmed up for 5% of their shortest point, so long branches got a few steps of warmup,
and its rung repeated the (test-free) corpus 3.1 times where no fitted point passed 1.03 epochs.
Both are fixed below, with a second seed at the small budgets, before the study was run again.

Why each choice (measured on this machine kind, 2 cores, fp32, torch 2.13 CPU; pilots in
``docs/LOG.md``, issue 15 sections):

- Budgets: 1.5 decades is the issue's floor, and the top budget sets the cost twice (its points
  and the forecast rung at 3x it, a single-thread run of ~6e12 FLOPs). Starting at 6e10 rather
  than 1e11 keeps the rung at 6e12 and the whole job near 6 minutes here (5 min 54 s from a
  fresh clone, set-up and rung included; the first edition ran ~1.6-2x slower on the issue's
  slower machine, so ~10-12 min there, not measured). Below 6e10 the optimum would fall under
  d_model 12 and seed noise would swamp neighbouring sizes.
- Warmup: ``WARMUP_STEPS`` = 100 optimizer steps for every trunk, branch and the rung
  (``WsdBranches(warmup_steps=...)``; Hägele et al. 2024 also keep one warmup length for all
  run lengths). A pilot on this corpus (WSD runs of the sweep's own points, before the rerun):
  L2 d48 at 2e12 (lr 9e-3) reached 1.832 / 1.778 / 1.669 / 1.674 nats with 25 / 50 / 100 / 200
  warmup steps; L2 d64 at 2e12 1.804 / 1.792 / 1.779 / 1.800; L1 d32 at 6e10 (168 steps) 2.807
  / 2.796 / 2.722 / 2.618 with 8 / 25 / 50 / 100; L1 d16 at 6e10 2.474 / 2.433 / 2.476 / 2.462
  (within its seed noise); L1 d32 at 2e12 1.776 / 1.777 with 25 / 100. 100 is never worse than
  the shorter warmups beyond seed noise, and is below the shortest point's branch step (135).
- Seeds: two at 6e10 and 2e11 (``SEEDS_BY_BUDGET``), one at 6e11 and 2e12. Seed noise at 6e10
  with this design (3 seeds, pilot): standard deviations 0.015 / 0.010 / 0.022 / 0.009 / 0.012 /
  0.026 nats for d_model 8 / 12 / 16 / 20 / 24 / 32, while the smallest and largest sizes sat
  0.11 and 0.14 nats above the best size's mean, and neighbouring middle sizes only 0.015-0.04
  apart: the ends are clear with one seed, the middle of the small budgets is not. The earlier
  measurement at 1e11 (0.001 / 0.012 / 0.036 for d_model 8 / 16 / 24) agrees. The longer runs
  of 6e11 and 2e12 are less noisy and cost most of the time, so they keep one seed.
- WSD branches (``WsdBranches(0.2, "1-sqrt")``): the points of one shape at different budgets
  differ only in their token count, so they are cooldown branches of one warmup-stable-decay
  trunk run to the longest of them (Hägele et al. 2024); 1.16e13 FLOPs instead of 1.41e13
  from scratch (0.82). A branch is a WSD run of its own length, so the rung is one too
  (``sweeps.rung`` passes the branching on). Issue 9 measured WSD ending ~0.085 nats below
  cosine at the same peak LR at these horizons: the fits see WSD losses throughout.
- LR: a measured per-width table, not muP. muP transfers the optimum LR across widths (spread
  2.15 over widths 32-256 against SP's >= 12, issue 10) but its best loss at 200 steps was
  ~0.3 nats worse than SP's at width 256 and its cause is not found, so one muP base LR would
  bias the larger sizes of every curve. The table comes from cosine LR probes on this corpus
  (``../shared/docs/cpu-isoflop-notes.md``: d_model <= 32 best at 1-2e-2, 64 at 4-6e-3, 96 at
  ~3e-3) and a WSD probe at 2e12 for d_model 48 and 64 with an 87-step warmup (issue 15; see
  ``LR_TABLE``); the 100-step warmup above is the one those probes had.
- Sizes: widths 8-64 with 1-2 layers, about a factor 1.5-2 apart in N. Small models are bound
  by per-step overhead (~9 ms per 2048-token step), so a small model at a large budget costs
  time, not FLOPs: the window's upper bound (2350) keeps d_model 8 at 6e10 and leaves out
  d_model 24 at 2e12 (3822 tokens/param, ~100 core-seconds, 3.5x below the best size a pilot
  found there).
- Data repetition: the test folders triple the corpus (12.1 MB -> 31.5 MB of text), so the
  longest point (d_model 32, 1 layer at 2e12, 11.5M tokens) sees 0.38 epochs and a rung at 6e12
  about 1-1.5 if it named N ~ 12k again (~35M tokens): fitted points and rung both within the
  range where Muennighoff et al. 2023 find repetition costs little. (The rung trained, L3 d64
  at 4.6M tokens, saw 0.15 epochs; its 0.5x neighbour 0.25.) ``max_epochs=4`` makes the plan
  (and the rung's plan) refuse any run beyond 4 passes; ``summary.json`` records ``epochs``.
- Batch 16 x 128 tokens: small enough for hundreds of steps at the smallest budget per
  model, large enough that per-step overhead does not dominate the tiny models.
- AdamW (0.9, 0.95), weight decay 0.1; linear warmup for 100 steps, constant LR, then a 1-sqrt
  decay over each point's last 20% to 10% of the peak.
- Eager, not ``torch.compile``: compiled steps are only 1.02-1.19x faster at these shapes, and
  the compilation (8-34 CPU-seconds per shape cold, ~2 s per run even from a warm inductor
  cache) costs more than that saves over runs this short (``benchmarks/compile_speed.py``;
  docs/LOG.md, issue 24).

Shape rule: ``AspectRatiosRule((16, 24, 32), d_head=16)`` names the architecture for a budget
beyond the sweep (``scaling optimal``, the forecast rung). One aspect ratio (32) has shapes ~8x
apart in N between 1 and 2 layers (12.5k, 99k), so the named shape could sit far from N_opt; the
union over aspect ratios 16-32 (the range of the sweep's own shapes) has 25k, 56k, 84k, 99k,
148k non-embedding parameters around the rung's N_opt. Chosen before the rung was first trained.
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

#: Two seeds at the two smallest budgets (their points are the noisiest and the cheapest); one
#: seed elsewhere. Fits see the mean of a point's seeds.
SEEDS_BY_BUDGET = ((6e10, (0, 1)), (2e11, (0, 1)))

#: One linear warmup length for every trunk, branch and the forecast rung (optimizer steps of
#: 2048 tokens); below the shortest point's branch step (135).
WARMUP_STEPS = 100

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
        data=DataConfig(source="stdlib", include_tests=True, val_tokens=65536),
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
        seeds_by_budget=SEEDS_BY_BUDGET,
        branching=WsdBranches(decay_fraction=0.2, decay_shape="1-sqrt", warmup_steps=WARMUP_STEPS),
        shapes=SHAPES,
        lr_rule=LR_TABLE,
        shape_rule=AspectRatiosRule(aspect_ratios=(16, 24, 32), d_head=16),
        n_params_kind="non_embedding",
        tokens_per_param_range=(15.0, 2350.0),
        max_epochs=4.0,
        description=(
            "CPU IsoFLOP sweep for the main job: 4 budgets x 4-6 sizes (2 seeds at the 2 "
            "smallest) as WSD branches, ~4 min of runs on 2 cores"
        ),
    )
