"""``DeliveryQueue``: the emitter's bounded queue, fair between listeners.

Each listener has a queue of its own, and workers serve the listeners that have deliveries
waiting in turn (round robin). No listener runs more than its ``limit`` of calls at once, so
a slow listener that fills the pool's other workers still leaves one free for the rest. The
queue is bounded: pending plus retrying deliveries never exceed ``size`` (deliveries that
fail while running may overshoot it by at most the number of workers).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from itertools import count
from typing import Any

import anyio

from .delivery import Delivery, DeliveryState, Slot

__all__ = ("DeliveryQueue",)


class DeliveryQueue:
    """Pending deliveries per listener, deliveries waiting out a retry backoff, and waiters."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pending = 0
        self._ready: deque[Slot] = deque()  # listeners with deliveries waiting and room to run
        self._retrying: list[tuple[float, int, Delivery]] = []
        self._idle: deque[anyio.Event] = deque()  # one per worker waiting for work
        self._room_waiters: list[anyio.Event] = []
        self._retry_wakeup: anyio.Event | None = None  # made in run_retries, inside the loop
        self._ids = count(1)

    @property
    def retrying(self) -> int:
        return len(self._retrying)

    def has_room(self, needed: int) -> bool:
        return self.pending + len(self._retrying) + needed <= self.size

    async def wait_for_room(self) -> None:
        """Return once the queue has drained to half full, or :meth:`wake_all` is called."""
        room = anyio.Event()
        self._room_waiters.append(room)
        await room.wait()

    def put(
        self, event_id: str, slots: tuple[Slot, ...], args: tuple[Any, ...],
        kwargs: dict[str, Any], now: float = 0.0,
    ) -> list[Delivery]:
        """Queue one delivery per slot and return them; the caller has checked :meth:`has_room`."""
        ids, idle = self._ids, self._idle
        made = []
        for slot in slots:
            delivery = Delivery(next(ids), event_id, args, kwargs, slot, now)
            made.append(delivery)
            self._append(slot, delivery)
            if idle:
                idle.popleft().set()
        self.pending += len(slots)
        return made

    def requeue(self, deliveries: list[Delivery]) -> None:
        """Queue deliveries made before (retried, restored, or moved by a reload) to their
        slots, room or not; each keeps its id."""
        for delivery in deliveries:
            delivery.state = DeliveryState.PENDING
            self._append(delivery.slot, delivery)
            if self._idle:
                self._idle.popleft().set()
        self.pending += len(deliveries)

    def skip_ids(self, last: int) -> None:
        """Number new deliveries after ``last`` (the highest id a journal holds)."""
        self._ids = count(last + 1)

    def take_pending(self, slot: Slot) -> list[Delivery]:
        """Remove and return the pending deliveries of ``slot``."""
        taken = list(slot.queue)
        slot.queue.clear()
        self.pending -= len(taken)
        if slot.ready:
            self._ready.remove(slot)
            slot.ready = False
        if self._room_waiters and taken:
            self.wake_all()
        return taken

    def take_retrying(self, slots: set[Slot]) -> list[Delivery]:
        """Remove and return the deliveries of ``slots`` that wait out a backoff."""
        taken = [entry for entry in self._retrying if entry[2].slot in slots]
        if taken:
            self._retrying[:] = [entry for entry in self._retrying if entry[2].slot not in slots]
            heapq.heapify(self._retrying)
            for entry in taken:
                entry[2].slot.stats.retrying -= 1
            self.wake_all()
        return [entry[2] for entry in sorted(taken)]

    def _append(self, slot: Slot, delivery: Delivery) -> None:
        slot.queue.append(delivery)
        if not slot.ready and slot.stats.running < slot.limit:
            slot.ready = True
            self._ready.append(slot)

    async def take(self) -> Delivery:
        """Wait for the next delivery due to run, and count it as running."""
        ready = self._ready
        while not ready:
            work = anyio.Event()
            self._idle.append(work)
            await work.wait()
        slot = ready.popleft()
        delivery = slot.queue.popleft()
        slot.stats.running += 1
        if slot.queue and slot.stats.running < slot.limit:
            ready.append(slot)
        else:
            slot.ready = False
        self.pending -= 1
        if self._room_waiters and self.pending <= self.size // 2:
            self.wake_all()
        return delivery

    def release(self, delivery: Delivery) -> None:
        """A running call of ``delivery`` ended; its listener may take another worker."""
        delivery.slot.stats.running -= 1
        slot = delivery.slot.live()  # the call may have started before a reload
        if slot is not None and slot.queue and not slot.ready and slot.stats.running < slot.limit:
            slot.ready = True
            self._ready.append(slot)
            if self._idle:
                self._idle.popleft().set()

    def retry_later(self, delivery: Delivery, delay: float) -> None:
        delivery.state = DeliveryState.RETRYING
        delivery.slot.stats.retrying += 1
        entry = (time.monotonic() + delay, delivery.id, delivery)
        heapq.heappush(self._retrying, entry)
        if self._retrying[0] is entry and self._retry_wakeup is not None:
            self._retry_wakeup.set()

    async def run_retries(self) -> None:
        """Move deliveries whose backoff is over back into their listener's queue; forever."""
        heap = self._retrying
        while True:
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                delivery = heapq.heappop(heap)[2]
                delivery.state = DeliveryState.PENDING
                delivery.slot.stats.retrying -= 1
                delivery.slot.stats.retried += 1
                self.pending += 1
                self._append(delivery.slot, delivery)
                if self._idle:
                    self._idle.popleft().set()
            self._retry_wakeup = anyio.Event()
            with anyio.move_on_after(heap[0][0] - now if heap else None):
                await self._retry_wakeup.wait()

    def wake_all(self) -> None:
        """Wake every task waiting for room, to check again."""
        waiters, self._room_waiters = self._room_waiters, []
        for room in waiters:
            room.set()

    def pending_deliveries(self, slots: list[Slot]) -> list[Delivery]:
        """The pending deliveries of ``slots``, in the order they were queued."""
        return sorted((d for slot in slots for d in slot.queue), key=lambda d: d.id)

    def retrying_deliveries(self) -> list[Delivery]:
        """The deliveries waiting out a backoff, the soonest due first."""
        return [entry[2] for entry in sorted(self._retrying)]
