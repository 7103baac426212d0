"""Training and validation tokens: the corpus, its deterministic split, and batches.

Three sources (``DataConfig.source``):

- ``"stdlib"``: the running interpreter's standard-library ``.py`` files, byte tokens (vocab
  256). Nothing is downloaded. Without ``include_tests`` the ``test``/``tests``/``idle_test``
  folders are left out (~12 MB); with it they are kept (~30 MB). ``site-packages`` is never used.
- ``"text"``: a user's text file or folder, byte tokens. A folder is split by file like
  ``stdlib``; a single file (or a folder holding one file) gives its last ``val_fraction`` of
  bytes to validation.
- ``"tokens"``: token-id shards (``scaling.shards``): a ``scaling prepare`` folder with
  ``manifest.json``, nanoGPT ``train.bin``/``val.bin``, llm.c / modded-nanogpt headered shards
  (a folder of ``*train*.bin``/``*val*.bin`` or a glob plus ``val_path``); ``uint16`` or
  ``uint32`` ids read with ``np.memmap``, the dtype from the manifest or header. Every id must
  be ``< vocab_size``: a manifest's per-shard maximum, a full scan of corpora up to 256 MiB,
  and a check of every batch read (one ``max`` over the batch) for larger ones.

Files are split into train/val *by file*: a file goes to validation when the SHA-256 of its
relative path, read as a number in [0, 1), is below ``val_fraction``. The choice depends only on
the path, so it is stable when files are added, and the validation set spans many held-out files
(a prefix of one file reads ~0.08 nats lower; see docs/cpu-isoflop-notes.md). Files are joined
with a NUL byte (``SEPARATOR``), which source text does not contain.

Batches are a pure function of ``(seed, step)``: ``numpy.random.Generator(PCG64([seed, step]))``
draws one random start offset per sequence of the whole optimizer step, and micro-step ``m``
takes rows ``[m * micro_batch_size, (m + 1) * micro_batch_size)``. Over several shards the draw
is an index into all windows that fit inside one shard (``len - seq_len`` per shard, in shard
order), so every window is equally likely, none crosses a shard boundary, and a single shard
draws exactly the offsets it drew before shards existed. A resumed run therefore sees
exactly the batches it would have seen, and the micro-batch size changes nothing but memory. The
validation set is fixed, the same for every seed and run on the same data:
``val_tokens // seq_len`` non-overlapping ``seq_len`` windows shared out evenly between the
held-out files and spread across each (``val_window_starts``), so they cover every held-out
file rather than a prefix of the first few.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scaling import shards as shardlib
from scaling.config import DataConfig, RunConfig

SEPARATOR = 0  # byte joining files; NUL does not occur in source text
BYTE_VOCAB_SIZE = 256
_TEST_DIRS = frozenset({"test", "tests", "idle_test"})


class DataError(ValueError):
    """The corpus cannot be used as configured; the message names the field and the fix."""


@dataclass(frozen=True)
class DataInfo:
    """What a run trained on, recorded in ``config.json["data"]``.

    Attributes:
        source: ``DataConfig.source``.
        sha256: hex SHA-256 of the corpus content (relative paths and bytes of every file for
            ``stdlib``/``text``; ``train.bin`` then ``val.bin`` for ``tokens``).
        train_bytes: bytes in the training split (files plus separators; for ``tokens`` the
            size of ``train.bin``).
        val_bytes: bytes in the validation split.
        n_train_tokens: tokens in the training split.
        n_val_tokens: tokens in the validation split (the evaluated set is ``val_tokens`` of it).
        n_files_train: files (shards) in the training split.
        n_files_val: files (shards) in the validation split.
        dtype: id dtype of token shards (``"uint16"``/``"uint32"``); ``None`` for byte sources.
        hash_method: ``"full"`` (every byte hashed) or ``"sampled"`` (large token corpora;
            ``scaling.shards``).
    """

    source: str
    sha256: str
    train_bytes: int
    val_bytes: int
    n_train_tokens: int
    n_val_tokens: int
    n_files_train: int
    n_files_val: int
    dtype: str | None = None
    hash_method: str = "full"

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary with the contract keys."""
        return asdict(self)


