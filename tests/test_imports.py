"""The house's import rules, read from the source with ``ast`` (DESIGN.md, "Three rooms").

The floors are sweeps > analysis > scaling: an arrow may only point down. Every ``import`` and
``from ... import`` counts, at module level and inside functions (a lazy import is still an
arrow), and so does ``importlib.import_module("literal")``; imports under ``if TYPE_CHECKING:``
do not (they never run). The rules:

- no import cycle between modules of ``scaling/``, ``sweeps/`` and ``analysis/``;
- nothing in ``scaling/`` or ``analysis/`` imports ``sweeps/`` (``ALLOWED_UP`` lists the
  exceptions, each with its reason);
- nothing in ``analysis/`` imports torch, and importing every analysis module in a fresh
  interpreter leaves ``torch`` out of ``sys.modules`` (nothing it imports pulls torch in).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROOMS = ("scaling", "sweeps", "analysis")

# (importer, imported room) pairs allowed to point up, each with its reason
ALLOWED_UP: dict[tuple[str, str], str] = {
    # the thin ``scaling`` console command dispatches to every room's CLI, lazily by name
    ("scaling.cli", "sweeps"): "console entry point (DESIGN.md)",
}

# torch-free modules outside analysis/ that analysis relies on (checked at run time too)
TORCH_FREE_EXTRA = ("scaling.families", "scaling.shapes", "scaling.counting", "scaling.config")


def find_modules(root: Path) -> dict[str, Path]:
    """Every module of the three rooms under ``root``: dotted name -> file."""
    out: dict[str, Path] = {}
    for room in ROOMS:
        for path in sorted((root / room).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imported_names(name: str, path: Path) -> list[tuple[str, int]]:
    """``(dotted name, line)`` of every import in module ``name`` that runs, at any depth.

    ``from pkg import x`` gives ``pkg.x`` (callers resolve it to ``pkg`` when ``x`` is not a
    module); relative imports are made absolute.
    """
    out: list[tuple[str, int]] = []
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]))
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package[: len(package) - child.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                out.extend((f"{base}.{a.name}", child.lineno) for a in child.names)
            elif (
                isinstance(child, ast.Call)
                and isinstance(child.func, (ast.Attribute, ast.Name))
                and getattr(child.func, "attr", getattr(child.func, "id", None)) == "import_module"
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                out.append((child.args[0].value, child.lineno))
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return out


def import_graph(root: Path) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """The rooms' import graph under ``root``.

    Returns:
        ``(internal, external)``: ``internal[m]`` maps each module of the rooms that ``m``
        imports to the first line doing so; ``external[m]`` maps each top-level outside package
        (``torch``, ``numpy``, ...) likewise.
    """
    modules = find_modules(root)
    internal: dict[str, dict[str, int]] = {m: {} for m in modules}
    external: dict[str, dict[str, int]] = {m: {} for m in modules}
    for name, path in modules.items():
        for target, line in imported_names(name, path):
            if target.split(".")[0] not in ROOMS:
                external[name].setdefault(target.split(".")[0], line)
                continue
            while target not in modules and "." in target:  # pkg.attribute -> pkg
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                internal[name].setdefault(target, line)
    return internal, external


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan 1972), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    """``"importer:line -> target"`` for every arrow from scaling/ or analysis/ into sweeps/."""
    return [
        f"{m}:{line} -> {t}"
        for m, targets in sorted(graph.items())
        for t, line in sorted(targets.items())
        if m.split(".")[0] in ("scaling", "analysis")
        and t.split(".")[0] == "sweeps"
        and (m, "sweeps") not in ALLOWED_UP
    ]


def torch_in_analysis(external: dict[str, dict[str, int]]) -> list[str]:
    """``"module:line"`` for every import of torch in analysis/."""
    return [
        f"{m}:{ext['torch']}"
        for m, ext in sorted(external.items())
        if m.split(".")[0] == "analysis" and "torch" in ext
    ]


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    return import_graph(REPO)


def test_the_graph_sees_the_rooms_and_their_arrows(graph):
    internal, external = graph
    # the reader finds what is there, at module level and inside functions, so that an empty
    # or blind graph cannot pass the rules below
    assert {"scaling.config", "scaling.families", "sweeps.spec", "analysis.query"} <= set(internal)
    assert "scaling.families" in internal["scaling.config"]  # module level
    assert "scaling.shapes" in internal["analysis.query"]  # inside a function
    assert "torch" in external["scaling.models.gpt2"]


def test_no_import_cycle(graph):
    internal, _ = graph
    cycles = find_cycles(internal)
    assert not cycles, "import cycles (module level or lazy):\n" + "\n".join(
        " <-> ".join(c)
        + "\n    "
        + "; ".join(f"{a} -> {b} (line {internal[a][b]})" for a in c for b in internal[a] if b in c)
        for c in cycles
    )


def test_nothing_below_sweeps_imports_sweeps(graph):
    internal, _ = graph
    assert not upward_imports(internal), "arrows pointing up into sweeps/: " + ", ".join(
        upward_imports(internal)
    )


def test_analysis_never_imports_torch(graph):
    _, external = graph
    assert not torch_in_analysis(external), "torch imported in analysis/: " + ", ".join(
        torch_in_analysis(external)
    )


def test_importing_all_of_analysis_leaves_torch_unloaded():
    names = [m for m in find_modules(REPO) if m.split(".")[0] == "analysis"]
    names += list(TORCH_FREE_EXTRA)
    code = textwrap.dedent(
        f"""
        import importlib, sys
        for name in {names!r}:
            importlib.import_module(name)
            if "torch" in sys.modules:
                print("importing", name, "loaded torch")
                break
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", out.stdout


def test_the_rules_catch_planted_violations(tmp_path):
    files = {
        "scaling/__init__.py": "",
        # a lazy cycle a -> b -> a, and a type-only import that must not count
        "scaling/a.py": "def f():\n    from scaling import b\n",
        "scaling/b.py": "from typing import TYPE_CHECKING\nimport scaling.a\n"
        "if TYPE_CHECKING:\n    from scaling import c\n",
        "scaling/c.py": "import importlib\nimportlib.import_module('sweeps.x')\n",
        "sweeps/__init__.py": "",
        "sweeps/x.py": "from scaling import a\n",
        "analysis/__init__.py": "",
        "analysis/y.py": "from .z import q\n\ndef g():\n    import torch.nn\n",
        "analysis/z.py": "from sweeps.x import thing\nq = 1\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    internal, external = import_graph(tmp_path)
    assert find_cycles(internal) == [["scaling.a", "scaling.b"]]
    assert "scaling.c" not in internal["scaling.b"]  # TYPE_CHECKING only
    assert internal["analysis.y"] == {"analysis.z": 1}  # relative import resolved
    assert upward_imports(internal) == [
        "analysis.z:1 -> sweeps.x",
        "scaling.c:2 -> sweeps.x",
    ]
    assert torch_in_analysis(external) == ["analysis.y:4"]
