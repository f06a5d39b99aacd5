"""Keys from a ``.env`` file: next to the experiment file, or in the working folder.

Endpoints name their key by variable (``api_key_env: OPENAI_API_KEY``); the value may live in a
``.env`` file instead of the shell's environment. Such a file is read (with python-dotenv) into
this process's environment, where key resolution (:mod:`promptlooper.keys`) finds it, and nowhere
else: the value is never written to the store, exports or events. A variable already set (non-empty) in the
environment wins over the file (the experiment's folder's file over the working folder's), and
``PROMPTLOOPER_*`` / ``JUPYTER_*`` names in a file are ignored: they configure what MCP clients
and dashboards may do, which is the operator's environment's to say, not a file's lying next to
an experiment.
"""

from __future__ import annotations

import os
from pathlib import Path

from .keys import DENIED_PREFIXES

FILENAME = ".env"


def load_env_files(*folders: str | os.PathLike[str] | None) -> list[str]:
    """Load the ``.env`` of each folder (first wins, the environment over all); the names set."""
    loaded: list[str] = []
    for folder in dict.fromkeys(str(Path(f).resolve()) for f in folders if f):
        path = Path(folder) / FILENAME
        if not path.is_file():
            continue
        # Imported only for a file to read: every sweep starts here, most without a .env (~15 ms).
        from dotenv import dotenv_values

        for name, value in dotenv_values(path).items():
            if value is None or os.environ.get(name) or name.upper().startswith(DENIED_PREFIXES):
                continue
            os.environ[name] = value
            loaded.append(name)
    return loaded


__all__ = ["FILENAME", "load_env_files"]
