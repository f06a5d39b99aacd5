"""Key grants: an API key variable goes only where the operator sent it, and never comes back.

A key is always named by environment variable (``api_key_env``, ``headers_env``), never given by
value. Naming a variable is not enough to have it sent: the variable must be *granted* to the
origin (scheme, host, port) of the URL it is about to be sent to. Grants are made by the
operator only, as a side effect of registering something with a key through the CLI, the Python
API or an experiment file they run (:meth:`Workbench.add_endpoint`, :meth:`Workbench.add_webhook`,
:meth:`Workbench.register`); they are kept in the store's settings (names and origins, never
values), so every process on the database enforces the same ones.

An MCP client acts inside :func:`for_client`: what it registers grants nothing, and it may only
name a variable listed in ``$PROMPTLOOPER_MCP_KEY_VARS`` (never ``PROMPTLOOPER_*`` or
``JUPYTER_*``), for an origin the operator granted it to (:func:`client_problem`).

Keys are resolved into headers in one place, :func:`key_value`, which refuses an origin without a
grant. Values of key variables are replaced by ``[redacted $NAME]`` in errors, events, webhook
bodies and MCP replies (:func:`redact`), because some proxies echo the key in their errors.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from yarl import URL

from .errors import EndpointError

if TYPE_CHECKING:
    from .store import Store

SETTING = "key_grants"  # store setting: {variable: [origin, ...]}
MCP_KEY_VARS = "PROMPTLOOPER_MCP_KEY_VARS"
DENIED_PREFIXES = ("PROMPTLOOPER_", "JUPYTER_")
# Always redacted when set, though no endpoint names them: the MCP bearer key and Jupyter's token.
OWN_SECRETS = ("PROMPTLOOPER_MCP_KEY", "JUPYTER_TOKEN")
MIN_REDACTED = 6  # shorter values would blank out ordinary words

_client: contextvars.ContextVar[bool] = contextvars.ContextVar("promptlooper_mcp_client", default=False)
_seen_vars: set[str] = set()  # variables named by a grant or resolved in this process: their values are redacted


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL, lower-case, with the default port made explicit.

    Parsed by yarl, as aiohttp parses the URL it then connects to: no parser difference between
    the check and the call (``http://granted@attacker`` is the attacker's).
    """
    try:
        parsed = URL(url.strip())
        scheme, host, port = parsed.scheme.lower(), (parsed.host or "").lower(), parsed.port
    except (ValueError, TypeError) as exc:
        raise EndpointError(f"{url!r} is not a valid URL: {exc}") from exc
    if scheme not in ("http", "https") or not host:
        raise EndpointError(f"{url!r} is not an http(s) URL")
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


# --------------------------------------------------------------------------- who is acting
@contextlib.contextmanager
def for_client() -> Iterator[None]:
    """Everything inside acts for an MCP client: it grants nothing (see the module docstring)."""
    token = _client.set(True)
    try:
        yield
    finally:
        _client.reset(token)


def acting_for_client() -> bool:
    return _client.get()


# --------------------------------------------------------------------------- grants
def _load(store: Store) -> dict[str, set[str]]:
    raw = store.get_setting(SETTING, {}) or {}
    return {str(var): set(origins) for var, origins in raw.items()}


def grant(store: Store, var: str | None, url: str) -> None:
    """The operator sends ``$var`` to ``url``'s origin; a no-op when an MCP client acts."""
    if not var or acting_for_client():
        return
    where = origin(url)
    grants = _load(store)
    if where in grants.get(var, set()):
        return
    grants.setdefault(var, set()).add(where)
    store.set_setting(SETTING, {v: sorted(o) for v, o in sorted(grants.items())})
    _seen_vars.add(var)


def grant_experiment(store: Store, exp: Any) -> None:
    """Grant every (variable, URL) an experiment the operator registers names with its URL.

    Only URLs written in the experiment itself count: a stored endpoint named by a scorer may have
    been re-pointed by a client since, and its own registration is what grants its key.
    """
    if acting_for_client():
        return
    for _path, var, url in key_references(exp, {}):
        if url:
            grant(store, var, url)


class KeyGrants:
    """The grants of one store, re-read on a miss (another process may have granted since)."""

    def __init__(self, store: Store | None):
        self._store = store
        self._grants: dict[str, set[str]] = {}

    def allows(self, var: str, url: str) -> bool:
        where = origin(url)
        if where in self._grants.get(var, ()):
            return True
        if self._store is None:
            return False
        self._grants = _load(self._store)
        _seen_vars.update(self._grants)
        return where in self._grants.get(var, ())

    def origins(self, var: str) -> list[str]:
        return sorted(self._grants.get(var, ()))