class ShardSet:
    """The ids of one split in one or more shards, addressed as their concatenation.

    Attributes:
        shards: the ``scaling.shards.Shard`` files, in order.
        arrays: one read-only memmap per shard.
        bounds: ``int64[n + 1]`` start offset of each shard in the concatenation, then the size.
        size: total ids.
        dtype: numpy dtype of the ids.
    """

    def __init__(self, shards: tuple[shardlib.Shard, ...]) -> None:
        self.shards = shards
        self.arrays = [s.ids() for s in shards]
        lengths = np.array([a.size for a in self.arrays], dtype=np.int64)
        self.bounds = np.concatenate([[0], np.cumsum(lengths)])
        self.size = int(self.bounds[-1])
        self.dtype = self.arrays[0].dtype
        self.nbytes = sum(int(a.nbytes) for a in self.arrays)

    def segments(self) -> np.ndarray:
        """``int64[n, 2]`` ``[start, end)`` of each shard in the concatenation."""
        return np.stack([self.bounds[:-1], self.bounds[1:]], axis=1)

    def n_windows(self, seq_len: int) -> int:
        """Windows of ``seq_len + 1`` ids inside one shard: ``sum(max(len - seq_len, 0))``."""
        return int(np.maximum(np.diff(self.bounds) - seq_len, 0).sum())

    def window_starts(self, index: np.ndarray, seq_len: int) -> np.ndarray:
        """Map window indices in ``[0, n_windows)`` to start offsets in the concatenation."""
        per = np.maximum(np.diff(self.bounds) - seq_len, 0)
        cum = np.concatenate([[0], np.cumsum(per)])
        shard = np.searchsorted(cum, index, side="right") - 1
        return self.bounds[shard] + (index - cum[shard])

    def gather(self, starts: np.ndarray, length: int) -> np.ndarray:
        """``int64[len(starts), length]`` windows; each must lie inside one shard."""
        out = np.empty((starts.size, length), dtype=np.int64)
        shard = np.searchsorted(self.bounds, starts, side="right") - 1
        for i in np.unique(shard):
            rows = np.nonzero(shard == i)[0]
            local = starts[rows] - self.bounds[i]
            out[rows] = self.arrays[i][local[:, None] + np.arange(length)]
        return out

    def shard_name_at(self, offset: int) -> str:
        """Display name of the shard holding concatenation offset ``offset``."""
        i = int(np.searchsorted(self.bounds, offset, side="right") - 1)
        return str(self.shards[i].path)


@dataclass(frozen=True)
class TokenData:
    """Loaded token streams.

    Attributes:
        train: 1-D ids: ``uint8`` bytes, or one token shard's ``uint16``/``uint32`` memmap, or
            a ``ShardSet`` when the split has several shards.
        val: 1-D validation ids (array or ``ShardSet``, as ``train``).
        vocab_size: number of token ids.
        bytes_per_token: 1.0 for byte tokens; for a ``scaling prepare`` corpus the manifest's
            validation UTF-8 bytes per validation token (EOS included); ``None`` when unknown
            (other token files), in which case bits per byte cannot be reported.
        info: provenance for ``config.json``.
        val_segments: ``int64[n_docs, 2]`` ``[start, end)`` offsets of the held-out documents
            in ``val`` (each file with its trailing separator, or each validation shard);
            ``None`` means one document (a single text file's tail, or one token file).
        ids_checked: every id is known to be ``< vocab_size``; when ``False`` (a large corpus
            without a manifest) ``get_batch`` checks each batch.
    """

    train: np.ndarray | ShardSet
    val: np.ndarray | ShardSet
    vocab_size: int
    bytes_per_token: float | None
    info: DataInfo
    val_segments: np.ndarray | None = None
    ids_checked: bool = True


