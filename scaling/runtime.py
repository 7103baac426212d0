"""How a run's model executes on its device: bf16 autocast and ``torch.compile``, checked.

``train()`` asks this module two things and holds no device branches of its own:

- **Precision.** ``use_bf16(cfg, device_type)``: ``precision="bf16"``, or ``"auto"`` on a CUDA
  device with bf16 support, trains under ``torch.autocast(dtype=torch.bfloat16)`` (weights,
  gradients and optimizer state stay float32; matmuls and activations run in bf16).
  ``check_precision`` refuses ``"bf16"`` before any compute where the hardware has no bf16
  arithmetic: a CUDA device below compute capability 8.0 (``torch.cuda.is_bf16_supported``), or
  an x86 CPU with neither AVX512-BF16 nor AMX (oneDNN would emulate every bf16 product through
  float32 conversions: slower than fp32, and not what a user asking for bf16 wants).
- **Compilation.** ``compile_or_eager(module)`` wraps the module in ``torch.compile`` (inductor:
  C++/OpenMP kernels on CPU, Triton on CUDA). Where inductor cannot build (no C++ compiler, no
  Triton, a Python that dynamo does not support), the wrapper falls back to the eager module
  the first time compilation fails, *before* that forward runs (so no step is half done and the
  run is the eager run, bit for bit on CPU), and prints one warning line naming the reason on
  stderr. Nothing else changes: the run directory, its name and its results are the same.

Measured on the 2-core CPU (``tests/test_compile.py``, docs/LOG.md, issue 24): compiled
training equals eager to ~1e-7 relative in the loss on CPU (inductor reorders float32 sums),
with zero graph breaks in the forward of gpt2 and llama under SP, muP and CompleteP, one graph
per process (evaluation runs the eager module: it is a small share of a run and would cost a
second compilation) and no recompile across steps or across a resume.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

from scaling.config import ConfigError, RunConfig

__all__ = [
    "CompiledOrEager",
    "bf16_support",
    "check_precision",
    "compile_or_eager",
    "use_bf16",
]


def bf16_support(device_type: str) -> tuple[bool, str]:
    """Whether ``device_type`` has native bf16 arithmetic, and why not.

    Args:
        device_type: ``"cpu"`` or ``"cuda"``.

    Returns:
        ``(supported, reason)``; ``reason`` is ``""`` when supported, else a phrase naming what is
        missing (used in the error of ``check_precision``).
    """
    import torch

    if device_type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, ""
        name = torch.cuda.get_device_name()
        return False, f"CUDA device {name!r} has no bf16 arithmetic (needs compute capability 8.0+)"
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i386", "i686", "x86"):
        cpu = getattr(torch, "cpu", None)
        avx512_bf16 = getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
        amx = getattr(cpu, "_is_amx_tile_supported", lambda: False)()
        if avx512_bf16 or amx:
            return True, ""
        return False, "this x86 CPU has neither AVX512-BF16 nor AMX (bf16 would be emulated)"
    # other architectures (e.g. aarch64 with BF16 instructions): oneDNN's own check
    try:
        ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        ok = False
    return ok, "" if ok else f"oneDNN reports no bf16 support on this {machine} CPU"


def use_bf16(cfg: RunConfig, device_type: str) -> bool:
    """True when the run trains under bf16 autocast.

    ``precision="bf16"``: always (``check_precision`` refuses hardware without it). ``"auto"``:
    on CUDA devices with bf16 support (Ampere and later); fp32 on CPU and older GPUs.
    ``"fp32"``: never.
    """
    if cfg.precision == "bf16":
        return True
    return cfg.precision == "auto" and device_type == "cuda" and bf16_support("cuda")[0]


def check_precision(cfg: RunConfig, device_type: str) -> None:
    """Refuse ``precision="bf16"`` on hardware without bf16 arithmetic, before any compute.

    Raises:
        ConfigError: bf16 requested where ``bf16_support(device_type)`` says no; the message
            names the reason and the fix (``--precision fp32`` or ``auto``).
    """
    if cfg.precision != "bf16":
        return
    ok, reason = bf16_support(device_type)
    if not ok:
        raise ConfigError(
            f"RunConfig.precision='bf16' (--precision bf16) on {device_type}: {reason}; "
            "use --precision fp32 (or auto, which picks bf16 only where it is native)"
        )


def _reason(error: BaseException) -> str:
    # the first non-empty line of the error, without torch's hints, as "Type: message"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _compile_errors() -> tuple[type[BaseException], ...]:
    # what torch raises when it cannot compile (not errors of the model's own code, which
    # dynamo re-raises as themselves): inductor's InductorError is a BackendCompilerFailed
    import torch._dynamo.exc as dynamo_exc

    return (dynamo_exc.TorchDynamoException,)


def warn_fallback(reason: str) -> None:
    """Print the one warning line of a compile fallback on stderr (flushed)."""
    print(
        f"scaling: warning: torch.compile is unavailable ({reason}); training this run in eager "
        "mode (same results, slower); install a C++ compiler (g++ or $CXX) on CPU or Triton on "
        "CUDA, or drop --compile",
        file=sys.stderr,
        flush=True,
    )


class CompiledOrEager:
    """Call ``compiled(...)``; on a compilation failure call ``eager(...)`` from then on.

    The failure is caught only when torch itself raised it (``torch._dynamo.exc
    .TorchDynamoException``, which includes inductor's ``InductorError`` for a missing
    C++ compiler); the model's own errors propagate unchanged. Compilation happens before the
    compiled graph runs, so a failed call has done no work and retrying it eagerly is the same
    call.

    Attributes:
        compiled: the ``torch.compile`` wrapper, or ``None`` once it failed.
        eager: the module itself.
        fallback_reason: why compilation was abandoned, or ``None``.
    """

    def __init__(self, compiled: Any, eager: Any) -> None:
        self.compiled = compiled
        self.eager = eager
        self.fallback_reason: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the compiled module, or the eager one after a compilation failure."""
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except _compile_errors() as e:
                self.fallback(_reason(e))
        return self.eager(*args, **kwargs)

    def fallback(self, reason: str) -> None:
        """Abandon compilation for the rest of the process, with one warning line."""
        self.compiled, self.fallback_reason = None, reason
        warn_fallback(reason)


def compile_or_eager(module: Any, enabled: bool = True) -> Any:
    """``torch.compile(module)`` that falls back to ``module`` where inductor cannot build.

    Args:
        module: the model (or its ``DistributedDataParallel`` wrapper).
        enabled: ``RunConfig.compile``; False returns ``module`` unchanged.

    Returns:
        ``module`` itself when not enabled, else a ``CompiledOrEager`` (call it like the module).
        Compilation happens on the first call (tens of seconds on CPU for a small model; the
        inductor cache under ``$TORCHINDUCTOR_CACHE_DIR`` makes later processes faster).
    """
    if not enabled:
        return module
    import torch

    wrapper = CompiledOrEager(None, module)
    try:
        wrapper.compiled = torch.compile(module)
    except (RuntimeError, *_compile_errors()) as e:  # e.g. a Python dynamo does not support
        wrapper.fallback(_reason(e))
    return wrapper
