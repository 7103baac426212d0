"""torch.compile and bf16 autocast on CPU: equal to eager/fp32, no graph breaks, no recompiles.

The compiled training runs cost an inductor compilation each (tens of seconds on 2 cores), so
one module-scoped fixture trains each (family, parametrization) case once, compiled, and every
test of that case reads it. ``-m compile`` selects these tests; they run in the default suite.
"""

import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from scaling import rundir, runtime
from scaling.config import ConfigError, ModelConfig
from scaling.models import build_model
from scaling.models.llama import apply_rope, rope_real, rope_table
from scaling.rundir import read_metrics
from scaling.train import train

CASES = [("gpt2", "sp"), ("gpt2", "mup"), ("llama", "sp"), ("llama", "mup")]
KILL_STEP = 10  # the resumed runs restart from the checkpoint kept after this step
# compiled vs eager: inductor fuses and reorders float32 reductions, nothing else differs; the
# largest gap measured over the 4 cases' 20 steps is 1.1e-7 relative in the loss and 4.8e-7 in
# the gradient norm (docs/LOG.md, issue 24), so 1e-5 leaves 20x for other CPUs' vector widths
COMPILE_RTOL = 1e-5
# bf16 autocast vs fp32 after the tiny run's 40 steps: bf16 keeps 8 bits of mantissa (~0.4% per
# rounding); the measured gap in val/loss is 3.4e-4 nats (docs/LOG.md), tolerance 0.01
BF16_ATOL = 0.01
# on a GPU (bf16 matmuls with fp32 accumulation in other kernels): the repo's CUDA tests' 0.05
CUDA_BF16_ATOL = 0.05
TIMING = {"tokens_per_sec", "elapsed_s"}


def _model(family, parametrization, **changes):
    # 1 layer, d_model 32: the smallest shape with several heads; muP at twice its base width,
    # so the output multiplier (1/2) and attention scale differ from SP's
    extra = {"base_d_model": 16} if parametrization != "sp" else {}
    if parametrization == "completep":
        extra["base_n_layers"] = 1
    shape = dict(n_layers=1, d_model=32, n_heads=4, d_mlp=128, seq_len=32)
    return ModelConfig(family=family, parametrization=parametrization, **shape, **extra, **changes)


def _cfg(make_cfg, family, parametrization, **changes):
    return make_cfg(
        model=_model(family, parametrization),
        device="cpu",
        n_tokens=512 * 20,
        log_interval_steps=2,
        eval_interval_tokens=512 * 10,
        keep_checkpoint_steps=(KILL_STEP,),
        **changes,
    )


def killed_copy(run_dir, to, step):
    """Copy a finished run as a kill right after its kept checkpoint of ``step`` would leave it.

    The files a ``kill -9`` after step ``step``'s checkpoint leaves: config, metrics (rows after
    the checkpoint included: resume truncates them), ``checkpoint.pt`` of that step, no summary.
    """
    shutil.copytree(run_dir, to)
    (to / rundir.SUMMARY).unlink()
    shutil.copyfile(rundir.step_checkpoint_path(to, step), to / rundir.CHECKPOINT)
    return to


def _rows(run_dir):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run_dir)]


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def compiled(request, tmp_path_factory, tiny_corpus):
    """One case trained eager, compiled, and compiled again after a resume, in this process."""
    from conftest import tiny_config

    family, parametrization = request.param
    tmp = tmp_path_factory.mktemp(f"compile-{family}-{parametrization}")
    cfg = _cfg(lambda **c: tiny_config(tiny_corpus, **c), family, parametrization)
    eager = train(cfg, tmp / "eager", progress=False)
    torch._dynamo.reset()
    counters.clear()
    whole = train(cfg.replace(compile=True), tmp / "compiled", progress=False)
    graphs_after_run = counters["stats"]["unique_graphs"]
    resumed_dir = killed_copy(tmp / "compiled", tmp / "resumed", KILL_STEP)
    resumed = train(cfg.replace(compile=True), resumed_dir, progress=False)
    return {
        "cfg": cfg,
        "eager": (eager, _rows(tmp / "eager")),
        "compiled": (whole, _rows(tmp / "compiled")),
        "resumed": (resumed, _rows(resumed_dir)),
        "graphs_after_run": graphs_after_run,
        "graphs_after_resume": counters["stats"]["unique_graphs"],
        "graph_breaks": dict(counters["graph_break"]),
    }


