"""The detectors package's import structure: no circle, nothing imported inside a
function (where a circle hides), and ``detectors`` never imports ``stream``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules(package: str) -> dict[str, Path]:
    base = ROOT / package
    out = {}
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path) -> tuple[set[str], list[str]]:
    """Modules a file imports at its top level, and imports found inside functions."""
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    nested: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    nested.append(f"{path.name}:{inner.lineno}")
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module)
            top.update(f"{node.module}.{alias.name}" for alias in node.names)
    return top, nested


def test_detectors_has_no_import_circle_and_no_import_inside_a_function() -> None:
    modules = _modules("detectors")
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        top, nested = _imports(path)
        assert not nested, f"imports inside functions: {nested}"
        assert not any(m == "stream" or m.startswith("stream.") for m in top), name
        graph[name] = {m for m in top if m in modules and m != name}
    # The package's __init__ re-exports; a module importing the package itself is fine.
    graph.pop("detectors", None)
    for deps in graph.values():
        deps.discard("detectors")
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            assert state.get(dep) != 1, "import circle: " + " -> ".join([*trail, node, dep])
            if dep not in state:
                visit(dep, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_stream_imports_detectors_only_through_its_public_modules() -> None:
    for name, path in _modules("stream").items():
        top, _ = _imports(path)
        private = [m for m in top if m.startswith("detectors.") and m.rsplit(".", 1)[-1]
                   .startswith("_")]
        assert not private, f"{name} imports private names of detectors: {private}"
