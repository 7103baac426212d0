"""Token shards: uint16/uint32, llm.c headers, manifests, globs, batches across shards, hashing."""

import json

import numpy as np
import pytest

from scaling import shards
from scaling.config import DataConfig, ModelConfig, RunConfig
from scaling.data import DataError, ShardSet, check_data_for_run, get_batch, load_data, val_batches


def write_shard(path, ids, dtype="uint16", header=True):
    ids = np.asarray(ids, dtype=dtype)
    with open(path, "wb") as f:
        if header:
            f.write(shards.shard_header(dtype, ids.size))
        f.write(ids.tobytes())
    return ids


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def run_cfg(path, vocab_size, seq_len=16, val_path=None, **changes):
    return RunConfig(
        model=ModelConfig(
            n_layers=1, d_model=16, n_heads=2, vocab_size=vocab_size, seq_len=seq_len
        ),
        data=DataConfig(source="tokens", path=str(path), val_path=val_path, val_tokens=64),
        n_tokens=seq_len * 8 * 4,
        batch_size_tokens=seq_len * 8,
        micro_batch_size=4,
        **changes,
    )


def test_uint32_llmc_shards_in_a_folder_load_with_ids_above_65535(tmp_path):
    rng = np.random.default_rng(0)
    vocab = 100_000
    a = write_shard(tmp_path / "fineweb_train_000001.bin", rng.integers(0, vocab, 3000), "uint32")
    b = write_shard(tmp_path / "fineweb_train_000002.bin", rng.integers(0, vocab, 2000), "uint32")
    v = write_shard(tmp_path / "fineweb_val_000000.bin", rng.integers(0, vocab, 1000), "uint32")
    data = load_data(DataConfig(source="tokens", path=str(tmp_path)), vocab_size=vocab)
    assert isinstance(data.train, ShardSet) and data.train.dtype == np.uint32
    assert data.info.n_train_tokens == 5000 and data.info.n_files_train == 2
    assert data.info.dtype == "uint32" and data.info.hash_method == "full"
    np.testing.assert_array_equal(data.train.gather(np.array([2990]), 10)[0], a[2990:])
    np.testing.assert_array_equal(data.train.gather(np.array([3000]), 5)[0], b[:5])
    np.testing.assert_array_equal(data.val, v)  # one val shard: the plain memmap
    assert int(np.asarray(data.train.arrays[0]).max()) > 65535


def test_batches_across_shards_are_a_pure_function_of_seed_and_step(tmp_path):
    # shard i holds only the id i, so a window that crossed a boundary would mix ids
    lengths = (40, 300, 17, 500)  # the 17-id shard is shorter than seq_len + 1: never sampled
    for i, n in enumerate(lengths):
        write_shard(tmp_path / f"train_{i}.bin", np.full(n, i + 1))
    write_shard(tmp_path / "val_0.bin", np.full(400, 9))
    cfg = run_cfg(tmp_path, vocab_size=16)
    data = load_data(cfg.data, 16)
    check_data_for_run(data, cfg)
    seen = []
    for step in range(60):
        x, y = get_batch(data, cfg, step, 0)
        x2, _ = get_batch(load_data(cfg.data, 16), cfg, step, 0) if step < 3 else (x, y)
        assert (x == x2).all()  # same (seed, step) -> same batch, even after reloading
        full = np.concatenate([x.numpy(), y.numpy()[:, -1:]], axis=1)
        assert (full == full[:, :1]).all()  # no window crosses a shard boundary
        seen += list(full[:, 0])
    counts = np.bincount(seen, minlength=5)
    assert counts[3] == 0 and counts[1] > 0 and counts[2] > 0 and counts[4] > 0
    # windows are uniform over all windows: shard 4 has 484 of 24 + 284 + 484 = 792
    assert abs(counts[4] / counts.sum() - 484 / 792) < 0.08
    x_other, _ = get_batch(data, run_cfg(tmp_path, 16, seed=1), 0, 0)
    assert not (x_other == get_batch(data, cfg, 0, 0)[0]).all()


def test_one_shard_draws_the_same_batches_as_a_plain_token_file(tmp_path):
    ids = np.random.default_rng(1).integers(0, 500, 4000)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_shard(tmp_path / "a" / "train.bin", ids, header=False)  # nanoGPT
    write_shard(tmp_path / "a" / "val.bin", ids[:800], header=False)
    write_shard(tmp_path / "b" / "x_train_0.bin", ids)  # llm.c header
    write_shard(tmp_path / "b" / "x_val_0.bin", ids[:800])
    da, db = (load_data(DataConfig(source="tokens", path=str(tmp_path / k)), 500) for k in "ab")
    cfg = run_cfg(tmp_path / "a", 500)
    for step in range(3):
        assert (get_batch(da, cfg, step, 1)[0] == get_batch(db, cfg, step, 1)[0]).all()
    va = list(val_batches(da, 16, 64, 4))
    vb = list(val_batches(db, 16, 64, 4))
    assert all((p[0] == q[0]).all() for p, q in zip(va, vb, strict=True))


