"""The Docker image's entrypoint, run outside Docker: JupyterLab, the dashboard and MCP come up,
each behind its own access rule (token, read-only, bearer key)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def status(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> int:
    req = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def final_url(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:  # follows redirects
        return resp.geturl()


def wait_status(url: str, timeout: float = 120, **kw) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return status(url, **kw)
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} never answered")


def test_entrypoint_starts_lab_dashboard_and_mcp(tmp_path):
    ports = {"PORT": free_port(), "MCP_PORT": free_port(), "DASHBOARD_PORT": free_port()}
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "HOST": "127.0.0.1", "JUPYTER_TOKEN": "lab-token-123",
           "PROMPTLOOPER_MCP_KEY": "mcp-key-456", "PROMPTLOOPER_DASHBOARD_TOKEN": "dash-token-789", "PROMPTLOOPER_BIN": str(Path(sys.executable).parent),
           **{k: str(v) for k, v in ports.items()}}
    env.pop("PROMPTLOOPER_DB", None)
    # A database for the dashboard to show.
    (tmp_path / "data").mkdir()
    db = tmp_path / "data" / "promptlooper.db"
    subprocess.run([sys.executable, "-c", f"import promptlooper as pl; pl.Workbench(r'{db}').create_project('docker')"],
                   check=True, env=env, timeout=60)
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "entrypoint.sh")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lab = f"http://127.0.0.1:{ports['PORT']}"
        assert wait_status(f"{lab}/api/status?token=lab-token-123") == 200
        assert status(f"{lab}/api/status") == 403  # the token is required
        dash = f"http://127.0.0.1:{ports['DASHBOARD_PORT']}"
        assert wait_status(f"{dash}/?token=dash-token-789") == 200
        assert "/login" in final_url(f"{dash}/voila/render/overview.ipynb")  # the token is required
        mcp = f"http://127.0.0.1:{ports['MCP_PORT']}/mcp"
        body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
        hdrs = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        assert wait_status(mcp, data=body, headers=hdrs) == 401  # the key is required
        assert status(mcp, data=body, headers={**hdrs, "Authorization": "Bearer mcp-key-456"}) != 401
        assert (tmp_path / "data" / "notebooks").is_dir()  # recipes copied next to the data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