def key_value(var: str, url: str, grants: KeyGrants | None, what: str) -> str:
    """The value of ``$var`` to send to ``url``, or EndpointError saying why not.

    ``grants=None`` is the operator's own code with no store (a scorer built and run by hand):
    nothing a client wrote can reach it, so the variable goes where that code says.
    """
    value = os.environ.get(var)
    if not value:
        raise EndpointError(f"{what} reads its API key from ${var}, which is not set; export {var}=... before running")
    _seen_vars.add(var)
    if grants is not None and not grants.allows(var, url):
        granted = ", ".join(grants.origins(var)) or "nowhere yet"
        raise EndpointError(
            f"{what}: ${var} is not sent to {origin(url)}: a key goes only to the origin the operator registered it "
            f"for (${var} is granted to: {granted}). The operator grants it by registering the endpoint, e.g. "
            f"`promptlooper endpoints add NAME --base-url {url} --api-key-env {var}`"
        )
    return value


# --------------------------------------------------------------------------- what an experiment names
def key_references(exp: Any, endpoint_urls: dict[str, str]) -> Iterator[tuple[str, str, str | None]]:
    """``(field path, variable, URL it goes to)`` for every key variable an experiment names.

    ``exp`` is an Experiment or its JSON form; ``endpoint_urls`` maps stored endpoint names to
    base URLs (an embedding scorer may name one). The URL is None when it cannot be known.
    """
    data = exp if isinstance(exp, dict) else exp.to_record()
    inline = data.get("endpoints") or {}
    urls = {**endpoint_urls, **{n: e.get("base_url") for n, e in inline.items() if isinstance(e, dict)}}
    for name, ep in inline.items():
        if isinstance(ep, dict) and ep.get("api_key_env"):
            yield f"endpoints.{name}.api_key_env", str(ep["api_key_env"]), ep.get("base_url")
    for i, sc in enumerate(data.get("scorers") or []):
        if not isinstance(sc, dict):
            continue
        args = {**(sc.get("args") or {}), **{k: v for k, v in sc.items() if k not in ("name", "weight", "label", "stage", "args")}}
        # A judge's api_key_env applies with its base_url only (else its model's endpoint brings its own).
        if args.get("api_key_env") and (args.get("base_url") or sc.get("name") != "judge"):
            url = args.get("base_url") or urls.get(str(args.get("endpoint")))
            yield f"scorers[{i}].api_key_env", str(args["api_key_env"]), url
        headers = args.get("headers_env")
        if isinstance(headers, dict):
            for header, var in headers.items():
                yield f"scorers[{i}].headers_env.{header}", str(var), args.get("url")


def client_problem(var: str, url: str | None, grants: KeyGrants) -> str | None:
    """Why an MCP client may not name ``$var`` for ``url`` (None: it may)."""
    if var.upper().startswith(DENIED_PREFIXES):
        return f"${var} is PromptLooper's or Jupyter's own secret; an MCP client can never name it"
    allowed = mcp_key_vars()
    if var not in allowed:
        listed = ", ".join(sorted(allowed)) or "none"
        return (f"${var} is not a key variable MCP clients may use (allowed: {listed}); the operator allows it with "
                f"{MCP_KEY_VARS}={var} in the server's environment")
    if url is None:
        return f"${var}: no URL to send it to is known; give base_url (or a configured endpoint)"
    if not grants.allows(var, url):
        granted = ", ".join(grants.origins(var)) or "nowhere yet"
        return (f"${var} is not granted to {origin(url)} (granted to: {granted}); only the operator grants a key to an "
                f"endpoint, with `promptlooper endpoints add NAME --base-url URL --api-key-env {var}` or in Python")
    return None


def mcp_key_vars() -> set[str]:
    """The key variables the operator lets MCP clients name (never PromptLooper's or Jupyter's own)."""
    names = {v.strip() for v in os.environ.get(MCP_KEY_VARS, "").split(",") if v.strip()}
    return {v for v in names if not v.upper().startswith(DENIED_PREFIXES)}


# --------------------------------------------------------------------------- redaction
def secret_values(extra_vars: Iterable[str] = ()) -> dict[str, str]:
    """value -> variable name, for every key variable known to this process that is set."""
    out: dict[str, str] = {}
    for var in {*_seen_vars, *OWN_SECRETS, *mcp_key_vars(), *extra_vars}:
        value = os.environ.get(var)
        if value and len(value) >= MIN_REDACTED:
            out[value] = var
    return out


@functools.lru_cache(maxsize=8)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(s) for s in values))


def redact(value: Any, extra_vars: Iterable[str] = ()) -> Any:
    """``value`` (a string, or JSON-like data) with every key value replaced by ``[redacted $NAME]``."""
    secrets = secret_values(extra_vars)
    if not secrets:
        return value
    pattern = _pattern(tuple(sorted(secrets, key=len, reverse=True)))

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return pattern.sub(lambda m: f"[redacted ${secrets[m.group(0)]}]", v) if pattern.search(v) else v
        if isinstance(v, dict):
            return {walk(k) if isinstance(k, str) else k: walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return type(v)(walk(x) for x in v) if isinstance(v, list) else tuple(walk(x) for x in v)
        return v

    return walk(value)


__all__ = [
    "MCP_KEY_VARS", "KeyGrants", "acting_for_client", "client_problem", "for_client", "grant", "grant_experiment",
    "key_references", "key_value", "mcp_key_vars", "origin", "redact", "secret_values",
]
