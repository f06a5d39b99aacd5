"""Prompt templates kept in files: ``user: {file: prompts/answer.j2}``.

A stage's ``system`` / ``user`` (and the values a space gives them) may be ``{file: PATH}``, a path
relative to the experiment file. The file's text replaces the reference as the experiment is
parsed, so the text *is* the template everywhere after: in the configuration's id, the stored
definition, the rendered prompt and so the cache key. Editing the file therefore makes a new
definition and new calls; a stored experiment runs again without the file. The file's final
newline is dropped, as Jinja drops it from templates it loads.

An MCP client's files come from the operator's data folder only (``PROMPTLOOPER_MCP_DATA_DIR``),
as its sample files do (:mod:`promptlooper.data_folder`). A prompt file is read with the experiment
file's bounds (1 MB of UTF-8).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .bounds import read_text
from .data_folder import data_file
from .errors import Problem, SpecError
from .keys import acting_for_client

FIELDS = ("system", "user")


def inline_prompt_files(data: dict[str, Any]) -> list[Problem]:
    """Replace every ``{file: PATH}`` template in ``data`` (an experiment mapping) by the file's text.

    Returns the problems (the reference is then left as an empty template, so that the rest of
    the experiment is still checked).
    """
    problems: list[Problem] = []
    base = data.get("base_dir")
    stages, space = data.get("stages"), data.get("space")
    # Any shape may arrive here (a hostile file): only well-formed places are looked at, the
    # schema reports the rest.
    for i, stage in enumerate(stages if isinstance(stages, list) else []):
        if isinstance(stage, dict):
            for field in FIELDS:
                if _is_ref(stage.get(field)):
                    stage[field] = _read(stage[field], base, f"stages[{i}].{field}", problems)
    for key, values in (space if isinstance(space, dict) else {}).items():
        if isinstance(key, str) and key.rsplit(".", 1)[-1] in FIELDS and isinstance(values, list):
            for j, value in enumerate(values):
                if _is_ref(value):
                    values[j] = _read(value, base, f"space.{key}[{j}]", problems)
    return problems


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and "file" in value


def _read(ref: dict[str, Any], base: str | None, path: str, problems: list[Problem]) -> str:
    name = ref.get("file")
    if set(ref) != {"file"} or not isinstance(name, str) or not name.strip():
        problems.append(Problem(path, f"a template file reference is {{file: PATH}} alone, not {ref!r}",
                                "e.g. user: {file: prompts/answer.j2}"))
        return ""
    try:
        if acting_for_client():
            file = data_file(name)
        else:
            file = Path(name).expanduser()
            if not file.is_absolute() and base:
                file = Path(base) / file
    except ValueError as exc:
        problems.append(Problem(path, str(exc), "give the template's text inline"))
        return ""
    if not file.is_file():
        problems.append(Problem(path, f"template file {str(file)!r} does not exist",
                                "check the path (relative paths are resolved next to the experiment file)"))
        return ""
    try:
        text = read_text(file)
    except SpecError as exc:
        problems += [Problem(path, f"template file {file.name}: {p.message}", p.hint) for p in exc.problems]
        return ""
    # The newline an editor ends every file with is not part of the prompt (as Jinja's own loaders do).
    return text.removesuffix("\n").removesuffix("\r")


__all__ = ["inline_prompt_files"]
