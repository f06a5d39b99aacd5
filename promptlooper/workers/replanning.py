"""Redirecting a sweep that workers share: its remaining work re-planned in the database.

A one-process sweep swaps the rest of its plan in memory (``Sweep._redirect``); a workers' sweep
has no such memory, its plan is its chunks. So the redirect is one transaction of the store
(:meth:`~promptlooper.store.chunks.Chunks.replan_shared_sweep`):

* the chunks nobody started are replaced by chunks of the new plan (numbered ``plan`` 1, 2, … and
  cut as at queueing, over the new space's configurations), and the spec the workers compile is
  the new one;
* the chunks in progress hear the redirect in the steering log (NOTIFY on PostgreSQL, else within
  a poll) and stop at their next call: runs whose call is out land and are recorded, the others
  are left to the new plan, which skips what is finished (same run ids: a kept configuration's
  finished runs count, and the responses of calls that landed are in the cache);
* the new plan's chunks are claimed once no chunk of an earlier plan is held, so no run is made
  twice; a worker killed holding one delays them by its lease at most;
* the total is recounted: what is done, plus the new plan's runs not finished, and recorded in the
  ``experiment.redirected`` event (with who asked), as a one-process redirect records it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..store.chunks import chunk_ranges
from ..store.sweeps import steering_request
from ..sweeps.runs import run_id
from .queueing import runs_per_chunk

if TYPE_CHECKING:
    from ..compiled import CompiledExperiment
    from ..store.backend import StoreBackend


def redirect_shared(store: StoreBackend, sweep: dict[str, Any], ready: CompiledExperiment, by: str = "") -> dict[str, Any] | None:
    """Re-plan the workers' ``sweep`` (its row) as ``ready`` (the redirected experiment, compiled
    with the options the sweep was queued with); the ``experiment.redirected`` event's payload, or
    None if the sweep ended meanwhile."""
    experiment_id = sweep["experiment_id"]
    options = json.loads(sweep.get("options") or "{}")
    configurations = ready.configurations
    per_configuration = len(ready.samples) * ready.experiment.repeat
    planned = {run_id(experiment_id, c.id, sid, r) for c in configurations for sid, _ in ready.samples
               for r in range(ready.experiment.repeat)}
    ranges = chunk_ranges(len(configurations), per_configuration,
                          options.get("chunk_runs") or runs_per_chunk(ready.concurrency, len(planned)),
                          samples=len(ready.samples))
    store.add_configurations(experiment_id, ((c.id, c.as_record(), c.varied) for c in configurations))
    spec = ready.experiment.to_record()
    replanned = store.replan_shared_sweep(sweep["id"], {"spec": spec, "points": None}, ranges, per_configuration, planned,
                                          steering_request("redirect", by=by))
    if replanned is None:
        return None
    payload = {"space": spec["space"], "configurations": len(configurations), "remaining_runs": replanned["remaining_runs"],
               "total": replanned["total"], "sweep_id": sweep["id"], "plan": replanned["plan"], "chunks": replanned["chunks"],
               "workers": True, **({"by": by} if by else {})}
    store.add_event(experiment_id, "experiment.redirected", payload)
    return payload


__all__ = ["redirect_shared"]
