"""``scaling prepare``: tokenize text with a local Hugging Face tokenizer into token shards.

``scaling prepare --tokenizer tokenizer.json --input PATH... --out DIR [--text-field F]
[--val-fraction X] [--shard-tokens N] [--eos TOKEN] [--workers K]``

Inputs are text files, folders (walked recursively, sorted, hidden files skipped) and JSON-lines
files (``.jsonl``/``.ndjson``: one document per line, its text in ``--text-field``, default
``"text"``). A text file is one document. Nothing is downloaded: the tokenizer is a local
``tokenizers`` JSON file (``Tokenizer.from_file``).

What it writes (``scaling.shards`` reads it):

- ``train_000000.bin, ...`` and ``val_000000.bin, ...``: llm.c shards (a 256-int32 header with
  magic, version and token count, then the ids), ``uint16`` when the vocabulary fits in 16 bits
  else ``uint32``; each at most ``--shard-tokens`` ids. Every document is followed by the EOS id,
  so EOS separates documents (and ends the last one).
- ``manifest.json`` (written last): vocab size, dtype, EOS id and token, token and document
  counts, UTF-8 bytes per split (so runs report ``val/bpb``), per shard its token count, maximum
  id and the SHA-256 of its ids, and the SHA-256 and size of every source file and of the
  tokenizer.

The split is by document and deterministic: a document goes to validation when the SHA-256 of
``"<source name>@<byte offset>"``, read as a number in [0, 1), is below ``--val-fraction``, so it
depends neither on the number of workers nor on the other inputs.

Work is shared by ``--workers`` processes (default: the CPU count), each holding its own
tokenizer (Rust threads off, so K processes use K cores); tasks are whole text files or
line-aligned ~4 MiB ranges of JSONL, and results are written in input order, so the output is
the same for any K. A tqdm bar counts input bytes. Workers are *spawned* (fresh interpreters, no
forked tokenizer thread pools), so a script that calls ``prepare()`` needs Python's usual
``if __name__ == "__main__":`` guard.

Safe to re-run: with the same inputs, tokenizer and options, a finished ``DIR`` is left as is
("up to date"); a different finished prepare in ``DIR`` is an error (nothing is overwritten).
Shards are written to a temporary name and renamed when complete, and a ``PREPARING`` marker
exists from the first shard until the manifest is in place: a killed prepare leaves no shard a
run could read (the loader refuses a folder with the marker), and re-running starts it over.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scaling import rundir
from scaling import shards as shardlib

MARKER = shardlib.PREPARING_MARKER
TASK_BYTES = 4 << 20  # JSONL bytes per worker task
JSONL_SUFFIXES = (".jsonl", ".ndjson")
EOS_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eos|>", "[EOS]", "<EOS>")
DEFAULT_SHARD_TOKENS = 100_000_000


class PrepareError(ValueError):
    """Bad input to ``scaling prepare``; the message names the file or flag and the fix."""


# -- inputs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One input file: its display name (relative to the input given), path, size, kind."""

    name: str
    path: Path
    size: int
    jsonl: bool


def find_sources(inputs: list[str]) -> list[Source]:
    """Expand ``--input`` paths to files, in order (folders walked, sorted).

    Raises:
        PrepareError: a path does not exist, or no file is found.
    """
    out: list[Source] = []
    for spec in inputs:
        path = Path(spec)
        if path.is_file():
            files = [(path.name, path)]
        elif path.is_dir():
            files = []
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith("."):
                        f = Path(dirpath) / name
                        files.append((f"{path.name}/{f.relative_to(path).as_posix()}", f))
            files.sort(key=lambda t: t[0])
        else:
            raise PrepareError(f"--input {spec}: no such file or folder; check the path")
        for name, f in files:
            out.append(Source(name, f, f.stat().st_size, f.suffix.lower() in JSONL_SUFFIXES))
    if not out:
        raise PrepareError(f"--input {' '.join(inputs)}: no files found; give text or JSONL files")
    return out


