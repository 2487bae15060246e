"""The layers point one way, imports sit at module top, and everything lives under the ``tinct`` namespace.

Read from the source with ``ast`` (every import, at module level or inside functions), for every file of every
package, the command line included, with no exemptions:

- each package imports only the packages below it in the drawing of docs/how-it-works.md (:data:`ALLOWED`), and none of the
  third-party packages its layer must run without (:data:`FORBIDDEN_THIRD_PARTY`);
- an import inside a function is there for a reason the checker can see: the module needs an optional
  dependency (:data:`OPTIONAL`), directly or through the tinct module it imports; the importing module is a
  command of ``tinct.cli`` (commands import their implementation when run: see :mod:`tinct.cli`); or the line
  says why (``# deferred: ...``);
- no import cycle between tinct modules at module level;
- no module imports a project package by its bare folder name (``runtime.x``): only ``tinct.runtime.x``.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PARTS = ("runtime", "data", "verify", "models", "export", "quantization", "deploy", "training", "benchmarks",
         "serve", "cli")
# The drawing of docs/how-it-works.md#layout: each package and the tinct packages it may import.
ALLOWED: dict[str, set[str]] = {
    "runtime": set(),
    "data": {"runtime"},
    "verify": {"runtime", "data"},
    "models": {"runtime"},
    "export": {"runtime", "data", "verify", "models"},
    "quantization": {"runtime", "data", "verify"},
    "deploy": {"runtime", "data", "verify", "quantization"},
    "training": {"runtime", "data", "verify", "models", "export"},
    "serve": {"runtime", "data"},
    "benchmarks": {"runtime", "data", "verify", "models", "export", "quantization", "deploy", "training", "serve"},
    "cli": set(PARTS) - {"cli"},
}
# Third-party packages a layer must run without (the runtime-only install has numpy, Pillow, onnxruntime).
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "runtime": {"torch", "onnx", "onnxscript"},
    "data": {"torch", "onnx", "onnxscript"},
    "verify": {"torch", "onnx", "onnxscript"},
    "quantization": {"torch"},
    "deploy": {"torch"},
    "serve": {"torch", "onnx", "onnxscript"},
}
# Optional dependencies (extras, or a measured import cost: numba's JIT set-up). An import of one of these,
# or of a tinct module that needs one at module level, may be deferred into the function that uses it.
OPTIONAL = {"torch", "onnx", "onnxscript", "openvino", "nncf", "tensorrt", "cuda", "pycuda", "fastapi", "starlette",
            "uvicorn", "anyio", "pydantic", "multipart", "python_multipart", "ray", "tritonclient", "matplotlib",
            "skimage", "scipy", "pytest", "pytest_benchmark", "playwright", "httpx", "numba", "safetensors", "jax",
            "zstandard", "google"}


def _py_files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (REPO / d).rglob("*.py"))


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "tinct." + ".".join(parts)


def _production_files() -> list[Path]:
    return [p for p in _py_files(*PARTS) if not p.name.startswith(("test_", "conftest"))]


@lru_cache(maxsize=None)
def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, module, at module level) of every absolute import of ``path``; ``from pkg import name`` yields
    ``pkg.name`` when that is a module of the project (so ``from tinct.cli import bench`` is ``tinct.cli.bench``)."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(n) for n in _top_level_nodes(tree)}
    typing_only = {id(n) for node in tree.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names if _is_project_module(f"{node.module}.{a.name}")]
            out += [(node.lineno, m, id(node) in top) for m in (names or [node.module])]
    return out


def _top_level_nodes(tree):
    """Statements executed at import: the module body, descending into if/try/with blocks (not functions,
    not ``if TYPE_CHECKING``)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])


@lru_cache(maxsize=None)
def _module_files() -> dict[str, Path]:
    return {_module_name(p): p for p in _production_files()}


def _is_project_module(name: str) -> bool:
    return name in _module_files()


_NEEDS: dict[str, bool] = {}


