"""PostgreSQL, a worker and the LLM endpoint on three addresses, as on three machines (tests/netns.py).

The sweep runs the real CLI inside the worker host w1; the database lives in the db host and the
fake OpenAI-compatible server in the llm host; the test itself reads results from the root
namespace through the db host's address, as a notebook on a fourth machine would. Then the
network fails:

* w1's cable is pulled for a few seconds mid-sweep: TCP carries the sweep over the gap;
* the database is gone for longer: the CLI stops with a clear error (not a traceback, not a
  quarter of an hour waiting on a dead connection), and the same command completes the sweep
  once the server is back, 0 runs lost;
* a process holding the database's write lock drops off the network: the server notices the dead
  client and the other writers go on;
* the database server restarts: a notebook's open Workbench works on at its next call;
* a command started while the database is unreachable says so in seconds, not minutes;
* the endpoint is unreachable: calls time out and are retried, its circuit breaker pauses the
  sweep, and the sweep resumes by itself when the endpoint answers again, or stops with the
  reason when it stays away; nothing is lost either way.

Dead peers are noticed by TCP keepalives and ``tcp_user_timeout`` (about 20 s by default, see
store/postgres/connection.py); the tests give the database URL shorter ones (``netns.quick_url``),
as a user may. The last tests check the harness itself: it leaves nothing behind, and removes what
a killed session left.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import netns
import psycopg
import pytest
from helpers import fake_experiment, temperature_sweep, wait, write_experiment
from netns import DbHost, Host, LlmHost, Network, quick_url

import promptlooper as pl
from promptlooper.store import open_store

CLI = [sys.executable, "-m", "promptlooper.cli"]
REACH = ("import socket, sys\n"
         "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n"
         "except OSError as exc:\n    print(type(exc).__name__); sys.exit(1)\n")
# The harness's module-scoped fixtures, by name: one network, database server and endpoint for the file.
network, db_host, llm_host = netns.network, netns.db_host, netns.llm_host


def _reaches(host: Host, address: str, port: int) -> bool:
    return host.run([sys.executable, "-c", REACH, address, str(port)]).returncode == 0


def _sweep_in(host: Host, url: str, file: Path, *extra: str) -> subprocess.Popen[str]:
    return host.popen([*CLI, "--db", url, "run", str(file), "--quiet", *extra],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


class Reader:
    """A notebook's view from the root namespace: run counts by status, through the db address."""

    def __init__(self, url: str, key: str):
        self.url, self.key = url, key
        self.wb: pl.Workbench | None = None

    def runs(self) -> dict[str, int]:
        try:
            if self.wb is None:
                self.wb = pl.Workbench(self.url, create=False)
            return dict(self.wb.status(self.key)["runs"])
        except pl.NotFoundError:  # the worker has not registered the experiment yet
            return {}

    def completed(self) -> int:
        return self.runs().get("completed", 0)

    def events(self) -> list[str]:
        assert self.wb is not None
        return [e["type"] for e in self.wb.events(self.key) if not e["type"].startswith("run")]

    def close(self) -> None:
        if self.wb is not None:
            self.wb.close()


@pytest.fixture
def url(db_host: DbHost) -> Any:
    with db_host.database() as u:
        yield u


def test_a_sweep_in_a_worker_host_is_read_from_the_root_namespace_through_the_db_address(
        network: Network, db_host: DbHost, llm_host: LlmHost, tmp_path: Path) -> None:
    w1, db, llm = network.hosts["w1"], network.hosts["db"], network.hosts["llm"]
    assert len({w1.address, db.address, llm.address, network.root_address}) == 4
    port = db_host.cluster.port
    # Nothing of the database or the endpoint is on w1's own loopback: the sweep must cross the network.
    assert _reaches(w1, db.address, port) and not _reaches(w1, "127.0.0.1", port)
    assert _reaches(w1, llm.address, 8000) and not _reaches(w1, "127.0.0.1", 8000)
    assert w1.run(["hostname"]).stdout.strip() == "w1"
    llm_host.reset()
    exp = fake_experiment(llm_host.base_url, name="across-hosts")
    file = write_experiment(tmp_path / "exp.yaml", exp)
    with db_host.database() as url:
        assert db.address in url and llm.address in llm_host.base_url
        done = w1.run([*CLI, "--db", url, "run", str(file), "--quiet"])
        assert done.returncode == 0, done.stdout + done.stderr
        assert "completed: 12/12 runs, 0 failed" in done.stdout
        assert llm_host.stats()["completions"] == 12
        wb = pl.Workbench(url)
        try:
            board = wb.leaderboard(exp.key)
            assert list(board["rank"]) == [1, 2, 3, 4] and (board["n"] == 3).all()
            assert wb.status(exp.key)["sweep"]["owner_host"] == "w1"
        finally:
            wb.close()


