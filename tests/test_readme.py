"""The README's sweep-definition example is a valid sweep (loaded the way users load one)."""

import re
from pathlib import Path

from sweeps.registry import load_sweep

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_sweep_example_plans(tmp_path):
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "README lost its sweep-definition example"
    path = tmp_path / "my_isoflop.py"
    path.write_text(block.group(1))
    spec = load_sweep(path)
    configs = spec.expand()  # raises PlanError listing every invalid run
    assert spec.name == "my_isoflop"
    shapes = {(c.model.n_layers, c.model.d_model) for c in configs}
    assert len(shapes) == 5 and len({c.flops_budget for c in configs}) == 3
