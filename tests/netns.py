"""Several hosts on one machine: network namespaces joined by a bridge, for tests of team mode.

Issue 18's production shape is PostgreSQL on one machine, workers on others and the LLM endpoint
on yet another. :class:`Network` builds that shape on this machine out of Linux network namespaces
(we run the tests as root): every *host* is a namespace of its own with one interface, ``eth0``,
on a private /24 shared by all hosts of the session; the other end of each host's veth pair is a
port of one bridge (``br0``) that sits in a namespace of its own, the *switch*. The root namespace
(where pytest, and a notebook's Workbench in the tests, run) has a leg on the same bridge at
``.1``, so the test reads the database through the db host's address like any other client::

        root ns (.1)   db (.10)   llm (.11)   w1 (.12)   w2 (.13) …
            │             │          │           │          │
            └─────────────┴──── br0 (switch namespace) ─────┘

Names: every namespace of a session is called ``plnet<pid>-<host>`` and the root leg
``plnet<pid>``, with the pid of the pytest process, so parallel sessions never collide; each
session's /24 is ``10.213.N.0/24`` with N free on this machine. A killed session cannot run its
finalizers, so every new session first removes what dead sessions left (namespaces and root legs
whose pid is gone, after killing what still ran inside them).

Hosts: ``host.run(argv, env=…)`` / ``host.popen(argv, …)`` run a command inside the host's
namespace (``ip netns exec``; the environment, PYTHONPATH included, is inherited) under the host's
name as host name (a UTS namespace: ``socket.gethostname()`` is ``w1`` there, so a sweep's owner
reads as on another machine and its liveness goes by heartbeat), and ``host.address`` is its
address. Only the network and the host name are separate: the hosts share the file system, users
and process ids with the root namespace. Hosts get .10, .11, … in the order they are added.

Failures: ``host.cut()`` takes the host's cable out of the switch (its bridge port down: packets to
and from it vanish, as when the link to a machine fails; TCP connections survive a short cut) and
``host.restore()`` plugs it back. Every host knows every other's MAC address for good (static ARP),
so a host cut off is silent, as a machine beyond a router is, rather than refused at once by a
failed ARP look-up. A cut is of the whole cable: to cut the database off from
everyone, cut ``db``; to cut one worker off from everything, cut that worker. (This kernel has no
``netem`` and no ``tc`` classifiers, so there is no loss rate or pair-wise filter to set.)
``db_host.restart()`` restarts PostgreSQL (every session ends). A dead peer is noticed by the
store's TCP keepalives in about 20 s; :func:`quick_url` gives a database URL that notices it in
about 3 s, for tests that wait on it.

Fixtures (module-scoped: one network and one database server per test file; a test module names
them at its top, ``network, db_host, llm_host = netns.network, netns.db_host, netns.llm_host``):

* ``network`` -- the :class:`Network`, with hosts ``db``, ``llm`` and ``w1``;
* ``db_host`` -- a real PostgreSQL cluster (tests/pg.py's :class:`~pg.Cluster`) started inside
  the ``db`` namespace, listening on the db host's address, trusting the session's /24;
  ``with db_host.database() as url`` gives a fresh database's URL, as ``pg_url`` does;
* ``llm_host`` -- ``python -m promptlooper.testing.fake_server`` running in the ``llm`` namespace,
  bound to its address, port 8000, latency 50 ms; ``llm_host.base_url`` is the endpoint,
  ``llm_host.set_faults(…)`` / ``stats()`` / ``reset()`` drive and read it over HTTP.

N worker hosts (for issue 18's worker tests; the worker command's own options are its own)::

    CLI = [sys.executable, "-m", "promptlooper.cli"]
    workers = [network.add_host(f"w{i}") for i in range(1, 4)]   # w1 exists: add_host returns it
    with db_host.database() as url:
        procs = [w.popen([*CLI, "--db", url, "worker"]) for w in workers]   # .12, .13, .14
        ... start the sweep (from the root namespace, or w1) ...
        os.kill(procs[1].pid, signal.SIGKILL)     # a worker killed mid-chunk (the Popen pid is the worker's)
        workers[2].cut(); time.sleep(5); workers[2].restore()   # one worker off the network a while

Processes started with ``popen`` are killed when the network is torn down, after the test file;
a second, independent network in the same session takes a one-letter tag: ``Network(tag="b")``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import pytest
from pg import Cluster

from promptlooper.store.liveness import pid_alive

PREFIX = "plnet"
_NAME_RE = re.compile(rf"^{PREFIX}(\d+)[a-z]?(?:-|$)")
FAKE_SERVER_PORT = 8000
LOCK = "/tmp/plnet.lock"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def _kill_inside(ns: str) -> None:
    """SIGKILL every process still running in namespace ``ns`` (a server a test left behind)."""
    for pid in _ip("netns", "pids", ns, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def _delete_namespace(ns: str) -> None:
    _kill_inside(ns)
    _ip("netns", "del", ns, check=False)


def remove_stale() -> list[str]:
    """Remove the namespaces and root legs of sessions whose pytest process is gone; their names."""
    removed = []
    for ns in _namespaces():
        m = _NAME_RE.match(ns)
        if m and not pid_alive(int(m.group(1))):
            _delete_namespace(ns)
            removed.append(ns)
    for line in _ip("-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        m = _NAME_RE.match(name)
        if m and not pid_alive(int(m.group(1))):
            _ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def _free_subnet() -> str:
    """``10.213.N`` with N unused by any address or route of the root namespace (from the pid on)."""
    used = _ip("-o", "-4", "addr").stdout + _ip("-4", "route").stdout
    start = os.getpid() % 250
    for i in range(250):
        prefix = f"10.213.{(start + i) % 250 + 1}"
        if f"{prefix}." not in used:
            return prefix
    raise RuntimeError("no free 10.213.N.0/24 subnet for the test network")


class Host:
    """One namespace of the network: a machine with one address."""

    def __init__(self, network: Network, name: str, address: str):
        self.network = network
        self.name = name
        self.ns = f"{network.prefix}-{name}"
        self.address = address
        self.port = f"p-{name}"  # its cable's end on the switch (a name inside the switch namespace)
        self.processes: list[subprocess.Popen[Any]] = []

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in this host: its network namespace, and a host name of its own (``w1``) so
        that a sweep's owner reads as on another machine (liveness then goes by heartbeat, not pid)."""
        return ["ip", "netns", "exec", self.ns, "unshare", "--uts", "--",
                "sh", "-c", 'hostname "$0" && exec "$@"', self.name, *argv]

    def run(self, argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 120,
            **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in this host to completion (output captured as text unless told)."""
        kw.setdefault("capture_output", True)
        return subprocess.run(self.command(argv), env=env, timeout=timeout, text=True, check=False, **kw)

    def popen(self, argv: Sequence[str], *, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in this host; killed at the network's teardown if still running."""
        # ``ip netns exec`` execs the command: the Popen's pid is the command's own.
        proc = subprocess.Popen(self.command(argv), env=env, **kw)
        self.processes.append(proc)
        return proc

    def _switch(self, *args: str) -> None:
        _ip("-n", self.network.switch, *args)

    def cut(self) -> None:
        """Unplug this host from the switch: its packets (both ways) are lost until :meth:`restore`."""
        self._switch("link", "set", self.port, "down")

    def restore(self) -> None:
        self._switch("link", "set", self.port, "up")

    def stop_processes(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            for stream in (proc.stdout, proc.stderr, proc.stdin):
                if stream is not None:
                    stream.close()
        self.processes.clear()

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.address} ({self.ns})>"


class Network:
    """A switch, a leg of the root namespace on it, and hosts added by name."""

    def __init__(self, tag: str = "") -> None:
        """``tag``: one letter, for a second network of the same session (``plnet<pid><tag>-…``)."""
        if not re.match(r"^[a-z]?$", tag):
            raise ValueError(f"a network's tag is one lower-case letter, not {tag!r}")
        self.prefix = f"{PREFIX}{os.getpid()}{tag}"
        self.switch = f"{self.prefix}-switch"
        self.root_leg = self.prefix
        self.hosts: dict[str, Host] = {}
        # Sessions starting together take turns: each sees the others' subnets before choosing one.
        with open(LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            remove_stale()
            self.subnet = _free_subnet()
            self.cidr = f"{self.subnet}.0/24"
            self.root_address = f"{self.subnet}.1"
            self._wire()

    def _wire(self) -> None:
        try:
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            _ip("link", "add", self.root_leg, "type", "veth", "peer", "name", "p-root", "netns", self.switch)
            _ip("-n", self.switch, "link", "set", "p-root", "master", "br0", "up")
            _ip("addr", "add", f"{self.root_address}/24", "dev", self.root_leg)
            _ip("link", "set", self.root_leg, "up")
        except BaseException:
            self.close()
            raise

    def add_host(self, name: str) -> Host:
        """The host called ``name``, made (namespace, cable, address .10, .11, …) if it is new."""
        if name in self.hosts:
            return self.hosts[name]
        # Its switch port, p-NAME, is an interface name (15 characters at most); p-root is the root leg's.
        if not re.match(r"^[a-z][a-z0-9]{0,11}$", name) or name in ("root", "switch"):
            raise ValueError(f"host names are short lower-case words (12 at most, not root or switch), not {name!r}")
        host = Host(self, name, f"{self.subnet}.{10 + len(self.hosts)}")
        self.hosts[name] = host
        _ip("netns", "add", host.ns)
        _ip("link", "add", "eth0", "netns", host.ns, "type", "veth", "peer", "name", host.port, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", host.port, "master", "br0", "up")
        _ip("-n", host.ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.ns, "link", "set", "eth0", "up")
        _ip("-n", host.ns, "link", "set", "lo", "up")
        self._pin_neighbours(host)
        return host

    def _pin_neighbours(self, new: Host) -> None:
        """Every address's MAC known to every host for good (static ARP), both ways: a host cut off
        is then silent, as a machine beyond a router is (its packets vanish), and not refused at
        once by a failed ARP look-up ("no route to host"), which only a shared LAN gives."""
        ends = [(h.address, ["-n", h.ns], "eth0") for h in self.hosts.values()]
        ends.append((self.root_address, [], self.root_leg))
        macs = {address: json.loads(_ip(*where, "-j", "link", "show", dev).stdout)[0]["address"] for address, where, dev in ends}
        mine = next(end for end in ends if end[0] == new.address)
        for address, where, dev in ends:
            if address != new.address:
                _ip(*where, "neigh", "replace", new.address, "lladdr", macs[new.address], "nud", "permanent", "dev", dev)
                _ip(*mine[1], "neigh", "replace", address, "lladdr", macs[address], "nud", "permanent", "dev", mine[2])

    def close(self) -> None:
        for host in self.hosts.values():
            host.stop_processes()
        for host in self.hosts.values():
            _delete_namespace(host.ns)
        _delete_namespace(self.switch)  # takes the root leg's peer, hence the root leg, with it
        _ip("link", "del", self.root_leg, check=False)
        self.hosts.clear()


class DbHost:
    """A PostgreSQL cluster in the ``db`` host, reached at its address."""

    def __init__(self, host: Host, network: Network):
        self.host = host
        self.cluster = Cluster(listen=host.address, allow=network.cidr, wrap=host.command([]))

    def start(self) -> None:
        self.cluster.start()

    def stop(self) -> None:
        self.cluster.stop()

    def restart(self) -> None:
        """Restart the server (``pg_ctl restart -m fast``: every session is ended, as on a reboot)."""
        done = self.cluster._run("pg_ctl", "-D", str(self.cluster.data), "-l", str(self.cluster.log), "-m", "fast", "-w", "restart")
        if done.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not restart: {done.stdout}{done.stderr}")

    def database(self) -> contextlib.AbstractContextManager[str]:
        return self.cluster.database()


class LlmHost:
    """The fake OpenAI-compatible server in the ``llm`` host, bound to its address."""

    def __init__(self, host: Host, latency: float = 0.05):
        self.host = host
        self.latency = latency
        self.base_url = ""

    def start(self) -> None:
        argv = [sys.executable, "-m", "promptlooper.testing.fake_server", "--host", self.host.address,
                "--port", str(FAKE_SERVER_PORT), "--latency", str(self.latency)]
        proc = self.host.popen(argv, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(20)
        if not line or not line[0]:
            raise RuntimeError(f"the fake server in {self.host} did not start (exit code {proc.poll()})")
        self.base_url = json.loads(line[0])["base_url"]

    def _call(self, path: str, data: dict[str, Any] | None = None) -> Any:
        root = self.base_url.removesuffix("/v1")
        body = None if data is None else json.dumps(data).encode()
        with urllib.request.urlopen(urllib.request.Request(root + path, data=body), timeout=10) as reply:
            return json.loads(reply.read())

    def stats(self) -> dict[str, Any]:
        return dict(self._call("/_stats"))

    def reset(self) -> None:
        self._call("/_reset", {})

    def set_faults(self, **faults: Any) -> None:
        self._call("/_faults", faults)


# libpq and server settings that notice a dead peer in about 3 s (the store's defaults: about 20 s).
QUICK = ("keepalives_idle=1&keepalives_interval=1&keepalives_count=2&tcp_user_timeout=3000&connect_timeout=3&options="
         + quote("-c tcp_keepalives_idle=1 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=2 -c tcp_user_timeout=3000"))


def quick_url(url: str) -> str:
    """``url`` with settings that notice a dead peer in about 3 s, on both sides of each connection."""
    return f"{url}{'&' if '?' in url else '?'}{QUICK}"


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the multi-host tests make network namespaces: run them as root", pytrace=False)


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    _require_root()
    net = Network()
    try:
        for name in ("db", "llm", "w1"):
            net.add_host(name)
        yield net
    finally:
        net.close()


@pytest.fixture(scope="module")
def db_host(network: Network) -> Iterator[DbHost]:
    db = DbHost(network.hosts["db"], network)
    db.start()
    try:
        yield db
    finally:
        db.stop()


@pytest.fixture(scope="module")
def llm_host(network: Network) -> Iterator[LlmHost]:
    llm = LlmHost(network.hosts["llm"])
    llm.start()
    try:
        yield llm
    finally:
        network.hosts["llm"].stop_processes()
