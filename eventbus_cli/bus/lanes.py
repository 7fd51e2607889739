"""``Lane``: one listener name's deliveries in the memory broker."""

from __future__ import annotations

from collections import deque

from .delivery import Delivery, ListenerStats
from .routing import Slot

__all__ = ("Lane",)


class Lane:
    """One listener name's deliveries: pending, running, and its counters."""

    __slots__ = ("delayed", "failed", "queue", "ready", "retired", "retried", "running",
                 "scheduled", "slot", "succeeded")

    def __init__(self, slot: Slot) -> None:
        self.slot = slot  # the listener of this name loaded now; a reload replaces it
        self.queue: deque[Delivery] = deque()
        self.running = 0  # calls of this lane running now
        self.delayed = 0  # deliveries of this lane in the broker's heap
        self.scheduled = 0  # deliveries of this lane waiting for their due time
        self.ready = False  # whether the lane stands in the round of lanes with work
        self.retired = False  # no listener of this name is served any more
        self.succeeded = self.failed = self.retried = 0

    def stats(self) -> ListenerStats:
        return ListenerStats(len(self.queue), self.running, self.delayed, self.succeeded,
                             self.failed, self.retried, self.scheduled)
