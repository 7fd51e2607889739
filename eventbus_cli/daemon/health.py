"""``Health``: whether a daemon is healthy, for ``eventbus status --check`` and probes."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import anyio

from ..bus.emitter import SimpleEventEmitter

__all__ = ("WINDOW_SECONDS", "Health")

WINDOW_SECONDS = 60.0
"""Failures within this many seconds make a daemon unhealthy."""
_SAMPLE_SECONDS = 5.0


class Health:
    """Samples the emitter's failure count, to tell whether failures are growing.

    Call :meth:`sample` every few seconds (the daemon does, every 5 s); :meth:`report` then
    compares now with the oldest sample inside the window.
    """

    def __init__(self, emitter: SimpleEventEmitter) -> None:
        self._emitter = emitter
        self._samples: deque[tuple[float, int]] = deque()
        self.sample()

    def sample(self) -> None:
        now = time.monotonic()
        self._samples.append((now, self._emitter.stats().failed))
        while len(self._samples) > 1 and self._samples[1][0] <= now - WINDOW_SECONDS:
            self._samples.popleft()

    def report(self, *, draining: bool) -> dict[str, Any]:
        """``{"healthy", "problems", "failed_recently"}``: problems say what is wrong."""
        stats = self._emitter.stats()
        failed = max(0, stats.failed - self._samples[0][1])
        problems = []
        if failed:
            problems.append(f"{failed} deliveries failed in the last {WINDOW_SECONDS:g}s "
                            "(`eventbus queue list --state failed` shows them)")
        waiting, size = stats.pending + stats.retrying, self._emitter.broker.size
        if waiting >= size:
            problems.append(f"queue full: {waiting} of {size} deliveries waiting")
        if draining:
            problems.append("shutting down")
        return {"healthy": not problems, "problems": problems, "failed_recently": failed}

    async def run(self) -> None:
        """Sample every few seconds, forever."""
        while True:
            await anyio.sleep(_SAMPLE_SECONDS)
            self.sample()
