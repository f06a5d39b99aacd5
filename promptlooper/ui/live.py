"""Live sweep view: progress, tokens, cost, cache hit rate, ETA, status and the current best.

With a :class:`~promptlooper.SweepHandle` (a sweep of this kernel) the handle's listener only
marks the view dirty (it is called from the engine's writer thread after every store batch);
one loop task on the kernel's loop pushes at most ``1 / interval`` updates a second. Without a
handle (a sweep in another process, a Voila dashboard) the loop polls the store instead.

    >>> view = LiveSweep(wb, "quickstart/capitals", handle)    # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import traitlets

from ._assets import asset, esm
from ._base import TERMINAL, PLWidget, Reader, every, experiment_key
from ._format import clean, fmt_cost, fmt_duration, fmt_int, fmt_pct, fmt_score, fmt_value, short


class EtaEstimator:
    """Remaining time from the recent rate of finished runs (a sliding window, so pauses age out)."""

    def __init__(self, window: float = 20.0):
        self.window = window
        self.samples: collections.deque[tuple[float, int]] = collections.deque()

    def update(self, done: int, total: int, status: str, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        if status in TERMINAL or done >= total > 0:
            return 0.0
        if status != "running":
            self.samples.clear()  # a paused sweep has no ETA, and its pause must not slow the next one
            return None
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.popleft()
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        if t1 <= t0 or d1 <= d0:
            return None
        return (total - done) / ((d1 - d0) / (t1 - t0))


def sweep_numbers(row: dict[str, Any] | None) -> dict[str, Any]:
    """Progress numbers from a ``sweeps`` row (what another process's sweep wrote)."""
    if not row:
        return {"status": "not started", "done": 0, "total": 0}
    done = int(row.get("done") or 0)
    cached = int(row.get("cached") or 0)
    return {
        "status": row.get("status") or "unknown", "done": done, "total": int(row.get("total") or 0),
        "tokens": int(row.get("tokens_in") or 0) + int(row.get("tokens_out") or 0), "cost": row.get("cost") or 0.0,
        "cached": cached, "failed": int(row.get("failed") or 0),
        "cache_hit_rate": cached / done if done else 0.0,  # by run: the row keeps no call counts
        "best_score": row.get("best_score"), "best_config_id": row.get("best_config_id"),
        "stop_reason": row.get("stop_reason"), "requested": row.get("requested"),
    }


def progress_state(experiment: str, numbers: dict[str, Any], best_varied: dict[str, Any] | None = None) -> dict[str, Any]:
    """The widget state: raw numbers (for the bar) and display strings (formatted here, not in JS)."""
    n = clean(numbers)
    done, total = int(n.get("done") or 0), int(n.get("total") or 0)
    status = str(n.get("status") or "unknown")
    if n.get("stop_reason") not in (None, "", "requested") and status in ("paused", "stopped"):
        status_text = f"{status} ({n['stop_reason']})"
    else:
        status_text = status
    best = n.get("best_score")
    best_text = "–" if best is None else f"{fmt_score(best)} · {short(n.get('best_config_id'))}"
    varied_text = ", ".join(f"{k} = {fmt_value(v)}" for k, v in (best_varied or {}).items())
    eta = n.get("eta")
    return {
        "experiment": experiment, "status": status, "done": done, "total": total,
        "fraction": min(1.0, done / total) if total else (1.0 if status == "completed" else 0.0),
        "failed": int(n.get("failed") or 0),
        "display": {
            "progress": f"{fmt_int(done)} / {fmt_int(total)} runs",
            "tokens": fmt_int(n.get("tokens") or 0),
            "cost": fmt_cost(n.get("cost") or 0.0),
            "cache": fmt_pct(n.get("cache_hit_rate") or 0.0),
            "eta": "–" if eta is None or status != "running" else fmt_duration(eta),
            "rate": "–" if not n.get("rate") else f"{n['rate']:.1f} runs/s",
            "status": status_text,
            "best": best_text,
            "best_params": varied_text,
            "failed": fmt_int(n.get("failed") or 0),
        },
    }


class LiveSweep(PLWidget):
    """Progress of the experiment's sweep, updated live (≤ 1/interval pushes a second)."""

    _esm = esm("live")
    _css = asset("live", "widget.css")

    state = traitlets.Dict().tag(sync=True)

    def __init__(self, wb: Any, experiment: Any, handle: Any = None, *, interval: float = 0.25, poll: float = 0.5,
                 readonly: bool | None = None, slot: str = ""):
        super().__init__(readonly=readonly, slot=slot)
        self.wb = wb
        self.experiment = experiment_key(experiment)
        self.interval = interval
        self.poll = poll
        self.handle: Any = None
        self.pushes = 0  # how many states were pushed (tests, benchmarks)
        self._reader = Reader(wb)
        self._eta = EtaEstimator()
        self._dirty = False
        self._varied: dict[str, dict[str, Any]] = {}
        self.state = progress_state(self.experiment, {"status": "waiting"})
        if handle is not None:
            self.watch(handle)
        else:
            # the loop first: a view with a loop to see the sweep end holds the heap (_following)
            self._start_loop((wb.db_path, self.experiment), every(self.poll, self._poll_store, self._reader.changes(self.experiment)))
            try:
                self.refresh_from(self._read_store(wb))
            except BaseException:  # no view (an unknown experiment, say): no loop left polling for it
                self.stop_updates()
                raise

    # -- a sweep of this kernel -------------------------------------------
    def watch(self, handle: Any) -> None:
        """Follow ``handle`` (replaces what this view followed before)."""
        if self.handle is not handle:
            handle.add_listener(self._record)
        self.handle = handle
        configs = getattr(getattr(getattr(handle, "sweep", None), "plan", None), "configurations", None) or []
        self._varied.update({c.id: dict(c.varied) for c in configs if hasattr(c, "varied")})
        self._push_progress(handle.progress)
        self._start_loop((self.wb.db_path, self.experiment), self._follow(handle))

    def _record(self, _progress: Any) -> None:
        # Called from the engine's writer thread after each store batch: only note it.
        self._dirty = True

    async def _follow(self, handle: Any) -> None:
        while not self._closed:
            await asyncio.sleep(self.interval)
            if self._dirty:
                self._dirty = False
                self._push_progress(handle.progress)
            if handle.done():
                self._push_progress(handle.progress)
                return

    def _push_progress(self, progress: Any) -> None:
        numbers = progress.as_dict()
        numbers["eta"] = progress.eta if progress.status == "running" else None
        self._push(numbers, self._varied.get(numbers.get("best_config_id") or ""))

    # -- a sweep anywhere (store) -----------------------------------------
    async def _poll_store(self) -> bool:
        self.refresh_from(await self._reader.run(self._read_store))
        return self._closed

    def _read_store(self, wb: Any) -> dict[str, Any]:
        status = wb.status(self.experiment)
        numbers = sweep_numbers(status.get("sweep"))
        best = numbers.get("best_config_id")
        if best and best not in self._varied:
            try:
                self._varied[best] = dict(wb.store.configuration(status["id"], best)["varied"])
            except Exception:  # noqa: BLE001 - the view works without the parameters
                self._varied[best] = {}
        return numbers

    def refresh_from(self, numbers: dict[str, Any], now: float | None = None) -> None:
        """Show progress numbers read from the store (estimates the ETA from their history)."""
        numbers = dict(numbers)
        numbers["eta"] = self._eta.update(numbers.get("done", 0), numbers.get("total", 0), numbers.get("status", ""), now)
        self._push(numbers, self._varied.get(numbers.get("best_config_id") or ""))

    def _push(self, numbers: dict[str, Any], varied: dict[str, Any] | None) -> None:
        self._following(numbers.get("status"))
        state = progress_state(self.experiment, numbers, varied)
        if state != self.state:
            self.state = state
            self.pushes += 1
