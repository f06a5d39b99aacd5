"""The operator's data folder: the only files an MCP client's experiment may read.

Kept apart from the MCP server's package because the loaders (prompt files, sample files) apply
the same rule while validating an experiment a client sent, and they must not import the server.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = "PROMPTLOOPER_MCP_DATA_DIR"


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
