"""``scaling prepare``: a real BPE tokenizer, real worker processes, real kill -9, then training."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scaling import shards
from scaling.cli import main
from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from scaling.data import DataError, load_data, stdlib_files
from scaling.prepare import PrepareError, is_val_doc, prepare
from scaling.train import train

VOCAB = 512


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """~60 stdlib files (email/ and json/) and a byte-level BPE tokenizer trained on them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    root, files = stdlib_files()
    picked = [f for f in files if f.relative_to(root).as_posix().startswith(("email/", "json/"))]
    out = tmp_path_factory.mktemp("prep")
    (out / "text").mkdir()
    for f in picked:
        (out / "text" / f.name).write_bytes(f.read_bytes())
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train([str(f) for f in sorted((out / "text").iterdir())], trainer)
    tok.save(str(out / "tokenizer.json"))
    return out


@pytest.fixture(scope="module")
def prepared(corpus):
    out = corpus / "shards"
    m = prepare(
        str(corpus / "tokenizer.json"),
        [str(corpus / "text")],
        str(out),
        val_fraction=0.1,
        shard_tokens=40_000,
        workers=2,
        progress=False,
    )
    return out, m


def read_ids(folder: Path, split: str, manifest: dict) -> np.ndarray:
    return np.concatenate(
        [
            np.fromfile(folder / e["file"], dtype=manifest["dtype"], offset=shards.HEADER_BYTES)
            for e in manifest[split]
        ]
    )


def test_prepare_writes_shards_and_a_manifest(corpus, prepared):
    out, m = prepared
    assert m["vocab_size"] == VOCAB and m["dtype"] == "uint16" and m["eos_token"] == "<|endoftext|>"
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["train"] == m["train"] and not (out / "PREPARING").exists()
    n_files = len(list((corpus / "text").iterdir()))
    assert len(m["sources"]) == n_files and all(len(s["sha256"]) == 64 for s in m["sources"])
    assert m["n_train_docs"] + m["n_val_docs"] == n_files and m["n_val_docs"] >= 1
    for split in ("train", "val"):
        ids = read_ids(out, split, m)
        assert ids.size == m[f"n_{split}_tokens"] == sum(e["n_tokens"] for e in m[split])
        # EOS after every document, so the split ends with one and count == documents
        assert ids[-1] == m["eos_id"] and (ids == m["eos_id"]).sum() == m[f"n_{split}_docs"]
        for e in m[split]:
            shard = shards.open_shard(out / e["file"], e["file"], header_required=True)
            assert shard.n_tokens == e["n_tokens"] <= 40_000
            assert e["max_id"] == int(shard.ids().max()) < VOCAB
    assert len(m["train"]) >= 2  # more than one shard at 40k tokens each
    # the split is by document, from the document's key alone
    expected_val = sum(is_val_doc(f"{s['name']}@0", 0.1) for s in m["sources"])
    assert m["n_val_docs"] == expected_val


def test_tokens_decode_back_to_the_documents(corpus, prepared):
    from tokenizers import Tokenizer

    out, m = prepared
    tok = Tokenizer.from_file(str(corpus / "tokenizer.json"))
    ids = read_ids(out, "train", m)
    first_doc = ids[: int(np.argmax(ids == m["eos_id"]))]
    first_train = next(s for s in m["sources"] if not is_val_doc(f"{s['name']}@0", 0.1))
    text = (corpus / first_train["name"]).read_text()
    assert tok.decode(first_doc.tolist()) == text


