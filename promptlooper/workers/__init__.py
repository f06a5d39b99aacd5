"""Sweeps shared by worker processes through the database (issue 18).

:mod:`.queueing` cuts a sweep's plan into chunks and queues it; :mod:`.worker` is the loop of
``promptlooper worker`` (claim a chunk, run it, record it, repeat); :mod:`.chunk_sweep` is the
engine's Sweep over one chunk, with fenced, additive writes and steering read as a log;
:mod:`.following` follows a queued sweep from the process that queued it; :mod:`.replanning`
redirects a queued sweep (its remaining chunks re-planned); :mod:`.guided` decides a guided
search's next chunks from the runs in the database. The leases themselves
live in the store (:mod:`promptlooper.store.chunks`).
"""