def test_glob_of_shards_needs_val_path(tmp_path):
    for i in range(3):
        write_shard(tmp_path / f"part-{i}.bin", np.arange(200) % 50)
    (tmp_path / "heldout").mkdir()
    write_shard(tmp_path / "heldout" / "v.bin", np.arange(200) % 50)
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source="tokens", path=str(tmp_path / "part-*.bin")), 50)
    assert "data.val_path" in one_line(err)
    data = load_data(
        DataConfig(
            source="tokens", path=str(tmp_path / "part-*.bin"), val_path=str(tmp_path / "heldout")
        ),
        50,
    )
    assert data.info.n_files_train == 3 and data.info.n_train_tokens == 600


@pytest.mark.parametrize("case", ["magic", "empty", "size", "version", "odd_raw"])
def test_damaged_shards_are_one_line_errors_naming_the_file(tmp_path, case):
    write_shard(tmp_path / "d_val_0.bin", np.arange(100))
    bad = tmp_path / "d_train_0.bin"
    if case == "magic":
        header = np.zeros(256, dtype="<i4")
        header[:3] = (12345, 1, 100)
        bad.write_bytes(header.tobytes() + np.arange(100, dtype=np.uint16).tobytes())
        needle = "magic 12345"
    elif case == "empty":
        bad.write_bytes(b"")
        needle = "empty"
    elif case == "size":
        write_shard(bad, np.arange(100))
        bad.write_bytes(bad.read_bytes()[:-6])  # killed mid-write
        needle = "header says 100"
    elif case == "version":
        header = np.zeros(256, dtype="<i4")
        header[:3] = (20240520, 7, 100)
        bad.write_bytes(header.tobytes() + np.arange(100, dtype=np.uint16).tobytes())
        needle = "version 1"
    else:  # a raw file listed in a manifest with a size that is not whole ids
        bad.write_bytes(b"\x01\x00\x02")
        (tmp_path / "manifest.json").write_text(
            json.dumps({"dtype": "uint16", "train": ["d_train_0.bin"], "val": ["d_val_0.bin"]})
        )
        needle = "not a whole number"
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source="tokens", path=str(tmp_path)), 1000)
    msg = one_line(err)
    assert needle in msg and str(bad) in msg


def test_manifest_dtype_must_agree_with_the_header(tmp_path):
    write_shard(tmp_path / "t.bin", np.arange(100), "uint16")
    write_shard(tmp_path / "v.bin", np.arange(100), "uint16")
    (tmp_path / "manifest.json").write_text(
        json.dumps({"dtype": "uint32", "train": ["t.bin"], "val": ["v.bin"]})
    )
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source="tokens", path=str(tmp_path)), 1000)
    assert "header says uint16 but the manifest says uint32" in one_line(err)


def test_manifest_vocab_and_ids_above_the_model_vocab_are_refused(tmp_path):
    write_shard(tmp_path / "t.bin", np.arange(100))
    write_shard(tmp_path / "v.bin", np.arange(50))
    doc = {"dtype": "uint16", "vocab_size": 512, "train": ["t.bin"], "val": ["v.bin"]}
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source="tokens", path=str(tmp_path)), 256)
    assert "vocab_size 512" in one_line(err) and "manifest.json" in one_line(err)
    doc["vocab_size"] = 80
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source="tokens", path=str(tmp_path)), 80)
    assert "t.bin holds token id 99 >= model.vocab_size=80" in one_line(err)


def test_large_corpora_hash_sampled_blocks_and_check_ids_per_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "FULL_HASH_BYTES", 1000)  # treat this corpus as "large"
    monkeypatch.setattr(shards, "SAMPLE_BLOCK_BYTES", 64)
    ids = np.random.default_rng(0).integers(0, 100, 20_000)
    write_shard(tmp_path / "s_train_0.bin", ids)
    write_shard(tmp_path / "s_val_0.bin", ids[:1000])
    cfg = run_cfg(tmp_path, 100)
    data = load_data(cfg.data, 100)
    assert data.info.hash_method == "sampled" and not data.ids_checked
    # a byte inside a sampled block changes the hash; every shard's size is in it too
    path = tmp_path / "s_train_0.bin"
    raw = bytearray(path.read_bytes())
    raw[shards.HEADER_BYTES] ^= 1  # first id: block 0 is always sampled
    path.write_bytes(bytes(raw))
    assert load_data(cfg.data, 100).info.sha256 != data.info.sha256
    # an id >= vocab that the sampled scan cannot see is caught by the batch that reads it
    bad = ids.copy()
    bad[:] = 5
    bad[10_000] = 4000
    write_shard(path, bad)
    data = load_data(cfg.data, 100)
    with pytest.raises(DataError) as err:
        for step in range(2000):
            get_batch(data, cfg, step, 0)
    assert "s_train_0.bin" in one_line(err) and "vocab_size=100" in one_line(err)


def test_legacy_uint16_pair_keeps_its_hash(tmp_path):
    import hashlib

    train = write_shard(tmp_path / "train.bin", np.arange(300) % 97, header=False)
    val = write_shard(tmp_path / "val.bin", np.arange(100) % 97, header=False)
    data = load_data(DataConfig(source="tokens", path=str(tmp_path)), 97)
    assert data.info.sha256 == hashlib.sha256(train.tobytes() + val.tobytes()).hexdigest()