def test_rerun_is_idempotent_and_other_options_are_refused(corpus, prepared):
    out, m = prepared
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = prepare(
        str(corpus / "tokenizer.json"),
        [str(corpus / "text")],
        str(out),
        val_fraction=0.1,
        shard_tokens=40_000,
        workers=1,
        progress=False,
    )
    assert again["up_to_date"] and again["train"] == m["train"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    with pytest.raises(PrepareError) as err:
        prepare(str(corpus / "tokenizer.json"), [str(corpus / "text")], str(out), val_fraction=0.2)
    assert "already holds a finished prepare" in str(err.value)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes


def test_a_llama_model_trains_on_the_prepared_bpe_corpus(prepared, tmp_path):
    out, m = prepared
    cfg = RunConfig(
        model=ModelConfig(
            n_layers=1, d_model=32, n_heads=2, vocab_size=VOCAB, seq_len=32, family="llama"
        ),
        data=DataConfig(source="tokens", path=str(out), val_tokens=1024),
        optim=OptimConfig(lr=1e-2),
        n_tokens=512 * 30,
        batch_size_tokens=512,
        micro_batch_size=16,
        eval_interval_tokens=512 * 30,
        log_interval_steps=10,
        wandb_mode="disabled",
        n_threads=1,
    )
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary.status == "complete"
    assert summary.val_loss < np.log(VOCAB) - 0.5  # learned something in 30 steps
    # bits per byte from the manifest's bytes per token
    bpt = m["val_text_bytes"] / m["n_val_tokens"]
    assert summary.val_bpb == pytest.approx(summary.val_loss / (np.log(2) * bpt))
    data_info = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert data_info["n_files_train"] == len(m["train"]) and data_info["dtype"] == "uint16"
    # a model whose vocab is smaller than the manifest's is refused before anything is written
    small = cfg.replace(model=ModelConfig(**{**cfg.model.__dict__, "vocab_size": 300}))
    with pytest.raises(DataError) as err:
        train(small, tmp_path / "small", progress=False)
    assert "vocab_size 512" in str(err.value) and not (tmp_path / "small").exists()


def test_jsonl_inputs_and_their_errors(corpus, tmp_path):
    good = tmp_path / "docs.jsonl"
    lines = [json.dumps({"body": f"document number {i} " * 20, "id": i}) for i in range(40)]
    good.write_text("\n".join(lines) + "\n")
    m = prepare(
        str(corpus / "tokenizer.json"),
        [str(good)],
        str(tmp_path / "out"),
        text_field="body",
        val_fraction=0.2,
        workers=1,
        progress=False,
    )
    assert m["n_train_docs"] + m["n_val_docs"] == 40
    with pytest.raises(PrepareError) as err:
        prepare(str(corpus / "tokenizer.json"), [str(good)], str(tmp_path / "o2"), workers=1)
    msg = str(err.value)
    assert "docs.jsonl line 1" in msg and "'text'" in msg and "--text-field" in msg
    assert "\n" not in msg and not (tmp_path / "o2").exists()  # before any compute
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{not json\n')
    with pytest.raises(PrepareError) as err:
        prepare(str(corpus / "tokenizer.json"), [str(broken)], str(tmp_path / "o3"), workers=1)
    assert "broken.jsonl" in str(err.value) and "not JSON" in str(err.value)


def test_bad_tokenizer_is_one_cli_line(corpus, tmp_path, capsys):
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"version": "1.0", "model": {"type": "Nope"}}')
    argv = ["prepare", "--tokenizer", str(bad), "--input", str(corpus / "text"), "--out"]
    assert main([*argv, str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "does not parse" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    assert main([*argv[:2], str(tmp_path / "missing.json"), *argv[3:], str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_killed_prepare_leaves_nothing_a_run_reads_and_rerun_finishes(corpus, prepared, tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "scaling.cli",
        "prepare",
        "--tokenizer",
        str(corpus / "tokenizer.json"),
        "--input",
        str(corpus / "text"),
        "--out",
        str(out),
        "--val-fraction",
        "0.1",
        "--shard-tokens",
        "2000",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("train_*.bin")):
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its worker processes
    proc.wait()
    assert (out / "PREPARING").exists() and not (out / "manifest.json").exists()
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source="tokens", path=str(out)), VOCAB)
    assert "did not finish" in str(err.value) and "scaling prepare" in str(err.value)
    # every shard that is visible under its final name is whole (renamed only when complete)
    for f in out.glob("train_*.bin"):
        shards.open_shard(f, f.name, header_required=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert not (out / "PREPARING").exists() and not list(out.glob(".tmp-*"))
    # the same tokens as the uninterrupted prepare (other shard size, same stream)
    ref_dir, ref = prepared
    for split in ("train", "val"):
        assert np.array_equal(read_ids(out, split, m), read_ids(ref_dir, split, ref))
    data = load_data(DataConfig(source="tokens", path=str(out)), VOCAB)
    assert data.info.n_train_tokens == ref["n_train_tokens"]


def test_vocabularies_past_65536_are_written_as_uint32(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(70_000)}
    vocab["<|endoftext|>"] = 70_000
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(tmp_path / "tokenizer.json"))
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        (docs / f"{i}.txt").write_text(
            " ".join(f"w{(i * 997 + j * 7919) % 70_000}" for j in range(300))
        )
    m = prepare(
        str(tmp_path / "tokenizer.json"),
        [str(docs)],
        str(tmp_path / "out"),
        val_fraction=0.2,
        workers=1,
        progress=False,
    )
    assert m["dtype"] == "uint32" and m["vocab_size"] == 70_001 and m["eos_id"] == 70_000
    header = np.fromfile(tmp_path / "out" / m["train"][0]["file"], dtype="<i4", count=3)
    assert header[0] == 20240801 and header[1] == 7  # llm.c's uint32 shard format
    data = load_data(DataConfig(source="tokens", path=str(tmp_path / "out")), 70_001)
    assert data.info.dtype == "uint32" and int(np.asarray(data.train).max()) == 70_000
    assert max(e["max_id"] for e in m["train"]) == 70_000 > 65_535
