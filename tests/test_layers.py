"""The layers point one way, and everything lives under the ``tinct`` namespace.

Read from the source with ``ast`` (every import, at module level or inside functions):

- the runtime core (``runtime/`` except the CLI: ``runtime/cli.py`` and ``runtime/commands/``) imports
  no torch, no onnx, and none of training, export, models, quantization, benchmarks;
- no module imports a project package by its bare folder name (``runtime.x``): only ``tinct.runtime.x``,
  so an install puts nothing generic into site-packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PARTS = ("runtime", "data", "models", "training", "export", "quantization", "benchmarks", "serve")
CORE_FORBIDDEN = ("torch", "onnx", "onnxscript", "tinct.data", "tinct.training", "tinct.export", "tinct.models",
                  "tinct.quantization", "tinct.benchmarks")
# Each package and what it must not import (the README's layer drawing); the CLI (tinct.runtime.cli,
# tinct.runtime.commands, each package's cli module) is the top and may import anything.
LAYERS = {
    "data": ("torch", "onnx", "tinct.training", "tinct.export", "tinct.models", "tinct.quantization",
             "tinct.benchmarks", "tinct.runtime.commands"),
    "models": ("tinct.data", "tinct.training", "tinct.export", "tinct.quantization", "tinct.benchmarks", "tinct.runtime.commands"),
    "export": ("tinct.data", "tinct.training", "tinct.quantization", "tinct.benchmarks", "tinct.runtime.commands"),
    "quantization": ("torch", "tinct.training", "tinct.models", "tinct.benchmarks", "tinct.runtime.commands"),
    "training": ("tinct.quantization", "tinct.benchmarks", "tinct.runtime.commands"),
    "benchmarks": ("tinct.training", "tinct.runtime.commands"),
    # the server runs from the runtime install plus the 'serve' extra: no torch, no onnx
    "serve": ("torch", "onnx", "tinct.data", "tinct.training", "tinct.export", "tinct.models", "tinct.quantization",
              "tinct.benchmarks", "tinct.runtime.commands"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def _py_files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (REPO / d).rglob("*.py"))


def _core_files() -> list[Path]:
    return [p for p in _py_files("runtime") if p.name != "cli.py" and "commands" not in p.parts]


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_runtime_core_imports_nothing_heavy(path):
    bad = [(ln, m) for ln, m in _imports(path)
           if any(m == f or m.startswith(f + ".") for f in CORE_FORBIDDEN)]
    assert not bad, f"{path.relative_to(REPO)} imports {bad}: the runtime core must run without them"


def _below_cli(part: str) -> list[Path]:
    return [p for p in _py_files(part) if not p.name.startswith("cli")]


@pytest.mark.parametrize("part", sorted(LAYERS))
def test_layers_point_one_way(part):
    bad = [f"{p.relative_to(REPO)}:{ln} {m}" for p in _below_cli(part) for ln, m in _imports(p)
           if any(m == f or m.startswith(f + ".") for f in LAYERS[part])]
    assert not bad, f"tinct.{part} imports what sits above it: " + "; ".join(bad)


def test_every_project_import_goes_through_the_tinct_namespace():
    bad = []
    for path in _py_files(*PARTS, "tests", "tinct"):
        for ln, m in _imports(path):
            if m.split(".")[0] in PARTS:
                bad.append(f"{path.relative_to(REPO)}:{ln} {m}")
    assert not bad, "bare imports of project folders (use tinct.<part>): " + "; ".join(bad)


def test_the_layer_check_can_fail(tmp_path):
    """The checker sees imports inside functions too (not a test that cannot fail)."""
    p = tmp_path / "m.py"
    p.write_text("def f():\n    import torch\n    from tinct.export.onnx_export import export_onnx\n")
    assert [m for _ln, m in _imports(p)] == ["torch", "tinct.export.onnx_export"]