@pytest.mark.compile
def test_compiled_training_equals_eager(compiled):
    eager, eager_rows = compiled["eager"]
    whole, rows = compiled["compiled"]
    assert whole.status == "complete" and whole.step == 20
    assert [r["step"] for r in rows] == [r["step"] for r in eager_rows]
    for row, ref in zip(rows, eager_rows, strict=True):
        assert row["tokens"] == ref["tokens"] and row["lr"] == ref["lr"]
        for key in ("train/loss", "val/loss", "grad_norm"):
            if key in ref:
                assert row[key] == pytest.approx(ref[key], rel=COMPILE_RTOL), (row["step"], key)
    # the run learned (not a constant loss that any two implementations would share)
    assert eager_rows[-1]["train/loss"] < eager_rows[0]["train/loss"] - 0.3


@pytest.mark.compile
def test_one_graph_no_break_no_recompile_across_steps_and_resume(compiled):
    assert compiled["graph_breaks"] == {}
    # one training graph for 20 steps, two evaluations (eager) and a resume from step 10
    assert compiled["graphs_after_run"] == 1
    assert compiled["graphs_after_resume"] == 1


@pytest.mark.compile
def test_compiled_resume_equals_uninterrupted_compiled_run(compiled):
    whole, rows = compiled["compiled"]
    resumed, resumed_rows = compiled["resumed"]
    assert resumed_rows == rows  # every logged digit
    assert resumed.val_loss == whole.val_loss and resumed.step == 20


@pytest.mark.parametrize("parametrization", ["sp", "mup", "completep"])
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_forward_has_no_graph_break(family, parametrization):
    # dynamo's own count (explain traces without compiling: cheap), training with targets and
    # evaluation without, and llama with QK-norm
    variants = [_model(family, parametrization)]
    if family == "llama":
        variants.append(_model(family, parametrization, qk_norm=True))
    x = torch.randint(0, 256, (2, 32))
    for cfg in variants:
        torch.manual_seed(0)
        model = build_model(cfg)
        for args in ((x, x), (x,)):
            explanation = torch._dynamo.explain(model)(*args)
            assert explanation.graph_break_count == 0, explanation.break_reasons
            assert explanation.graph_count == 1


def test_real_rope_equals_complex_rope():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 4, 8)
    table = rope_table(16, 8, 10000.0)
    assert torch.allclose(rope_real(x, table), apply_rope(x, table), rtol=0, atol=1e-6)
    # a rotation: each channel pair keeps its length
    norms = rope_real(x, table).unflatten(-1, (-1, 2)).norm(dim=-1)
    assert torch.allclose(norms, x.unflatten(-1, (-1, 2)).norm(dim=-1), atol=1e-5)


