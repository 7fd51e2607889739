"""``MemoryBroker``: every delivery in this process's memory, fair between listeners.

Each listener name has a lane: its queue of pending deliveries, the calls it runs, its
counters. Workers serve the lanes that have deliveries waiting in turn (round robin), and no
lane runs more than its slot's ``limit`` of calls at once, so a slow listener that fills the
pool still leaves a worker for the rest. Deliveries that wait for a time (a retry's backoff)
sit in one heap, moved back by :meth:`run`. The broker is bounded: pending plus waiting
deliveries never exceed ``queue_size``, nor the bytes of the events they carry ``max_bytes``
(failures of running calls may overshoot either by at most what the workers hold).
Subclasses that keep deliveries elsewhere too (the journal) hear of every
change through :meth:`_kept` and :meth:`_forgotten`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import count
from operator import itemgetter
from typing import Any

import anyio

from ..checks import number_problem
from ..config import DaemonConfig, DeliveryConfig
from ..errors import DeliveryError, QueueFullError
from .broker import Broker
from .dedupe import DedupeKeys
from .delivery import Delivery, DeliveryObserver, DeliveryState, EmitterStats, ListenerStats
from .due import DueHeap
from .failed_list import FailedList
from .lanes import Lane
from .routing import Slot

__all__ = ("MemoryBroker",)

logger = logging.getLogger("eventbus.emitter")
# Module globals: the hot path reads them for every delivery, quicker than class attributes.
_RUNNING, _SUCCEEDED = DeliveryState.RUNNING, DeliveryState.SUCCEEDED


class MemoryBroker(Broker):
    """Deliveries in memory: a restart loses what waits. ``keep_failed`` bounds the failed
    list (the newest are kept); ``max_bytes``, when given, bounds the bytes of encoded events
    waiting, as measured by whoever puts them (the daemon: the request's size)."""

    _writes_through = False
    """Whether :meth:`_kept` and :meth:`_forgotten` do anything (set by subclasses that
    keep deliveries elsewhere too), so the hot path skips the calls otherwise."""

    def __init__(self, *, queue_size: int = DaemonConfig.queue_size,
                 keep_failed: int = DeliveryConfig.keep_failed, max_bytes: int | None = None,
                 max_scheduled: int = DaemonConfig.max_scheduled,
                 dedupe_window: float = DaemonConfig.dedupe_window,
                 max_dedupe_keys: int = DaemonConfig.max_dedupe_keys) -> None:
        for key, value, minimum in (("queue_size", queue_size, 1), ("keep_failed", keep_failed, 0),
                                    ("max_bytes", 1 if max_bytes is None else max_bytes, 1),
                                    ("max_scheduled", max_scheduled, 0)):
            if (want := number_problem(value, whole=True, minimum=minimum)) is not None:
                raise ValueError(f"{key} must be {want}, not {value!r}")
        self.size = queue_size
        self.max_bytes = max_bytes
        self.max_scheduled = max_scheduled
        self.keys = DedupeKeys(dedupe_window, max_dedupe_keys)
        # Deliveries emitted for later, by due time (time.time(): a due time is a date).
        self._scheduled = DueHeap()
        self._bytes = 0  # sizes of the pending and delayed deliveries
        self._lanes: dict[str, Lane] = {}
        self._ready: deque[Lane] = deque()
        self._running: dict[int, tuple[Delivery, Lane]] = {}
        self._delayed = DueHeap()  # retries waiting out their backoff, by time.monotonic()
        self._failed = FailedList(keep_failed)
        self._waiting = 0  # pending plus delayed
        # Ids (and bytes) of the pending that were scheduled and came due: admitted under
        # max_scheduled, they wait in the lanes without taking the room of ready work.
        self._released: set[int] = set()
        self._released_bytes = 0
        self._unrouted = 0
        self._duplicates = 0
        # Outcomes of listeners no longer served (removed by a reload, or not loaded after a
        # restart): the totals count them, though no lane shows them any more.
        self._gone = ListenerStats()
        self._ids = count(1)
        self._idle: deque[anyio.Event] = deque()  # one per worker waiting for work
        self._room_waiters: list[anyio.Event] = []
        self._wakeup: anyio.Event | None = None  # made in run(), inside the loop
        self._joined: anyio.Event | None = None
        self._observers: list[DeliveryObserver] = []

    # -- listeners ---------------------------------------------------------------------------

    def serve(self, slots: Sequence[Slot], *, reason: str) -> int:
        served = {slot.listener.name for slot in slots}
        orphans: list[tuple[Delivery, Lane]] = []
        for name in [name for name in self._lanes if name not in served]:
            lane = self._lanes.pop(name)
            lane.retired = True
            self._gone.succeeded += lane.succeeded
            self._gone.failed += lane.failed
            orphans += [(delivery, lane) for delivery in self._take_waiting(lane)]
        for slot in slots:
            kept = self._lanes.get(slot.listener.name)
            if kept is None:
                self._lanes[slot.listener.name] = Lane(slot)
            else:
                kept.slot = slot
                self._make_ready(kept)
        self._lanes = {slot.listener.name: self._lanes[slot.listener.name] for slot in slots}
        for delivery, lane in sorted(orphans, key=lambda pair: pair[0].id):
            delivery.error = f"ListenerRemoved: listener {delivery.listener} {reason}"
            delivery.traceback = None
            self._fail(delivery, lane)
        return len(orphans)

    def serves(self, name: str) -> bool:
        return name in self._lanes

    def _take_waiting(self, lane: Lane, *, scheduled: bool = True) -> list[Delivery]:
        """Remove and return the lane's pending and delayed deliveries, and (``scheduled``)
        those waiting for their due time."""
        taken = list(lane.queue)
        lane.queue.clear()
        if lane.ready:
            self._ready.remove(lane)
            lane.ready = False
        if lane.delayed:
            taken += self._delayed.take_lane(lane)
            lane.delayed = 0
        self._waiting -= len(taken)
        self._bytes -= sum(delivery.size for delivery in taken)
        if self._released:  # those that came due no longer stand apart from the ready bound
            settled = [delivery for delivery in taken if delivery.id in self._released]
            self._released.difference_update(delivery.id for delivery in settled)
            self._released_bytes -= sum(delivery.size for delivery in settled)
        if scheduled and lane.scheduled:
            taken += self._scheduled.take_lane(lane)
            lane.scheduled = 0
        if taken:
            self.wake_all()
        return taken

    # -- emitting ----------------------------------------------------------------------------

    def has_room(self, needed: int, size: int = 0, *, later: bool = False) -> bool:
        if later:
            return len(self._scheduled) + len(self._released) + needed <= self.max_scheduled
        return self._waiting - len(self._released) + needed <= self.size and (
            self.max_bytes is None
            or self._bytes - self._released_bytes + needed * size <= self.max_bytes)

    def _half_empty(self) -> bool:
        return self._waiting - len(self._released) <= self.size // 2 and (
            self.max_bytes is None or self._bytes - self._released_bytes <= self.max_bytes // 2)

    async def wait_for_room(self) -> None:
        room = anyio.Event()
        self._room_waiters.append(room)
        await room.wait()

    def wake_all(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        for room in waiters:
            room.set()

    def put(self, event_id: str, slots: Sequence[Slot], args: tuple[Any, ...],
            kwargs: dict[str, Any], size: int = 0, due_at: float | None = None,
            key: str | None = None) -> Sequence[Delivery]:
        if due_at is not None:
            return self._put_later(event_id, slots, args, kwargs, size, due_at)
        if not slots:
            self._unrouted += 1
            logger.debug("event %r matched no listener; counted as unrouted", event_id)
            if self._observers:
                self._tell("emitted", event_id, ())
            return ()
        observers = self._observers
        queued_at = time.monotonic() if observers else 0.0  # for tail's waited time
        now = time.time()
        ids, lanes, idle, ready = self._ids, self._lanes, self._idle, self._ready
        made = []
        for slot in slots:
            delivery = Delivery(next(ids), event_id, args, kwargs, slot.name, queued_at, size, now)
            made.append(delivery)
            lane = lanes[slot.name]
            lane.queue.append(delivery)
            if not lane.ready and lane.running < slot.limit:
                lane.ready = True
                ready.append(lane)
            if idle:
                idle.popleft().set()
        self._waiting += len(made)
        self._bytes += size * len(made)
        if self._writes_through:
            self._kept(made)
        if observers:
            self._tell("emitted", event_id, made)
        return made

    def _put_later(self, event_id: str, slots: Sequence[Slot], args: tuple[Any, ...],
                   kwargs: dict[str, Any], size: int, due_at: float) -> Sequence[Delivery]:
        if not slots:
            self._unrouted += 1
            return ()
        now = time.time()
        made = [Delivery(next(self._ids), event_id, args, kwargs, slot.name, 0.0, size, now)
                for slot in slots]
        for delivery in made:
            self._schedule(delivery, self._lanes[delivery.listener], due_at)
        self._kept(made)
        if self._observers:
            self._tell("emitted", event_id, made)
        return made

    def _schedule(self, delivery: Delivery, lane: Lane, due_at: float) -> None:
        delivery.state = DeliveryState.SCHEDULED
        delivery.due_at = due_at
        lane.scheduled += 1
        if self._scheduled.push(due_at, delivery, lane) and self._wakeup is not None:
            self._wakeup.set()

    def answer_for(self, key: str) -> dict[str, Any] | None:
        """The first answer for ``key``, if lately accepted; only an emit about to be answered
        as a duplicate asks, so a key found counts one duplicate."""
        answer = self.keys.answer_for(key)
        if answer is not None:
            self._duplicates += 1
        return answer

    def remember(self, key: str, answer: dict[str, Any]) -> None:
        self.keys.remember(key, answer)

    def _append(self, lane: Lane, delivery: Delivery) -> None:
        lane.queue.append(delivery)
        if not lane.ready and lane.running < lane.slot.limit:
            lane.ready = True
            self._ready.append(lane)

    def _make_ready(self, lane: Lane) -> None:
        if lane.queue and not lane.ready and lane.running < lane.slot.limit:
            lane.ready = True
            self._ready.append(lane)
            if self._idle:
                self._idle.popleft().set()

    # -- workers -----------------------------------------------------------------------------

    async def take(self) -> tuple[Delivery, Slot]:
        while not self._ready:
            work = anyio.Event()
            self._idle.append(work)
            await work.wait()
        taken = self.take_nowait()
        assert taken is not None
        return taken

    def take_nowait(self) -> tuple[Delivery, Slot] | None:
        ready = self._ready
        if not ready:
            return None
        lane = ready.popleft()
        delivery = lane.queue.popleft()
        lane.running += 1
        self._running[delivery.id] = (delivery, lane)
        if lane.queue and lane.running < lane.slot.limit:
            ready.append(lane)
        else:
            lane.ready = False
        self._waiting -= 1
        self._bytes -= delivery.size
        if self._released and delivery.id in self._released:  # it came due: see _release_due
            self._released.discard(delivery.id)
            self._released_bytes -= delivery.size
        if self._room_waiters and self._half_empty():
            self.wake_all()
        delivery.state = _RUNNING
        delivery.attempts += 1
        delivery.started_at = time.time()
        if self._observers:
            self._tell("started", delivery)
        return delivery, lane.slot

    def _release(self, delivery: Delivery) -> Lane:
        lane = self._running.pop(delivery.id)[1]
        lane.running -= 1
        if not lane.retired:
            self._make_ready(lane)
        return lane

    def succeeded(self, delivery: Delivery) -> None:
        lane = self._running.pop(delivery.id)[1]
        lane.running -= 1
        if lane.queue and not lane.ready and not lane.retired and lane.running < lane.slot.limit:
            self._make_ready(lane)
        if lane.retired:
            self._gone.succeeded += 1
        else:
            lane.succeeded += 1
        delivery.state = _SUCCEEDED
        if self._writes_through:
            self._forgotten((delivery,))
        if self._observers:
            self._tell("finished", delivery)
        if self._joined is not None:
            self._check_joined()

    def failed(self, delivery: Delivery, error: str, traceback: str | None, *,
               retry_in: float | None) -> None:
        lane = self._release(delivery)
        delivery.error, delivery.traceback = error, traceback
        if retry_in is None or lane.retired:
            self._fail(delivery, lane)
            return
        delivery.state = DeliveryState.RETRYING
        lane.delayed += 1
        self._waiting += 1
        self._bytes += delivery.size
        if self._delayed.push(time.monotonic() + retry_in, delivery, lane) and (
                self._wakeup is not None):
            self._wakeup.set()
        self._kept((delivery,))
        if self._observers:
            self._tell("finished", delivery)

    def _fail(self, delivery: Delivery, lane: Lane | None) -> None:
        delivery.state = DeliveryState.FAILED
        delivery.failed_at = time.time()
        if lane is not None and not lane.retired:
            lane.failed += 1
        else:
            self._gone.failed += 1
        self._kept((delivery,))
        if self._observers:  # before the list may push it out again (keep_failed 0)
            self._tell("finished", delivery)
        if pushed := self._failed.add(delivery):
            self._forgotten(pushed)
            self._tell("removed", pushed)
        self._check_joined()

    async def run(self) -> None:
        delayed, scheduled = self._delayed, self._scheduled
        while True:
            now = time.monotonic()
            for _, _, delivery, lane in delayed.pop_due(now):
                lane.delayed -= 1
                lane.retried += 1
                delivery.state = DeliveryState.PENDING
                self._append(lane, delivery)
                if self._idle:
                    self._idle.popleft().set()
            today = time.time()
            if (due := scheduled.next_due) is not None and due <= today:
                self._release_due(today)
            waits = [due - clock for due, clock in ((delayed.next_due, now),
                                                    (scheduled.next_due, today))
                     if due is not None]
            if waits and min(waits) <= 0:  # more due than one slice: let the loop in first
                await anyio.lowlevel.checkpoint()
                continue
            self._wakeup = anyio.Event()
            with anyio.move_on_after(min(waits, default=None)):
                await self._wakeup.wait()

    def _release_due(self, today: float) -> None:
        """Scheduled deliveries whose time has come wait for a worker like any other, but
        apart from ``queue_size``: a burst of them (bounded by ``max_scheduled``) never blocks
        the emits of ready work until it drains."""
        due = self._scheduled.pop_due(today)
        pending, nbytes = DeliveryState.PENDING, 0
        for _, _, delivery, lane in due:
            lane.scheduled -= 1
            delivery.state = pending
            lane.queue.append(delivery)
            nbytes += delivery.size
        self._bytes += nbytes
        self._released_bytes += nbytes
        self._released.update(map(itemgetter(1), due))
        self._waiting += len(due)
        for lane in dict.fromkeys(map(itemgetter(3), due)):  # each lane once, in order
            self._make_ready(lane)
        while self._idle and self._ready:
            self._idle.popleft().set()
        if self._observers:
            for entry in due:
                self._tell("due", entry[2])

    async def settled(self) -> None:
        """Nothing to wait for: memory is as durable as this broker gets."""

    def close(self) -> None:
        """Nothing to release."""

    async def join(self) -> None:
        if self._waiting or self._running:
            self._joined = anyio.Event()
            await self._joined.wait()

    def _check_joined(self) -> None:
        if self._joined is not None and not self._waiting and not self._running:
            self._joined.set()

    # -- inspection --------------------------------------------------------------------------

    def stats(self) -> EmitterStats:
        per_listener = {name: lane.stats() for name, lane in self._lanes.items()}
        counts = per_listener.values()
        return EmitterStats(
            pending=self._waiting - len(self._delayed), running=len(self._running),
            retrying=len(self._delayed), scheduled=len(self._scheduled),
            next_due=self._scheduled.next_due,
            succeeded=sum(stats.succeeded for stats in counts) + self._gone.succeeded,
            failed=sum(stats.failed for stats in counts) + self._gone.failed,
            unrouted=self._unrouted, listeners=per_listener, failed_list=len(self._failed),
            duplicates=self._duplicates,
            queued_bytes=self._bytes,
        )

    def deliveries(self, state: DeliveryState | None = None) -> Iterator[Delivery]:
        lanes = self._lanes.values()
        found = [
            *sorted((d for lane in lanes for d in lane.queue), key=lambda d: d.id),
            *sorted((pair[0] for pair in self._running.values()), key=lambda d: d.id),
            *self._delayed,
            *self._scheduled,
            *self._failed,
        ]
        return (d for d in found if state is None or d.state is state)

    def find(self, delivery_id: int) -> Delivery:
        for delivery in self.deliveries():
            if delivery.id == delivery_id:
                return delivery
        raise DeliveryError(delivery_id, "no such delivery: it succeeded, was purged, or never "
                            "existed (`eventbus queue list` shows the current ones)", missing=True)

    # -- the failed list ---------------------------------------------------------------------

    @property
    def failed_list(self) -> list[Delivery]:
        return list(self._failed)

    def retry(self, delivery_ids: Iterable[int] | None) -> list[Delivery]:
        chosen = self._failed.select(delivery_ids, self._state_of)
        for delivery in chosen:
            if delivery.listener not in self._lanes:
                raise DeliveryError(delivery.id, f"listener {delivery.listener} is not loaded "
                                    "any more; add it back and reload, or purge it")
        nbytes = sum(delivery.size for delivery in chosen)
        if not self.has_room(len(chosen)):
            raise QueueFullError(f"{len(chosen)} failed deliveries", len(chosen), self.size)
        if self.max_bytes is not None and (
                self._bytes - self._released_bytes + nbytes > self.max_bytes):
            raise QueueFullError(f"{len(chosen)} failed deliveries", nbytes, self.max_bytes,
                                 unit="bytes")
        self._failed.remove(chosen)
        for delivery in chosen:
            delivery.state, delivery.attempts = DeliveryState.PENDING, 0
            self._make_ready_with(self._lanes[delivery.listener], delivery)
        self._waiting += len(chosen)
        self._bytes += nbytes
        self._kept(chosen)
        self._tell("requeued", chosen)
        return chosen

    def _make_ready_with(self, lane: Lane, delivery: Delivery) -> None:
        self._append(lane, delivery)
        if self._idle:
            self._idle.popleft().set()

    def _state_of(self, delivery_id: int) -> DeliveryState | None:
        return next((d.state for d in self.deliveries() if d.id == delivery_id), None)

    def purge(self, state: DeliveryState) -> int:
        if state is DeliveryState.FAILED:
            dropped = self._failed.clear()
        elif state is DeliveryState.PENDING:
            dropped = [d for lane in self._lanes.values()
                       for d in self._take_waiting(lane, scheduled=False)]
        elif state is DeliveryState.SCHEDULED:
            dropped = self._scheduled.clear()
            for lane in self._lanes.values():
                lane.scheduled = 0
        else:
            raise ValueError("purge takes failed, pending or scheduled deliveries, not "
                             f"{state.value}")
        if dropped:
            logger.warning("purged %d %s deliveries", len(dropped), state.value)
            self._forgotten(dropped)
            self._tell("removed", dropped)
        self._check_joined()
        return len(dropped)

    # -- observers and stores ----------------------------------------------------------------

    def add_observer(self, observer: DeliveryObserver) -> None:
        self._observers.append(observer)

    def remove_observer(self, observer: DeliveryObserver) -> None:
        self._observers.remove(observer)

    def _tell(self, change: str, *details: Any) -> None:
        """Call each observer's method for ``change``; an observer that raises is logged,
        never let through to the worker or the emit that caused the change."""
        for observer in self._observers:
            try:
                getattr(observer, change)(*details)
            except Exception:
                logger.exception("observer %r failed on %s", observer, change)

    def _restore(self, deliveries: Iterable[Delivery], next_id: int, *, reason: str) -> None:
        """Take back deliveries kept outside memory (by a journal), by listener name: failed
        ones into the failed list, the rest queued again; those of a name not served fail
        with ``reason``. New deliveries are numbered from ``next_id`` on."""
        for delivery in deliveries:
            lane = self._lanes.get(delivery.listener)
            if delivery.state is DeliveryState.FAILED:
                self._failed.restore(delivery)
            elif lane is None:
                delivery.error = f"ListenerRemoved: listener {delivery.listener} {reason}"
                self._fail(delivery, None)
            elif delivery.state is DeliveryState.SCHEDULED and delivery.due_at is not None:
                self._schedule(delivery, lane, delivery.due_at)  # if past due: run() fires it
            else:
                delivery.state = DeliveryState.PENDING
                self._make_ready_with(lane, delivery)
                self._waiting += 1
                self._bytes += delivery.size
        self._ids = count(next_id)

    def _kept(self, deliveries: Sequence[Delivery]) -> None:
        """These deliveries were queued, or changed state but stay held."""

    def _forgotten(self, deliveries: Sequence[Delivery]) -> None:
        """These deliveries are no longer held: done, purged, or pushed out of the list."""
