"""A throwaway PostgreSQL cluster for the tests: Debian's server, started once per test session.

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to the
``postgres`` user (``runuser -u postgres``) in a temporary folder it owns; it listens on a free
port of 127.0.0.1 only, trusts local connections, and is stopped (``pg_ctl -m immediate``) and
removed at the end of the session. Each test gets a database of its own (``CREATE DATABASE``,
dropped after the test), so tests never see each other's rows and the cluster starts once.

Durability is switched off (``fsync=off``): a crash of a test cluster loses nothing anyone needs.

A machine without PostgreSQL makes these tests FAIL with what to install: the PostgreSQL backend
is part of what the suite checks, and a silent skip would hide that it was never tested.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = ("install Debian's server (apt-get install postgresql, as scripts/install.sh --test does) "
                "and the driver (pip install -e '.[postgres]')")


def _initdb() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if not found:
        pytest.fail(f"PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): {INSTALL_HINT}", pytrace=False)
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One running PostgreSQL server and the URL of each database made on it."""

    def __init__(self, listen: str = "127.0.0.1", allow: str | None = None, wrap: Sequence[str] = ()) -> None:
        # listen/allow/wrap: a server on another address, trusting clients of the ``allow`` subnet, its
        # commands run through ``wrap`` (``ip netns exec NS``): the db host of tests/netns.py.
        self.listen, self.allow, self.wrap = listen, allow, list(wrap)
        self.bin = _initdb()
        self.dir = Path(tempfile.mkdtemp(prefix="pl-pg-"))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres")
        self.port = _free_port()
        self.data = self.dir / "data"
        self.log = self.dir / "log"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run([*self.wrap, *cmd], capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> None:
        steps = [
            ("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"),
            ("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o",
             f"-p {self.port} -k {self.dir} -c listen_addresses={self.listen} -c fsync=off "
             "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start"),
        ]
        for step in steps:
            if step[0] == "pg_ctl" and self.allow:
                with open(self.data / "pg_hba.conf", "a") as hba:
                    hba.write(f"host all all {self.allow} trust\n")
            done = self._run(*step)
            if done.returncode != 0:
                log = self.log.read_text()[-2000:] if self.log.exists() else ""
                self.remove()
                pytest.fail(f"could not start PostgreSQL ({step[0]} exited {done.returncode}):\n{done.stdout}{done.stderr}"
                            f"{log}\n{INSTALL_HINT}", pytrace=False)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.listen}:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg  # the driver is an optional extra; a missing one fails the test that needs it

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def dump(self, url: str) -> bytes:
        """Everything a database holds, as ``pg_dump`` writes it (to look for what must not be there)."""
        return subprocess.run([str(self.bin / "pg_dump"), url], capture_output=True, check=True, timeout=120).stdout

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.admin(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    try:
        import psycopg  # noqa: F401  (checked here so that the failure says what to install)
    except ImportError:
        pytest.fail(f"the PostgreSQL driver is missing: {INSTALL_HINT}", pytrace=False)
    cluster = Cluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh, empty database of the session's cluster, dropped after the test."""
    with pg_cluster.database() as url:
        yield url


@pytest.fixture
def admin(pg_url: str) -> Iterator[Any]:
    """An autocommit session on this test's database (``pg_url``), as its administrator: to look
    at ``pg_stat_activity`` and end other sessions."""
    import psycopg  # the driver is an optional extra; a missing one fails the test that needs it

    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn
