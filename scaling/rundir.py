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
- ``checkpoint-step<N>.pt``: a WSD trunk's kept checkpoints, one per branch point (steps in
  ``RunConfig.keep_checkpoint_steps``), written atomically the same way and never overwritten
  by a later step; branches start from them (``RunConfig.branch_from``). A branch's
  ``config.json`` adds ``"parent": {"run_name", "step", "checkpoint", "checkpoint_sha256"}``;
- ``summary.json``: written last, atomically; its presence means the run ended
  (``status`` ``"complete"``, ``"diverged"`` or ``"stopped"``: ended early on a stop request,
  its ``stop_reason`` saying why; never fitted as complete);
- ``stop_request.json``: written by a launcher's early-stopping monitor (``sweeps.early_stop``)
  to ask a running run to stop: ``{"reason", "requested_at", ...}`` (what the monitor saw).
  Training checks for it at every evaluation and checkpoint step, and ends the run there with a
  checkpoint and ``status: "stopped"``. Removed (with the summary) when a stopped run is resumed
  on request (``reopen_stopped``);
- ``error.txt``: the traceback of a run that raised (written by the executor wrapper), removed
  when the run starts again.

A sweep's folder ``runs/<sweep>/`` holds ``sweep.json`` (written by every launch, read by
analysis for the shape rule and the current plan): ``{"name", "spec", "shape_rule", "plan":
[{"run_name", "config"}], "versions", "created_at"}``.

This module owns every file's name, reader and writer, and the one atomic writer
(``atomic_write_text``: tmp file + fsync + ``os.replace``) that every stage uses for whole-file
writes. What goes into a file is the caller's (e.g. ``scaling.parametrization.describe`` for
``config.json``'s ``"parametrization"``).

This module does not import torch at module level: analysis reads run directories without it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from scaling import __version__
from scaling.config import ConfigError, RunConfig

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
STEP_CHECKPOINT = "checkpoint-step{step}.pt"  # a trunk's kept checkpoint after step N
SUMMARY = "summary.json"
ERROR = "error.txt"
STOP_REQUEST = "stop_request.json"  # asks a running run to stop early (sweeps.early_stop)
SWEEP = "sweep.json"  # in the sweep's folder, beside its run directories

RUN_STATES = ("pending", "incomplete", "complete", "diverged", "stopped", "failed")
ENDED = ("complete", "diverged", "stopped")  # summary.json statuses


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded; the message names the file (which is kept)."""


def step_checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """``run_dir/checkpoint-step<step>.pt``: the checkpoint a trunk keeps for a branch point."""
    return Path(run_dir) / STEP_CHECKPOINT.format(step=step)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_problem(path: str | Path) -> str | None:
    """Why a checkpoint file cannot be used, checked without torch; ``None`` when it looks whole.

    ``torch.save`` writes a zip archive: the file must exist, start with a zip local-file header
    ("PK" 3 4) and end with an end-of-central-directory record ("PK" 5 6 in its
    last 64 KiB), so a missing, empty or truncated file is caught cheaply (``scaling sweep
    status``). Damage inside an intact archive is found when it is loaded (``load_checkpoint``).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(max(0, size - 65536 - 22))
            tail = f.read()
    except FileNotFoundError:
        return f"{path} is missing"
    except OSError as e:
        return f"{path} cannot be read ({e.strerror})"
    if head != b"PK\x03\x04" or b"PK\x05\x06" not in tail:
        return f"{path} is corrupt (not a whole torch.save archive, {size} bytes)"
    return None


class RunDirWriteError(OSError):
    """A run-directory file could not be written (a full disk, a quota, an I/O error).

    Keeps the ``errno``; the message names the file and says what is intact: writes are atomic
    (checkpoint, config, summary) or truncated back (a metrics row), so relaunching after the
    cause is fixed resumes from the last checkpoint.
    """


