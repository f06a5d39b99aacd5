"""One SQLite store shared by the threads of a process (a worker's loop hands its store to
``asyncio.to_thread``; the webhook courier and a sweep's writer share theirs too).

A read left stepping on the connection keeps a snapshot of the database open; when another
process commits meanwhile, a write that this connection begins from another thread fails at
once with "database is locked" (SQLITE_BUSY_SNAPSHOT: the busy timeout never applies). A CI run
lost a worker's chunk to it: its last batch could not be written, and the chunk waited for its
lease to run out.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from promptlooper.store import Store


def test_reads_and_writes_of_one_store_from_two_threads_never_meet_a_stale_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store, other = Store(path), Store(path)  # ``other``: another process writing to the same file
    eid = store.upsert_experiment("tests", "threads", {"name": "threads"})
    for i in range(200):  # enough rows that a read steps for a while
        store.add_event(eid, "note", {"i": i, "text": "x" * 200})
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop(action: object) -> None:
        while not stop.is_set():
            try:
                action()  # type: ignore[operator]
            except BaseException as exc:  # noqa: BLE001 - what the test counts
                errors.append(exc)
                return

    threads = [threading.Thread(target=loop, args=(lambda: store.events(eid),)),  # this process: a reader
               threading.Thread(target=loop, args=(lambda: store.add_event(eid, "tick", {}),)),  # and a writer
               threading.Thread(target=loop, args=(lambda: other.add_event(eid, "tock", {}),))]  # another process
    for t in threads:
        t.start()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()
    written = len(store.events(eid, types=["tick"]))
    store.close()
    other.close()
    assert not errors, errors[0]
    assert written > 10  # the writer of this process got its turns