# -- loading ------------------------------------------------------------------------------------
def stdlib_files(include_tests: bool = False) -> tuple[Path, list[Path]]:
    """The interpreter's standard-library ``.py`` files, sorted by relative path.

    Args:
        include_tests: keep ``test``/``tests``/``idle_test`` folders.

    Returns:
        ``(root, files)``: the stdlib folder and the absolute paths of the files.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    return root, _walk(root, suffix=".py", skip_dirs=set() if include_tests else set(_TEST_DIRS))


def _walk(root: Path, suffix: str | None, skip_dirs: set[str]) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        # prune in place: never site-packages, never hidden folders, tests unless asked
        dirnames[:] = [
            d
            for d in dirnames
            if d not in skip_dirs
            and d != "site-packages"
            and not d.startswith(".")
            and d != "__pycache__"
        ]
        for name in filenames:
            if name.startswith(".") or (suffix is not None and not name.endswith(suffix)):
                continue
            path = Path(dirpath) / name
            if path.is_file():
                files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def is_val_file(rel_path: str, val_fraction: float) -> bool:
    """Whether a file belongs to the validation split.

    The SHA-256 of the POSIX relative path, read as a number in [0, 1), is compared with
    ``val_fraction``: a pure function of the path (independent of the seed and of other files).
    """
    h = int.from_bytes(hashlib.sha256(rel_path.encode("utf-8")).digest()[:8], "big")
    return h / 2.0**64 < val_fraction


def _split_files(root: Path, files: list[Path], val_fraction: float) -> tuple[list, list]:
    rels = [f.relative_to(root).as_posix() for f in files]
    val = [i for i, r in enumerate(rels) if is_val_file(r, val_fraction)]
    if not val:  # tiny folders: hold out the file whose hash is smallest, still path-determined
        val = [min(range(len(rels)), key=lambda i: hashlib.sha256(rels[i].encode()).digest())]
    if len(val) == len(rels):  # keep at least one training file
        val = val[:-1]
    val_set = set(val)
    train = [i for i in range(len(rels)) if i not in val_set]
    return [(rels[i], files[i]) for i in train], [(rels[i], files[i]) for i in val]


def _read_files(items: list[tuple[str, Path]], hasher: Any, field: str) -> tuple[bytes, list]:
    parts: list[bytes] = []
    for rel, path in items:
        try:
            content = path.read_bytes()
        except OSError as e:
            raise DataError(
                f"{field}: cannot read {path} ({e.strerror}); fix or remove it"
            ) from None
        hasher.update(rel.encode("utf-8") + b"\0" + len(content).to_bytes(8, "big"))
        hasher.update(content)
        parts.append(content)
    joined = bytes([SEPARATOR]).join(parts) + bytes([SEPARATOR]) if parts else b""
    return joined, [len(p) + 1 for p in parts]  # each file with its separator


def _byte_data(root: Path, files: list[Path], cfg: DataConfig, field: str) -> TokenData:
    if not files:
        raise DataError(f"{field}: no files found under {root}; point it at a non-empty corpus")
    hasher = hashlib.sha256()
    if len(files) == 1:  # one file: its tail is the validation split
        content = _read_files([(files[0].name, files[0])], hasher, field)[0][:-1]
        if not content:
            raise DataError(f"{field}: corpus {files[0]} is empty; give a file with text in it")
        n_val = max(1, int(len(content) * cfg.val_fraction))
        train_b, val_b = content[:-n_val], content[-n_val:]
        n_train_files, n_val_files = 1, 1
        val_segments = None
    else:
        train_items, val_items = _split_files(root, files, cfg.val_fraction)
        train_b, _ = _read_files(train_items, hasher, field)
        val_b, val_lengths = _read_files(val_items, hasher, field)
        ends = np.cumsum(val_lengths, dtype=np.int64)
        val_segments = np.stack([ends - np.asarray(val_lengths, dtype=np.int64), ends], axis=1)
        n_train_files, n_val_files = len(train_items), len(val_items)
        if len(train_b) + len(val_b) == n_train_files + n_val_files:  # only separators
            raise DataError(f"{field}: every file under {root} is empty; give a non-empty corpus")
    train = np.frombuffer(train_b, dtype=np.uint8)
    val = np.frombuffer(val_b, dtype=np.uint8)
    info = DataInfo(
        source=cfg.source,
        sha256=hasher.hexdigest(),
        train_bytes=len(train_b),
        val_bytes=len(val_b),
        n_train_tokens=int(train.size),
        n_val_tokens=int(val.size),
        n_files_train=n_train_files,
        n_files_val=n_val_files,
    )
    return TokenData(train, val, BYTE_VOCAB_SIZE, 1.0, info, val_segments)


def _token_data(cfg: DataConfig, vocab_size: int) -> TokenData:
    try:
        layout = shardlib.discover(str(cfg.path), cfg.val_path)
    except shardlib.ShardError as e:
        raise DataError(str(e)) from None
    manifest = layout.manifest
    if manifest is not None:
        m_vocab = manifest.get("vocab_size")
        if isinstance(m_vocab, int) and m_vocab > vocab_size:
            raise DataError(
                f"data.path: {Path(str(cfg.path)) / shardlib.MANIFEST} has vocab_size {m_vocab} "
                f"> model.vocab_size={vocab_size}; set model.vocab_size to at least {m_vocab}"
            )
    sha, method, max_ids = shardlib.scan(layout, vocab_size)
    for shard, max_id in zip(layout.train + layout.val, max_ids, strict=True):
        if max_id is not None and max_id >= vocab_size:
            raise DataError(
                f"data.path: {shard.path} holds token id {max_id} >= model.vocab_size="
                f"{vocab_size}; set model.vocab_size to at least {max_id + 1} or re-tokenize"
            )
    train_set, val_set = ShardSet(layout.train), ShardSet(layout.val)
    # one shard per split: the plain memmap (the same arrays and batches as before shards)
    train = train_set.arrays[0] if len(layout.train) == 1 else train_set
    val = val_set.arrays[0] if len(layout.val) == 1 else val_set
    info = DataInfo(
        source=cfg.source,
        sha256=sha,
        train_bytes=int(train.nbytes),
        val_bytes=int(val.nbytes),
        n_train_tokens=train.size,
        n_val_tokens=val.size,
        n_files_train=len(layout.train),
        n_files_val=len(layout.val),
        dtype=layout.train[0].dtype,
        hash_method=method,
    )
    # every id was checked when the corpus was read in full or the manifest gives the maxima
    checked = method == "full" or all(m is not None for m in max_ids)
    segments = val_set.segments() if len(layout.val) > 1 else None
    # bits per byte: a prepared corpus records the UTF-8 bytes of its documents
    bytes_per_token = None
    if manifest is not None:
        text_bytes, n_val = manifest.get("val_text_bytes"), manifest.get("n_val_tokens")
        if isinstance(text_bytes, int) and isinstance(n_val, int) and text_bytes > 0 and n_val:
            bytes_per_token = text_bytes / n_val
    return TokenData(train, val, vocab_size, bytes_per_token, info, segments, ids_checked=checked)


def load_data(cfg: DataConfig, vocab_size: int = BYTE_VOCAB_SIZE) -> TokenData:
    """Load and split a corpus (module docstring describes the sources and the split).

    Args:
        cfg: where the tokens come from.
        vocab_size: the model's vocabulary; must be >= 256 for byte sources, and bounds every id
            of a token file.

    Returns:
        TokenData with 1-D train and val id arrays and provenance.

    Raises:
        DataError: missing or unreadable path, empty corpus, ids >= ``vocab_size``, or a byte
            source with ``vocab_size < 256``.
    """
    if cfg.source == "tokens":
        return _token_data(cfg, vocab_size)
    if vocab_size < BYTE_VOCAB_SIZE:
        raise DataError(
            f"model.vocab_size={vocab_size} is too small for byte tokens (source={cfg.source!r}); "
            f"set it to {BYTE_VOCAB_SIZE}"
        )
    if cfg.source == "stdlib":
        root, files = stdlib_files(cfg.include_tests)
        return _byte_data(root, files, cfg, "data.source='stdlib'")
    path = Path(cfg.path or "")
    if path.is_file():
        return _byte_data(path.parent, [path], cfg, "data.path")
    if path.is_dir():
        return _byte_data(path, _walk(path, suffix=None, skip_dirs=set()), cfg, "data.path")
    raise DataError(f"data.path={cfg.path!r} does not exist; give an existing text file or folder")


def check_data_for_run(data: TokenData, cfg: RunConfig) -> None:
    """Check that the corpus can feed ``cfg`` before any compute.

    Raises:
        DataError: ``seq_len`` longer than the train or val split, a corpus smaller than one
            batch plus the validation set, or a validation split shorter than ``val_tokens``.
    """
    seq_len = cfg.model.seq_len
    n_train, n_val = int(data.train.size), int(data.val.size)
    if isinstance(data.train, ShardSet) and data.train.n_windows(seq_len) == 0:
        raise DataError(
            f"model.seq_len={seq_len} is longer than every training shard; lower seq_len or "
            "write longer shards (scaling prepare --shard-tokens)"
        )
    if seq_len + 1 > n_train:
        raise DataError(
            f"model.seq_len={seq_len} is longer than the training split ({n_train} tokens); "
            "lower seq_len or use a bigger corpus"
        )
    if seq_len + 1 > n_val:
        raise DataError(
            f"model.seq_len={seq_len} is longer than the validation split ({n_val} tokens); "
            "lower seq_len or raise data.val_fraction"
        )
    need = cfg.batch_size_tokens + cfg.data.val_tokens
    if n_train + n_val < need:
        raise DataError(
            f"corpus has {n_train + n_val} tokens, fewer than one batch plus the validation set "
            f"(batch_size_tokens={cfg.batch_size_tokens} + data.val_tokens="
            f"{cfg.data.val_tokens}); use a bigger corpus or shrink them"
        )
    if cfg.data.val_tokens + 1 > n_val:
        raise DataError(
            f"data.val_tokens={cfg.data.val_tokens} exceeds the validation split ({n_val} tokens, "
            "one is kept for the shifted target); lower val_tokens or raise data.val_fraction"
        )
    if cfg.data.val_tokens < seq_len:
        raise DataError(
            f"data.val_tokens={cfg.data.val_tokens} is less than one window of model.seq_len="
            f"{seq_len}; raise val_tokens"
        )
    val_window_starts(data, seq_len, cfg.data.val_tokens)  # raises if the windows do not fit


# -- batches ------------------------------------------------------------------------------------
def _windows(ids: np.ndarray | ShardSet, starts: np.ndarray, seq_len: int) -> tuple[Any, Any]:
    import torch

    if isinstance(ids, ShardSet):
        chunk = ids.gather(starts, seq_len + 1)
    else:
        chunk = np.asarray(ids[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int64)
    chunk_t = torch.from_numpy(chunk)
    return chunk_t[:, :-1], chunk_t[:, 1:]


def batch_offsets(
    n_train_tokens: int, seed: int, step: int, n_rows: int, seq_len: int
) -> np.ndarray:
    """Start offsets of every sequence of optimizer step ``step``: a pure function of its inputs.

    Args:
        n_train_tokens: length of the training split.
        seed: ``RunConfig.seed``.
        step: 0-based optimizer step.
        n_rows: sequences per optimizer step (``batch_size_tokens // seq_len``).
        seq_len: tokens per sequence.

    Returns:
        ``int64[n_rows]`` offsets in ``[0, n_train_tokens - seq_len - 1]``.
    """
    rng = np.random.Generator(np.random.PCG64([seed, step]))
    return rng.integers(0, n_train_tokens - seq_len, size=n_rows, dtype=np.int64)


def get_batch(data: TokenData, cfg: RunConfig, step: int, micro_step: int) -> tuple[Any, Any]:
    """Training micro-batch ``micro_step`` of optimizer step ``step`` (0-based).

    Args:
        data: loaded tokens.
        cfg: run configuration (seed, seq_len, batch sizes).
        step: 0-based optimizer step.
        micro_step: ``0 <= micro_step < cfg.grad_accum_steps``.

    Returns:
        ``(x, y)``: CPU ``torch.int64`` tensors ``[micro_batch_size, seq_len]``; ``y`` is ``x``
        shifted left by one token.

    Raises:
        ValueError: ``micro_step`` out of range.
    """
    if not 0 <= micro_step < cfg.grad_accum_steps:
        raise ValueError(f"micro_step={micro_step} must be in [0, {cfg.grad_accum_steps})")
    seq_len = cfg.model.seq_len
    n_rows = cfg.batch_size_tokens // seq_len
    train = data.train
    if isinstance(train, ShardSet):
        # window indices over all shards; one shard gives the same draw as a plain array
        index = batch_offsets(train.n_windows(seq_len) + seq_len, cfg.seed, step, n_rows, seq_len)
        starts = train.window_starts(index, seq_len)
    else:
        starts = batch_offsets(int(train.size), cfg.seed, step, n_rows, seq_len)
    mb = cfg.micro_batch_size
    starts = starts[micro_step * mb : (micro_step + 1) * mb]
    x, y = _windows(train, starts, seq_len)
    if not data.ids_checked:  # large corpus without a manifest: one max per batch
        row_max = np.maximum(x.numpy().max(axis=1), y.numpy().max(axis=1))
        bad = np.nonzero(row_max >= data.vocab_size)[0]
        if bad.size:
            where = (
                train.shard_name_at(int(starts[bad[0]]))
                if isinstance(train, ShardSet)
                else getattr(train, "filename", None) or cfg.data.path  # one shard's memmap
            )
            raise DataError(
                f"data.path: {where} holds a token id >= "
                f"model.vocab_size={data.vocab_size}; raise model.vocab_size or re-tokenize"
            )
    return x, y


def _spread(start: int, length: int, k: int, seq_len: int) -> np.ndarray:
    # k windows of seq_len (+1 target token) spread evenly over [start, start + length)
    stride = (length - 1 - seq_len) // (k - 1) if k > 1 else 0
    return start + np.arange(k, dtype=np.int64) * stride


def val_window_starts(data: TokenData, seq_len: int, val_tokens: int) -> np.ndarray:
    """Start offsets of the fixed validation windows (independent of the seed).

    ``n = val_tokens // seq_len`` non-overlapping windows of ``seq_len`` tokens (plus the
    shifted target). The windows are shared out as evenly as possible between the held-out
    documents (water-filling: every document gets the same number, capped by what fits in it,
    ``(len - 1) // seq_len``), so one huge held-out file (e.g. ``pydoc_data/topics.py``, 74% of
    the default stdlib validation bytes) does not dominate; inside a document they are spaced
    evenly from its start to its end. A single-document split gets ``n`` evenly spaced windows.

    Returns:
        ``int64[n]`` offsets into ``data.val``, increasing.

    Raises:
        DataError: the validation documents cannot hold ``n`` windows of ``seq_len``.
    """
    n = val_tokens // seq_len
    segs = data.val_segments
    if segs is None:
        segs = np.array([[0, int(data.val.size)]], dtype=np.int64)
    lengths = segs[:, 1] - segs[:, 0]
    caps = np.maximum(lengths - 1, 0) // seq_len
    if int(caps.sum()) < n:
        raise DataError(
            f"data.val_tokens={val_tokens} needs {n} windows of model.seq_len={seq_len}, but the "
            f"held-out documents fit only {int(caps.sum())}; lower val_tokens or raise "
            "data.val_fraction"
        )
    counts = np.zeros_like(caps)
    remaining = n
    while remaining > 0:  # water-filling, in document order for the remainder
        open_docs = np.nonzero(counts < caps)[0]
        share = max(1, remaining // open_docs.size)
        for i in open_docs:
            take = min(share, int(caps[i] - counts[i]), remaining)
            counts[i] += take
            remaining -= take
            if remaining == 0:
                break
    parts = [
        _spread(int(segs[i, 0]), int(lengths[i]), int(counts[i]), seq_len)
        for i in range(len(segs))
        if counts[i] > 0
    ]
    return np.concatenate(parts)


def val_batches(
    data: TokenData, seq_len: int, val_tokens: int, micro_batch_size: int
) -> Iterator[tuple[Any, Any]]:
    """The fixed validation set, ``micro_batch_size`` windows at a time.

    Windows are ``val_window_starts`` (independent of the seed); the last batch may be smaller.

    Yields:
        ``(x, y)``: ``torch.int64`` tensors ``[<= micro_batch_size, seq_len]``.
    """
    starts = val_window_starts(data, seq_len, val_tokens)
    for i in range(0, starts.size, micro_batch_size):
        yield _windows(data.val, starts[i : i + micro_batch_size], seq_len)
