"""What an MCP client may reach: key variables the operator allowed, sample files in one folder,
functions by name only. The agent-specific security rules of the MCP server, all in this module.

An MCP client is not the operator: it must not make the server send a key where it chooses (see
:mod:`promptlooper.keys`) nor read the server's files. The operator decides, in the server's
environment:

* ``PROMPTLOOPER_MCP_KEY_VARS=OPENAI_API_KEY,...``: the key variables a client may name, and then
  only for an origin the operator granted them to (never ``PROMPTLOOPER_*`` or ``JUPYTER_*``);
* ``PROMPTLOOPER_MCP_DATA_DIR=/srv/data``: the folder sample files may come from (paths resolved,
  symlinks included, and kept inside it). Without it, samples over MCP are inline only;
* function stages and ``python`` scorers name a registered function, an installed plugin, or an
  import path the operator allowed (``$PROMPTLOOPER_ALLOW_IMPORTS``); a refused module is never imported.

Replies never carry a key value: :func:`endpoint_key_vars` names the variables whose values are
redacted besides the ones :mod:`promptlooper.keys` knows.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..data_folder import DATA_DIR, data_file
from ..errors import EndpointError, Problem
from ..functions import ALLOW_IMPORTS, function_problem, registered_functions
from ..keys import KeyGrants, client_problem, key_references

if TYPE_CHECKING:
    from ..workbench import Workbench

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


def named_only(data: dict[str, Any]) -> list[Problem]:
    """Function stages and python scorers of a client's experiment that name no allowed function."""
    problems = []
    hint = (f"registered: {', '.join(sorted(registered_functions())) or 'none'}; the operator registers functions in the "
            f"server process, installs a plugin, or allows a module with {ALLOW_IMPORTS}")
    stages, scorers = data.get("stages"), data.get("scorers")
    for i, stage in enumerate(stages if isinstance(stages, list) else []):
        if isinstance(stage, dict) and (stage.get("kind") == "function" or "function" in stage):
            fn = stage.get("function")
            problem = function_problem(fn) if isinstance(fn, str) else f"{fn!r} is not a function name"
            if problem:
                problems.append(Problem(f"stages[{i}].function", problem, hint))
    for i, sc in enumerate(scorers if isinstance(scorers, list) else []):
        if isinstance(sc, dict) and sc.get("name") == "python":
            args = sc.get("args") if isinstance(sc.get("args"), dict) else {}
            fn = sc.get("function", args.get("function"))
            problem = function_problem(fn) if isinstance(fn, str) else f"{fn!r} is not a function name"
            if problem:
                problems.append(Problem(f"scorers[{i}].function", problem, hint))
    return problems


def endpoint_key_vars(wb: Workbench) -> list[str]:
    """Key variables the stored endpoints name: their values are redacted from replies too."""
    return [str(e["api_key_env"]) for e in wb.store.endpoints().values() if e.get("api_key_env")]


__all__ = ["DATA_DIR", "data_file", "endpoint_key_vars", "experiment_problems", "key_problem", "named_only"]
