"""`promptlooper dashboard`: the dashboard notebooks served read-only by Voila.

Read-only is enforced in three layers, not just hidden: the Voila process (and so every kernel it
starts) has ``PROMPTLOOPER_READONLY=1``, so widgets render no steering controls and drop steering
messages; the dashboards open the store with ``Workbench(readonly=True)``, a SQLite ``mode=ro``
connection through which nothing can be written whatever a crafted message asks; and Voila itself
refuses code execution from the page. Each page view runs the notebook in a fresh kernel that reads
the store, so a dashboard follows a sweep running in any other process.

Voila's lab template asks a public CDN for Font Awesome in the page head; offline that request
fails (or hangs behind a proxy), so the launcher uses our copy of the template without those links,
and the dashboards use no icon fonts at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path


def dashboards_dir() -> Path:
    """Where the dashboard notebooks are: the checkout's notebooks/dashboards, or the wheel's copy."""
    checkout = Path(__file__).resolve().parent.parent / "notebooks" / "dashboards"
    if checkout.is_dir():
        return checkout
    packaged = resources.files("promptlooper") / "_notebooks" / "dashboards"
    return Path(str(packaged))


def voila_command(db: str, host: str, port: int, *, preheat: bool = True) -> tuple[list[str], dict[str, str]]:
    voila = shutil.which("voila", path=os.path.dirname(sys.executable)) or shutil.which("voila")
    if voila is None:
        raise FileNotFoundError("voila is not installed: pip install 'promptlooper[dashboard]'")
    cmd = [
        voila, str(dashboards_dir()), "--no-browser", f"--port={port}", f"--Voila.ip={host}",
        "--ServerApp.port_retries=0",
        # Our copy of the lab template, minus its Font Awesome CDN links (see jupyter_data/).
        "--VoilaConfiguration.template=promptlooper",
        "--VoilaConfiguration.show_tracebacks=False",
        "--MappingKernelManager.cull_idle_timeout=600", "--MappingKernelManager.cull_interval=60",
    ]
    if preheat:
        # Measured here: first render 6-8 s cold, about 3.5 s with a preheated kernel.
        cmd.append("--VoilaConfiguration.preheat_kernel=True")
    data = str(Path(__file__).resolve().parent / "jupyter_data")
    env = {
        **os.environ,
        "PROMPTLOOPER_READONLY": "1",
        "PROMPTLOOPER_DB": str(Path(db).resolve()),
        "JUPYTER_PATH": os.pathsep.join(p for p in (data, os.environ.get("JUPYTER_PATH", "")) if p),
    }
    return cmd, env


def serve(db: str, host: str = "127.0.0.1", port: int = 8402, *, preheat: bool = True) -> int:
    if not Path(db).exists():
        print(f"error: no database at {db}; run a sweep first (promptlooper run …)", file=sys.stderr)
        return 1
    cmd, env = voila_command(db, host, port, preheat=preheat)
    print(f"dashboard: http://{host}:{port}/ (read-only view of {Path(db).resolve()})", file=sys.stderr)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130