# -- readers ------------------------------------------------------------------------------------
def _read_json_object(path: Path, fix: str, key: str | None = None) -> dict[str, Any] | None:
    """The JSON object in ``path`` (holding ``key`` if given), or ``None`` when it is missing.

    Raises:
        ValueError: ``"<path> is damaged (not valid JSON: ...)<fix>"`` or ``"... (not a JSON
            object[ with a '<key>'])<fix>"``.
    """
    try:
        d = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path} is damaged (not valid JSON: {e.msg} at line {e.lineno}, column {e.colno})"
            + fix
        ) from None
    if not isinstance(d, dict) or (key is not None and key not in d):
        what = "a JSON object" + (f" with a '{key}'" if key is not None else "")
        raise ValueError(f"{path} is damaged (not {what}){fix}")
    return d


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
    """``summary.json`` as a dict, or ``None`` when the run has not ended.

    Raises:
        ValueError: the file is damaged (not a JSON object with a ``status``), naming it.
    """
    fix = "; delete it and relaunch to rewrite it from the run's checkpoint"
    return _read_json_object(Path(run_dir) / SUMMARY, fix, key="status")


def read_metrics(run_dir: str | Path, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of ``metrics.jsonl`` in order; a torn last line (killed writer) is skipped.

    Args:
        run_dir: the run directory.
        problems: when given, a damaged line other than the last (not a JSON object) is
            skipped and described in this list instead of raising (readers that report on
            many runs, e.g. ``sweep status`` and ``report``, go on with the rest).

    Returns:
        A list of row dicts (empty when the file is missing).

    Raises:
        ValueError: a line other than the last is not a JSON object (naming file and line),
            unless ``problems`` is given.
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
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
            continue
        if i == len(lines) - 1:  # the last line, with no newline after it: torn write
            break
        msg = f"{path}: line {i + 1} is not a JSON object"
        if problems is None:
            raise ValueError(msg)
        problems.append(msg + " (skipped)")
    return rows


def read_sweep(sweep_dir: str | Path) -> dict[str, Any] | None:
    """``<sweep_dir>/sweep.json`` as a dict, or ``None`` when there is none.

    Raises:
        ValueError: the file is damaged: ``"<path> is damaged (not valid JSON: ...)"`` or
            ``"... (not a JSON object)"``; callers add what they do without it.
    """
    return _read_json_object(Path(sweep_dir) / SWEEP, "")


def run_state(run_dir: str | Path) -> str:
    """State of a run directory, one of ``RUN_STATES``.

    ``"complete"``/``"diverged"``/``"stopped"``: ``summary.json`` says so. ``"failed"``:
    ``error.txt`` and no summary. ``"incomplete"``: ``config.json`` and no summary.
    ``"pending"``: none of these.

    Raises:
        ValueError: ``summary.json`` is damaged (see ``read_summary``).
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
def _atomic_write(path: Path, write: Any, binary: bool, intact: str) -> None:
    """Write ``path`` atomically: ``write(f)`` into a tmp file beside it, fsync, ``os.replace``.

    Whatever stops the write (an error, or ``SystemExit`` from a signal handler such as
    submitit's requeue-on-timeout, which can fire in the middle of a checkpoint) removes the tmp
    file and leaves ``path`` as it was. ``torch.save`` hides the first exception of an
    interrupted write behind a second one from its zip writer's ``__exit__`` (``RuntimeError:
    unexpected pos``); the first one is re-raised instead, so a requeue exits as a requeue.

    Raises:
        RunDirWriteError: the tmp file could not be written (e.g. the disk is full); the message
            names the file and says ``intact`` (what the caller knows is still whole).
    """
    # a tmp name unique to this process: two writers at once (two launches writing one
    # sweep.json) must not share one
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        first = e
        while isinstance(first, RuntimeError) and first.__context__ is not None:
            first = first.__context__
        if isinstance(first, OSError):
            raise RunDirWriteError(
                first.errno, f"could not write {path} ({first.strerror or first}); {intact}"
            ) from None
        if first is not e:
            raise first from None
        raise
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (tmp file beside it, fsync, ``os.replace``).

    Raises:
        RunDirWriteError: the file could not be written; the previous version is intact.
    """
    _atomic_write(
        Path(path),
        lambda f: f.write(text),
        binary=False,
        intact="the previous version, if any, is intact: fix the cause (free space) and run "
        "the same command again",
    )


def write_json(path: str | Path, obj: Any, indent: int | None = 2, sort_keys: bool = True) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (``atomic_write_text``), creating its folder.

    Raises:
        RunDirWriteError: the file could not be written; the previous version is intact.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys))


