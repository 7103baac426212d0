r"""``cluster_example``: an IsoFLOP sweep for GPU clusters (1e17 to 1e19 FLOPs); plans anywhere.

For a Slurm cluster with GPUs, not for this CPU machine: GPT-2 tokenizer (vocab 50304, padded
to a multiple of 64), seq_len 1024, bf16 autocast on CUDA, ~0.5M tokens per step (Chinchilla
and GPT-3 used 0.5-4M; Hoffmann et al. 2022 Table A1), AdamW with cosine decay to 10%, five
budgets 1e17, 3e17, 1e18, 3e18, 1e19 FLOPs x seven non-embedding sizes 1e7..6e8 (aspect ratio
64, 64-wide heads; 35 runs). Data: nanoGPT-layout ``train.bin`` /
``val.bin`` of uint16 GPT-2 token ids at the placeholder ``/data/openwebtext`` (planning does
not read it; edit the path before launching). Parametrization: muP (Yang et al. 2022;
``scaling.parametrization``) with base width 768, so ``MupLR`` gives every size the one peak LR
6e-4 (GPT-2 small's, Radford et al. 2019 / nanoGPT) and the optimizer scales the hidden
matrices' LR by 768 / d_model itself. At d_model 768 this is GPT-2 small's recipe except muP's
1/d_head attention scale; before a real campaign, sweep the LR once at a base-width model
(``benchmarks/lr_transfer.py`` shows how the optimum transfers across widths on our corpus).

Launch on a cluster, e.g.::

    scaling sweep launch cluster_example --executor slurm --runs-dir /scratch/runs \
        --partition gpu --gpus-per-node 1 --cpus-per-task 8 --timeout-min 240
"""

from __future__ import annotations

from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from scaling.shapes import AspectRatioRule
from sweeps.lr import MupLR
from sweeps.spec import IsoFlopSweep


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
        n_params=(1e7, 2e7, 4e7, 8e7, 1.5e8, 3e8, 6e8),
        n_convention="non_embedding",
        shape_rule=AspectRatioRule(aspect_ratio=64, d_head=64),
        lr_rule=MupLR(base_lr=6e-4),
        description="GPU-cluster IsoFLOP sweep, 1e17-1e19 FLOPs, GPT-2 tokens, bf16, muP",
    )
