"""``Lane``: one listener name's share of the deliveries a process holds; ``Pending``: its
deliveries waiting for a worker, in the order they may start.

Order within a lane (the local lanes keep fairness *between* lanes):

- Higher priority first, emit order within one priority (a deque per priority).
- Deliveries with an order key run one at a time per key, in emit order: the first of a key
  holds it from the time it is queued until it ends for good (succeeded, failed at its last
  attempt, purged); a retry keeps holding it, so the key's later deliveries wait behind it
  rather than overtake it (order is the point of a key: a "user updated" must not run
  before the "user created" it follows, even while that one waits out a backoff). The later
  ones wait apart, *blocked*, and join the queue one by one as the key is handed on.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator

from ..protocol.event import NORMAL, PRIORITIES
from .delivery import Delivery, ListenerStats
from .routing import Slot

__all__ = ("Lane", "Pending")


class Pending:
    """A lane's deliveries waiting to start: takeable ones by priority, and those blocked
    behind the holder of their order key. ``len()`` counts both."""

    __slots__ = ("blocked", "holder", "levels", "normal", "waiting_blocked")

    def __init__(self) -> None:
        self.levels: tuple[deque[Delivery], ...] = tuple(deque() for _ in PRIORITIES)
        self.normal = self.levels[NORMAL]
        self.holder: dict[str, int] = {}  # order key -> id of the delivery holding it
        self.blocked: dict[str, deque[Delivery]] = {}  # order key -> its later deliveries
        self.waiting_blocked = 0

    def __len__(self) -> int:
        high, normal, low = self.levels
        return len(high) + len(normal) + len(low) + self.waiting_blocked

    def __iter__(self) -> Iterator[Delivery]:
        for level in self.levels:
            yield from level
        for waiting in self.blocked.values():
            yield from waiting

    @property
    def takeable(self) -> bool:
        """Whether a delivery may start now."""
        high, normal, low = self.levels
        return bool(normal or high or low)

    def append(self, delivery: Delivery) -> None:
        """Queue a delivery new to this lane (emitted, come due, restored or read)."""
        key = delivery.order_key
        if key is not None:
            holder = self.holder.get(key)
            if holder is not None and holder != delivery.id:  # (the holder back from a store)
                self.blocked.setdefault(key, deque()).append(delivery)
                self.waiting_blocked += 1
                return
            self.holder[key] = delivery.id
        self.levels[delivery.priority].append(delivery)

    def again(self, delivery: Delivery) -> None:
        """Queue a delivery back after its backoff: it still holds its key."""
        self.levels[delivery.priority].append(delivery)

    def popleft(self) -> Delivery:
        """The next delivery to start (there must be one: see :attr:`takeable`)."""
        for level in self.levels:
            if level:
                return level.popleft()
        raise IndexError("no delivery may start")

    def ended(self, delivery: Delivery) -> Delivery | None:
        """``delivery`` ended for good: hand its order key to the next of that key (queued
        now, and returned), or free it."""
        key = delivery.order_key
        if key is None or self.holder.get(key) != delivery.id:
            return None
        waiting = self.blocked.get(key)
        if not waiting:
            del self.holder[key]
            return None
        following = waiting.popleft()
        self.waiting_blocked -= 1
        if not waiting:
            del self.blocked[key]
        self.holder[key] = following.id
        self.levels[following.priority].append(following)
        return following

    def clear(self) -> list[Delivery]:
        """Remove and return every waiting delivery; keys stay held by those that run or
        wait out a backoff."""
        taken = list(self)
        for level in self.levels:
            level.clear()
        self.blocked.clear()
        self.waiting_blocked = 0
        for delivery in taken:
            self.forget(delivery)
        return taken

    def forget(self, delivery: Delivery) -> None:
        """``delivery`` left without ending (taken away): it holds its key no more."""
        key = delivery.order_key
        if key is not None and self.holder.get(key) == delivery.id:
            del self.holder[key]


class Lane:
    """One listener name's deliveries: pending, running, and its counters. It takes part in
    the round of lanes with work only while ``open``: not paused, not held back by its rate.
    A lane that is not open has ``ready`` set, though it is not in the round, so that the
    hot path (which only adds lanes that are not ``ready``) never adds it."""

    __slots__ = ("delayed", "failed", "last_start", "next_start", "open", "paced", "paused",
                 "queue", "rate_waits", "ready", "retired", "retried", "running", "scheduled",
                 "slot", "succeeded")

    def __init__(self, slot: Slot) -> None:
        self.slot = slot  # the listener of this name loaded now; a reload replaces it
        self.queue = Pending()
        self.running = 0  # calls of this lane running now
        self.delayed = 0  # deliveries of this lane in the retry heap
        self.scheduled = 0  # deliveries of this lane waiting for their due time
        self.ready = False  # whether the lane stands in the round of lanes with work
        self.retired = False  # no listener of this name is served any more
        self.paused = False  # an operator paused it: nothing starts
        self.paced = False  # its rate allows no start before next_start
        self.open = True  # neither paused nor paced
        self.next_start = 0.0  # time.monotonic() its rate allows the next start at
        self.last_start = -math.inf  # time.monotonic() of its last start, where it has a rate
        self.rate_waits = 0  # times a delivery could have started but its rate held it back
        self.succeeded = self.failed = self.retried = 0

    def may_start(self) -> bool:
        """Whether one more call of it may start now."""
        return self.open and self.running < self.slot.limit and self.queue.takeable

    def stats(self) -> ListenerStats:
        return ListenerStats(len(self.queue), self.running, self.delayed, self.succeeded,
                             self.failed, self.retried, self.scheduled, self.paused)
