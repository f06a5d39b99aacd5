"""Commands about models: ``endpoints`` (list, add, test, remove) and ``prices`` (list, set).

Listing and testing endpoints needs no database (the embedded ``local`` one is always there);
adding or removing one, or setting a price, may create it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .commands import CREATES, NONE_NEEDED, action, command
from .output import table

if TYPE_CHECKING:
    from ..workbench import Workbench


def cmd_endpoints(wb: Workbench, args: argparse.Namespace) -> int:
    verb = args.action or "list"
    if verb == "add":
        info = wb.add_endpoint(args.name, args.base_url, api_key_env=args.api_key_env, max_concurrency=args.max_concurrency,
                               timeout=args.timeout, max_retries=args.max_retries)
        print(f"endpoint {args.name} → {info['base_url']} saved" + (f" (key from ${args.api_key_env})" if args.api_key_env else ""))
    elif verb == "test":
        models = wb.test_endpoint(args.name)
        print(f"✓ {args.name} answered; {len(models)} model(s):")
        for m in models:
            print(f"  {args.name}/{m}")
    elif verb == "remove":
        wb.remove_endpoint(args.name)
        print(f"endpoint {args.name} removed")
    else:
        rows = wb.endpoints()
        print(json.dumps(rows, indent=2) if args.json else table(rows, ["name", "kind", "base_url", "api_key_env", "max_concurrency"]))
    return 0


def cmd_prices(wb: Workbench, args: argparse.Namespace) -> int:
    if args.action == "set":
        wb.set_price(args.model, args.input, args.output)
        print(f"price of {args.model}: ${args.input}/M input, ${args.output}/M output tokens")
        return 0
    rows = wb.prices()
    print(json.dumps(rows, indent=2) if args.json else table(rows, ["model", "input", "output", "source"]))
    print("USD per million tokens; the first match wins: user, then the endpoint's, then the defaults", file=sys.stderr)
    return 0


# What add_parser adds: a command line naming one of these builds only this group's parsers (cli/parser.py).
COMMANDS = ("endpoints", "prices")


def add_parser(sub: Any) -> None:
    p = command(sub, "endpoints", cmd_endpoints, "Manage model endpoints: list, add, test, remove.", database=NONE_NEEDED)
    p.set_defaults(json=False)
    verbs = p.add_subparsers(dest="action")
    action(verbs, "list", "List endpoints (the embedded 'local' is always there).", database=NONE_NEEDED).add_argument(
        "--json", action="store_true")
    a = action(verbs, "add", "Add or update an OpenAI-compatible endpoint.", database=CREATES)
    a.add_argument("name")
    a.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:11434/v1")
    a.add_argument("--api-key-env", help="NAME of the environment variable holding the key (the key is never stored)")
    a.add_argument("--max-concurrency", type=int, default=32)
    a.add_argument("--timeout", type=float, default=60.0)
    a.add_argument("--max-retries", type=int, default=6)
    action(verbs, "test", "Reach an endpoint and list its models.", database=NONE_NEEDED).add_argument("name")
    action(verbs, "remove", "Remove an endpoint.", database=CREATES).add_argument("name")
    p = command(sub, "prices", cmd_prices, "Set or list models' prices (USD per million input / output tokens).")
    verbs = p.add_subparsers(dest="action", required=True)
    action(verbs, "list", "Every known price and where it comes from (user, endpoint, default).").add_argument(
        "--json", action="store_true")
    s = action(verbs, "set", database=CREATES)
    s.add_argument("model")
    s.add_argument("input", type=float)
    s.add_argument("output", type=float)