def test_a_few_seconds_without_network_mid_sweep_are_carried_over(
        network: Network, llm_host: LlmHost, url: str, tmp_path: Path) -> None:
    w1 = network.hosts["w1"]
    llm_host.reset()
    exp = temperature_sweep(llm_host.base_url, "blip", 150)  # 450 runs, 4 at a time
    proc = _sweep_in(w1, url, write_experiment(tmp_path / "exp.yaml", exp))
    seen = Reader(url, exp.key)
    try:
        wait(lambda: seen.completed() >= 40, timeout=30)
        w1.cut()
        before = seen.completed()
        time.sleep(3)
        assert seen.completed() - before <= 8, "w1 still reached the database: the cut cut nothing"
        w1.restore()
        code, out, err = _finished(proc, 60)
        assert code == 0, out + err
        assert "completed: 450/450 runs, 0 failed" in out
        assert seen.runs() == {"completed": 450}
        assert llm_host.stats()["completions"] - 450 <= 4  # at most the calls in flight made twice
    finally:
        seen.close()


def test_the_database_gone_mid_sweep_stops_the_cli_with_a_clear_error_and_the_same_command_completes_it(
        network: Network, llm_host: LlmHost, url: str, tmp_path: Path) -> None:
    w1, db = network.hosts["w1"], network.hosts["db"]
    llm_host.reset()
    exp = temperature_sweep(llm_host.base_url, "outage", 150)
    file = write_experiment(tmp_path / "exp.yaml", exp)
    seen = Reader(url, exp.key)
    try:
        proc = _sweep_in(w1, quick_url(url), file)
        wait(lambda: seen.completed() >= 40, timeout=30)
        db.cut()
        started = time.monotonic()
        try:
            code, out, err = _finished(proc, 120)  # the sweep's writes and look-ups wait 60 s for the database, then give up
        finally:
            db.restore()
        print(f"the CLI ended {time.monotonic() - started:.1f}s after the database went away")
        assert code == 1, out + err
        assert "Traceback" not in err, err
        assert "error: lost the connection to the PostgreSQL database" in err and db.address in err, err
        assert "run the same command again" in err
        kept = seen.completed()
        code, out, err = _finished(_sweep_in(w1, url, file), 60)
        assert code == 0, out + err
        assert "completed: 450/450 runs, 0 failed" in out
        assert seen.runs() == {"completed": 450}
        repeated = llm_host.stats()["completions"] - 450
        print(f"{kept} runs kept by the database, calls made twice: {repeated}")
    finally:
        seen.close()


