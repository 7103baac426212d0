"""Wall-time estimates for planned runs, from a measured or a documented throughput.

``measured_tokens_per_sec(cfg)`` times real training steps (forward, backward, AdamW step on
random token ids) of one shape on this machine, cached per (shape, batch, threads, device) in
the process. Shapes whose step would be too slow to time here (more than
``MAX_MEASURE_STEP_FLOPS`` per step), and every shape under ``measure=False``, use a documented
FLOP/s constant instead:

- ``CPU_FLOPS_PER_SEC = 2.5e10``: one core of this machine kind, fp32; the measured CPU sweep
  saw 11 GFLOP/s (d_model 16, overhead-bound) to 46 GFLOP/s (d_model 96) per core
  (``docs/cpu-isoflop-notes.md``).
- ``GPU_FLOPS_PER_SEC = 3.0e14``: one H100 in bf16 at ~30% MFU of its 989 TFLOP/s dense peak.

Estimated wall time of a run = ``n_tokens / tokens_per_sec`` (training) + evaluations
(``val_tokens`` forward-only at a third of the training cost per token, at every
``eval_interval_tokens`` and at the end) + ``STARTUP_S`` (process start, imports, data).
"""

from __future__ import annotations

import time
from typing import Any

from scaling.config import RunConfig
from scaling.counting import flops_per_token

CPU_FLOPS_PER_SEC = 2.5e10
GPU_FLOPS_PER_SEC = 3.0e14
MAX_MEASURE_STEP_FLOPS = 2e11  # ~5-10 s per step on one CPU core: too slow to time in a plan
STARTUP_S = 3.0

_CACHE: dict[tuple, float] = {}


def _on_gpu(cfg: RunConfig) -> bool:
    return cfg.device == "cuda" or cfg.precision == "bf16"


def constant_tokens_per_sec(cfg: RunConfig) -> float:
    """Tokens/s from the documented FLOP/s constant for the run's device kind."""
    rate = GPU_FLOPS_PER_SEC if _on_gpu(cfg) else CPU_FLOPS_PER_SEC
    return rate / flops_per_token(cfg.model)


def _resolve_device(cfg: RunConfig) -> str | None:
    import torch

    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        return None
    if cfg.device == "auto":
        return "cuda" if cuda else "cpu"
    return cfg.device


def measured_tokens_per_sec(cfg: RunConfig, n_steps: int = 2) -> float | None:
    """Time ``n_steps`` real optimizer steps of ``cfg``'s shape and batch; tokens per second.

    One untimed warm-up step first. Uses ``cfg.n_threads`` torch threads on CPU (restored after).
    Cached per (model, batch, micro-batch, threads, device) for the process.

    Returns:
        Tokens/s, or ``None`` when this machine cannot run the config's device (CUDA asked,
        none present) or a step exceeds ``MAX_MEASURE_STEP_FLOPS``.
    """
    if flops_per_token(cfg.model) * cfg.batch_size_tokens > MAX_MEASURE_STEP_FLOPS:
        return None
    import torch

    device = _resolve_device(cfg)
    if device is None:
        return None
    key = (cfg.model, cfg.batch_size_tokens, cfg.micro_batch_size, cfg.n_threads, device)
    if key in _CACHE:
        return _CACHE[key]
    from scaling.models.gpt2 import GPT

    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(cfg.n_threads)
    try:
        model = GPT(cfg.model).to(device)
        opt = torch.optim.AdamW(model.param_groups(cfg.optim.weight_decay), lr=cfg.optim.lr)
        gen = torch.Generator().manual_seed(0)
        shape = (cfg.micro_batch_size, cfg.model.seq_len)
        x = torch.randint(0, cfg.model.vocab_size, shape, generator=gen).to(device)
        y = torch.randint(0, cfg.model.vocab_size, shape, generator=gen).to(device)

        def step() -> None:
            for _ in range(cfg.grad_accum_steps):
                _, loss = model(x, y)
                loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n_steps):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
        tps = n_steps * cfg.batch_size_tokens / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    _CACHE[key] = tps
    return tps


def estimate(cfg: RunConfig, measure: bool = True) -> dict[str, Any]:
    """Estimated wall time of one run.

    Returns:
        ``{"tokens_per_sec", "source" ("measured" | "constant"), "est_wall_s"}``.
    """
    tps = measured_tokens_per_sec(cfg) if measure else None
    source = "measured"
    if tps is None:
        tps, source = constant_tokens_per_sec(cfg), "constant"
    n_evals = cfg.n_tokens // cfg.eval_interval_tokens + 1
    eval_s = n_evals * cfg.data.val_tokens / (3 * tps)
    return {
        "tokens_per_sec": tps,
        "source": source,
        "est_wall_s": cfg.n_tokens / tps + eval_s + STARTUP_S,
    }