def write_error(run_dir: str | Path, text: str) -> None:
    """Write ``error.txt`` (a traceback) into ``run_dir``, atomically."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(run_dir) / ERROR, text)


def clear_error(run_dir: str | Path) -> None:
    """Remove ``error.txt`` if present (a run is starting again)."""
    (Path(run_dir) / ERROR).unlink(missing_ok=True)


def write_stop_request(run_dir: str | Path, reason: str, **detail: Any) -> None:
    """Ask the run training in ``run_dir`` to stop at its next evaluation or checkpoint step.

    Writes ``stop_request.json`` atomically: ``{"reason", "requested_at", **detail}``. The run
    then ends with ``status: "stopped"`` (``scaling.train``); a run that has ended ignores it.

    Raises:
        RunDirWriteError: the file could not be written.
    """
    doc = {
        "reason": reason,
        "requested_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **detail,
    }
    atomic_write_text(Path(run_dir) / STOP_REQUEST, json.dumps(doc, indent=2, sort_keys=True))


def read_stop_request(run_dir: str | Path) -> dict[str, Any] | None:
    """``stop_request.json`` as a dict, or ``None`` when no stop was requested.

    A damaged file still asks for a stop (``{"reason": "stop requested (stop_request.json
    unreadable: ...)"}``): its presence is the request.
    """
    path = Path(run_dir) / STOP_REQUEST
    try:
        d = _read_json_object(path, "", key="reason")
    except ValueError as e:
        return {"reason": f"stop requested ({STOP_REQUEST} unreadable: {e})"}
    return d


def stop_requested(run_dir: str | Path) -> bool:
    """True when ``stop_request.json`` exists (one ``stat``: cheap enough for every eval step)."""
    return (Path(run_dir) / STOP_REQUEST).exists()


def reopen_stopped(run_dir: str | Path) -> bool:
    """Make a stopped run resumable: remove its ``summary.json`` and ``stop_request.json``.

    The run's ``checkpoint.pt`` (written at the stop step) and ``metrics.jsonl`` are kept, so the
    next launch resumes it where it stopped. Runs with another status are left untouched.

    Returns:
        True when the run was stopped and is now resumable.

    Raises:
        ValueError: ``summary.json`` is damaged (see ``read_summary``).
    """
    summary = read_summary(run_dir)
    if summary is None or summary.get("status") != "stopped":
        return False
    (Path(run_dir) / SUMMARY).unlink()
    (Path(run_dir) / STOP_REQUEST).unlink(missing_ok=True)
    return True


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` atomically; call it last."""
    atomic_write_text(Path(run_dir) / SUMMARY, json.dumps(summary, indent=2, sort_keys=True))


def write_sweep(
    sweep_dir: str | Path,
    *,
    name: str,
    spec: dict[str, Any],
    shape_rule: dict[str, Any] | None,
    plan: list[dict[str, Any]],
    versions: dict[str, Any],
) -> Path:
    """Write ``<sweep_dir>/sweep.json`` atomically, only when the definition or plan changed.

    Args:
        sweep_dir: the sweep's folder (created with parents).
        name: the sweep's name.
        spec: the sweep definition's ``to_dict()``.
        shape_rule: the shape rule's ``to_dict()``, or ``None``.
        plan: ``[{"run_name", "config": RunConfig.to_dict()}]`` in plan order.
        versions: package versions of the writer, recorded when the file is (re)written.

    Returns:
        The path of ``sweep.json``. An unchanged ``name``/``spec``/``shape_rule``/``plan``
        leaves the file (and the ``created_at`` of the first launch) as it was; a damaged file
        is rewritten.

    Raises:
        RunDirWriteError: the file could not be written; the previous version is intact.
    """
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    body: dict[str, Any] = {"name": name, "spec": spec, "shape_rule": shape_rule, "plan": plan}
    try:
        old = read_sweep(sweep_dir) or {}
    except ValueError:
        old = {}
    if old and all(old.get(k) == v for k, v in body.items()):
        return sweep_dir / SWEEP
    body["versions"] = versions
    body["created_at"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    atomic_write_text(sweep_dir / SWEEP, json.dumps(body, indent=2, sort_keys=True))
    return sweep_dir / SWEEP


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


def write_config(
    run_dir: str | Path,
    cfg: RunConfig,
    run_name: str,
    data: dict[str, Any],
    parent: dict[str, Any] | None = None,
    *,
    parametrization: dict[str, Any] | None = None,
    provenance_record: dict[str, Any] | None = None,
) -> None:
    """Create ``run_dir`` and write ``config.json`` atomically (the first file of a run).

    Args:
        run_dir: the run directory (created with parents).
        cfg: the resolved config.
        run_name: the run's name (the directory name by convention).
        data: ``DataInfo.to_dict()`` of the corpus.
        parent: a branch's lineage ``{"run_name", "step", "checkpoint", "checkpoint_sha256"}``
            (stored as ``"parent"``), or ``None``.
        parametrization: ``scaling.parametrization.describe(cfg)`` (stored as
            ``"parametrization"``; training always passes it), or ``None`` to leave it out.
        provenance_record: the ``"provenance"`` record; ``None`` records this process's
            (``provenance()``). Synthetic runs pass ``{}``: nothing trained them.
    """
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    doc = {
        "config": cfg.to_dict(),
        "run_name": run_name,
        "provenance": provenance() if provenance_record is None else provenance_record,
        "data": data,
    }
    if parametrization is not None:
        doc["parametrization"] = parametrization
    if parent is not None:
        doc["parent"] = parent
    atomic_write_text(Path(run_dir) / CONFIG, json.dumps(doc, indent=2, sort_keys=True))


def write_metrics(run_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write a whole ``metrics.jsonl`` at once, atomically (one JSON object per line).

    For runs that are not trained (synthetic runs, test fixtures); training appends row by row
    through ``scaling.loggers.JsonlLogger``.
    """
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in rows))


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
def save_checkpoint(
    run_dir: str | Path, state: dict[str, Any], path: str | Path | None = None
) -> None:
    """Write ``checkpoint.pt`` atomically: ``torch.save`` to a tmp file, then ``os.replace``.

    Args:
        run_dir: the run directory.
        state: tensors, numbers, strings, lists and dicts only (loadable with
            ``weights_only=True``).
        path: another file to write instead (e.g. ``step_checkpoint_path(run_dir, step)``).

    Raises:
        RunDirWriteError: the tmp file could not be written (e.g. the disk is full); it is
            removed and the previous checkpoint file is left intact.
    """
    import torch

    path = Path(path) if path is not None else Path(run_dir) / CHECKPOINT
    # through a Python file object: a full disk surfaces as OSError(ENOSPC), not as an opaque
    # error from torch's zip writer
    _atomic_write(
        path,
        lambda f: torch.save(state, f),
        binary=True,
        intact="the previous checkpoint and metrics are intact: free space and run the same "
        "command again to resume",
    )


def load_checkpoint(run_dir: str | Path, path: str | Path | None = None) -> dict[str, Any] | None:
    """Load ``checkpoint.pt`` (``weights_only=True``) onto the CPU, or ``None`` when absent.

    Args:
        run_dir: the run directory.
        path: another checkpoint file to load the same way (a trunk's
            ``checkpoint-step<N>.pt``, which a branch starts from).

    Raises:
        CheckpointError: the file exists but cannot be loaded; it is left in place.
    """
    import torch

    path = Path(path) if path is not None else Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling/zip error means the file is unusable
        # weights_only=True refuses any global beyond tensors and plain containers, so a
        # crafted pickle is refused before it can run code; say which global it wanted
        unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if unsafe:
            raise CheckpointError(
                f"checkpoint {path} refused: it holds more than tensors and plain data (it "
                f"would call {unsafe.group(1)} when unpickled); it was kept, unloaded: delete "
                "it to restart the run from step 0 (never load it unless you trust its source)"
            ) from None
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
