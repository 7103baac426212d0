"""Token-id shard files: formats, discovery, a manifest, a fast content hash. numpy only.

A split (train or val) is one or more *shards*, each a flat array of token ids read with
``np.memmap`` (never loaded whole). The id dtype, ``uint16`` or ``uint32``, comes from a
``manifest.json`` or from a shard's header; it is never guessed from a file size.

Formats:

- **llm.c / modded-nanogpt shards**: a header of 256 little-endian int32 (1024 bytes),
  ``header[0]`` the magic, ``header[1]`` the version, ``header[2]`` the token count, then the
  ids. Magic 20240520 / version 1 holds ``uint16`` ids (GPT-2 tokens), magic 20240801 / version
  7 holds ``uint32`` ids (llm.c's Llama 3 format). The file size must be exactly ``1024 +
  count * itemsize``. ``scaling prepare`` writes this format, so its shards load in llm.c too.
- **nanoGPT** ``train.bin`` / ``val.bin``: raw ``uint16`` ids without a header (nanoGPT's
  ``prepare.py`` convention); a header is honoured if present.
- **manifest.json** (``scaling prepare``): ``{"format": "scaling-tokens", "dtype", "vocab_size",
  "eos_id", "train": [{"file", "n_tokens", "max_id", "sha256"}, ...], "val": [...], ...}``; the
  loader trusts it over file sizes and checks every shard against it.

Where shards come from (``DataConfig.path`` with ``source="tokens"``): a folder with a manifest;
a folder with ``train.bin`` and ``val.bin``; a folder of headered shards named ``*train*.bin``
and ``*val*.bin`` (modded-nanogpt's ``fineweb_train_000001.bin``); or a glob of headered
shards, with ``DataConfig.val_path`` (folder or glob) for validation. Other ``.bin`` files must
carry a header: a wrong magic is an error, never read as raw ids.

The data hash (``content_hash``) covers every shard and stays fast on large data: each shard
contributes its name, dtype and token count, and its bytes in full when the whole corpus is at
most ``FULL_HASH_BYTES`` (256 MiB), else ``SAMPLE_BLOCKS`` = 16 blocks of 64 KiB at fixed,
evenly spaced offsets (first and last included), about 1 MiB read per shard. A manifest's
per-shard SHA-256 (computed in full by ``scaling prepare``) is hashed too, so editing a prepared
shard anywhere is caught by the manifest check. A nanoGPT ``train.bin``/``val.bin`` pair under
the limit is hashed exactly as before shards existed (its ids, train then val), so older runs
still resume.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HEADER_INTS = 256
HEADER_BYTES = 4 * HEADER_INTS
# magic -> (version, dtype): llm.c dev/data/data_common.py's "gpt-2" and "llama-3" formats
MAGICS: dict[int, tuple[int, str]] = {20240520: (1, "uint16"), 20240801: (7, "uint32")}
DTYPE_MAGIC = {dtype: (magic, version) for magic, (version, dtype) in MAGICS.items()}
DTYPES = ("uint16", "uint32")
MANIFEST = "manifest.json"
PREPARING_MARKER = "PREPARING"  # present while scaling prepare writes a folder
MANIFEST_FORMAT = "scaling-tokens"
FULL_HASH_BYTES = 256 << 20
SAMPLE_BLOCKS = 16
SAMPLE_BLOCK_BYTES = 64 << 10
_SCAN_CHUNK = 1 << 24  # ids per chunk when scanning for the largest id


class ShardError(ValueError):
    """A shard or manifest is unusable; the message names the file and the fix."""


def dtype_for_vocab(vocab_size: int) -> str:
    """``"uint16"`` when every id fits (``vocab_size <= 65536``), else ``"uint32"``."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def shard_header(dtype: str, n_tokens: int) -> bytes:
    """The 1024-byte llm.c header for ``n_tokens`` ids of ``dtype``."""
    magic, version = DTYPE_MAGIC[dtype]
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (magic, version, n_tokens)
    return header.tobytes()