def check_jsonl_head(source: Source, text_field: str) -> None:
    """Check the first non-empty line of a JSONL file before any compute.

    Raises:
        PrepareError: the line is not a JSON object with a string ``text_field``.
    """
    with open(source.path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                _doc_text(line, source.name, lineno, text_field)
                return


def _doc_text(line: bytes, name: str, where: int | str, text_field: str) -> str:
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as e:
        raise PrepareError(
            f"input {name} line {where} is not JSON ({e.msg}); fix the line or pass a plain "
            "text file (not .jsonl)"
        ) from None
    text = doc.get(text_field) if isinstance(doc, dict) else None
    if not isinstance(text, str):
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise PrepareError(
            f"input {name} line {where} has no string field {text_field!r} (keys: {keys}); "
            "pass --text-field with the field that holds the text"
        )
    return text


def is_val_doc(key: str, val_fraction: float) -> bool:
    """Whether the document keyed ``"<source name>@<byte offset>"`` goes to validation."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return h / 2.0**64 < val_fraction


# -- worker side ----------------------------------------------------------------------------------
_TOKENIZER: Any = None


def _init_worker(tokenizer_path: str) -> None:
    global _TOKENIZER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per worker process
    from tokenizers import Tokenizer

    _TOKENIZER = Tokenizer.from_file(tokenizer_path)


@dataclass
class _Result:
    ids: dict[str, list[np.ndarray]] = field(default_factory=lambda: {"train": [], "val": []})
    docs: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    text_bytes: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    input_bytes: int = 0


def _tokenize_task(task: tuple[str, str, bool, int, int, str, float, int, str]) -> _Result:
    name, path, jsonl, start, end, text_field, val_fraction, eos_id, dtype = task
    with open(path, "rb") as f:
        f.seek(start)
        raw = f.read(end - start)
    docs: list[tuple[str, str]] = []  # (key, text)
    if jsonl:
        offset = start
        for line in raw.split(b"\n"):
            if line.strip():
                docs.append(
                    (f"{name}@{offset}", _doc_text(line, name, f"at byte {offset}", text_field))
                )
            offset += len(line) + 1
    else:
        try:
            docs.append((f"{name}@0", raw.decode("utf-8")))
        except UnicodeDecodeError as e:
            raise PrepareError(
                f"input {name} is not UTF-8 text (byte {e.start}); convert it or remove it"
            ) from None
    result = _Result(input_bytes=len(raw))
    encodings = _TOKENIZER.encode_batch([t for _, t in docs], add_special_tokens=False)
    for (key, text), enc in zip(docs, encodings, strict=True):
        split = "val" if is_val_doc(key, val_fraction) else "train"
        ids = np.empty(len(enc.ids) + 1, dtype=dtype)
        ids[:-1] = enc.ids
        ids[-1] = eos_id
        result.ids[split].append(ids)
        result.docs[split] += 1
        result.text_bytes[split] += len(text.encode("utf-8"))
    return result


def make_tasks(sources: list[Source], args: tuple[str, float, int, str]) -> Iterator[tuple]:
    """Worker tasks in input order: whole text files, ~4 MiB line-aligned JSONL ranges."""
    for s in sources:
        if not s.jsonl:
            yield (s.name, str(s.path), False, 0, s.size, *args)
            continue
        with open(s.path, "rb") as f:
            start = 0
            while start < s.size:
                f.seek(min(start + TASK_BYTES, s.size))
                f.readline()  # to the end of the line that crosses the boundary
                end = min(f.tell(), s.size) if start + TASK_BYTES < s.size else s.size
                yield (s.name, str(s.path), True, start, end, *args)
                start = end


# -- writing --------------------------------------------------------------------------------------
class _ShardWriter:
    """Streams ids of one split into shards of at most ``shard_tokens`` (tmp file + rename)."""

    def __init__(self, out: Path, split: str, dtype: str, shard_tokens: int) -> None:
        self.out, self.split, self.dtype, self.shard_tokens = out, split, dtype, shard_tokens
        self.entries: list[dict[str, Any]] = []
        self._file: Any = None

    def _open(self) -> None:
        self.name = f"{self.split}_{len(self.entries):06d}.bin"
        self.tmp = self.out / f".tmp-{self.name}"
        self._file = open(self.tmp, "wb")  # noqa: SIM115 - closed in _close
        self._file.write(shardlib.shard_header(self.dtype, 0))  # count patched on close
        self.n, self.max_id, self.sha = 0, -1, hashlib.sha256()

    def _close(self) -> None:
        f = self._file
        f.seek(0)
        f.write(shardlib.shard_header(self.dtype, self.n))
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(self.tmp, self.out / self.name)  # the shard appears whole or not at all
        self.entries.append(
            {
                "file": self.name,
                "n_tokens": self.n,
                "max_id": self.max_id,
                "sha256": self.sha.hexdigest(),
            }
        )
        self._file = None

    def add(self, ids: np.ndarray) -> None:
        while ids.size:
            if self._file is None:
                self._open()
            take = ids[: self.shard_tokens - self.n]
            data = take.tobytes()
            self._file.write(data)
            self.sha.update(data)
            self.n += take.size
            self.max_id = max(self.max_id, int(take.max()))
            ids = ids[take.size :]
            if self.n == self.shard_tokens:
                self._close()

    def finish(self) -> list[dict[str, Any]]:
        if self._file is not None and self.n:
            self._close()
        return self.entries


# -- the command ----------------------------------------------------------------------------------
def load_tokenizer(path: str) -> Any:
    """Parse a ``tokenizers`` JSON file.

    Raises:
        PrepareError: missing, or not a tokenizer file.
    """
    from tokenizers import Tokenizer

    if not Path(path).is_file():
        raise PrepareError(f"--tokenizer {path}: no such file; give a tokenizer.json")
    try:
        return Tokenizer.from_file(path)
    except Exception as e:  # the Rust parser raises a bare Exception
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PrepareError(
            f"--tokenizer {path} does not parse as a Hugging Face tokenizers file ({first}); "
            "give the tokenizer.json saved by tokenizers / transformers"
        ) from None


def find_eos(tokenizer: Any, eos: str | None, path: str) -> tuple[int, str]:
    """The EOS id and token: ``eos`` if given, else the first known EOS token in the vocab.

    Raises:
        PrepareError: the token is not in the vocabulary.
    """
    for token in (eos,) if eos is not None else EOS_CANDIDATES:
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return int(token_id), token
    wanted = repr(eos) if eos is not None else f"any of {list(EOS_CANDIDATES)}"
    raise PrepareError(
        f"--tokenizer {path} has no token {wanted}; pass --eos with its end-of-document token"
    )


def _options_key(manifest: dict[str, Any]) -> dict[str, Any]:
    keys = ("tokenizer", "sources", "text_field", "val_fraction", "shard_tokens", "eos_token")
    return {k: manifest.get(k) for k in keys}


def prepare(
    tokenizer: str,
    inputs: list[str],
    out: str,
    *,
    text_field: str = "text",
    val_fraction: float = 0.01,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    eos: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Tokenize ``inputs`` into shards and ``manifest.json`` under ``out`` (module docstring).

    Args:
        tokenizer: path of a ``tokenizers`` JSON file.
        inputs: text files, folders, JSONL files.
        out: output folder (created).
        text_field: JSONL field holding the text.
        val_fraction: expected fraction of documents held out, in (0, 0.5).
        shard_tokens: maximum ids per shard.
        eos: end-of-document token (default: the first of ``EOS_CANDIDATES`` in the vocab).
        workers: worker processes (default: CPU count).
        progress: show a tqdm bar on stderr.

    Returns:
        The manifest (also in ``out/manifest.json``), with ``"up_to_date": True`` added when
        nothing had to be done.

    Raises:
        PrepareError: bad flag, missing input, tokenizer that does not parse, EOS missing, JSONL
            without the text field, or ``out`` holding a different finished prepare; all before
            any shard is written.
    """
    import multiprocessing as mp

    from tqdm.auto import tqdm

    if not 0 < val_fraction < 0.5:
        raise PrepareError(f"--val-fraction must be in (0, 0.5), got {val_fraction}")
    if shard_tokens < 1:
        raise PrepareError(f"--shard-tokens must be >= 1, got {shard_tokens}")
    workers = workers or os.cpu_count() or 1
    tok = load_tokenizer(tokenizer)
    eos_id, eos_token = find_eos(tok, eos, tokenizer)
    vocab_size = int(tok.get_vocab_size(with_added_tokens=True))
    dtype = shardlib.dtype_for_vocab(vocab_size)
    sources = find_sources(inputs)
    for s in sources:
        if s.jsonl:
            check_jsonl_head(s, text_field)
    out_dir = Path(out)
    manifest: dict[str, Any] = {
        "format": shardlib.MANIFEST_FORMAT,
        "version": 1,
        "dtype": dtype,
        "vocab_size": vocab_size,
        "eos_id": eos_id,
        "eos_token": eos_token,
        "tokenizer": {"path": str(tokenizer), "sha256": shardlib.file_sha256(tokenizer)},
        "text_field": text_field,
        "val_fraction": val_fraction,
        "shard_tokens": shard_tokens,
        "sources": [
            {"name": s.name, "bytes": s.size, "sha256": shardlib.file_sha256(s.path)}
            for s in sources
        ],
    }
    manifest_path = out_dir / shardlib.MANIFEST
    if manifest_path.is_file() and not (out_dir / MARKER).exists():
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        if isinstance(old, dict) and _options_key(old) == _options_key(manifest):
            return {**old, "up_to_date": True}
        raise PrepareError(
            f"--out {out_dir} already holds a finished prepare of other inputs or options; "
            "give a new --out folder or delete it"
        )

    # -- start (or start over): marker first, then clear our own files --------------------------
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("scaling prepare is writing this folder\n")
    for f in out_dir.iterdir():
        if f.name.startswith((".tmp-", "train_", "val_")) or f.name == shardlib.MANIFEST:
            f.unlink()
    writers = {sp: _ShardWriter(out_dir, sp, dtype, shard_tokens) for sp in ("train", "val")}
    docs = {"train": 0, "val": 0}
    text_bytes = {"train": 0, "val": 0}
    t0 = time.perf_counter()
    tasks = make_tasks(sources, (text_field, val_fraction, eos_id, dtype))
    bar = tqdm(
        total=sum(s.size for s in sources),
        unit="B",
        unit_scale=True,
        desc="prepare",
        disable=not progress,
    )
    ctx = mp.get_context("spawn")  # a fresh tokenizer per worker, no forked Rust thread pools
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(tokenizer),)) as pool:
        for res in pool.imap(_tokenize_task, tasks):
            for sp in ("train", "val"):
                for ids in res.ids[sp]:
                    writers[sp].add(ids)
                docs[sp] += res.docs[sp]
                text_bytes[sp] += res.text_bytes[sp]
            bar.update(res.input_bytes)
    bar.close()
    entries = {sp: w.finish() for sp, w in writers.items()}
    for sp in ("train", "val"):
        if not entries[sp]:
            raise PrepareError(
                f"no document went to the {sp} split ({docs['train'] + docs['val']} documents); "
                + ("raise --val-fraction or add documents" if sp == "val" else "add documents")
            )
    elapsed = time.perf_counter() - t0
    n_tokens = {sp: sum(e["n_tokens"] for e in entries[sp]) for sp in entries}
    manifest.update(
        {
            "n_train_tokens": n_tokens["train"],
            "n_val_tokens": n_tokens["val"],
            "n_train_docs": docs["train"],
            "n_val_docs": docs["val"],
            "train_text_bytes": text_bytes["train"],
            "val_text_bytes": text_bytes["val"],
            "train": entries["train"],
            "val": entries["val"],
        }
    )
    rundir.atomic_write_text(manifest_path, json.dumps(manifest, indent=2))
    (out_dir / MARKER).unlink()
    return {**manifest, "elapsed_s": elapsed, "workers": workers}


