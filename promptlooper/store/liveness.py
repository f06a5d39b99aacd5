"""Whether the process that runs a sweep is still there, as the lease and every reader tell it.

One probe for the store's parts (the sweep lease in :mod:`.sweeps`, the live-sweep check of
:mod:`.housekeeping`): on the same host the process is asked directly, elsewhere its heartbeat
(written at least every 2 s, paused or not) decides.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

# owner_host of a sweep that belongs to its leased chunks, not to one process (store/chunks.py): it
# lives until its chunks are done or it is stopped, whichever workers come and go meanwhile.
WORKERS = "(workers)"
READER_STALE_AFTER = 30.0  # seconds without a heartbeat after which a reader deems a sweep's process gone


def sweep_owner_alive(sweep: dict[str, Any], stale_after: float = READER_STALE_AFTER) -> bool:
    """Whether the process running ``sweep`` is still there, as a reader (any process) can tell.

    On the same host, another process is asked directly (``os.kill(pid, 0)``); this process, or a
    sweep on another host, by its heartbeat (written at least every 2 s, paused or not).
    """
    pid, host, beat = sweep.get("owner_pid"), sweep.get("owner_host"), sweep.get("heartbeat")
    if host == WORKERS:
        return True
    if pid is not None and host == socket.gethostname() and pid != os.getpid():
        return pid_alive(pid)
    return beat is not None and time.time() - float(beat) < stale_after


def pid_alive(pid: int) -> bool:
    """Whether a process of this host is there (signal 0 only asks; another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(pid: int | None, owner_host: str | None, beat: float | None, host: str, stale_after: float) -> bool:
    if owner_host == WORKERS:
        return True
    if pid is None:
        return False
    if owner_host == host:
        if pid == os.getpid():
            return False  # our own earlier sweep (its task is gone or being replaced)
        return pid_alive(pid)
    return beat is not None and time.time() - beat < stale_after
