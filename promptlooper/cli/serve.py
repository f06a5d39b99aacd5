"""Commands that serve this database until stopped: ``dashboard`` (read-only Voila pages) and ``mcp``
(the MCP tools, for agents that drive and steer sweeps)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .commands import CREATES, command

if TYPE_CHECKING:
    from ..workbench import Workbench


def cmd_dashboard(wb: Workbench, args: argparse.Namespace) -> int:
    from ..dashboard import serve

    return serve(wb.db_path, args.host, args.port, preheat=not args.no_preheat, guest=args.guest)


def cmd_mcp(wb: Workbench, args: argparse.Namespace) -> int:
    from ..mcp_server import serve

    try:
        return serve(wb, transport=args.transport, host=args.host, port=args.port)
    finally:
        wb.close()


# What add_parser adds: a command line naming one of these builds only this group's parsers (cli/parser.py).
COMMANDS = ("dashboard", "mcp")


def add_parser(sub: Any) -> None:
    p = command(sub, "dashboard", cmd_dashboard, "Serve the read-only Voila dashboards of this database (127.0.0.1 by default).")
    p.add_argument("--host", default="127.0.0.1", help="bind address; on any other than loopback a token is required (see --guest)")
    p.add_argument("--port", type=int, default=8402)
    p.add_argument("--no-preheat", action="store_true", help="start each page's kernel on request (slower first paint)")
    p.add_argument("--guest", action="store_true",
                   help="no token: anyone who reaches the address may view (read-only); off by default")
    p = command(sub, "mcp", cmd_mcp, "Serve the MCP tools (agents drive and steer sweeps): stdio, or HTTP with a bearer key.",
                database=CREATES)
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8401)
