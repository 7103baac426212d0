"""``scaling prepare`` throughput in tokens/s, with 1 and with 2 worker processes.

Usage::

    .venv/bin/python benchmarks/prepare_throughput.py           # ~8 MB of stdlib text
    .venv/bin/python benchmarks/prepare_throughput.py --quick   # ~2 MB

The corpus is standard-library ``.py`` files (the project's own stdlib corpus, nothing
downloaded), half as plain text files and half re-packed as JSONL documents, so both input
paths are timed. The tokenizer is a byte-level BPE with an 8192-token vocabulary trained here on
the first 1 MB (``tokenizers``' trainer; not timed). Each configuration prepares into a fresh
folder; the time is the wall clock of ``prepare()`` (worker start-up, tokenization, writing
shards and the manifest; source hashing included), and the CPU time of the worker processes
(``getrusage(RUSAGE_CHILDREN)``), whose tokens per CPU-second times the cores is what a machine
with free cores would reach: the machine is shared, so wall-clock rates move with its load. The
last line is the result: tokens/s with 2 workers, the speed-up over 1 worker, the CPU-time rate
and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from scaling.data import stdlib_files
from scaling.prepare import prepare


def build_corpus(folder: Path, n_bytes: int) -> tuple[list[str], int]:
    """Copy stdlib files into ``folder/text`` and ``folder/docs.jsonl`` up to ``n_bytes``."""
    _, files = stdlib_files()
    (folder / "text").mkdir(parents=True)
    total, docs = 0, []
    for i, f in enumerate(files):
        raw = f.read_bytes()
        if i % 2:
            (folder / "text" / f"{i:05d}_{f.name}").write_bytes(raw)
        else:
            docs.append(json.dumps({"text": raw.decode("utf-8", "replace")}))
        total += len(raw)
        if total >= n_bytes:
            break
    (folder / "docs.jsonl").write_text("\n".join(docs) + "\n")
    return [str(folder / "text"), str(folder / "docs.jsonl")], total


def train_tokenizer(inputs: list[str], path: Path, vocab_size: int = 8192) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text_files = sorted(Path(inputs[0]).iterdir())
    sample, size = [], 0
    for f in text_files:
        sample.append(str(f))
        size += f.stat().st_size
        if size > 1 << 20:
            break
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train(sample, trainer)
    tok.save(str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~2 MB instead of ~8 MB")
    args = parser.parse_args(argv)
    n_bytes = (2 if args.quick else 8) << 20
    root = Path(tempfile.mkdtemp(prefix="prepare-bench-"))
    try:
        inputs, total = build_corpus(root, n_bytes)
        train_tokenizer(inputs, root / "tokenizer.json")
        print(f"corpus {total / 1e6:.1f} MB (text + JSONL), BPE vocab 8192, cpus {os.cpu_count()}")
        print(
            f"{'workers':>7s} {'tokens':>11s} {'seconds':>8s} {'tokens/s':>10s} {'MB/s':>6s} "
            f"{'worker CPU s':>12s} {'tok/CPU-s':>10s}"
        )
        rates, cpu_rates = {}, {}
        for workers in (1, 2):
            out = root / f"out{workers}"
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            m = prepare(
                str(root / "tokenizer.json"),
                inputs,
                str(out),
                shard_tokens=1_000_000,
                val_fraction=0.05,
                workers=workers,
                progress=False,
            )
            dt = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the pool's workers, reaped
            cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
            n = m["n_train_tokens"] + m["n_val_tokens"]
            rates[workers], cpu_rates[workers] = n / dt, n / cpu
            print(
                f"{workers:7d} {n:11,d} {dt:8.2f} {n / dt:10,.0f} {total / dt / 1e6:6.2f} "
                f"{cpu:12.2f} {n / cpu:10,.0f}"
            )
        load = os.getloadavg()[0]
        print(
            f"scaling prepare: {rates[2]:,.0f} tokens/s with 2 workers on 2 cores "
            f"({rates[2] / rates[1]:.2f}x of 1 worker; {cpu_rates[2]:,.0f} tokens per worker "
            f"CPU-second, so ~{2 * cpu_rates[2]:,.0f} tokens/s on 2 free cores; load {load:.1f})"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
