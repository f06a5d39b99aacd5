"""`promptlooper dashboard`: the dashboard notebooks served read-only by Voila.

Read-only is enforced in three layers, not just hidden: the Voila process (and so every kernel it
starts) has ``PROMPTLOOPER_READONLY=1``, so widgets render no steering controls and drop steering
messages; the dashboards open the store with ``Workbench(readonly=True)``, a SQLite ``mode=ro``
connection (on PostgreSQL, sessions with ``default_transaction_read_only``) through which nothing
can be written whatever a crafted message asks; and Voila itself refuses code execution from the
page. On PostgreSQL the operator should also give a read-only role's URL (``promptlooper db
reader-role``), so that the server refuses writes even to a session that turns read-only off; the
launcher warns when the URL's role may write. Each page view runs the notebook in a fresh kernel that reads
the store, so a dashboard follows a sweep running in any other process.

The door: on loopback the pages are open (only this machine reaches them); on any other address a
token is required unless the operator opts into guest viewing with ``--guest`` (the
specification's "guests may view read-only when an admin allows it", off by default). The token
comes from ``$PROMPTLOOPER_DASHBOARD_TOKEN`` (which also closes a loopback dashboard) or is
generated and printed once. It reaches Voila through a private config file, never the command line
(which every local user can read in ``ps``).

The launcher owns Voila's lifetime: SIGTERM or SIGINT stops Voila and every kernel it started
(kernels run in sessions of their own, so they are found as Voila's descendants and killed if
Voila's own shutdown leaves them); a taken port fails at once instead of Voila moving to another
port while we print the old URL.

Voila's lab template asks a public CDN for Font Awesome in the page head; offline that request
fails (or hangs behind a proxy), so the launcher uses our copy of the template without those links,
and the dashboards use no icon fonts at all.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .store.opening import is_url, shown_location

TOKEN_ENV = "PROMPTLOOPER_DASHBOARD_TOKEN"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def dashboards_dir() -> Path:
    """Where the dashboard notebooks are: the checkout's notebooks/dashboards, or the wheel's copy."""
    checkout = Path(__file__).resolve().parent.parent / "notebooks" / "dashboards"
    if checkout.is_dir():
        return checkout
    packaged = resources.files("promptlooper") / "_notebooks" / "dashboards"
    return Path(str(packaged))


@dataclass(frozen=True)
class Door:
    """Who may view: ``token`` required (``generated`` when we made it up), or open."""

    token: str = ""
    generated: bool = False
    guest: bool = False


def door(host: str, *, guest: bool = False, environ: dict[str, str] | None = None) -> Door:
    env = os.environ if environ is None else environ
    if guest:
        return Door(guest=True)
    token = env.get(TOKEN_ENV, "").strip()
    if token:
        return Door(token=token)
    if is_loopback(host):
        return Door()
    return Door(token=secrets.token_urlsafe(24), generated=True)


def voila_command(db: str, host: str, port: int, *, preheat: bool = True,
                  config_dir: str | None = None) -> tuple[list[str], dict[str, str]]:
    voila = shutil.which("voila", path=os.path.dirname(sys.executable)) or shutil.which("voila")
    if voila is None:
        raise FileNotFoundError("voila is not installed: pip install 'promptlooper[dashboard]'")
    cmd = [
        voila, str(dashboards_dir()), "--no-browser", f"--port={port}", f"--Voila.ip={host}",
        # Voila's own setting (ServerApp's is not read by the standalone app): a taken port is an
        # error, not a silent move to another port.
        "--Voila.port_retries=0",
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
        "PROMPTLOOPER_DB": db if "://" in db else str(Path(db).resolve()),  # a postgresql:// URL as given
        "JUPYTER_PATH": os.pathsep.join(p for p in (data, os.environ.get("JUPYTER_PATH", "")) if p),
    }
    env.pop(TOKEN_ENV, None)  # page kernels have no use for it
    if config_dir:
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
            p for p in (config_dir, os.environ.get("JUPYTER_CONFIG_PATH", "")) if p)
    return cmd, env


def _write_token_config(token: str) -> str:
    folder = tempfile.mkdtemp(prefix="promptlooper-dashboard-")  # mode 0700
    path = Path(folder) / "voila.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"Voila": {"token": token}}, f)
    return folder


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except Exception:  # psutil missing, or the process already gone
        return []


def _stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Stop Voila and everything it started: SIGTERM (Voila shuts its kernels down), then SIGKILL
    whatever is left, kernels included (they live in process sessions of their own)."""
    children = _descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class _Interrupted(Exception):
    def __init__(self, signum: int):
        self.signum = signum


def serve(db: str, host: str = "127.0.0.1", port: int = 8402, *, preheat: bool = True,
          guest: bool = False) -> int:
    # A database URL (postgresql://) names a server, not a file; the workbench reports a bad one.
    if "://" not in db and not Path(db).exists():
        print(f"error: no database at {db}; run a sweep first (promptlooper run …)", file=sys.stderr)
        return 1
    if is_url(db) and _role_may_write(db):
        print("dashboard: warning: this database URL's role may write; the dashboards' sessions are read-only "
              "(default_transaction_read_only), but for the server itself to refuse their writes, serve them with "
              "a read-only role: promptlooper db reader-role NAME", file=sys.stderr)
    if not port_free(host, port):
        print(f"error: port {port} on {host} is taken; choose another with --port", file=sys.stderr)
        return 1
    access = door(host, guest=guest)
    config_dir = _write_token_config(access.token) if access.token else None
    try:
        cmd, env = voila_command(db, host, port, preheat=preheat, config_dir=config_dir)
        url = f"http://{host}:{port}/"
        print(f"dashboard: {url} (read-only view of {shown_location(db)})", file=sys.stderr)
        if access.guest:
            print(f"dashboard: guest mode: anyone who can reach {url} can read every prompt and output "
                  "(read-only)", file=sys.stderr)
        elif access.generated:
            print(f"dashboard: token required (shown once; set ${TOKEN_ENV} to choose it): "
                  f"{url}?token={access.token}", file=sys.stderr)
        elif access.token:
            print(f"dashboard: token required (${TOKEN_ENV}): {url}?token=…", file=sys.stderr)
        sys.stderr.flush()
        return _supervise(cmd, env)
    finally:
        if config_dir:
            shutil.rmtree(config_dir, ignore_errors=True)


def _role_may_write(url: str) -> bool:
    # psycopg (the PostgreSQL extra) is imported only for a postgresql:// URL.
    import psycopg

    from .store.postgres.roles import may_write

    try:
        return may_write(url)
    except psycopg.Error:  # an unreachable server is reported by the pages' own store, with its reason
        return False


def _supervise(cmd: list[str], env: dict[str, str]) -> int:
    def interrupted(signum: int, _frame: object) -> None:
        raise _Interrupted(signum)

    previous = {s: signal.signal(s, interrupted) for s in (signal.SIGTERM, signal.SIGINT)}
    # A session of its own, so that a terminal's Ctrl+C reaches us alone and we stop Voila in order.
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        return proc.wait()
    except _Interrupted as stop:
        _stop(proc)
        return 128 + stop.signum
    finally:
        if proc.poll() is None:
            _stop(proc)
        for s, handler in previous.items():
            signal.signal(s, handler)