# -- CLI ------------------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    """Add the ``prepare`` subcommand to the top-level ``scaling`` parser."""
    p = subparsers.add_parser(
        "prepare",
        help="tokenize text/JSONL with a local tokenizer.json into token shards + manifest.json",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--tokenizer", required=True, help="a Hugging Face tokenizers JSON file")
    p.add_argument("--input", required=True, nargs="+", help="text files, folders, JSONL files")
    p.add_argument("--out", required=True, help="output folder for shards and manifest.json")
    p.add_argument("--text-field", default="text", help="JSONL field holding the text")
    p.add_argument("--val-fraction", type=float, default=0.01, help="documents held out")
    p.add_argument(
        "--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS, help="maximum ids per shard"
    )
    p.add_argument("--eos", default=None, help="end-of-document token (default: found in vocab)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPUs)")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    m = prepare(
        args.tokenizer,
        args.input,
        args.out,
        text_field=args.text_field,
        val_fraction=args.val_fraction,
        shard_tokens=args.shard_tokens,
        eos=args.eos,
        workers=args.workers,
        progress=sys.stderr.isatty(),
    )
    n = m["n_train_tokens"] + m["n_val_tokens"]
    if m.get("up_to_date"):
        print(f"{args.out}: up to date ({n:,} tokens, {m['dtype']}); nothing to do")
    else:
        rate = n / m["elapsed_s"] if m["elapsed_s"] > 0 else float("nan")
        print(
            f"{args.out}: {m['n_train_tokens']:,} train + {m['n_val_tokens']:,} val tokens in "
            f"{len(m['train'])} + {len(m['val'])} {m['dtype']} shards, vocab {m['vocab_size']:,}, "
            f"{rate:,.0f} tokens/s with {m['workers']} workers"
        )
    return 0
