"""What an MCP client may reach: key variables the operator allowed, sample files in one folder.

An MCP client is not the operator: it must not make the server send a key where it chooses (see
:mod:`promptlooper.keys`) nor read the server's files. The operator decides, in the server's
environment:

* ``PROMPTLOOPER_MCP_KEY_VARS=OPENAI_API_KEY,...``: the key variables a client may name, and then
  only for an origin the operator granted them to (never ``PROMPTLOOPER_*`` or ``JUPYTER_*``);
* ``PROMPTLOOPER_MCP_DATA_DIR=/srv/data``: the folder sample files may come from (paths resolved,
  symlinks included, and kept inside it). Without it, samples over MCP are inline only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EndpointError, Problem
from .keys import KeyGrants, client_problem, key_references

if TYPE_CHECKING:
    from .workbench import Workbench

DATA_DIR = "PROMPTLOOPER_MCP_DATA_DIR"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_HINT = "the operator allows a variable with PROMPTLOOPER_MCP_KEY_VARS and grants it by registering the endpoint"


def key_problem(wb: Workbench, var: str | None, url: str | None) -> str | None:
    """Why a client may not name ``$var`` for ``url`` (None: it may, or the schema will say why not)."""
    if not var or not _NAME.match(var) or (url is not None and not re.match(r"^https?://", url)):
        return None  # not a variable name / not a URL: the schema's own message is clearer
    try:
        return client_problem(var, url, KeyGrants(wb.store))
    except EndpointError as exc:  # a URL yarl (and so aiohttp) cannot parse
        return str(exc)


def data_file(value: str) -> Path:
    """The sample file ``value`` names, inside the operator's data folder (ValueError otherwise)."""
    root = os.environ.get(DATA_DIR, "").strip()
    if not root:
        raise ValueError(f"an MCP client cannot read files of the server; give the samples inline (a list of objects), "
                         f"or the operator sets {DATA_DIR} to a folder of sample files")
    base = Path(root).expanduser().resolve()
    given = Path(value).expanduser()
    target = (given if given.is_absolute() else base / given).resolve()  # resolve() follows symlinks
    if not target.is_relative_to(base):
        raise ValueError(f"{value!r} is outside the data folder; give a path inside it, e.g. a name relative to {DATA_DIR}")
    return target


def experiment_problems(wb: Workbench, data: dict[str, Any]) -> list[Problem]:
    """What a client's experiment may not do; rewrites ``data["samples"]`` to the confined file."""
    problems: list[Problem] = []
    data.pop("base_dir", None)  # relative sample paths resolve in the data folder, nowhere else
    if isinstance(data.get("samples"), str):
        try:
            data["samples"] = str(data_file(data["samples"]))
        except ValueError as exc:
            problems.append(Problem("samples", str(exc), "samples: [{...}, {...}]"))
            data["samples"] = []  # nothing read: validation goes on without the file
    grants = KeyGrants(wb.store)
    stored = {name: row["base_url"] for name, row in wb.store.endpoints().items()}
    for path, var, url in key_references(data, stored):
        if not _NAME.match(var) or (url is not None and not re.match(r"^https?://", str(url))):
            continue  # the schema reports it
        try:
            problem = client_problem(var, url, grants)
        except EndpointError as exc:
            problem = str(exc)
        if problem:
            problems.append(Problem(path, problem, _KEY_HINT))
    return problems


__all__ = ["DATA_DIR", "data_file", "experiment_problems", "key_problem"]
