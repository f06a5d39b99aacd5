"""The leaderboard sends its page the whole table once, then keyed deltas of what changed."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm

import promptlooper as pl
from promptlooper.ui._assets import esm
from promptlooper.ui.board_sync import BoardSync, page_row
from promptlooper.ui.leaderboard import Leaderboard

COLS = [{"key": "rank"}, {"key": "score"}]


def row(rid: str, rank: int, score: str, n: int = 3) -> dict[str, Any]:
    return {"id": rid, "cells": {"rank": str(rank), "score": score, "n": str(n)}, "values": {"score": float(score)},
            "decision": "", "failed": 0, "few": False}


def test_first_update_sends_the_table_then_only_what_changed():
    sync = BoardSync()
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    kind, table = sync.update([row(a, 1, "0.9"), row(b, 2, "0.5")], COLS)
    assert kind == "table" and table["seq"] == 1
    assert [r["k"] for r in table["rows"]] == [0, 1] and all("values" not in r for r in table["rows"])

    assert sync.update([row(a, 1, "0.9"), row(b, 2, "0.5")], COLS) is None  # nothing new: nothing sent

    kind, delta = sync.update([row(a, 1, "0.9"), row(b, 2, "0.6")], COLS)  # one score moved
    assert kind == "delta" and delta == {"base": 1, "n": 1, "add": [], "patch": [{"k": 1, "cells": {"score": "0.6"}}],
                                          "remove": []}

    kind, delta = sync.update([row(c, 1, "1.0", n=1), row(b, 2, "0.6"), row(a, 3, "0.9")], COLS)  # new best, re-ranked
    assert delta["add"] == [{**page_row(row(c, 1, "1.0", n=1)), "k": 2}]
    assert delta["patch"] == [{"k": 0, "cells": {"rank": "3"}}]
    assert delta["order"] == [2, 1, 0] and delta["n"] == 2

    kind, delta = sync.update([row(c, 1, "1.0", n=1), row(a, 2, "0.9")], COLS)  # b left the board
    assert delta["remove"] == [1] and delta["order"] == [2, 0] and delta["patch"] == [{"k": 0, "cells": {"rank": "2"}}]

    kind, table = sync.update([row(c, 1, "1.0")], [*COLS, {"key": "failed"}])  # new columns: the table again
    assert kind == "table" and table["seq"] == 2 and [r["k"] for r in table["rows"]] == [0]
    kind, delta = sync.update([row(c, 1, "0.8")], [*COLS, {"key": "failed"}])
    assert delta["base"] == 2 and delta["n"] == 1


class Recorder(BaseComm):
    """A comm that keeps what a kernel would send the page: the size of each state update."""

    sent: list[tuple[set[str], int]] = []

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any) -> None:
        if msg_type == "comm_msg" and isinstance(data, dict) and data.get("method") == "update":
            state = data.get("state", {})
            Recorder.sent.append((set(state), len(json.dumps(state))))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[set[str], int]]:
    # comm.create_comm is the hook a kernel installs to carry widget messages (ipykernel does)
    Recorder.sent = []
    monkeypatch.setattr(comm, "create_comm", lambda **kw: Recorder(**kw))
    return Recorder.sent


def test_a_live_sweep_of_many_configurations_sends_a_fraction_of_the_board_per_update(wb, server, make_exp, recorded):
    server.latency = 0.04  # about 4 s of sweep: many refreshes of a growing board
    exp = make_exp(space={"answer.temperature": [round(i * 0.01, 2) for i in range(120)]}, concurrency=4)
    full: list[int] = []  # what each update would weigh sent whole (all rows, as before)

    async def scenario() -> None:
        handle = wb.start(exp)
        board = Leaderboard(wb, exp, handle, live=False, readonly=False)
        board.observe(lambda ch: full.append(len(json.dumps([page_row(r) for r in ch["new"]]))), "rows")
        reader = pl.Workbench(wb.db_path, readonly=True)
        # what the board's live loop does, without its back-off (which depends on the machine's
        # speed): read the leaderboard off the loop, show it, as long as the sweep runs
        while True:
            finished = handle.done()
            board.show(await asyncio.to_thread(reader.leaderboard, exp.key, include_rejected=True))
            if finished:
                break
        reader.close()
        assert len(board.rows) == 120 and all(r["values"]["n"] == 3 for r in board.rows)
        board.close()

    asyncio.run(scenario())
    tables = [size for keys, size in recorded if "table" in keys]
    deltas = [size for keys, size in recorded if "delta" in keys]
    assert len(deltas) >= 5, "the board should have been updated several times during the sweep"
    assert len(tables) <= 3, "the whole table is sent when the board is rebuilt (new columns), not on every update"
    assert not [keys for keys, _ in recorded if "rows" in keys], "rows are no longer sent whole"
    board_bytes = full[-1]
    assert board_bytes > 30_000, "a board of 120 configurations is a big message"
    # most updates change a few cells and the order: far less than the board
    assert sorted(deltas)[len(deltas) // 2] < board_bytes / 5, (deltas, board_bytes)
    assert sum(deltas) + sum(tables) < sum(full) / 4, (sum(deltas), sum(tables), sum(full))
    print(f"board {board_bytes} B; {len(tables)} table(s) {tables} B; {len(deltas)} deltas, median {sorted(deltas)[len(deltas) // 2]} B; "
          f"all updates {sum(deltas) + sum(tables)} B vs {sum(full)} B sent whole")


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_the_page_merges_the_deltas_into_the_board_python_shows(tmp_path):
    # the page's applyDelta (widgets/leaderboard/widget.js), run in node on what BoardSync sends
    # for a board that grows, re-ranks, loses rows and changes columns: after each message the
    # page's table is Python's rows, in Python's order
    rng = random.Random(7)
    boards, ids = [], [f"{i:064x}" for i in range(40)]
    live: list[str] = []
    for step in range(30):
        live = [i for i in live if rng.random() > 0.05] + [i for i in rng.sample(ids, 3) if i not in live]
        rng.shuffle(live)
        cols = COLS if step < 20 else [*COLS, {"key": "failed"}]
        boards.append(([row(i, rank + 1, f"{rng.random():.3f}", n=rng.randint(1, 3)) for rank, i in enumerate(live)], cols))
    sync = BoardSync()
    messages = [sync.update(rows, cols) for rows, cols in boards]
    module = tmp_path / "board.mjs"
    module.write_text(str(esm("leaderboard")) + "\nexport { applyDelta };\n")
    script = tmp_path / "run.mjs"
    script.write_text(
        "const { applyDelta } = await import(process.argv[2]);\n"
        "const messages = JSON.parse(require('fs').readFileSync(process.argv[3], 'utf8'));\n".replace("require('fs')", "(await import('fs'))")
        + "let table = {}; const out = [];\n"
        "for (const m of messages) { if (m) { if (m[0] === 'table') table = m[1]; else table = applyDelta(table, m[1]); }\n"
        "  out.push(table.rows.map(({ k, ...r }) => r)); }\n"
        "console.log(JSON.stringify(out));\n")
    data = tmp_path / "messages.json"
    data.write_text(json.dumps(messages))
    done = subprocess.run(["node", str(script), module.as_uri(), str(data)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert any(m and m[0] == "delta" and m[1]["remove"] for m in messages) and sum(m is not None and m[0] == "table" for m in messages) == 2
    for (rows, _cols), page in zip(boards, shown, strict=True):
        assert page == [page_row(r) for r in rows]


def test_a_page_that_missed_deltas_asks_for_the_table_and_gets_the_whole_board(tmp_path, wb, server, make_exp):
    # A dashboard page connects while a sweep runs: the model it fetches holds the first table and
    # only the latest delta. Applied alone, that delta left out for good the rows the missed ones
    # added (a dashboard stayed one configuration short). The page must see the gap and resync.
    sync = BoardSync()
    boards = [[row(f"{i:064x}", i + 1, "0.5") for i in range(n)] for n in (2, 3, 4, 5)]
    first, *deltas = [sync.update(rows, COLS) for rows in boards]
    assert first[0] == "table" and [d[0] for d in deltas] == ["delta"] * 3
    module = tmp_path / "board.mjs"
    module.write_text(str(esm("leaderboard")) + "\nexport { applyDelta };\n")
    script = tmp_path / "late.mjs"
    script.write_text(
        "const { applyDelta } = await import(process.argv[2]);\n"
        "const [table, last, next] = JSON.parse(process.argv[3]);\n"
        "const late = applyDelta(table, last);\n"  # the first table and the latest delta only
        "const after = applyDelta(table, next);\n"  # in order, the next one applies
        "console.log(JSON.stringify([late, after.rows.length]));\n")
    done = subprocess.run(["node", str(script), module.as_uri(), json.dumps([first[1], deltas[-1][1], deltas[0][1]])],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    late, in_order = json.loads(done.stdout)
    assert late is None and in_order == 3  # null: ask Python for the table

    # The widget answers a resync, read-only views too (a dashboard's), with the whole board.
    exp = make_exp(name="resync")
    wb.run(exp)
    board = Leaderboard(wb, exp, live=False, readonly=True)
    seq = board.table["seq"]
    assert board.handle_message({"action": "resync"})
    assert board.table["seq"] == seq + 1 and [r["id"] for r in board.table["rows"]] == [r["id"] for r in board.rows]
