"""SweepHandle: a sweep running in the background, on the notebook kernel's loop or a thread.

In a notebook the sweep is a task on the kernel's own event loop, so cells stay usable and
widgets update between and during cells (``await handle`` waits without blocking the kernel).
In a script without a running loop the sweep gets its own loop in a daemon thread. Either way the
handle offers progress, pause / resume / stop (written to the store, so they are the same verbs
other processes use) and waiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from .progress import Progress
from .sweep import Sweep


class SweepHandle:
    def __init__(self, sweep: Sweep, experiment_key: str, experiment_id: str):
        self.sweep = sweep
        self.experiment = experiment_key
        self.experiment_id = experiment_id
        self._task: asyncio.Task[Progress] | None = None
        self._future: concurrent.futures.Future[Progress] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set after the sweep's first write (it holds its lease; experiment.started is in the store)
        # or when it has ended: started() waits on it.
        self._begun = threading.Event()
        sweep.listeners.append(lambda _: self._begun.set())

    # ------------------------------------------------------------------ starting
    def _start(self, coro_factory: Callable[[], Coroutine[Any, Any, Progress]]) -> SweepHandle:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._loop = loop
            self._task = loop.create_task(coro_factory(), name=f"promptlooper-sweep:{self.experiment}")
            self._task.add_done_callback(lambda _: self._begun.set())
        else:
            self._future = concurrent.futures.Future()
            ready = threading.Event()

            def main() -> None:
                async def go() -> None:
                    self._loop = asyncio.get_running_loop()
                    ready.set()
                    try:
                        self._future.set_result(await coro_factory())  # type: ignore[union-attr]
                    except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
                        self._future.set_exception(exc)  # type: ignore[union-attr]
                    finally:
                        self._begun.set()

                asyncio.run(go())

            threading.Thread(target=main, name=f"promptlooper-sweep:{self.experiment}", daemon=True).start()
            ready.wait()
        return self

    # ------------------------------------------------------------------ state
    @property
    def progress(self) -> Progress:
        return self.sweep.progress

    @property
    def status(self) -> str:
        return self.sweep.progress.status

    @property
    def sweep_id(self) -> str | None:
        return self.sweep.sweep_id

    def done(self) -> bool:
        if self._task is not None:
            return self._task.done()
        return self._future is not None and self._future.done()

    def add_listener(self, fn: Callable[[Progress], None]) -> None:
        """Call ``fn(progress)`` after every batch lands in the store (at most ~20 times a second)."""
        self.sweep.listeners.append(fn)

    def __repr__(self) -> str:
        return f"<SweepHandle {self.experiment}: {self.progress.line()}>"

    # ------------------------------------------------------------------ steering
    def _steer(self, what: str) -> None:
        if self._loop is not None and self._loop.is_running() and self._task is None:
            self._loop.call_soon_threadsafe(self.sweep.request, what)
        else:
            self.sweep.request(what)

    def pause(self) -> None:
        self._steer("pause")

    def resume(self) -> None:
        self._steer("resume")

    def stop(self) -> None:
        self._steer("stop")

    def cancel(self) -> None:
        """Hard cancel (what Ctrl+C does): finished runs are kept, the rest resumes later."""
        if self._task is not None:
            self._task.cancel()
        elif self._loop is not None:
            for task in asyncio.all_tasks(self._loop):
                self._loop.call_soon_threadsafe(task.cancel)

    # ------------------------------------------------------------------ waiting
    def __await__(self) -> Generator[Any, None, Progress]:
        if self._task is not None:
            return self._task.__await__()
        assert self._future is not None
        return asyncio.wrap_future(self._future).__await__()

    def started(self, timeout: float | None = None) -> bool:
        """Block until the sweep has written its first progress (it holds its lease, ``sweep_id``
        is known, its experiment.started event is in the store) or has ended, at most ``timeout``
        seconds; False if neither happened by then. A sweep that ended with an error
        raises it here, so a caller starting one hears at once why it could not run (scripts, the
        MCP server's worker threads; on the notebook's loop read ``handle.sweep_id`` after a cell)."""
        if self._task is not None:
            raise RuntimeError("this sweep runs on the notebook's event loop: blocking here would freeze it")
        begun = self._begun.wait(timeout)
        if self._future is not None and self._future.done():
            self._future.result()  # raises the sweep's exception, if it ended with one
        return begun

    def wait(self, timeout: float | None = None) -> Progress:
        """Block until the sweep ends (scripts). In a notebook use ``await handle`` instead."""
        if self._future is not None:
            return self._future.result(timeout)
        raise RuntimeError("this sweep runs on the notebook's event loop: use `await handle` (blocking would freeze it)")
