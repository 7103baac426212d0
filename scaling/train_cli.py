"""``scaling train``: train one model into a run directory.

The config comes from ``--config FILE`` (a ``RunConfig`` JSON, as in ``config.json["config"]``)
and/or flags; flags override the file. Running it again on the same ``--run-dir`` resumes from
the checkpoint, or prints the stored summary of a finished run. Exit status: 0 complete,
1 diverged, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# flag dest -> (section in RunConfig.to_dict() or "" for top level, key)
_FIELDS: dict[str, tuple[str, str]] = {
    "n_layers": ("model", "n_layers"),
    "d_model": ("model", "d_model"),
    "n_heads": ("model", "n_heads"),
    "d_mlp": ("model", "d_mlp"),
    "seq_len": ("model", "seq_len"),
    "vocab_size": ("model", "vocab_size"),
    "tie_embeddings": ("model", "tie_embeddings"),
    "parametrization": ("model", "parametrization"),
    "base_d_model": ("model", "base_d_model"),
    "base_n_layers": ("model", "base_n_layers"),
    "data_source": ("data", "source"),
    "data_path": ("data", "path"),
    "include_tests": ("data", "include_tests"),
    "val_fraction": ("data", "val_fraction"),
    "val_tokens": ("data", "val_tokens"),
    "optimizer": ("optim", "optimizer"),
    "lr": ("optim", "lr"),
    "weight_decay": ("optim", "weight_decay"),
    "grad_clip": ("optim", "grad_clip"),
    "schedule": ("optim", "schedule"),
    "warmup_fraction": ("optim", "warmup_fraction"),
    "min_lr_ratio": ("optim", "min_lr_ratio"),
    "decay_fraction": ("optim", "decay_fraction"),
    "decay_shape": ("optim", "decay_shape"),
    "n_tokens": ("", "n_tokens"),
    "batch_size_tokens": ("", "batch_size_tokens"),
    "micro_batch_size": ("", "micro_batch_size"),
    "seed": ("", "seed"),
    "eval_interval_tokens": ("", "eval_interval_tokens"),
    "log_interval_steps": ("", "log_interval_steps"),
    "checkpoint_interval_steps": ("", "checkpoint_interval_steps"),
    "device": ("", "device"),
    "precision": ("", "precision"),
    "compile": ("", "compile"),
    "n_threads": ("", "n_threads"),
    "wandb_mode": ("", "wandb_mode"),
    "wandb_project": ("", "wandb_project"),
    "sweep_name": ("", "sweep_name"),
    "flops_budget": ("", "flops_budget"),
    "point_key": ("", "point_key"),
}


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand to the top-level ``scaling`` parser."""
    p = subparsers.add_parser(
        "train",
        help="train one model into a run directory (resumes; a finished run is not redone)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,  # only flags actually given override the config
    )
    p.add_argument("--run-dir", required=True, help="run directory (created; name = run name)")
    p.add_argument("--config", help="RunConfig JSON file; flags below override its fields")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    m = p.add_argument_group("model shape")
    m.add_argument("--n-layers", type=int, help="transformer blocks")
    m.add_argument("--d-model", type=int, help="residual width (units: features)")
    m.add_argument("--n-heads", type=int, help="attention heads (must divide d-model)")
    m.add_argument("--d-mlp", type=int, help="MLP hidden width (default: 4 * d-model)")
    m.add_argument("--seq-len", type=int, help="context length in tokens (default 256)")
    m.add_argument("--vocab-size", type=int, help="token ids (256 for byte tokens)")
    m.add_argument("--tie-embeddings", action="store_true", help="share embedding and LM head")
    m.add_argument(
        "--parametrization",
        choices=["sp", "mup", "completep"],
        help="init/LR rules across shapes (default sp; scaling.parametrization)",
    )
    m.add_argument("--base-d-model", type=int, help="mup/completep: width the LR was tuned at")
    m.add_argument("--base-n-layers", type=int, help="completep: depth the LR was tuned at")

    d = p.add_argument_group("data")
    d.add_argument(
        "--data-source",
        choices=["stdlib", "text", "tokens"],
        help="stdlib: Python standard-library .py files (default); text: --data-path file or "
        "folder, byte tokens; tokens: folder with uint16 train.bin/val.bin. With --data-path "
        "and no --data-source: tokens if the folder holds train.bin, else text",
    )
    d.add_argument("--data-path", help="text file/folder or token folder")
    d.add_argument("--include-tests", action="store_true", help="stdlib: keep test folders")
    d.add_argument("--val-fraction", type=float, help="fraction of files held out (0-0.5)")
    d.add_argument("--val-tokens", type=int, help="tokens in the fixed validation set")

    o = p.add_argument_group("optimizer and schedule")
    o.add_argument("--optimizer", choices=["adamw", "sgd"], help="optimizer (default adamw)")
    o.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    o.add_argument("--weight-decay", type=float, help="decay on 2-D weight matrices (0.1)")
    o.add_argument("--grad-clip", type=float, help="max global grad L2 norm; 0 = off (1.0)")
    o.add_argument("--schedule", choices=["cosine", "wsd", "constant"], help="LR schedule")
    o.add_argument("--warmup-fraction", type=float, help="fraction of steps in warmup (0.05)")
    o.add_argument("--min-lr-ratio", type=float, help="final LR as a fraction of --lr (0.1)")
    o.add_argument("--decay-fraction", type=float, help="wsd: fraction of steps decaying")
    o.add_argument("--decay-shape", choices=["linear", "1-sqrt"], help="wsd decay shape")

    t = p.add_argument_group("run")
    t.add_argument("--n-tokens", type=int, help="training tokens D (whole steps)")
    t.add_argument("--batch-size-tokens", type=int, help="tokens per optimizer step (4096)")
    t.add_argument("--micro-batch-size", type=int, help="sequences per forward pass (16)")
    t.add_argument("--seed", type=int, help="seed for init and batch order (0)")
    t.add_argument("--eval-interval-tokens", type=int, help="evaluate every this many tokens")
    t.add_argument("--log-interval-steps", type=int, help="metrics row every this many steps")
    t.add_argument("--checkpoint-interval-steps", type=int, help="checkpoint every N steps")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], help="auto: CUDA if present")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="auto: bf16 on CUDA")
    t.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    t.add_argument("--n-threads", type=int, help="torch CPU threads (1)")
    t.add_argument(
        "--wandb-mode", choices=["offline", "online", "disabled"], help="wandb mirror (offline)"
    )
    t.add_argument("--wandb-project", help="wandb project (scaling)")
    t.add_argument("--sweep-name", help="sweep this run belongs to (wandb group)")
    t.add_argument("--flops-budget", type=float, help="IsoFLOP budget label in FLOPs")
    t.add_argument("--point-key", help="key shared by LR/seed variants of one point")
    p.set_defaults(func=_handle)


