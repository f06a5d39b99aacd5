"""PostgreSQL, a worker and the LLM endpoint on three addresses, as on three machines (tests/netns.py).

The sweep runs the real CLI inside the worker host w1; the database lives in the db host and the
fake OpenAI-compatible server in the llm host; the test itself reads results from the root
namespace through the db host's address, as a notebook on a fourth machine would. Then the
network fails: w1's cable to the switch is pulled mid-sweep (to the database, to the endpoint)
and plugged back.
"""

from __future__ import annotations

import sys
from pathlib import Path

import netns
from helpers import fake_experiment, write_experiment
from netns import DbHost, Host, LlmHost, Network

import promptlooper as pl

# The harness's module-scoped fixtures, by name: one network, database server and endpoint for the file.
network, db_host, llm_host = netns.network, netns.db_host, netns.llm_host

CLI = [sys.executable, "-m", "promptlooper.cli"]
REACH = ("import socket, sys\n"
         "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n"
         "except OSError as exc:\n    print(type(exc).__name__); sys.exit(1)\n")


def _reaches(host: Host, address: str, port: int) -> bool:
    return host.run([sys.executable, "-c", REACH, address, str(port)]).returncode == 0


def test_a_sweep_in_a_worker_host_is_read_from_the_root_namespace_through_the_db_address(
        network: Network, db_host: DbHost, llm_host: LlmHost, tmp_path: Path) -> None:
    w1, db, llm = network.hosts["w1"], network.hosts["db"], network.hosts["llm"]
    assert len({w1.address, db.address, llm.address, network.root_address}) == 4
    port = db_host.cluster.port
    # Nothing of the database or the endpoint is on w1's own loopback: the sweep must cross the network.
    assert _reaches(w1, db.address, port) and not _reaches(w1, "127.0.0.1", port)
    assert _reaches(w1, llm.address, 8000) and not _reaches(w1, "127.0.0.1", 8000)
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
        finally:
            wb.close()
