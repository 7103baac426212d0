"""The run directory: the only contract between training and analysis (DESIGN.md).

``runs/<sweep>/<run_name>/`` holds:

- ``config.json`` (written first): ``{"config": RunConfig.to_dict(), "run_name", "provenance":
  {"scaling_version", "torch_version", "python_version", "git_sha", "created_at"}, "data":
  {"source", "sha256", "train_bytes", "val_bytes", "n_train_tokens", "n_val_tokens",
  "n_files_train", "n_files_val"}, "parametrization": {"name", "width_multiplier",
  "depth_multiplier", "attn_scale", "output_multiplier", "residual_multiplier", "groups": {role:
  {"lr", "lr_multiplier", "weight_decay", "eps", "init_std"}}}}`` (the last: the effective peak LR
  and settings of each parameter role, ``scaling.parametrization.describe``; absent in runs
  written before parametrizations existed);
- ``metrics.jsonl``: append-only, one JSON object per logged step (``step``, ``tokens``,
  ``flops``, ``train/loss``, ``lr``, ``grad_norm``, ``tokens_per_sec``, ``elapsed_s``; evaluation
  rows add ``val/loss``, ``val/bpb``). Readers tolerate a torn last line;
- ``checkpoint.pt``: the latest checkpoint, written atomically (tmp file + ``os.replace``);
- ``summary.json``: written last, atomically; its presence means the run ended
  (``status`` ``"complete"`` or ``"diverged"``);
- ``error.txt``: the traceback of a run that raised (written by the executor wrapper), removed
  when the run starts again.

This module does not import torch at module level: analysis reads run directories without it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from scaling import __version__, parametrization
from scaling.config import ConfigError, RunConfig

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
SUMMARY = "summary.json"
ERROR = "error.txt"

RUN_STATES = ("pending", "incomplete", "complete", "diverged", "failed")


class CheckpointError(ValueError):
    """``checkpoint.pt`` cannot be loaded; the message names the file (which is kept)."""


# -- readers ------------------------------------------------------------------------------------
def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The whole ``config.json`` object (``config``, ``run_name``, ``provenance``, ``data``...).

    ``parametrization`` is there in runs written since parametrizations exist.

    Raises:
        FileNotFoundError: no ``config.json`` in ``run_dir``.
        ConfigError: the file is not a JSON object.
    """
    path = Path(run_dir) / CONFIG
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); delete the run directory") from None
    if not isinstance(d, dict) or "config" not in d:
        raise ConfigError(f"{path} must be a JSON object with a 'config' key")
    return d


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The ``RunConfig`` stored in ``config.json``.

    Raises:
        FileNotFoundError: no ``config.json``.
        ConfigError: the stored config is invalid.
    """
    return RunConfig.from_dict(read_config(run_dir)["config"])


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """``summary.json`` as a dict, or ``None`` when the run has not ended."""
    path = Path(run_dir) / SUMMARY
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of ``metrics.jsonl`` in order; a torn last line (killed writer) is skipped.

    Returns:
        A list of row dicts (empty when the file is missing).

    Raises:
        ValueError: a line other than the last is not valid JSON (naming file and line).
    """
    path = Path(run_dir) / METRICS
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # the last line, with no newline after it: torn write
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON") from None
    return rows


def run_state(run_dir: str | Path) -> str:
    """State of a run directory, one of ``RUN_STATES``.

    ``"complete"``/``"diverged"``: ``summary.json`` says so. ``"failed"``: ``error.txt`` and no
    summary. ``"incomplete"``: ``config.json`` and no summary. ``"pending"``: none of these.
    """
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    if summary is not None:
        return str(summary["status"])
    if (run_dir / ERROR).exists():
        return "failed"
    if (run_dir / CONFIG).exists():
        return "incomplete"
    return "pending"


def last_step(run_dir: str | Path) -> int | None:
    """Last optimizer step done, or ``None`` when nothing ran.

    The summary's ``step`` if the run ended, else the last ``step`` in ``metrics.jsonl`` (rows
    after the last checkpoint are redone on resume).
    """
    summary = read_summary(run_dir)
    if summary is not None:
        return int(summary["step"])
    rows = read_metrics(run_dir)
    return int(rows[-1]["step"]) if rows else None


