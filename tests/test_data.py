import hashlib
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from scaling.config import DataConfig, ModelConfig, RunConfig
from scaling.data import (
    SEPARATOR,
    DataError,
    check_data_for_run,
    get_batch,
    is_val_file,
    load_data,
    stdlib_files,
    val_batches,
    val_window_starts,
)


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# -- the stdlib corpus ------------------------------------------------------------------------
def test_stdlib_corpus_split_by_file_without_tests():
    root, files = stdlib_files(include_tests=False)
    assert root == Path(sysconfig.get_paths()["stdlib"])
    rels = [f.relative_to(root).as_posix() for f in files]
    assert rels == sorted(rels) and all(r.endswith(".py") for r in rels)
    assert not any(
        {"test", "tests", "idle_test", "site-packages"} & set(r.split("/")) for r in rels
    )
    data = load_data(DataConfig())
    n_val = sum(is_val_file(r, 0.04) for r in rels)
    assert data.info.n_files_val == n_val and data.info.n_files_train == len(rels) - n_val
    assert data.info.n_files_val >= 10  # the validation set spans many held-out files
    # train bytes = sum of train files + one separator each (independent recount)
    train_size = sum(
        f.stat().st_size + 1 for f, r in zip(files, rels, strict=True) if not is_val_file(r, 0.04)
    )
    assert data.info.train_bytes == train_size == data.train.size
    assert data.train.dtype == np.uint8 and data.vocab_size == 256 and data.bytes_per_token == 1.0
    assert 5e6 < data.info.train_bytes < 50e6
    again = load_data(DataConfig())
    assert again.info == data.info and len(data.info.sha256) == 64


def test_include_tests_adds_the_test_folders():
    _, without = stdlib_files(include_tests=False)
    root, with_tests = stdlib_files(include_tests=True)
    extra = set(with_tests) - set(without)
    assert extra
    assert all({"test", "tests", "idle_test"} & set(f.relative_to(root).parts) for f in extra)


def test_val_file_choice_is_a_stable_fraction():
    paths = [f"pkg{i // 50}/mod_{i}.py" for i in range(4000)]
    frac = np.mean([is_val_file(p, 0.1) for p in paths])
    assert 0.08 < frac < 0.12  # binomial sd ~0.005
    assert [is_val_file(p, 0.1) for p in paths[:100]] == [is_val_file(p, 0.1) for p in paths[:100]]


# -- user text ----------------------------------------------------------------------------------
def test_text_folder_is_split_by_file(tiny_corpus):
    data = load_data(DataConfig(source="text", path=str(tiny_corpus), val_fraction=0.2))
    files = sorted(tiny_corpus.iterdir())
    val_files = [f for f in files if is_val_file(f.name, 0.2)]
    assert val_files, "fixture should hold out at least one file at 20%"
    expected_val = b"".join(f.read_bytes() + bytes([SEPARATOR]) for f in val_files)
    assert data.val.tobytes() == expected_val
    assert data.info.n_files_val == len(val_files)
    assert data.info.n_files_train == len(files) - len(val_files)


def test_single_text_file_split_by_tail(tmp_path):
    text = ("hello world, " * 1000).encode()
    f = tmp_path / "t.txt"
    f.write_bytes(text)
    data = load_data(DataConfig(source="text", path=str(f), val_fraction=0.1))
    n_val = int(len(text) * 0.1)
    assert data.val.tobytes() == text[-n_val:] and data.train.tobytes() == text[:-n_val]
    assert data.info.sha256 == load_data(DataConfig(source="text", path=str(f))).info.sha256


# -- token files --------------------------------------------------------------------------------
def test_token_files_are_memmapped(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 1000, size=5000, dtype=np.uint16)
    val = rng.integers(0, 1000, size=700, dtype=np.uint16)
    train.tofile(tmp_path / "train.bin")
    val.tofile(tmp_path / "val.bin")
    data = load_data(DataConfig(source="tokens", path=str(tmp_path)), vocab_size=1000)
    assert isinstance(data.train, np.memmap) and data.train.dtype == np.uint16
    np.testing.assert_array_equal(data.train, train)
    np.testing.assert_array_equal(data.val, val)
    assert data.bytes_per_token is None and data.info.n_train_tokens == 5000
    assert data.info.sha256 == hashlib.sha256(train.tobytes() + val.tobytes()).hexdigest()


