"""Custom scorers: a Python function, or an HTTP webhook.

``python`` calls a function registered with :func:`promptlooper.register_function` (by name, as
YAML and MCP must) or a callable given in Python. It receives, by parameter name, any of
``input``, ``output``, ``sample``, ``run``, ``outputs`` and ``ctx`` (the whole ScoreContext),
plus the scorer's ``args``. Only a function registered by name can be re-scored later: a callable
cannot be stored.

``webhook`` POSTs ``{"input", "output", "sample", "run", "outputs"}`` as JSON to a URL and reads
``{"score": x}`` (other keys become metadata) or a bare number. Headers with secrets are given by
environment variable name (``headers_env: {Authorization: MY_TOKEN_VAR}``), never by value, and are
sent only to a URL whose origin the operator granted the variable to (:mod:`promptlooper.keys`).

Both may return (or answer) a number, a bool, ``{"score": x, ...}``, a ScoreResult or
``(value, detail)``; any failure scores 0 with the reason in the metadata.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from ..errors import EndpointError
from ..functions import resolve_function
from ..keys import key_value, redact
from ..retrying import Retry, post
from .core import ScoreContext, ScoreFn, ScoreResult, scorer

_GIVEN = ("input", "output", "sample", "run", "outputs", "ctx")


def to_result(value: Any, source: str) -> ScoreResult:
    """Normalise what a custom scorer returned; raises ValueError for anything else."""
    if isinstance(value, ScoreResult):
        return value
    detail: dict[str, Any] | None = None
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict | type(None)):
        value, detail = value
    elif isinstance(value, dict):
        if "score" not in value:
            raise ValueError(f"{source} returned an object without a 'score' key: {sorted(value)}")
        rest = {k: v for k, v in value.items() if k != "score"}
        value, detail = value["score"], rest.get("metadata", rest) or None
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, int | float):
        raise ValueError(f"{source} returned {type(value).__name__} {value!r}, not a number")
    number = float(value)
    if not 0.0 <= number <= 1.0:
        detail = {**(detail or {}), "raw": number, "clamped": True}
    return ScoreResult(min(1.0, max(0.0, number)), detail)


def _plan_call(fn: Callable[..., Any], args: dict[str, Any]) -> Callable[[ScoreContext], dict[str, Any]]:
    sig = inspect.signature(fn)
    params = sig.parameters
    takes_all = any(p.kind == p.VAR_KEYWORD for p in params.values())
    known = set(_GIVEN) | set(args)
    for name, p in params.items():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or name in known or p.default is not p.empty:
            continue
        raise ValueError(f"function {getattr(fn, '__name__', fn)!r} needs argument {name!r}, which a python scorer cannot give;"
                         f" it may take {', '.join(_GIVEN)} and the scorer's args")

    def kwargs(ctx: ScoreContext) -> dict[str, Any]:
        given = {"input": ctx.input, "output": ctx.output, "sample": ctx.sample, "run": ctx.run, "outputs": ctx.outputs,
                 "ctx": ctx, **args}
        return given if takes_all else {k: v for k, v in given.items() if k in params}

    return kwargs


@scorer("python", description="A Python function (registered by name, or a callable) returns the score.")
def python(function: Callable[..., Any] | str, args: dict[str, Any] = {}) -> ScoreFn:  # noqa: B006 - pydantic validates a copy
    try:
        fn = resolve_function(function)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from exc
    kwargs = _plan_call(fn, dict(args))
    name = getattr(fn, "__name__", str(function))

    async def score(ctx: ScoreContext) -> ScoreResult:
        value = fn(**kwargs(ctx))
        if inspect.isawaitable(value):
            value = await value
        return to_result(value, f"function {name!r}")

    return score


@scorer("webhook", description="POSTs {input, output, sample, run} to a URL that answers {\"score\": x} or a number.")
def webhook(url: str, timeout: float = 10.0, headers_env: dict[str, str] = {}, retries: int = 1) -> ScoreFn:  # noqa: B006
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, not {url!r}")
    if timeout <= 0 or retries < 0:
        raise ValueError("timeout must be positive and retries at least 0")

    async def score(ctx: ScoreContext) -> ScoreResult:
        import aiohttp

        from .env import current

        headers = {"Content-Type": "application/json"}
        grants = current().grants if headers_env else None
        for header, var in headers_env.items():
            try:  # refused unless the operator granted $var to this URL's origin
                headers[header] = key_value(var, url, grants, f"webhook scorer header {header}")
            except EndpointError as exc:
                return ScoreResult(0.0, {"error": str(exc)})
        body = json.dumps({"input": ctx.input, "output": ctx.output, "sample": ctx.sample, "run": ctx.run,
                           "outputs": ctx.outputs}, ensure_ascii=False, default=str)
        policy = Retry(attempts=retries + 1, base=0.2)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            try:
                # A redirect would carry the header values to an origin they were not granted to.
                reply = await post(session, url, policy, data=body, headers=headers, allow_redirects=not headers_env)
            except (TimeoutError, aiohttp.ClientError) as exc:
                timed_out = isinstance(exc, TimeoutError)
                error = f"timed out after {timeout:g}s" if timed_out else f"{type(exc).__name__}: {exc}"
                return ScoreResult(0.0, {"error": f"webhook {url} failed: {error}"})
        if reply.status == 200:
            try:
                return to_result(json.loads(reply.body), "the webhook")
            except ValueError as exc:
                return ScoreResult(0.0, redact({"error": f"bad webhook answer: {exc}", "body": reply.body[:200].decode("utf-8", "replace")}))
        error = redact(f"HTTP {reply.status}: {reply.body[:200].decode('utf-8', 'replace')}")
        return ScoreResult(0.0, {"error": f"webhook {url} failed: {error}"})

    return score
