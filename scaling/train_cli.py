"""``scaling train``: train one model into a run directory.

The config comes from ``--config FILE`` (a ``RunConfig`` JSON, as in ``config.json["config"]``)
and/or flags; flags override the file. Running it again on the same ``--run-dir`` resumes from
the checkpoint, or prints the stored summary of a finished run; a second ``scaling train``
on a directory that is being trained refuses (the run lock, ``scaling.lock``). Exit status:
0 complete, 1 diverged, 2 bad input or an expected failure (one line on stderr), 130
interrupted (Ctrl-C: the last checkpoint is kept and the same command resumes exactly).

Token counts accept integer literals and exact scientific notation (``--n-tokens 1e9``);
``--n-tokens`` is rounded down to whole optimizer steps of ``--batch-size-tokens``, and the
command says so when it rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from decimal import Decimal, InvalidOperation
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
    "family": ("model", "family"),
    "rope_theta": ("model", "rope_theta"),
    "qk_norm": ("model", "qk_norm"),
    "parametrization": ("model", "parametrization"),
    "base_d_model": ("model", "base_d_model"),
    "base_n_layers": ("model", "base_n_layers"),
    "init_std": ("model", "init_std"),
    "data_source": ("data", "source"),
    "data_path": ("data", "path"),
    "data_val_path": ("data", "val_path"),
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
    m.add_argument("--n-layers", type=int, help="transformer blocks (required, or from --config)")
    m.add_argument(
        "--d-model", type=int, help="residual width in features (required, or from --config)"
    )
    m.add_argument(
        "--n-heads",
        type=int,
        help="attention heads; must divide --d-model (required, or from --config)",
    )
    m.add_argument(
        "--d-mlp",
        type=int,
        help="MLP hidden width in features (default: 4 x --d-model for gpt2, 8/3 x --d-model "
        "rounded to a multiple of 32 for llama)",
    )
    m.add_argument("--seq-len", type=int, help="context length in tokens")
    m.add_argument("--vocab-size", type=int, help="number of token ids (256 for byte tokens)")
    m.add_argument("--tie-embeddings", action="store_true", help="share embedding and LM head")
    m.add_argument(
        "--family",
        help="model family: gpt2 (default), llama, or your own 'package.module:attribute'",
    )
    m.add_argument("--rope-theta", type=float, help="llama: rotary frequency base (10000)")
    m.add_argument("--qk-norm", action="store_true", help="llama: RMSNorm on queries and keys")
    m.add_argument(
        "--parametrization",
        choices=["sp", "mup", "completep"],
        help="init/LR rules across shapes (default sp; scaling.parametrization)",
    )
    m.add_argument("--base-d-model", type=int, help="mup/completep: width the LR was tuned at")
    m.add_argument("--base-n-layers", type=int, help="completep: depth the LR was tuned at")
    m.add_argument(
        "--init-std",
        type=float,
        help="sigma, the base init std (default 0.02); mup/completep: tune it at the base width",
    )

    d = p.add_argument_group("data")
    d.add_argument(
        "--data-source",
        choices=["stdlib", "text", "tokens"],
        help="stdlib: Python standard-library .py files (default); text: --data-path file or "
        "folder, byte tokens; tokens: token shards (a scaling prepare folder with "
        "manifest.json, nanoGPT train.bin/val.bin, llm.c shards, or a glob). With --data-path "
        "and no --data-source: tokens if it is a glob or a folder with manifest.json or "
        "train.bin, else text",
    )
    d.add_argument(
        "--data-path", help="text file or folder, or a token folder or glob of shards (path)"
    )
    d.add_argument("--data-val-path", help="tokens: folder or glob of validation shards (path)")
    d.add_argument(
        "--include-tests", action="store_true", help="stdlib: also train on the test folders"
    )
    d.add_argument(
        "--val-fraction",
        type=float,
        help="fraction of files (or bytes of one file) held out for validation, in (0, 0.5)",
    )
    d.add_argument(
        "--val-tokens", type=token_count, help="tokens in the fixed validation set (tokens)"
    )

    o = p.add_argument_group("optimizer and schedule")
    o.add_argument("--optimizer", choices=["adamw", "sgd"], help="optimizer")
    o.add_argument("--lr", type=float, help="peak learning rate")
    o.add_argument(
        "--weight-decay", type=float, help="decoupled weight decay on 2-D weight matrices"
    )
    o.add_argument(
        "--grad-clip", type=float, help="max global gradient L2 norm; 0 turns clipping off"
    )
    o.add_argument(
        "--schedule",
        choices=["cosine", "wsd", "constant"],
        help="learning-rate schedule over the run's own length",
    )
    o.add_argument("--warmup-fraction", type=float, help="fraction of steps in linear warmup")
    o.add_argument("--min-lr-ratio", type=float, help="final learning rate as a fraction of --lr")
    o.add_argument("--decay-fraction", type=float, help="wsd: fraction of steps in the final decay")
    o.add_argument("--decay-shape", choices=["linear", "1-sqrt"], help="wsd: decay shape")

    t = p.add_argument_group("run")
    t.add_argument(
        "--n-tokens",
        type=token_count,
        help="training tokens D (tokens; 1e9 style accepted); rounded down to whole steps of "
        "--batch-size-tokens",
    )
    t.add_argument(
        "--batch-size-tokens",
        type=token_count,
        help="tokens per optimizer step (tokens); a multiple of --micro-batch-size x --seq-len",
    )
    t.add_argument(
        "--micro-batch-size", type=int, help="sequences per forward/backward pass (memory knob)"
    )
    t.add_argument("--seed", type=int, help="seed for initialisation and batch order")
    t.add_argument(
        "--eval-interval-tokens",
        type=token_count,
        help="evaluate every this many training tokens (tokens; and at the end)",
    )
    t.add_argument(
        "--log-interval-steps",
        type=int,
        help="metrics.jsonl row every this many steps (and at the end)",
    )
    t.add_argument(
        "--checkpoint-interval-steps",
        type=int,
        help="write checkpoint.pt every this many steps (and at the end)",
    )
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], help="auto: CUDA if present")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="auto: bf16 on CUDA")
    t.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    t.add_argument("--n-threads", type=int, help="torch CPU threads")
    t.add_argument(
        "--wandb-mode",
        choices=["offline", "online", "disabled"],
        help="wandb mirror of metrics.jsonl",
    )
    t.add_argument("--wandb-project", help="wandb project")
    t.add_argument("--sweep-name", help="sweep this run belongs to (wandb group)")
    t.add_argument(
        "--flops-budget", type=float, help="IsoFLOP budget label C (FLOPs; a label only)"
    )
    t.add_argument("--point-key", help="key shared by LR/seed variants of one point")
    _append_defaults(p)
    p.set_defaults(func=_handle, on_interrupt=_on_interrupt)


def token_count(text: str) -> int:
    """Parse a token count (argparse type): ``8192``, ``1_000_000``, ``1e9``, ``2.5e6``.

    Raises:
        argparse.ArgumentTypeError: not a whole, non-negative number of tokens.
    """
    try:
        value = Decimal(text.replace("_", ""))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of tokens") from None
    if not value.is_finite() or value != value.to_integral_value() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of tokens")
    return int(value)


def _config_default(section: str, key: str) -> Any:
    # the dataclass default behind a flag, or dataclasses.MISSING
    from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig

    cls = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "": RunConfig}[section]
    for f in dataclasses.fields(cls):
        if f.name == key:
            return f.default
    return dataclasses.MISSING


def _append_defaults(parser: argparse.ArgumentParser) -> None:
    # flags only override the config when given (argument_default=SUPPRESS), so --help takes
    # each default from the RunConfig dataclasses, the single place they are defined
    for action in parser._actions:
        if action.dest not in _FIELDS or not action.help or "default" in action.help:
            continue
        default = _config_default(*_FIELDS[action.dest])
        if default is dataclasses.MISSING or default is None or default is False:
            continue
        action.help += f" (default: {default})"


def _flag_names(message: str) -> str:
    """Rewrite config field names in an error message as this command's flags.

    ``DataConfig.path`` / ``data.path`` -> ``--data-path``; ``n_tokens`` -> ``--n-tokens``.
    Field names without a flag are kept.
    """
    by_field = {(sec, key): "--" + dest.replace("_", "-") for dest, (sec, key) in _FIELDS.items()}
    sections = {"ModelConfig": "model", "DataConfig": "data", "OptimConfig": "optim"}
    sections.update({"RunConfig": "", "model": "model", "data": "data", "optim": "optim"})

    def dotted(m: re.Match[str]) -> str:
        return by_field.get((sections[m.group(1)], m.group(2)), m.group(0))

    out = re.sub(
        r"\b(ModelConfig|DataConfig|OptimConfig|RunConfig|model|data|optim)\.([a-z_]+)\b",
        dotted,
        message,
    )
    bare = {key: flag for (sec, key), flag in by_field.items() if "_" in key}

    def plain(m: re.Match[str]) -> str:
        return bare.get(m.group(1), m.group(0))

    # bare field names (``micro_batch_size``), not inside paths, quotes or flags already
    # rewritten (a quoted key names what to write in a --config file)
    return re.sub(r"(?<![\w./'\"-])([a-z]+(?:_[a-z]+)+)\b(?![\w./'\"])", plain, out)


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
        spec = str(base["data"]["path"])
        folder = Path(spec)
        tokens = any(c in spec for c in "*?[") or any(
            (folder / n).is_file() for n in ("train.bin", "manifest.json")
        )
        base["data"]["source"] = "tokens" if tokens else "text"
    model = base["model"]
    missing = [k for k in ("n_layers", "d_model", "n_heads") if k not in model]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise ConfigError(f"model shape incomplete: give {flags} (or --config FILE)")
    return RunConfig.from_dict(base)


def rounding_note(cfg: Any) -> str | None:
    """The note printed when ``n_tokens`` is not a whole number of steps, else ``None``."""
    b = cfg.batch_size_tokens
    if cfg.n_tokens % b == 0:
        return None
    down, up = cfg.n_steps * b, (cfg.n_steps + 1) * b
    return (
        f"--n-tokens {cfg.n_tokens} is not a whole number of steps of --batch-size-tokens {b}: "
        f"training {cfg.n_steps} steps = {down} tokens (give --n-tokens {down} or {up} to "
        "say so exactly)"
    )


def _handle(args: argparse.Namespace) -> int:
    from scaling.config import ConfigError
    from scaling.data import DataError

    try:
        cfg = resolve_config(args)
    except (ConfigError, DataError) as e:
        raise type(e)(_flag_names(str(e))) from None
    note = rounding_note(cfg)
    if note:
        print(f"scaling train: note: {note}", file=sys.stderr)
    if getattr(args, "dry_run", False):
        print(cfg.to_json())
        return 0
    from scaling.distributed import env_from_environ

    if not env_from_environ().is_main:  # data parallel: rank 0 holds the lock for the run
        summary = _train(cfg, args)
        return 0 if summary.status == "complete" else 1
    summary = _train_locked(cfg, args)
    d = summary.to_dict()
    print(
        f"{summary.status}: step {summary.step}/{summary.n_steps}, "
        f"val/loss {d['val/loss']}, val/bpb {d['val/bpb']}, train/loss {d['train/loss']}, "
        f"{summary.n_params_total} params, {summary.wall_time_s:.1f} s, "
        f"{summary.tokens_per_sec:.0f} tokens/s -> {args.run_dir}"
    )
    return 0 if summary.status == "complete" else 1


def _train(cfg: Any, args: argparse.Namespace) -> Any:
    from scaling.config import ConfigError
    from scaling.data import DataError
    from scaling.train import train

    try:
        return train(cfg, args.run_dir, progress=not getattr(args, "no_progress", False))
    except (ConfigError, DataError) as e:
        raise type(e)(_flag_names(str(e))) from None


def _train_locked(cfg: Any, args: argparse.Namespace) -> Any:
    # one trainer per run directory (scaling.lock); a directory this call created and that
    # ends up holding nothing but the lock (bad input) is removed again
    from scaling.lock import LOCK, RunLockedError, locked_message, run_lock

    run_dir = Path(args.run_dir)
    created = not run_dir.exists()
    try:
        with run_lock(run_dir) as held:
            if not held:
                raise RunLockedError(locked_message(run_dir))
            try:
                return _train(cfg, args)
            finally:
                if created and [p.name for p in run_dir.iterdir()] == [LOCK]:
                    (run_dir / LOCK).unlink()
                    run_dir.rmdir()
    except FileExistsError:
        raise NotADirectoryError(
            f"--run-dir {run_dir} is a file; give a folder (it is created if missing)"
        ) from None


def _on_interrupt(args: argparse.Namespace, again: str) -> str:
    # Ctrl-C: what the run directory holds and the command that resumes it
    from scaling.cli import run_dir_interrupt_note

    if not Path(args.run_dir, "config.json").exists():
        return f"nothing was written to {args.run_dir}; rerun: {again}"
    return run_dir_interrupt_note(args.run_dir, again)