def test_token_id_above_vocab_is_an_error_naming_file_and_id(tmp_path):
    np.arange(100, dtype=np.uint16).tofile(tmp_path / "train.bin")
    val = np.zeros(50, dtype=np.uint16)
    val[17] = 4242
    val.tofile(tmp_path / "val.bin")
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source="tokens", path=str(tmp_path)), vocab_size=1000)
    msg = _one_line(err)
    assert "val.bin" in msg and "4242" in msg and "vocab_size" in msg


# -- batches ------------------------------------------------------------------------------------
def _cfg(micro_batch_size=4, seed=0, seq_len=16):
    return RunConfig(
        model=ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32, seq_len=seq_len),
        data=DataConfig(val_tokens=256),
        n_tokens=seq_len * 8 * 10,
        batch_size_tokens=seq_len * 8,
        micro_batch_size=micro_batch_size,
        seed=seed,
    )


def test_batches_are_a_pure_function_of_seed_and_step(tiny_corpus):
    data = load_data(DataConfig(source="text", path=str(tiny_corpus), val_fraction=0.2))
    cfg = _cfg()
    x, y = get_batch(data, cfg, step=3, micro_step=1)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one token
    x2, y2 = get_batch(data, cfg, step=3, micro_step=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, get_batch(data, cfg, step=4, micro_step=1)[0])
    assert not torch.equal(x, get_batch(data, _cfg(seed=1), step=3, micro_step=1)[0])
    # every row is a real window of the training stream
    stream = torch.from_numpy(data.train.astype(np.int64))
    for row in y:
        starts = torch.nonzero(stream[:-16] == row[0]).flatten()
        assert any(torch.equal(stream[s : s + 16], row) for s in starts.tolist())


def test_micro_batch_size_does_not_change_the_step_batch(tiny_corpus):
    data = load_data(DataConfig(source="text", path=str(tiny_corpus), val_fraction=0.2))
    small, big = _cfg(micro_batch_size=2), _cfg(micro_batch_size=8)
    xs = torch.cat([get_batch(data, small, 5, m)[0] for m in range(small.grad_accum_steps)])
    assert torch.equal(xs, get_batch(data, big, 5, 0)[0])
    with pytest.raises(ValueError, match="micro_step"):
        get_batch(data, big, 5, 1)


def test_validation_windows_of_a_single_document_are_evenly_spaced(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(bytes(range(32, 127)) * 200)  # 19000 bytes; val = last 1900
    data = load_data(DataConfig(source="text", path=str(f), val_fraction=0.1))
    n_val = data.val.size
    batches = list(val_batches(data, seq_len=16, val_tokens=200, micro_batch_size=5))
    assert [x.shape[0] for x, _ in batches] == [5, 5, 2]  # 200 // 16 = 12 windows
    stride = (n_val - 1 - 16) // 11  # first window at 0, last one ends at the split's end
    assert stride >= 16
    val = torch.from_numpy(data.val.astype(np.int64))
    xs = torch.cat([x for x, _ in batches])
    ys = torch.cat([y for _, y in batches])
    for i in range(12):
        assert torch.equal(xs[i], val[i * stride : i * stride + 16])
        assert torch.equal(ys[i], val[i * stride + 1 : i * stride + 17])


def test_validation_windows_are_shared_between_held_out_files(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    names = [f"f{i:03d}.txt" for i in range(400)]
    for i, name in enumerate(names):
        (folder / name).write_bytes(b"x" * (50 if i % 2 else 5000))
    data = load_data(DataConfig(source="text", path=str(folder), val_fraction=0.1))
    val_files = [n for n in names if is_val_file(n, 0.1)]
    sizes = [(folder / n).stat().st_size + 1 for n in val_files]  # + separator
    bounds = np.cumsum([0, *sizes])
    starts = val_window_starts(data, 16, 16 * 6 * len(val_files))
    assert len(starts) == 6 * len(val_files) and np.all(np.diff(starts) >= 16)
    doc = np.searchsorted(bounds, starts, side="right") - 1
    per_doc = np.bincount(doc, minlength=len(val_files))
    for size, k in zip(sizes, per_doc, strict=True):
        cap = (size - 1) // 16
        assert k <= cap  # each window fits inside its own file
    small = [k for size, k in zip(sizes, per_doc, strict=True) if size == 51]
    assert small and all(k == 3 for k in small)  # a 50-byte file holds 3 windows of 16
    big = [k for size, k in zip(sizes, per_doc, strict=True) if size == 5001]
    assert max(big) - min(big) <= 1  # the rest is shared evenly by the big files
    for s in starts:  # windows never straddle a file boundary
        d = np.searchsorted(bounds, s, side="right") - 1
        assert s + 17 <= bounds[d + 1]


def test_stdlib_validation_windows_cover_every_held_out_file():
    data = load_data(DataConfig())
    starts = val_window_starts(data, 256, 65536)
    assert len(starts) == 256
    doc = np.searchsorted(data.val_segments[:, 1], starts, side="right")
    fits = (data.val_segments[:, 1] - data.val_segments[:, 0] - 1) // 256 > 0
    assert set(doc.tolist()) == set(np.nonzero(fits)[0].tolist())  # every file that fits one
    topics = np.argmax(data.val_segments[:, 1] - data.val_segments[:, 0])
    assert np.mean(doc == topics) < 0.2  # the largest held-out file does not dominate


def test_too_many_validation_windows_is_an_error(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"x" * 2000)  # val = 200 bytes: 12 windows of 16
    data = load_data(DataConfig(source="text", path=str(f), val_fraction=0.1))
    with pytest.raises(DataError) as err:
        val_window_starts(data, 16, 16 * 13)
    assert "data.val_tokens" in _one_line(err)


# -- bad input ----------------------------------------------------------------------------------
def test_missing_path(tmp_path):
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source="text", path=str(tmp_path / "nope")))
    assert "data.path" in _one_line(err) and "does not exist" in str(err.value)


