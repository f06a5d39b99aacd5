"""A circuit breaker per endpoint: a dead endpoint stops costing.

Every model call's outcome is reported to its endpoint's :class:`Breaker`. A run of ``threshold``
consecutive failures that say the endpoint itself is unwell (a 5xx, a connection error, a timeout)
opens it: the sweep pauses (``endpoint.unhealthy``, with the last reason), so the calls waiting for
their first try or for a retry send nothing more. While it is open, the sweep sends one probe after
``cooldown`` seconds (doubled after each failed probe, up to ``MAX_COOLDOWN``); a probe answered,
or a ``resume``, closes it and the sweep goes on. Without it an always-500 endpoint got seven
requests a run (every retry of every run).

Processes sharing a store share their breakers (:mod:`.shared_breakers`): one that opens is
written to the store, and the others open theirs *remotely* on their next steering poll; only the
process that opened it probes, and when the store says it closed, the others close theirs.

The counting is a few attribute updates per call: the hot path (a healthy endpoint) only resets a
counter that is already zero.
"""

from __future__ import annotations

from ..errors import ProviderError

MAX_COOLDOWN = 300.0  # seconds: the longest wait between two probes of an endpoint still down


def is_unhealthy(error: ProviderError) -> bool:
    """Whether a failure says the endpoint is unwell (not the request: a 400, a 401, a 429)."""
    return error.status is None or error.status >= 500


class Breaker:
    __slots__ = ("name", "identity", "threshold", "cooldown", "failures", "is_open", "reason", "probes", "remote")

    def __init__(self, name: str, *, threshold: int = 5, cooldown: float = 30.0, identity: str | None = None):
        self.name = name
        self.identity = identity or name  # the endpoint itself (its URL): what processes agree on
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self.failures = 0  # consecutive unhealthy failures
        self.is_open = False
        self.reason = ""  # the failure that opened it
        self.probes = 0  # failed probes since it opened (each doubles the wait before the next)
        self.remote = False  # opened because another process's breaker for the endpoint is open

    def on_success(self) -> bool:
        """Record a call answered; True if that closed an open breaker."""
        self.failures = 0
        if self.is_open:
            self.close()
            return True
        return False

    def on_failure(self, error: ProviderError) -> bool:
        """Record a failed call; True if it just opened the breaker."""
        if not is_unhealthy(error):
            self.failures = 0  # the endpoint answered: it is alive, the request was at fault
            return False
        self.failures += 1
        if self.is_open or self.failures < self.threshold:
            return False
        self.is_open = True
        self.reason = str(error)
        self.probes = 0
        return True

    def open_remotely(self, reason: str) -> None:
        """Open because another process sharing the store opened its breaker for this endpoint."""
        self.is_open = True
        self.remote = True
        self.reason = reason
        self.probes = 0

    def close(self) -> None:
        self.is_open = False
        self.remote = False
        self.failures = 0
        self.probes = 0

    def next_probe_in(self) -> float:
        """Seconds until the next probe: ``cooldown``, doubled after every failed probe."""
        return min(MAX_COOLDOWN, self.cooldown * (2 ** self.probes))