def resolve_config(args: argparse.Namespace) -> Any:
    """Build the ``RunConfig`` from ``--config`` and the flags given (flags win).

    Raises:
        ConfigError: missing model shape, or an invalid value (naming the field).
    """
    from scaling.config import ConfigError, RunConfig, read_json_object

    given = vars(args)
    base: dict[str, Any] = {}
    if "config" in given:
        path = Path(given["config"])
        base = read_json_object(path, "--config")
        if "config" in base and "model" not in base:
            base = base["config"]  # a run directory's config.json works too
            if not isinstance(base, dict):
                raise ConfigError(f"--config {path} must hold a JSON object")
    for section in ("model", "data", "optim"):
        base.setdefault(section, {})
    for dest, (section, key) in _FIELDS.items():
        if dest in given:
            (base[section] if section else base)[key] = given[dest]
    if "path" in base["data"] and "data_source" not in given and "source" not in base["data"]:
        folder = Path(base["data"]["path"])
        base["data"]["source"] = "tokens" if (folder / "train.bin").is_file() else "text"
    model = base["model"]
    missing = [k for k in ("n_layers", "d_model", "n_heads") if k not in model]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise ConfigError(f"model shape incomplete: give {flags} (or --config FILE)")
    model.setdefault("d_mlp", 4 * model["d_model"])
    return RunConfig.from_dict(base)


def _handle(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    if getattr(args, "dry_run", False):
        print(cfg.to_json())
        return 0
    from scaling.distributed import env_from_environ
    from scaling.train import train

    summary = train(cfg, args.run_dir, progress=not getattr(args, "no_progress", False))
    d = summary.to_dict()
    if not env_from_environ().is_main:  # data parallel: rank 0 reports for the run
        return 0 if summary.status == "complete" else 1
    print(
        f"{summary.status}: step {summary.step}/{summary.n_steps}, "
        f"val/loss {d['val/loss']}, val/bpb {d['val/bpb']}, train/loss {d['train/loss']}, "
        f"{summary.n_params_total} params, {summary.wall_time_s:.1f} s, "
        f"{summary.tokens_per_sec:.0f} tokens/s -> {args.run_dir}"
    )
    return 0 if summary.status == "complete" else 1
