"""Find sweep definitions: ``sweeps/defs/<name>.py`` modules (or any ``.py`` file) with ``sweep()``.

A definition is a Python function returning a spec (``IsoFlopSweep``, ``GridSweep``,
``LadderSweep``): experiments are code, reviewed like code (torchtitan recipes, OLMo ladder).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from pathlib import Path

from sweeps.spec import SweepSpec


class SweepNotFoundError(ValueError):
    """No sweep definition by that name or path; the message lists the known names."""


def available_sweeps() -> list[str]:
    """Names of the definitions shipped in ``sweeps.defs``."""
    import sweeps.defs

    return sorted(m.name for m in pkgutil.iter_modules(sweeps.defs.__path__) if not m.ispkg)


def load_sweep(name_or_path: str | Path) -> SweepSpec:
    """Load a sweep spec by definition name (``sweeps.defs.<name>``) or by ``.py`` file path.

    Args:
        name_or_path: e.g. ``"smoke"`` or ``"experiments/my_sweep.py"``.

    Returns:
        The spec returned by the module's ``sweep()``.

    Raises:
        SweepNotFoundError: no such definition or file, a file with a syntax error, no
            ``sweep()`` function, or ``sweep()`` does not return a ``SweepSpec``.
    """
    text = str(name_or_path)
    if text.endswith(".py") or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise SweepNotFoundError(f"sweep definition file {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"_sweep_def_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise SweepNotFoundError(f"cannot import sweep definition file {path}")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except SyntaxError as e:  # the user's file: say where, in one line
            raise SweepNotFoundError(
                f"sweep definition file {path}, line {e.lineno}: {e.msg}; fix the file"
            ) from None
    else:
        if text not in available_sweeps():
            raise SweepNotFoundError(
                f"no sweep definition named {text!r}; known: {available_sweeps()} "
                "(or give a path to a .py file with a sweep() function)"
            )
        module = importlib.import_module(f"sweeps.defs.{text}")
    fn = getattr(module, "sweep", None)
    if not callable(fn):
        raise SweepNotFoundError(f"{name_or_path}: the module has no sweep() function")
    result = fn()
    if not isinstance(result, SweepSpec):
        raise SweepNotFoundError(
            f"{name_or_path}: sweep() returned {type(result).__name__}, not a SweepSpec"
        )
    return result