@pytest.mark.compile
def test_compile_without_a_cxx_compiler_falls_back_to_eager(make_cfg, tmp_path):
    # a real missing compiler: CXX points nowhere and the inductor cache is empty
    cfg = make_cfg(device="cpu", n_tokens=512 * 10, eval_interval_tokens=512 * 10)
    eager = train(cfg, tmp_path / "eager", progress=False)
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    env = dict(os.environ, CXX=str(tmp_path / "no-such-g++"))
    env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / "inductor-cache")
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "scaling.cli", "train", "--config", str(tmp_path / "cfg.json")]
    cmd += ["--run-dir", str(run_dir), "--compile", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, proc.stderr
    assert "torch.compile is unavailable" in warnings[0] and "C++ compiler" in warnings[0]
    assert rundir.read_summary(run_dir)["val/loss"] == eager.val_loss  # the eager run, exactly
    assert rundir.read_config(run_dir)["config"]["compile"] is True  # the same run (name, config)


def test_bf16_autocast_on_cpu_is_close_to_fp32(make_cfg, tmp_path):
    if not runtime.bf16_support("cpu")[0]:
        pytest.skip("this CPU has no native bf16 (the refusal is tested below)")
    fp32 = train(make_cfg(device="cpu", precision="fp32"), tmp_path / "fp32", progress=False)
    bf16 = train(make_cfg(device="cpu", precision="bf16"), tmp_path / "bf16", progress=False)
    assert bf16.val_loss != fp32.val_loss  # autocast did act
    assert bf16.val_loss == pytest.approx(fp32.val_loss, abs=BF16_ATOL)
    assert fp32.val_loss < fp32.train_loss + 0.5 and bf16.val_loss < 3.9  # both learned


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_bf16_resume_equals_uninterrupted(make_cfg, tmp_path, family):
    if not runtime.bf16_support("cpu")[0]:
        pytest.skip("this CPU has no native bf16 (the refusal is tested below)")
    cfg = _cfg(make_cfg, family, "mup", precision="bf16")
    whole = train(cfg, tmp_path / "whole", progress=False)
    resumed_dir = killed_copy(tmp_path / "whole", tmp_path / "resumed", KILL_STEP)
    resumed = train(cfg, resumed_dir, progress=False)
    assert _rows(resumed_dir) == _rows(tmp_path / "whole")
    assert resumed.val_loss == whole.val_loss


def test_bf16_on_a_cpu_without_bf16_is_refused_before_training(make_cfg, tmp_path, monkeypatch):
    # this machine has bf16; a CPU without it cannot be produced here, so its answer is faked
    monkeypatch.setattr(runtime, "bf16_support", lambda device: (False, "no AVX512-BF16 here"))
    with pytest.raises(ConfigError, match=r"precision='bf16'.*no AVX512-BF16 here.*fp32"):
        train(make_cfg(device="cpu", precision="bf16"), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # refused before anything was written
    fp32 = train(make_cfg(device="cpu", precision="auto"), tmp_path / "auto", progress=False)
    assert fp32.status == "complete"  # auto never asks for bf16 on a CPU


@pytest.mark.compile
def test_two_process_gloo_ddp_compiled_equals_one_process(make_cfg, tmp_path, monkeypatch):
    from test_distributed import _torchrun

    cfg = make_cfg(device="cpu", n_tokens=512 * 20, log_interval_steps=2)
    assert cfg.grad_accum_steps == 2  # one micro-batch per process and step
    train(cfg, tmp_path / "one", progress=False)
    (tmp_path / "cfg.json").write_text(cfg.replace(compile=True).to_json())
    monkeypatch.setenv("TORCH_LOGS", "dynamo")  # dynamo logs each graph it compiles
    proc = _torchrun(tmp_path / "cfg.json", tmp_path / "two", stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "torch.compile is unavailable" not in err
    # under DDP, dynamo hands the model's graph to DDPOptimizer's compile_fn (then inductor)
    compiled = [line for line in err.splitlines() if "done compiler function" in line]
    assert len(compiled) == 2, compiled  # one graph per rank, none recompiled
    summary = rundir.read_summary(tmp_path / "two")
    assert summary["status"] == "complete" and summary["world_size"] == 2
    rows, ref_rows = _rows(tmp_path / "two"), _rows(tmp_path / "one")
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]
    for row, ref in zip(rows, ref_rows, strict=True):
        for key in ("train/loss", "val/loss", "grad_norm"):
            if key in ref:
                assert row[key] == pytest.approx(ref[key], rel=COMPILE_RTOL), (row["step"], key)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("family", "parametrization"), [("gpt2", "sp"), ("llama", "mup")])
def test_cuda_bf16_compiled_equals_eager(make_cfg, tmp_path, family, parametrization):
    # the complex-number RoPE, muP's output multiplier and bf16 autocast, compiled by inductor
    # (Triton) on a GPU: equal to the eager run within bf16 rounding
    cfg = _cfg(make_cfg, family, parametrization, device="cuda", precision="bf16")
    eager = train(cfg, tmp_path / "eager", progress=False)
    torch._dynamo.reset()
    counters.clear()
    compiled = train(cfg.replace(compile=True), tmp_path / "compiled", progress=False)
    assert eager.status == compiled.status == "complete"
    assert compiled.val_loss == pytest.approx(eager.val_loss, abs=CUDA_BF16_ATOL)
    assert dict(counters["graph_break"]) == {} and counters["stats"]["unique_graphs"] == 1