@dataclass(frozen=True)
class Shard:
    """One shard file.

    Attributes:
        path: the file.
        name: its name in errors and in the hash (relative to the data folder).
        dtype: ``"uint16"`` or ``"uint32"``.
        offset: bytes before the first id (1024 with a header, else 0).
        n_tokens: ids in the file.
        max_id: largest id, from a manifest (``None`` when unknown).
        sha256: full-content SHA-256 from a manifest (``None`` when unknown).
    """

    path: Path
    name: str
    dtype: str
    offset: int
    n_tokens: int
    max_id: int | None = None
    sha256: str | None = None

    def ids(self) -> np.ndarray:
        """The ids as a read-only ``np.memmap`` (1-D, ``n_tokens`` long)."""
        return np.memmap(
            self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=(self.n_tokens,)
        )


def _read_header(path: Path) -> np.ndarray | None:
    with open(path, "rb") as f:
        raw = f.read(HEADER_BYTES)
    if len(raw) < 8:
        return None
    return np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<i4")


def open_shard(path: Path, name: str, *, header_required: bool, dtype: str | None = None) -> Shard:
    """Read one shard's format from its header (or from ``dtype``, a manifest's).

    Args:
        path: the file.
        name: its display name.
        header_required: a file without a known magic is an error (every shard that is not a
            nanoGPT ``train.bin``/``val.bin`` and not described by a manifest).
        dtype: the dtype a manifest states, or ``"uint16"`` for a nanoGPT file; a header must
            agree with it.

    Raises:
        ShardError: the file is missing or empty, has a wrong magic or version, a size that
            disagrees with its header (or is not whole ids), or a dtype that disagrees with the
            manifest.
    """
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ShardError(f"shard {path}: cannot read it ({e.strerror}); check the path") from None
    if size == 0:
        raise ShardError(f"shard {path} is empty; remove it or re-run scaling prepare")
    header = _read_header(path)
    magic = int(header[0]) if header is not None else None
    if magic in MAGICS:
        version, hdtype = MAGICS[magic]
        if header is None or header.size < 3 or int(header[1]) != version:
            got = int(header[1]) if header is not None and header.size > 1 else None
            raise ShardError(
                f"shard {path}: magic {magic} needs header version {version}, got {got}; "
                "rewrite the shard"
            )
        n_tokens = int(header[2])
        itemsize = np.dtype(hdtype).itemsize
        if n_tokens <= 0:
            raise ShardError(f"shard {path} holds no tokens (header count {n_tokens}); remove it")
        if size != HEADER_BYTES + n_tokens * itemsize:
            raise ShardError(
                f"shard {path} has {size} bytes but its header says {n_tokens} {hdtype} ids "
                f"({HEADER_BYTES + n_tokens * itemsize} bytes); the file is truncated or "
                "corrupt: re-create it"
            )
        if dtype is not None and dtype != hdtype:
            raise ShardError(
                f"shard {path}: header says {hdtype} but the manifest says {dtype}; "
                "fix manifest.json or re-run scaling prepare"
            )
        return Shard(path, name, hdtype, HEADER_BYTES, n_tokens)
    if header_required or dtype is None:
        raise ShardError(
            f"shard {path}: header magic {magic} is not an llm.c token shard "
            f"({' or '.join(f'{m} for {d}' for m, (_, d) in MAGICS.items())}); write shards "
            "with scaling prepare, or list raw files with their dtype in a manifest.json"
        )
    itemsize = np.dtype(dtype).itemsize
    if size % itemsize:
        raise ShardError(
            f"shard {path} has {size} bytes, not a whole number of {dtype} ids; it is "
            "truncated or has another dtype: re-create it"
        )
    return Shard(path, name, dtype, 0, size // itemsize)


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _expand(spec: str, field: str, pattern: str = "*.bin") -> list[tuple[Path, str]]:
    """Files of a folder (matching ``pattern``) or a glob, sorted, with display names."""
    if _is_glob(spec):
        files = sorted(Path(p) for p in globlib.glob(spec) if Path(p).is_file())
        if not files:
            raise ShardError(f"{field}={spec!r} matches no files; check the glob")
        return [(f, str(f)) for f in files]
    folder = Path(spec)
    if not folder.is_dir():
        raise ShardError(f"{field}={spec!r} is neither a folder nor a glob that exists")
    files = sorted(f for f in folder.glob(pattern) if f.is_file())
    if not files:
        raise ShardError(
            f"{field}={spec!r} holds no manifest.json, nanoGPT train.bin/val.bin or {pattern} "
            "shards; tokenize it with `scaling prepare`, or read it as text (source 'text')"
        )
    return [(f, f.name) for f in files]


@dataclass(frozen=True)
class ShardLayout:
    """The shards of both splits and what describes them.

    Attributes:
        train: training shards, in order.
        val: validation shards, in order.
        manifest: the parsed ``manifest.json``, or ``None``.
        legacy: a nanoGPT ``train.bin``/``val.bin`` pair (hashed the pre-shard way).
    """

    train: tuple[Shard, ...]
    val: tuple[Shard, ...]
    manifest: dict[str, Any] | None
    legacy: bool


def read_manifest(folder: Path) -> dict[str, Any]:
    """Parse and check ``folder/manifest.json``.

    Raises:
        ShardError: not JSON, wrong format, unknown dtype, or missing split lists.
    """
    path = folder / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ShardError(f"{path} is unreadable ({e}); re-run scaling prepare") from None
    if not isinstance(doc, dict):
        raise ShardError(f"{path} must hold a JSON object; re-run scaling prepare")
    if doc.get("dtype") not in DTYPES:
        raise ShardError(f"{path}: 'dtype' must be one of {DTYPES}, got {doc.get('dtype')!r}")
    for split in ("train", "val"):
        entries = doc.get(split)
        if not isinstance(entries, list) or not entries:
            raise ShardError(f"{path}: {split!r} must list at least one shard")
    return doc


def _manifest_shards(folder: Path, doc: dict[str, Any], split: str) -> tuple[Shard, ...]:
    out = []
    for entry in doc[split]:
        entry = {"file": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ShardError(f"{folder / MANIFEST}: each {split} entry needs a 'file'")
        path = folder / entry["file"]
        shard = open_shard(path, entry["file"], header_required=False, dtype=doc["dtype"])
        n = entry.get("n_tokens")
        if n is not None and n != shard.n_tokens:
            raise ShardError(
                f"shard {path} holds {shard.n_tokens} tokens but {MANIFEST} says {n}; the "
                "shard or the manifest changed: re-run scaling prepare"
            )
        out.append(
            Shard(
                shard.path,
                shard.name,
                shard.dtype,
                shard.offset,
                shard.n_tokens,
                entry.get("max_id"),
                entry.get("sha256"),
            )
        )
    return tuple(out)


def discover(path: str, val_path: str | None) -> ShardLayout:
    """Find the train and val shards of ``DataConfig`` ``path``/``val_path`` (module docstring).

    Raises:
        ShardError: nothing found, an unusable shard, or a missing validation split (the
            message names the file or the field and the fix).
    """
    if _is_glob(path):
        if val_path is None:
            raise ShardError(
                f"data.path={path!r} is a glob of training shards; set data.val_path to the "
                "validation shards (folder or glob)"
            )
        train = tuple(open_shard(p, n, header_required=True) for p, n in _expand(path, "data.path"))
        val = tuple(
            open_shard(p, n, header_required=True) for p, n in _expand(val_path, "data.val_path")
        )
        return ShardLayout(train, val, None, False)
    folder = Path(path)
    if not folder.is_dir():
        raise ShardError(
            f"data.path={path!r} is not a folder; for source='tokens' give a folder (with "
            "manifest.json, train.bin/val.bin or *train*.bin shards) or a glob of shards"
        )
    if (folder / PREPARING_MARKER).exists():
        raise ShardError(
            f"data.path={path!r}: scaling prepare did not finish writing it ({PREPARING_MARKER} "
            "is there); re-run the same scaling prepare command"
        )
    if (folder / MANIFEST).is_file():
        if val_path is not None:
            raise ShardError(
                f"data.val_path is set but {folder / MANIFEST} already names the validation "
                "shards; remove data.val_path"
            )
        doc = read_manifest(folder)
        return ShardLayout(
            _manifest_shards(folder, doc, "train"), _manifest_shards(folder, doc, "val"), doc, False
        )
    if (folder / "train.bin").is_file() and val_path is None:
        if not (folder / "val.bin").is_file():
            raise ShardError(
                f"data.path: {folder / 'val.bin'} does not exist; write nanoGPT-layout val.bin "
                "or set data.val_path"
            )
        train = (
            open_shard(folder / "train.bin", "train.bin", header_required=False, dtype="uint16"),
        )
        val = (open_shard(folder / "val.bin", "val.bin", header_required=False, dtype="uint16"),)
        return ShardLayout(train, val, None, True)
    train_files = _expand(path, "data.path", "*train*.bin")
    if val_path is not None:
        val_files = _expand(val_path, "data.val_path")
    else:
        val_files = [(f, n) for f, n in _expand(path, "data.path") if "val" in n]
        if not val_files:
            raise ShardError(
                f"data.path={path!r} holds no *val*.bin shards; add some or set data.val_path"
            )
    train = tuple(open_shard(p, n, header_required=True) for p, n in train_files)
    val = tuple(open_shard(p, n, header_required=True) for p, n in val_files)
    return ShardLayout(train, val, None, False)


def _sampled_digest(shard: Shard) -> bytes:
    h = hashlib.sha256()
    size = shard.n_tokens * np.dtype(shard.dtype).itemsize
    block = min(SAMPLE_BLOCK_BYTES, size)
    offsets = np.linspace(0, size - block, SAMPLE_BLOCKS).astype(np.int64)
    with open(shard.path, "rb") as f:
        for off in np.unique(offsets):
            f.seek(shard.offset + int(off))
            h.update(f.read(block))
    return h.digest()


def scan(layout: ShardLayout, vocab_size: int) -> tuple[str, str, list[int | None]]:
    """Hash the corpus and find each shard's largest id cheaply (module docstring).

    Small corpora (<= ``FULL_HASH_BYTES``) are read in full: exact hash, exact maximum id. Larger
    ones: sampled digests, and the maximum from the manifest where it has one, else from the
    sampled blocks (the training loop also checks every batch it reads).

    Args:
        layout: the shards.
        vocab_size: not used for hashing; ids at or above it are reported by the caller.

    Returns:
        ``(sha256 hex, method, max_ids)``: method ``"full"`` or ``"sampled"``; one max id per
        shard (train then val), ``None`` where unknown.
    """
    del vocab_size
    shards = layout.train + layout.val
    total = sum(s.n_tokens * np.dtype(s.dtype).itemsize for s in shards)
    full = total <= FULL_HASH_BYTES
    h = hashlib.sha256()
    max_ids: list[int | None] = []
    for shard in shards:
        if not layout.legacy:
            h.update(f"{shard.name}\0{shard.dtype}\0{shard.n_tokens}\0".encode())
            if shard.sha256:
                h.update(shard.sha256.encode())
        if full:
            ids = shard.ids()
            m = -1
            for start in range(0, ids.size, _SCAN_CHUNK):
                chunk = ids[start : start + _SCAN_CHUNK]
                h.update(chunk.tobytes())
                m = max(m, int(chunk.max()))
            max_ids.append(m)
        else:
            h.update(_sampled_digest(shard))
            max_ids.append(shard.max_id)
    return h.hexdigest(), "full" if full else "sampled", max_ids


def manifest_train_tokens(path: str) -> int | None:
    """Training tokens of a ``source='tokens'`` path, from its manifest or headers; else ``None``.

    Cheap (no id is read): for sweep planning. ``None`` when the path does not exist or its
    shards cannot be opened.
    """
    try:
        layout = discover(path, None) if not _is_glob(path) else None
    except (ShardError, OSError):
        layout = None
    if layout is not None:
        return sum(s.n_tokens for s in layout.train)
    if _is_glob(path):
        try:
            return sum(
                open_shard(p, n, header_required=True).n_tokens
                for p, n in _expand(path, "data.path")
            )
        except (ShardError, OSError):
            return None
    return None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Full SHA-256 hex digest of a file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