# -- writers ------------------------------------------------------------------------------------
def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (tmp file beside it, fsync, ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_error(run_dir: str | Path, text: str) -> None:
    """Write ``error.txt`` (a traceback) into ``run_dir``, atomically."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(run_dir) / ERROR, text)


def clear_error(run_dir: str | Path) -> None:
    """Remove ``error.txt`` if present (a run is starting again)."""
    (Path(run_dir) / ERROR).unlink(missing_ok=True)


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` atomically; call it last."""
    atomic_write_text(Path(run_dir) / SUMMARY, json.dumps(summary, indent=2, sort_keys=True))


def git_sha() -> str | None:
    """Commit of the source tree holding this package, or ``None`` outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip() if out.returncode == 0 else ""
    return sha or None


def provenance() -> dict[str, Any]:
    """Versions, git commit and creation time for ``config.json["provenance"]``."""
    try:
        import torch

        torch_version: str | None = torch.__version__
    except ImportError:
        torch_version = None
    return {
        "scaling_version": __version__,
        "torch_version": torch_version,
        "python_version": platform.python_version(),
        "git_sha": git_sha(),
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def config_diff(stored: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    """Fields that differ between two ``RunConfig.to_dict()`` dicts, dotted, with both values.

    Example: ``["optim.lr: 0.001 (stored) != 0.002 (given)"]``.
    """
    diffs = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_diff(a, b, prefix=f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} (stored) != {b!r} (given)")
    return diffs


def check_config(run_dir: str | Path, cfg: RunConfig) -> bool:
    """Compare ``cfg`` with the config stored in ``run_dir``; nothing is written.

    Returns:
        ``True`` when ``config.json`` exists and matches, ``False`` when there is none.

    Raises:
        ConfigError: the stored config differs (naming every differing field) or is unreadable.
    """
    path = Path(run_dir) / CONFIG
    if not path.exists():
        return False
    stored = RunConfig.from_dict(read_config(run_dir)["config"]).to_dict()
    diffs = config_diff(stored, cfg.to_dict())
    if diffs:
        raise ConfigError(
            f"run directory {Path(run_dir)} holds a different config ({'; '.join(diffs)}); "
            "use another run directory or the stored config"
        )
    return True


def write_config(run_dir: str | Path, cfg: RunConfig, run_name: str, data: dict[str, Any]) -> None:
    """Create ``run_dir`` and write ``config.json`` atomically (the first file of a run).

    Args:
        run_dir: the run directory (created with parents).
        cfg: the resolved config.
        run_name: the run's name (the directory name by convention).
        data: ``DataInfo.to_dict()`` of the corpus.
    """
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    doc = {
        "config": cfg.to_dict(),
        "run_name": run_name,
        "provenance": provenance(),
        "data": data,
        "parametrization": parametrization.describe(cfg),
    }
    atomic_write_text(Path(run_dir) / CONFIG, json.dumps(doc, indent=2, sort_keys=True))


def metrics_size(run_dir: str | Path) -> int:
    """Current byte length of ``metrics.jsonl`` (0 when missing)."""
    try:
        return (Path(run_dir) / METRICS).stat().st_size
    except FileNotFoundError:
        return 0


def truncate_metrics(run_dir: str | Path, n_bytes: int) -> None:
    """Cut ``metrics.jsonl`` back to ``n_bytes``.

    Rows written after the checkpoint being resumed from are dropped, so the resumed run does
    not duplicate them.
    """
    path = Path(run_dir) / METRICS
    if path.exists() and path.stat().st_size > n_bytes:
        with open(path, "r+b") as f:
            f.truncate(n_bytes)


# -- checkpoints (torch imported lazily) ----------------------------------------------------------
def save_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> None:
    """Write ``checkpoint.pt`` atomically: ``torch.save`` to a tmp file, then ``os.replace``.

    Args:
        run_dir: the run directory.
        state: tensors, numbers, strings, lists and dicts only (loadable with
            ``weights_only=True``).
    """
    import torch

    path = Path(run_dir) / CHECKPOINT
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(run_dir: str | Path) -> dict[str, Any] | None:
    """Load ``checkpoint.pt`` (``weights_only=True``) onto the CPU, or ``None`` when absent.

    Raises:
        CheckpointError: the file exists but cannot be loaded; it is left in place.
    """
    import torch

    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling/zip error means the file is unusable
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); it was kept: "
            "delete it to restart the run from step 0, or restore a good copy"
        ) from None
    if not isinstance(state, dict) or "step" not in state or "model" not in state:
        raise CheckpointError(
            f"checkpoint {path} is not a scaling checkpoint (no 'step'/'model'); it was kept: "
            "delete it to restart the run from step 0"
        )
    return state
