"""The shared dashboard's door: a token off loopback unless guests are invited, a clean stop of
Voila and its kernels, a taken port refused, page kernels shut down when their page closes, and
read-only pages without any steering control in their DOM (real Voila, real Chromium)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from helpers import free_port

import promptlooper as pl
from promptlooper.dashboard import TOKEN_ENV, door

CHROMIUM = shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_door_rules():
    assert door("127.0.0.1", environ={}).token == ""            # this machine only: open
    assert door("::1", environ={}).token == ""
    shared = door("0.0.0.0", environ={})
    assert shared.token and shared.generated                     # anything else: a token, made up
    assert door("0.0.0.0", environ={}).token != shared.token
    assert door("0.0.0.0", environ={TOKEN_ENV: "chosen"}).token == "chosen"
    assert door("127.0.0.1", environ={TOKEN_ENV: "chosen"}).token == "chosen"
    assert door("0.0.0.0", guest=True, environ={TOKEN_ENV: "chosen"}) == door("10.1.2.3", guest=True, environ={})
    assert door("0.0.0.0", guest=True, environ={}).guest


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "door.db"
    pl.Workbench(str(path)).create_project("door")
    return str(path)


def _jupyter_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "IPYTHONDIR": str(tmp_path / "ipy"), **extra}
    env.pop(TOKEN_ENV, None)
    env.update(extra)
    return env


class Dashboard:
    def __init__(self, db: str, tmp_path: Path, *args: str, **env: str):
        self.port = free_port()
        self.stderr_path = tmp_path / f"dash-{self.port}.err"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "promptlooper.cli", "--db", db, "dashboard", "--port", str(self.port), *args],
            env=_jupyter_env(tmp_path, **env), stdout=subprocess.DEVNULL, stderr=self.stderr_path.open("w"))
        self.base = f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_up(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.stderr()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("the dashboard never listened:\n" + self.stderr())

    def get(self, path: str) -> tuple[int, str]:
        """(status, final URL) of a GET, following redirects (to the login page, say)."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=60) as resp:
                return resp.status, resp.geturl()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.geturl()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for child in _descendants_of_command(self.port):
            child.kill()


def _descendants_of_command(port: int) -> list[psutil.Process]:
    """Voila (and its kernels) started for this port, whoever their parent is now."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "voila" in cmd and f"--port={port}" in cmd:
            out.append(p)
            try:
                out.extend(p.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
    return out


@pytest.mark.slow
def test_shared_address_needs_the_printed_token_and_sigterm_stops_everything(db, tmp_path):
    dash = Dashboard(db, tmp_path, "--host", "0.0.0.0")
    try:
        dash.wait_up()
        m = re.search(r"\?token=(\S+)", dash.stderr())
        assert m and "token required" in dash.stderr(), dash.stderr()
        token = m.group(1)
        status, url = dash.get("/voila/render/overview.ipynb")
        assert "/login" in url                                    # no token: the login page, not the data
        status, url = dash.get(f"/voila/render/overview.ipynb?token={token}")
        assert status == 200 and "/login" not in url
        assert dash.get("/voila/render/overview.ipynb?token=wrong")[1].count("/login") == 1

        voila = psutil.Process(dash.proc.pid).children()[0]
        started = [voila, *voila.children(recursive=True)]
        assert any("ipykernel" in " ".join(p.cmdline()) for p in started[1:])  # a page kernel is up
        dash.proc.send_signal(signal.SIGTERM)
        assert dash.proc.wait(40) == 128 + signal.SIGTERM
        gone, alive = psutil.wait_procs(started, timeout=10)
        assert not alive, [p.cmdline() for p in alive]           # Voila and every kernel it started
        with socket.socket() as s:                               # and the port is free again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", dash.port))
    finally:
        dash.close()


@pytest.mark.slow
def test_guest_mode_opens_read_only_viewing_and_says_so(db, tmp_path):
    dash = Dashboard(db, tmp_path, "--host", "0.0.0.0", "--guest")
    try:
        dash.wait_up()
        assert "guest mode" in dash.stderr() and "?token=" not in dash.stderr()
        status, url = dash.get("/voila/render/overview.ipynb")
        assert status == 200 and "/login" not in url
    finally:
        dash.close()


def test_a_taken_port_fails_clearly(db, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", db, "dashboard", "--port", str(port)],
                             env=_jupyter_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and f"port {port}" in out.stderr and "taken" in out.stderr
    assert "http://" not in out.stderr                               # no URL printed for a server that is not there
    assert time.monotonic() - t0 < 30


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/install.sh --test)")
def test_closed_page_shuts_its_kernel_and_read_only_dom_has_no_controls(tmp_path, server):
    from helpers import fake_experiment

    db = str(tmp_path / "page.db")
    wb = pl.Workbench(db)
    exp = fake_experiment(server.base_url, name="door")
    wb.run(exp)
    wb.close()
    dash = Dashboard(db, tmp_path, "--no-preheat")
    try:
        dash.wait_up()
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(str(tmp_path / "chrome"), executable_path=CHROMIUM, headless=True,
                                                       args=ARGS, viewport={"width": 1300, "height": 1000})
            page = ctx.new_page()
            page.goto(f"{dash.base}/voila/render/experiment.ipynb?experiment={exp.key}", timeout=90_000)
            page.wait_for_selector(".pl-table tbody tr", timeout=90_000)
            page.wait_for_selector(".pl-steering .pl-badge", timeout=30_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-read-only.png"), full_page=True)
            # Not hidden: absent. No steering control, editor or decision button in the page at all.
            for selector in (".pl-pause", ".pl-resume", ".pl-stop", ".pl-approve", ".pl-reject", ".pl-fork-btn",
                             ".pl-redirect-btn", ".pl-steering textarea", ".pl-steering input", ".pl-actions"):
                assert page.locator(selector).count() == 0, selector
            assert "read-only" in page.inner_text(".pl-steering")
            kernel_id = page.evaluate(
                "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")

            def kernel_alive() -> bool:
                for c in psutil.Process(dash.proc.pid).children(recursive=True):
                    try:
                        if f"kernel-{kernel_id}" in " ".join(c.cmdline()) and c.status() != psutil.STATUS_ZOMBIE:
                            return True
                    except psutil.Error:  # gone (or a zombie Voila has not reaped yet)
                        pass
                return False

            assert kernel_alive()
            page.close(run_before_unload=True)                    # the page posts its kernel's shutdown
            deadline = time.monotonic() + 30
            while kernel_alive() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not kernel_alive(), "the closed page's kernel still runs"
            ctx.close()
    finally:
        dash.close()
