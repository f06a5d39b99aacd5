"""The package's import graph has no circle, between modules or between packages.

Data flows one way (experiment file -> compiled experiment -> engine -> store -> views), so the
imports do too. The graph is read from the source with ``ast``: module-level imports and imports
inside functions alike (an import inside a function that only dodges a circle is still an edge);
imports under ``if TYPE_CHECKING:`` are left out (they never run), and so are third-party
libraries. Nodes are modules for the module graph; for the package graph, each subpackage
(``promptlooper.engine``, ``.store``, ...) is one node and each top-level module its own node.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "promptlooper"
PACKAGE = "promptlooper"

def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports_of(child))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _imports(node)


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's own modules that ``name`` imports, anywhere in its code."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import sub` imports the submodule; `from mod import name` the module.
            targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix for a in node.names]
        out |= {t for t in targets if t in modules and t != name}
    return out


def module_graph() -> dict[str, set[str]]:
    modules = all_modules()
    # A `__main__` module is run (`python -m`), never imported, so it cannot close an import circle:
    # `python -m promptlooper.mcp_server` may hand over to the CLI that serves the MCP server.
    return {name: imported_modules(name, path, modules) for name, path in modules.items()
            if not name.endswith(".__main__")}


def package_of(module: str) -> str:
    parts = module.split(".")
    # promptlooper.engine.runner -> promptlooper.engine; promptlooper.spec stays itself.
    return ".".join(parts[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        node = package_of(module)
        out.setdefault(node, set())
        out[node] |= {package_of(t) for t in targets if package_of(t) != node}
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking() -> None:
    graph = module_graph()
    # workbench.py imports promptlooper.export inside a method; it still counts.
    assert "promptlooper.export" in graph["promptlooper.workbench"]
    assert "promptlooper.workbench" in graph["promptlooper.shortcuts"]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle_between_modules() -> None:
    found = circles(module_graph())
    assert found == [], "import circles between modules:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_import_circle_between_packages() -> None:
    found = circles(package_graph(module_graph()))
    assert found == [], "import circles between packages:\n" + "\n".join(" <-> ".join(c) for c in found)