def test_a_write_lock_holder_that_drops_off_the_network_does_not_block_the_other_writers(
        network: Network, url: str) -> None:
    w1 = network.hosts["w1"]
    holder = w1.popen([sys.executable, "-c", HOLD, quick_url(url)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding the write lock"
    w1.cut()
    store = open_store(url)
    wrote = threading.Event()

    def write() -> None:
        with store.cx.write():  # waits for the lock the cut-off process took
            wrote.set()

    try:
        started = time.monotonic()
        threading.Thread(target=write, daemon=True).start()
        assert wrote.wait(30), "a writer cut off the network holds the database's write lock"
        print(f"the server dropped the dead client's lock after {time.monotonic() - started:.1f}s")
    finally:
        w1.restore()
        holder.kill()
        holder.wait()
        store.close()


HOLD = """
import sys, time
from promptlooper.store import open_store
store = open_store(sys.argv[1])
with store.cx.write():
    print("holding the write lock", flush=True)
    time.sleep(600)
"""


def test_store_connections_notice_a_dead_peer_unless_the_url_says_otherwise(url: str) -> None:
    from promptlooper.store.postgres.connection import PgConnection

    def settings(cx: PgConnection) -> tuple[dict[str, str], str]:
        with cx.connection() as conn:
            return conn.info.get_parameters(), conn.execute("SHOW tcp_keepalives_idle").fetchone()[0]

    cx = PgConnection(url)
    try:
        client, server = settings(cx)
        assert client["keepalives"] == "1" and int(client["tcp_user_timeout"]) > 0 and server != "0"
    finally:
        cx.close()
    cx = PgConnection(quick_url(url), readonly=True)
    try:
        client, server = settings(cx)
        assert client["tcp_user_timeout"] == "3000" and server == "1"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), cx.connection() as conn:
            conn.execute("CREATE TABLE t (x int)")  # read-only is kept with the URL's own options
    finally:
        cx.close()
    cx = PgConnection(f"{url}?options={quote('-c statement_timeout=5s')}")  # its own options only (a pooler's needs)
    try:
        client, server = settings(cx)
        with cx.connection() as conn:
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "5s"
        assert client["keepalives"] == "1" and server != "10"
    finally:
        cx.close()


def test_a_command_started_while_the_database_is_unreachable_fails_within_seconds_saying_so(
        network: Network, url: str) -> None:
    w1, db = network.hosts["w1"], network.hosts["db"]
    db.cut()
    try:
        started = time.monotonic()
        done = w1.run([*CLI, "--db", url, "experiments"], timeout=100)
        took = time.monotonic() - started
    finally:
        db.restore()
    print(f"gave up after {took:.1f}s")
    assert done.returncode == 1 and "cannot connect to the PostgreSQL database" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and took < 30  # libpq alone waits out the kernel's SYN retries (~2 min)


def test_a_notebook_keeps_working_after_the_database_server_restarts(db_host: DbHost, url: str) -> None:
    wb = pl.Workbench(url)  # in the root namespace, as a notebook on another machine
    try:
        wb.create_project("before")
        db_host.restart()  # every pooled connection of the notebook is dead now
        time.sleep(2)  # as a person between two cells
        wb.create_project("after")
        assert {"before", "after"} <= {p["name"] for p in wb.store.projects()}
    finally:
        wb.close()


def _endpoint_sweep(llm_host: LlmHost, name: str, temps: int) -> pl.Experiment:
    # Calls give up after 1 s; five failures in a row open the breaker; a probe every second.
    endpoint = {"base_url": llm_host.base_url, "timeout": 1.0, "max_retries": 4, "breaker_cooldown": 1.0}
    return temperature_sweep(llm_host.base_url, name, temps, endpoints={"fake": endpoint})


def test_an_unreachable_endpoint_times_out_pauses_the_sweep_and_it_resumes_when_the_endpoint_answers(
        network: Network, llm_host: LlmHost, url: str, tmp_path: Path) -> None:
    w1, llm = network.hosts["w1"], network.hosts["llm"]
    exp = _endpoint_sweep(llm_host, "endpoint-blip", 120)
    proc = _sweep_in(w1, url, write_experiment(tmp_path / "exp.yaml", exp))
    seen = Reader(url, exp.key)
    try:
        wait(lambda: seen.completed() >= 40, timeout=30)
        llm.cut()
        wait(lambda: "experiment.paused" in seen.events(), timeout=30)
        llm.restore()
        code, out, err = _finished(proc, 60)
        assert code == 0, out + err
        assert "completed: 360/360 runs, 0 failed" in out
        assert seen.runs() == {"completed": 360}
        events = seen.events()
        assert events.index("endpoint.unhealthy") < events.index("experiment.paused") < events.index("endpoint.healthy") \
            < events.index("experiment.resumed") < events.index("experiment.completed")
    finally:
        seen.close()


def test_an_endpoint_that_stays_away_stops_the_sweep_with_its_reason_and_a_rerun_completes(
        network: Network, llm_host: LlmHost, url: str, tmp_path: Path) -> None:
    w1, llm = network.hosts["w1"], network.hosts["llm"]
    exp = _endpoint_sweep(llm_host, "endpoint-gone", 60)
    file = write_experiment(tmp_path / "exp.yaml", exp)
    seen = Reader(url, exp.key)
    try:
        proc = _sweep_in(w1, url, file, "--unhealthy-timeout", "2")
        wait(lambda: seen.completed() >= 20, timeout=30)
        llm.cut()
        try:
            code, out, err = _finished(proc, 60)
        finally:
            llm.restore()
        assert code == 1, out + err
        assert "timed out after 1s" in out + err and "Traceback" not in err, out + err
        kept = seen.runs()
        assert kept.get("completed", 0) < 180
        code, out, err = _finished(_sweep_in(w1, url, file), 60)
        assert code == 0, out + err
        assert "completed: 180/180 runs, 0 failed" in out
        assert seen.runs() == {"completed": 180}
    finally:
        seen.close()


def _names() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout + \
        subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout


def test_three_workers_on_three_hosts_survive_one_killed_and_all_pause_from_a_notebook(
        network: Network, llm_host: LlmHost, url: str) -> None:
    # Issue 18 as it will be used: PostgreSQL, the endpoint and each worker on a machine of its own,
    # the notebook on a fourth (this process). One worker is killed -9 mid-chunk: nothing is lost,
    # and no more calls are repeated than it had out (plus what landed just before, not committed).
    # A pause from the notebook reaches the other workers, on their hosts, within a second.
    from test_workers import LAG

    hosts = [network.add_host(f"w{i}") for i in (1, 2, 3)]
    assert len({h.address for h in hosts}) == 3
    llm_host.reset()
    concurrency, latency = 2, 0.05  # the llm host answers 50 ms after each request
    exp = temperature_sweep(llm_host.base_url, "three-hosts", 80, concurrency=concurrency)  # 240 runs
    procs = [h.popen([*CLI, "--db", url, "worker", "--name", h.name, "--lease", "3", "--max-idle", "60"],
                     stderr=subprocess.PIPE, text=True) for h in hosts]
    wb = pl.Workbench(url)
    try:
        for p in procs:
            assert "waiting for sweeps" in (p.stderr.readline() if p.stderr else ""), "a worker did not start"
        handle = wb.start(exp, workers=True, chunk_runs=12)  # 20 chunks of 4 configurations

        def leased_by() -> set[str]:
            return {c["owner"] for c in wb.store.chunks(handle.sweep_id) if c["state"] == "leased"}

        wait(lambda: leased_by() == {"w1", "w2", "w3"}, 30)
        wait(lambda: handle.progress.done >= 40, 30)
        wait(lambda: "w2" in leased_by(), 10)
        procs[1].kill()  # SIGKILL on w2: no chance to give its chunk back
        wait(lambda: handle.progress.done >= 90, 30)
        handle.pause()
        time.sleep(1.0)
        seen = llm_host.stats()["completions"]
        time.sleep(1.0)
        assert llm_host.stats()["completions"] == seen, "a worker still called the endpoint 1 s after the pause"
        assert handle.progress.done < 240
        handle.resume()
        progress = handle.wait(90)
        assert progress.status == "completed" and progress.done == 240 and progress.failed == 0
        assert wb.store.run_counts(wb.experiment(exp.key)["id"]) == {"completed": 240}
        assert [c for c in wb.store.chunks(handle.sweep_id) if c["generation"] > 1], "w2's chunk was never taken over"
        repeated = llm_host.stats()["completions"] - 240
        assert 0 <= repeated <= concurrency * (1 + LAG / latency), repeated
    finally:
        wb.close()
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(20)


def test_a_network_leaves_nothing_behind(network: Network) -> None:
    other = Network(tag="t")  # beside the file's own network: another /24, other names
    try:
        host = other.add_host("h1")
        assert other.subnet != network.subnet and other.add_host("h1") is host
        sleeper = host.popen(["sleep", "600"])
        assert host.run(["hostname"]).stdout.strip() == "h1"
    finally:
        other.close()
    assert sleeper.poll() is not None
    assert other.prefix not in _names()


def test_what_a_killed_session_left_is_removed_by_the_next_one() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pytest session killed with SIGKILL: its pid is free, its namespaces are not
    prefix = f"{netns.PREFIX}{gone.pid}"
    subprocess.run(["ip", "netns", "add", f"{prefix}-db"], check=True)
    subprocess.run(["ip", "link", "add", prefix, "type", "veth", "peer", "name", "p-root", "netns", f"{prefix}-db"], check=True)
    left = subprocess.Popen(["ip", "netns", "exec", f"{prefix}-db", "sleep", "600"])
    try:
        wait(lambda: subprocess.run(["ip", "netns", "pids", f"{prefix}-db"], capture_output=True, text=True).stdout.strip())
        removed = netns.remove_stale()
        assert f"{prefix}-db" in removed
        assert left.wait(10) == -9  # the server it left running was killed
        assert prefix not in _names()
    finally:
        if left.poll() is None:
            left.kill()
        subprocess.run(["ip", "netns", "del", f"{prefix}-db"], capture_output=True, check=False)
