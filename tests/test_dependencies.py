"""Dependencies = what is imported: pyproject declares what promptlooper/ imports, and nothing more.

Read with ``ast`` from the sources (every import, also those inside functions), so a lazy import
of an optional library counts: it must be declared in an extra. What ``import promptlooper`` loads
at module level must be a base dependency, or a bare install breaks on import.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path

import promptlooper

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(promptlooper.__file__).parent

# Import names that differ from their distribution's (when not installed here, where the
# installed metadata cannot say).
DISTRIBUTION = {"yaml": "pyyaml", "dotenv": "python-dotenv", "sklearn": "scikit-learn", "llama_cpp": "llama-cpp-python",
                "IPython": "ipython", "sqlite_utils": "sqlite-utils", "jinja2": "jinja2"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _installed() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()  # reads every installed distribution: once


def _distribution(module: str) -> str:
    if module in DISTRIBUTION:
        return _norm(DISTRIBUTION[module])
    found = _installed().get(module)
    return _norm(found[0] if found else module)


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {_norm(re.match(r"[A-Za-z0-9_.-]+", r).group(0)) for r in reqs}  # type: ignore[union-attr]

    return names(project["dependencies"]), {extra: names(reqs) for extra, reqs in project["optional-dependencies"].items()}


def _third_party(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        if node.level or node.module is None:
            return []
        roots = [node.module.split(".")[0]]
    else:
        roots = [alias.name.split(".")[0] for alias in node.names]
    return [r for r in roots if r not in sys.stdlib_module_names and r not in ("promptlooper", "__future__")]


def _imports(path: Path, *, module_level_only: bool = False) -> set[str]:
    """Third-party top-level names imported by one file; with ``module_level_only``, only those run
    when the module is imported (not inside a function, an ``if TYPE_CHECKING:`` or a ``try:``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.update(_third_party(child))
            elif not (module_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.If | ast.Try | ast.Lambda)):
                visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _every_import() -> dict[str, set[str]]:
    """Distribution -> the files importing it."""
    by_dist: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for name in _imports(path):
            by_dist.setdefault(_distribution(name), set()).add(str(path.relative_to(ROOT)))
    return by_dist


def test_every_third_party_import_is_declared():
    base, extras = _declared()
    declared = base.union(*extras.values())
    undeclared = {dist: sorted(files) for dist, files in _every_import().items() if dist not in declared}
    assert undeclared == {}, "declare these in pyproject.toml (base, or the extra of the feature that imports them)"


def test_every_base_dependency_is_imported():
    base, _ = _declared()
    assert sorted(base - set(_every_import())) == []


def test_what_import_promptlooper_loads_needs_only_base_dependencies():
    base, _ = _declared()
    # In a fresh process, so what other tests imported does not count.
    files = subprocess.run([sys.executable, "-c", "import sys, promptlooper; print('\\n'.join(m.__file__ or '' for n, m in"
                            " list(sys.modules.items()) if n.split('.')[0] == 'promptlooper'))"],
                           capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    assert str(PACKAGE / "__init__.py") in files
    beyond = {str(Path(f).relative_to(ROOT)): sorted(set(map(_distribution, _imports(Path(f), module_level_only=True))) - base)
              for f in files}
    assert {f: dists for f, dists in beyond.items() if dists} == {}, "imported by `import promptlooper`: make these base, or the import lazy"
