"""The ``webhooks`` command: add, list, remove webhooks, and ``deliver`` their queue now.

Delivery (retries with backoff, the outbox) is the Workbench's; this reads options and prints."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ..errors import Problem, SpecError
from .commands import CREATES, NONE_NEEDED, action, command
from .output import table

if TYPE_CHECKING:
    from ..workbench import Workbench


def headers(items: list[str]) -> dict[str, str]:
    """``--header NAME=ENV_VAR`` options as a mapping (the value is read from $ENV_VAR at send time)."""
    bad = [h for h in items if "=" not in h]
    if bad:
        raise SpecError([Problem("--header", f"{bad[0]!r} is not NAME=ENV_VAR",
                                 "e.g. --header Authorization=HOOK_AUTH (the value is read from $HOOK_AUTH)")])
    return dict(h.split("=", 1) for h in items)


def cmd_webhooks(wb: Workbench, args: argparse.Namespace) -> int:
    if args.action == "add":
        try:
            wid = wb.add_webhook(args.event, args.url, headers(args.header or []), max_attempts=args.max_attempts,
                                 backoff=args.backoff)
        except ValueError as exc:
            raise SpecError([Problem("webhook", str(exc), "see `promptlooper webhooks add --help`")]) from exc
        print(f"webhook {wid[:8]} → {args.url} for {args.event}")
    elif args.action == "remove":
        wb.remove_webhook(args.id)
        print(f"webhook {args.id} removed")
    elif args.action == "deliver":
        out = wb.deliver_webhooks(wait=args.wait)
        print(f"webhook outbox: {out['delivered']} delivered, {out['failed']} failed, {out['pending']} pending")
        if out["failed"] or out["pending"]:
            print("failed deliveries spent their retries (see wb.webhook_outbox()); pending ones are retried by the next"
                  " `promptlooper webhooks deliver` or any process that opens the store", file=sys.stderr)
            return 1
    else:
        print(table(wb.webhooks(), ["id", "event_type", "url", "headers_env", "is_active"]))
    return 0


# What add_parser adds: a command line naming one of these builds only this group's parsers (cli/parser.py).
COMMANDS = ("webhooks",)


def add_parser(sub: Any) -> None:
    p = command(sub, "webhooks", cmd_webhooks, "Register webhooks (JSON POSTs of events, with retries) and deliver their queue.",
                database=NONE_NEEDED)
    verbs = p.add_subparsers(dest="action")
    a = action(verbs, "add", database=CREATES)
    a.add_argument("event", help="event type, 'run.*' or '*'")
    a.add_argument("url")
    a.add_argument("--header", action="append", help="NAME=ENV_VAR: the header's value is read from $ENV_VAR at send time")
    a.add_argument("--max-attempts", type=int, help="attempts per event before it is marked failed (default 8)")
    a.add_argument("--backoff", type=float, help="seconds before the first retry, doubling after each (default 1)")
    action(verbs, "list", database=NONE_NEEDED)
    d = action(verbs, "deliver", "Deliver queued events now (retries with backoff); exit 1 if any failed or is left.")
    d.add_argument("--wait", type=float, default=30.0, help="seconds to keep retrying (default 30)")
    action(verbs, "remove", database=CREATES).add_argument("id")
