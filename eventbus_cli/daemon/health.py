"""``Health``: whether a daemon is healthy, for ``eventbus status --check`` and probes."""

from __future__ import annotations

import time

from ..bus.emitter import SimpleEventEmitter
from ..plural import counted
from ..protocol.results import HealthReport

__all__ = ("WINDOW_SECONDS", "Health")

WINDOW_SECONDS = 60.0
"""Failures within this many seconds make a daemon unhealthy."""


class Health:
    """Whether the daemon is healthy: no delivery in the failed list failed within the
    last :data:`WINDOW_SECONDS` (so a purge or a retry clears it, and every kind of failure
    counts: a reload's, a restart's), the queue has room, the journal (if any) can be
    written, the last reload succeeded, and it is not shutting down."""

    def __init__(self, emitter: SimpleEventEmitter) -> None:
        self._broker = emitter.broker
        self._threads = emitter.threads

    def report(self, *, draining: bool, reload_failure: str | None = None) -> HealthReport:
        """Whether it is healthy; ``problems`` say what is wrong (``reload_failure``: what
        the last reload raised, where it failed and no reload succeeded since)."""
        since = time.time() - WINDOW_SECONDS
        failed = sum(1 for delivery in self._broker.failed_list
                     if delivery.failed_at is not None and delivery.failed_at >= since)
        problems = []
        if failed:
            problems.append(f"{counted(failed, 'delivery')} failed in the last {WINDOW_SECONDS:g}s "
                            "(`eventbus queue list --state failed` shows them)")
        stats = self._broker.stats()
        waiting, size = stats.pending + stats.retrying, self._broker.size
        if waiting >= size:
            problems.append(f"queue full: {waiting} of {size} deliveries waiting")
        if stuck := self._threads.stuck:
            problems.append(f"{stuck} sync calls ran past their timeout and still hold "
                            f"{stuck} of the {self._threads.max_threads} threads (max_threads)")
        problems += self._broker.problems()
        if reload_failure is not None:
            problems.append(f"last reload failed ({reload_failure}); the listeners loaded "
                            "before keep running: fix the file, then `eventbus listeners "
                            "reload`")
        if draining:
            problems.append("shutting down")
        return HealthReport(not problems, problems, failed)