def _needs_optional(module: str) -> bool:
    """True when importing ``module`` imports an optional dependency at module level (transitively)."""
    if module not in _NEEDS:
        _NEEDS[module] = False  # a module being looked at (a cycle, which another test reports) adds nothing
        path = _module_files().get(module)
        _NEEDS[module] = path is not None and any(
            top and (m.split(".")[0] in OPTIONAL or (m.startswith("tinct.") and _needs_optional(_nearest_module(m))))
            for _ln, m, top in _imports(path))
    return _NEEDS[module]


@lru_cache(maxsize=None)
def _nearest_module(name: str) -> str:
    """``tinct.a.b.c`` -> the longest prefix that is a project module (``from tinct.a.b import c``)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in _module_files():
        parts.pop()
    return ".".join(parts)


def _part(module: str) -> str:
    return module.split(".")[1]


@pytest.mark.parametrize("path", _production_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_follow_the_drawing(path):
    part = path.relative_to(REPO).parts[0]
    bad = []
    for ln, m, _top in _imports(path):
        if m.startswith("tinct.") and m.split(".")[1] in PARTS:
            if _part(m) != part and _part(m) not in ALLOWED[part]:
                bad.append(f"{ln}: {m} (tinct.{part} may import {', '.join(sorted(ALLOWED[part])) or 'nothing above it'})")
        elif m.split(".")[0] in FORBIDDEN_THIRD_PARTY.get(part, ()):
            bad.append(f"{ln}: {m} (tinct.{part} runs without it)")
    assert not bad, f"{path.relative_to(REPO)}: " + "; ".join(bad)


def _deferred_ok(path: Path, ln: int, module: str) -> bool:
    if module.split(".")[0] in OPTIONAL:
        return True
    if module.startswith("tinct.") and _needs_optional(_nearest_module(module)):
        return True
    if path.is_relative_to(REPO) and _module_name(path).startswith("tinct.cli."):
        return True
    lines = path.read_text().splitlines()
    return "# deferred:" in lines[ln - 1] or (ln >= 2 and lines[ln - 2].strip().startswith("# deferred:"))


@pytest.mark.parametrize("path", _production_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_sit_at_module_top_unless_deferred_for_a_reason(path):
    bad = [f"{ln}: {m}" for ln, m, top in _imports(path) if not top and not _deferred_ok(path, ln, m)]
    assert not bad, (f"{path.relative_to(REPO)} defers imports with no visible reason (move them to the top, or "
                     f"say why with '# deferred: ...'): " + "; ".join(bad))


def test_no_import_cycles_at_module_level():
    graph = {m: {_nearest_module(i) for _ln, i, top in _imports(p) if top and i.startswith("tinct.")} - {"", m}
             for m, p in _module_files().items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if n.startswith(m + ".") or m.startswith(n + "."):  # a package and its own modules
                continue
            if state.get(n) == 1:
                cycles.append(" -> ".join(stack[stack.index(n):] + [n]) if n in stack else f"{m} -> {n}")
            elif n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(cycles[:5])


def test_every_project_import_goes_through_the_tinct_namespace():
    bad = []
    for path in _py_files(*PARTS, "tests", "tinct"):
        for ln, m, _top in _imports(path):
            if m.split(".")[0] in PARTS:
                bad.append(f"{path.relative_to(REPO)}:{ln} {m}")
    assert not bad, "bare imports of project folders (use tinct.<part>): " + "; ".join(bad)


def test_no_module_is_over_500_lines():
    long = [f"{p.relative_to(REPO)} ({n})" for p in _py_files(*PARTS, "tests")
            if (n := len(p.read_text().splitlines())) > 500]
    assert not long, "modules over 500 lines: " + ", ".join(long)


def test_the_checker_sees_what_it_must(tmp_path):
    """The checker finds imports inside functions and tells a deferred import with a reason from one without
    (not a test that cannot fail)."""
    p = tmp_path / "m.py"
    p.write_text("import json\n\ndef f():\n    import torch\n    from tinct.export.onnx_export import export_onnx\n"
                 "    import csv\n    import os  # deferred: measured start-up cost\n")
    found = [(m, top) for _ln, m, top in _imports(p)]
    assert found == [("json", True), ("torch", False), ("tinct.export.onnx_export", False), ("csv", False),
                     ("os", False)]
    assert _deferred_ok(p, 4, "torch") and _deferred_ok(p, 7, "os") and not _deferred_ok(p, 6, "csv")
