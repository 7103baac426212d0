"""Shared fixtures: a small real text corpus and tiny run configs (fast on one CPU core)."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pytest

from scaling.config import DataConfig, ModelConfig, OptimConfig, RunConfig

# published reference data (Chinchilla tables, Epoch's digitised points), outside the checkout
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(relative: str) -> Path:
    """``../shared/data/<relative>``; skip the test when absent, but fail under ``CI=true``.

    CI must run the tests that pin our numbers to the published ones, so there a missing file is
    a failure, as a missing Slurm cluster is (tests/test_slurm.py).
    """
    path = SHARED_DATA / relative
    if not path.exists():
        reason = f"reference data {path} not found (needs ../shared/data beside the checkout)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the reference-data tests to run; {reason}")
        pytest.skip(reason)
    return path


# real text: a few standard-library modules, ~0.4 MB in total
_CORPUS_FILES = (
    "argparse.py",
    "ast.py",
    "calendar.py",
    "csv.py",
    "dataclasses.py",
    "difflib.py",
    "enum.py",
    "fractions.py",
    "functools.py",
    "inspect.py",
    "pathlib.py",
    "pickle.py",
    "shutil.py",
    "string.py",
    "textwrap.py",
    "typing.py",
    "uuid.py",
    "zipfile.py",
)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of real Python source files (text source, split by file)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = tmp_path_factory.mktemp("corpus")
    for name in _CORPUS_FILES:
        (out / name).write_bytes((root / name).read_bytes())
    return out


def tiny_config(corpus: Path, **changes) -> RunConfig:
    """A ~30k-parameter run on ``corpus``: 1 layer, d_model 32, seq_len 32, 40 steps of 512."""
    model = ModelConfig(n_layers=1, d_model=32, n_heads=4, d_mlp=128, seq_len=32)
    cfg = RunConfig(
        model=model,
        data=DataConfig(source="text", path=str(corpus), val_fraction=0.2, val_tokens=2048),
        optim=OptimConfig(lr=1e-2),
        n_tokens=512 * 40,
        batch_size_tokens=512,
        micro_batch_size=8,
        seed=0,
        eval_interval_tokens=512 * 20,
        log_interval_steps=5,
        checkpoint_interval_steps=10,
        n_threads=1,
        wandb_mode="disabled",
    )
    return cfg.replace(**changes)


@pytest.fixture
def tiny_cfg(tiny_corpus: Path) -> RunConfig:
    """The default tiny run config on the tiny corpus."""
    return tiny_config(tiny_corpus)


@pytest.fixture
def make_cfg(tiny_corpus: Path):
    """Factory: ``make_cfg(**changes)`` is the tiny config with top-level fields changed."""
    return lambda **changes: tiny_config(tiny_corpus, **changes)
