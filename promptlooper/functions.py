"""Python functions for function stages and ``python`` scorers, named where no object can be passed.

A YAML file or an MCP client refers to a function by a string, resolved in this order:

1. a name given to :func:`register_function` in this process;
2. an import path ``module:function`` (``module`` may be dotted). For the operator, the module is
   looked for in the folders of the experiment files they loaded (as ``python script.py`` looks
   next to the script), then on the Python path;
3. a plugin: an entry point of an installed package in the group ``promptlooper.functions``
   (``[project.entry-points."promptlooper.functions"] clean = "mypkg.text:clean"``).

Who may import what: an experiment file the operator runs (CLI, Python API) is the operator's own
code, like a script they run, so it may name any import path. An MCP client is not the operator
(it acts inside :func:`promptlooper.keys.for_client`): it may name registered functions and
installed plugins (installing a package is the operator's grant), and an import path only when
the module matches ``$PROMPTLOOPER_ALLOW_IMPORTS`` (comma-separated names, ``mypkg.*`` for a
package and its submodules); nothing else is imported for it, and the experiment folders are not
searched. The check comes before any import: a refused module's code never runs.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import re
import sys
import threading
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from .keys import acting_for_client

ALLOW_IMPORTS = "PROMPTLOOPER_ALLOW_IMPORTS"
ENTRY_POINT_GROUP = "promptlooper.functions"
_IMPORT_PATH = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([A-Za-z_][A-Za-z0-9_]*)$")

_FUNCTIONS: dict[str, Callable[..., Any]] = {}
_search_dirs: list[str] = []  # folders of experiment files the operator loaded, newest first
_import_lock = threading.Lock()


def register_function(name: str, fn: Callable[..., Any] | None = None) -> Any:
    """Register ``fn`` under ``name``; usable as a decorator: ``@register_function("clean")``."""

    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        _FUNCTIONS[name] = f
        return f

    return add(fn) if fn is not None else add


def registered_functions() -> dict[str, Callable[..., Any]]:
    return dict(_FUNCTIONS)


def add_search_dir(folder: str | os.PathLike[str]) -> None:
    """Let import paths find modules in ``folder`` (an experiment file's folder, for the operator)."""
    path = str(Path(folder).resolve())
    if path in _search_dirs:
        _search_dirs.remove(path)
    _search_dirs.insert(0, path)


def allowed_imports() -> list[str]:
    return [p.strip() for p in os.environ.get(ALLOW_IMPORTS, "").split(",") if p.strip()]


def import_allowed(module: str) -> bool:
    """Whether an MCP client may have ``module`` imported (see the module docstring)."""
    for pattern in allowed_imports():
        if fnmatch.fnmatchcase(module, pattern) or (pattern.endswith(".*") and module == pattern[:-2]):
            return True
    return False


def plugins(group: str = ENTRY_POINT_GROUP) -> dict[str, metadata.EntryPoint]:
    """Installed plugins of ``group`` by name (read from the packages' metadata; nothing imported)."""
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def resolve_function(ref: Callable[..., Any] | str) -> Callable[..., Any]:
    """The function ``ref`` names; KeyError with what was tried and what to do otherwise."""
    if callable(ref):
        return ref
    if ref in _FUNCTIONS:
        return _FUNCTIONS[ref]
    match = _IMPORT_PATH.match(ref)
    if match:
        return _import(match.group(1), match.group(2))
    found = plugins().get(ref)
    if found is not None:
        try:
            fn = found.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, never crashes validation
            raise KeyError(f"plugin {ref!r} ({found.value}) failed to load: {type(exc).__name__}: {exc}") from None
        if not callable(fn):
            raise KeyError(f"plugin {ref!r} ({found.value}) is a {type(fn).__name__}, not a function")
        return fn  # type: ignore[no-any-return]
    known = ", ".join(sorted(_FUNCTIONS) + sorted(plugins())) or "none"
    raise KeyError(f"no function {ref!r}: not registered, not an installed plugin (known: {known}), and not an import "
                   "path; write module:function (e.g. my_scorers:exact), register it with pl.register_function, or "
                   f"install a package with a {ENTRY_POINT_GROUP!r} entry point")


def function_problem(ref: Any) -> str | None:
    """Why ``ref`` cannot be resolved now (None: it can), without raising."""
    try:
        resolve_function(ref)
    except KeyError as exc:
        return str(exc.args[0])
    return None


def _import(module: str, attr: str) -> Callable[..., Any]:
    client = acting_for_client()
    if client and not import_allowed(module):
        listed = ", ".join(allowed_imports()) or "none"
        raise KeyError(f"{module}:{attr}: an MCP client may not import {module!r} (allowed: {listed}); the operator allows "
                       f"it with {ALLOW_IMPORTS}={module} in the server's environment, or registers the function")
    folders = [] if client else list(_search_dirs)
    try:
        mod = _import_module(module, folders)
    except ModuleNotFoundError as exc:
        where = ", ".join(folders) if folders else "no experiment folder"
        raise KeyError(f"{module}:{attr}: cannot import {module!r} ({exc}); looked in the experiment's folder ({where}) "
                       "and on the Python path: put the module next to the experiment file, or install it") from None
    except Exception as exc:  # noqa: BLE001 - the module's own error, reported with the stage or scorer's path
        raise KeyError(f"{module}:{attr}: importing {module!r} raised {type(exc).__name__}: {exc}") from None
    fn = getattr(mod, attr, None)
    if fn is None:
        names = sorted(n for n, v in vars(mod).items() if callable(v) and not n.startswith("_"))[:10]
        raise KeyError(f"{module}:{attr}: module {module!r} has no {attr!r} (it has: {', '.join(names) or 'no functions'})")
    if not callable(fn):
        raise KeyError(f"{module}:{attr} is a {type(fn).__name__}, not a function")
    return fn  # type: ignore[no-any-return]


def _import_module(module: str, folders: list[str]) -> Any:
    """Import ``module``, from the first of ``folders`` that holds it, else from the Python path."""
    top = module.split(".")[0]
    home = next((d for d in folders if (Path(d) / f"{top}.py").is_file() or (Path(d) / top / "__init__.py").is_file()), None)
    if home is None:
        return importlib.import_module(module)
    with _import_lock:
        loaded = sys.modules.get(top)
        if loaded is not None and not str(getattr(loaded, "__file__", "") or "").startswith(home + os.sep):
            # Another folder's module of the same name: this experiment means the one next to it.
            for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
                del sys.modules[name]
        sys.path.insert(0, home)  # for the module's own imports of its neighbours
        try:
            return importlib.import_module(module)
        finally:
            sys.path.remove(home)


__all__ = ["ALLOW_IMPORTS", "ENTRY_POINT_GROUP", "add_search_dir", "allowed_imports", "function_problem", "import_allowed",
           "plugins", "register_function", "registered_functions", "resolve_function"]
