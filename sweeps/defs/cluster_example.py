r"""``cluster_example``: an IsoFLOP sweep for GPU clusters (1e17 to 1e19 FLOPs); plans anywhere.

For a Slurm cluster with GPUs, not for this CPU machine: GPT-2 tokenizer (vocab 50304, padded
to a multiple of 64), seq_len 1024, bf16 autocast on CUDA with ``torch.compile``, ~0.5M tokens per
step (Chinchilla and GPT-3 used 0.5-4M; Hoffmann et al. 2022 Table A1), AdamW with cosine decay
to 10%, five budgets 1e17, 3e17, 1e18, 3e18, 1e19 FLOPs. Data: nanoGPT-layout ``train.bin`` /
``val.bin`` of uint16 GPT-2 token ids at the placeholder ``/data/openwebtext`` (planning does
not read it; edit the path before launching).

Sizes: depths 3-24 at aspect ratio 64 (d_model = 64 * n_layers, 64-wide heads; 21M to 523M
parameters in all), kept per budget only inside a window of 5 to 80 training tokens per
parameter (``n_convention="total"``, Chinchilla's convention, so the window is a factor 4
either side of the ~20 tokens per parameter that Hoffmann et al. 2022 find compute-optimal,
their Table 3). That gives 5, 5, 7, 8 and 9 sizes at the five budgets (34 runs), every
budget's sizes on both sides of 20. (The first edition used seven fixed sizes 1e7-6e8 at every
budget: at 1e17 four of the seven saw under one token per parameter, up to ~500x from the
expected optimum, so most of the cluster's first sweep would have been wasted.)

Learning rate: a placeholder to tune first. Parametrization muP (Yang et al. 2022;
``scaling.parametrization``) with base width 768 and ``MupLR(6e-4)``: every size gets the peak
LR 6e-4, GPT-2 small's (Radford et al. 2019; nanoGPT's default), and the optimizer scales the
hidden matrices' LR by 768 / d_model. Nothing here has measured that 6e-4 is the optimum of
this recipe (muP's 1/d_head attention, this batch, these horizons), and on our CPU study muP
transferred the optimum only roughly (2.15x spread over widths 32-256) and trained worse than SP
at 200 steps (``README``, ``docs/LOG.md``). Before the real sweep, sweep the LR by factors of 2
at the base width (e.g. ``lr_multipliers=(0.25, 0.5, 1, 2, 4)`` at the smallest budget) and
set ``base_lr`` to the optimum; muP then carries it across widths.

``scaling sweep plan cluster_example`` estimates each run's time on one GPU from
``sweeps.throughput.GPU_FLOPS_PER_SEC`` (3e14 FLOP/s: 30% MFU of an H100/H200's 989 TFLOP/s
dense bf16 peak; the plan's footnote says so); ``scripts/gpu_check.sh`` measures the real MFU.

Launch on a cluster, e.g.::

    scaling sweep launch cluster_example --executor slurm --runs-dir /scratch/runs \
        --partition gpu --gpus-per-node 1 --cpus-per-task 8 --timeout-min 240
"""

from __future__ import annotations

from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from scaling.shapes import AspectRatioRule
from sweeps.lr import MupLR
from sweeps.spec import IsoFlopSweep

#: Candidate depths (d_model = 64 * n_layers); the window below keeps 5-9 of them per budget.
DEPTHS = tuple(range(3, 25))

#: Training tokens per parameter (total N) kept: a factor 4 either side of Chinchilla's ~20.
TOKENS_PER_PARAM_RANGE = (5.0, 80.0)


def sweep() -> IsoFlopSweep:
    """The cluster example spec (GPU cluster; planning works without data or GPUs)."""
    base = RunConfig(
        model=ModelConfig(
            n_layers=12,
            d_model=768,
            n_heads=12,
            d_mlp=3072,
            vocab_size=50304,
            seq_len=1024,
            parametrization="mup",
            base_d_model=768,
        ),
        data=DataConfig(source="tokens", path="/data/openwebtext", val_tokens=2_097_152),
        optim=OptimConfig(lr=6e-4, warmup_fraction=0.02, min_lr_ratio=0.1),
        n_tokens=524_288 * 100,
        batch_size_tokens=524_288,  # 512 sequences of 1024
        micro_batch_size=32,
        eval_interval_tokens=262_144_000,
        log_interval_steps=20,
        checkpoint_interval_steps=500,
        device="cuda",
        precision="bf16",
        compile=True,
        n_threads=8,
        wandb_mode="offline",
        wandb_project="scaling-cluster",
    )
    return IsoFlopSweep(
        name="cluster_example",
        base=base,
        budgets=(1e17, 3e17, 1e18, 3e18, 1e19),
        depths=DEPTHS,
        n_convention="total",
        tokens_per_param_range=TOKENS_PER_PARAM_RANGE,
        shape_rule=AspectRatioRule(aspect_ratio=64, d_head=64),
        lr_rule=MupLR(base_lr=6e-4),
        description="GPU-cluster IsoFLOP sweep, 1e17-1e19 FLOPs, GPT-2 tokens, bf16, muP",
    )
