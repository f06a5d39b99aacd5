"""``python -m promptlooper.mcp_server [--transport http --port N]``: what ``promptlooper mcp`` does."""

from __future__ import annotations

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["mcp", *sys.argv[1:]]))
