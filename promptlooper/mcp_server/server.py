"""The MCP server: its tools, composed from one module per tool group, and its transports.

``build_server`` opens the store once, then lets each tool group register its tools on a
:class:`~.strict.StrictServer` (an ``MCPServer`` that refuses unknown argument names). Over HTTP a
bearer key is required: ``$PROMPTLOOPER_MCP_KEY``, or one generated at start-up and printed once
to stderr. It is never logged elsewhere and never stored.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sys
from typing import Any

from .. import __version__
from ..store import shown_location
from ..workbench import Workbench
from . import endpoints, experiments, guided, housekeeping, results, runs, steering, views
from .context import ToolContext
from .strict import StrictServer

KEY_ENV = "PROMPTLOOPER_MCP_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8401
SERVER_NAME = "promptlooper"

INSTRUCTIONS = """PromptLooper finds the best prompt x model x parameters for an LLM pipeline by measuring.
Typical flow: create_experiment (samples, stages, space, scorers) -> plan -> run_sweep (background)
-> get_experiment_status (poll) -> get_leaderboard -> export_best_config. Steer with pause_sweep,
resume_sweep, stop_sweep, redirect_sweep, fork_experiment, approve_configuration,
reject_configuration. Guided search by the agent: ask_configurations -> evaluate_configurations
(or evaluate yourself and tell_result). Experiments are referenced as 'project/name'."""

# In the order an agent meets them (the tool list follows it).
TOOL_GROUPS = (experiments, housekeeping, endpoints, runs, results, steering, guided, views)


def build_server(wb: Workbench | None = None, *, db: str | None = None, **server_options: Any) -> StrictServer:
    """An MCPServer whose tools drive ``wb`` (default: a Workbench on ``db`` or $PROMPTLOOPER_DB)."""
    wb = wb or Workbench(db)
    wb.store  # noqa: B018 - open (and migrate) the store once, before tools run on worker threads
    wb.keep_delivering_webhooks()  # the server holds the store: it delivers queued webhook events
    server = StrictServer(SERVER_NAME, instructions=INSTRUCTIONS, version=__version__, **server_options)
    server.workbench = wb  # type: ignore[attr-defined]
    context = ToolContext(wb)
    for group in TOOL_GROUPS:
        group.register(server, context)
    return server


def bearer(app: Any, key: str) -> Any:
    """ASGI wrapper: every HTTP request needs ``Authorization: Bearer <key>`` (else 401)."""
    expected = f"Bearer {key}".encode()

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            got = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(got, expected):
                # error="invalid_token" tells MCP clients (the Inspector among them) that a bearer
                # key is what is missing; a bare "Bearer" makes them start an OAuth discovery flow.
                challenge = b'Bearer error="invalid_token", error_description="missing or wrong bearer key"'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"www-authenticate", challenge), (b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"error": "missing or wrong bearer key"}'})
                return
        await app(scope, receive, send)

    return asgi


def serve(wb: Workbench, transport: str = "stdio", host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Run the server until the client (stdio) or a signal (http) ends it."""
    if transport == "stdio":
        build_server(wb, log_level="WARNING").run()
        return 0
    import uvicorn  # only the HTTP transport needs it

    key = os.environ.get(KEY_ENV, "")
    if not key:
        key = secrets.token_urlsafe(32)
        print(f"promptlooper mcp: bearer key (shown once; set ${KEY_ENV} to choose it): {key}", file=sys.stderr, flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"promptlooper mcp: warning: listening on {host}, not only on this machine", file=sys.stderr, flush=True)
    print(f"promptlooper mcp: http://{host}:{port}/mcp (database {shown_location(wb.db_path)})", file=sys.stderr, flush=True)
    app = bearer(build_server(wb, log_level="WARNING").streamable_http_app(host=host), key)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "INSTRUCTIONS", "KEY_ENV", "bearer", "build_server", "serve"]