def test_token_path_must_be_a_folder(tmp_path):
    f = tmp_path / "train.bin"
    f.write_bytes(b"\0\0")
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source="tokens", path=str(f)), vocab_size=256)
    assert "data.path" in _one_line(err) and "not a folder" in str(err.value)


def test_dangling_link_in_a_folder_is_skipped(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_text("x" * 100)
    (folder / "b.txt").symlink_to(tmp_path / "missing-target")  # dangling: cannot be read
    (folder / "c.txt").write_text("y" * 100)
    data = load_data(DataConfig(source="text", path=str(folder)))  # dangling link is skipped
    assert data.info.n_files_train + data.info.n_files_val == 2


@pytest.mark.parametrize("kind", ["empty_file", "empty_folder", "folder_of_empty_files"])
def test_empty_corpus(tmp_path, kind):
    target = tmp_path / "c"
    if kind == "empty_file":
        target.write_bytes(b"")
    else:
        target.mkdir()
        if kind == "folder_of_empty_files":
            (target / "a.txt").write_bytes(b"")
            (target / "b.txt").write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source="text", path=str(target)))
    assert "data.path" in _one_line(err) and (
        "empty" in str(err.value) or "no files" in str(err.value)
    )


def test_corpus_smaller_than_batch_plus_val(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"abcdefgh" * 200)  # 1600 bytes
    data = load_data(DataConfig(source="text", path=str(f), val_fraction=0.25))
    cfg = _cfg().replace(batch_size_tokens=16 * 100, n_tokens=16 * 100)
    with pytest.raises(DataError) as err:
        check_data_for_run(data, cfg)
    assert "batch_size_tokens" in _one_line(err) and "val_tokens" in str(err.value)


def test_seq_len_longer_than_val_split(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"abcdefgh" * 400)  # 3200 bytes; val = last 160
    data = load_data(DataConfig(source="text", path=str(f), val_fraction=0.05))
    with pytest.raises(DataError) as err:
        check_data_for_run(data, _cfg(seq_len=256))
    assert "seq_len=256" in _one_line(err) and "validation split" in str(err.value)


def test_seq_len_longer_than_train_split(tmp_path):
    np.zeros(100, dtype=np.uint16).tofile(tmp_path / "train.bin")
    np.zeros(5000, dtype=np.uint16).tofile(tmp_path / "val.bin")
    data = load_data(DataConfig(source="tokens", path=str(tmp_path)), vocab_size=256)
    with pytest.raises(DataError) as err:
        check_data_for_run(data, _cfg(seq_len=128))
    assert "seq_len=128" in _one_line(err) and "training split" in str(err.value)
