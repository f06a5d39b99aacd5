"""The exception tree drawn in promptlooper/errors.py is complete and true, and every error in it is raised."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import promptlooper.errors

PACKAGE = Path(promptlooper.errors.__file__).parent


@functools.cache
def _modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8")) for path in PACKAGE.rglob("*.py")}


def _error_classes(trees: dict[Path, ast.Module]) -> set[str]:
    """Every class in the package deriving, directly or not, from PromptLooperError."""
    bases: dict[str, set[str]] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
    found = {"PromptLooperError"}
    while True:
        more = {name for name, of in bases.items() if of & found} - found
        if not more:
            return found - {"PromptLooperError"}
        found |= more


def _drawn() -> set[str]:
    doc = promptlooper.errors.__doc__ or ""
    return set(re.findall(r"[├└]── (\w+)", doc))


def test_the_drawn_tree_names_every_error_class_and_only_those():
    assert _drawn() == _error_classes(_modules())


def test_every_error_in_the_tree_is_raised_somewhere():
    raised: set[str] = set()
    for tree in _modules().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                raised.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    assert sorted(_drawn() - raised) == []
