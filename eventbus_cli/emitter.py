"""Emitters: ``BaseEventEmitterBackend`` and the in-memory ``SimpleEventEmitter``.

``SimpleEventEmitter`` keeps at most ``queue_size`` deliveries waiting and runs them on a fixed
pool of ``concurrency`` worker tasks. Three helper tasks of its own: the workers, a retry
scheduler (a heap of deliveries waiting out their backoff, so no worker sleeps), and a
timeout watchdog (one timer for all workers, far cheaper than a cancel scope per call).
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from itertools import count
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from .delivery import Delivery, DeliveryState, EmitterStats, ListenerStats, Slot
from .errors import EmitterNotRunningError, ListenerError, QueueFullError
from .listener import DeliveryOptions, EventListener, Router
from .worker import Worker, describe_failure

__all__ = ("BaseEventEmitterBackend", "SimpleEventEmitter")

logger = logging.getLogger("eventbus.emitter")
_NEW, _RUNNING, _CLOSING, _CLOSED = "not started", "running", "closing", "closed"


class BaseEventEmitterBackend(AbstractAsyncContextManager["BaseEventEmitterBackend"], ABC):
    """An emitter: an async context manager that delivers emitted events to listeners."""

    def __init__(self, listeners: Sequence[EventListener]) -> None:
        unique = list({id(item): item for item in listeners}.values())
        for item in unique:
            if not isinstance(item, EventListener):
                raise ListenerError(repr(item), "not made by @listener; pass EventListener objects")
        self.listeners: tuple[EventListener, ...] = tuple(unique)

    @abstractmethod
    def emit(self, event_id: str, *args: Any, **kwargs: Any) -> int:
        """Queue one delivery of ``*args, **kwargs`` to each listener of ``event_id``.

        Returns the number of deliveries queued; 0 means no listener matched (unrouted).
        """


class SimpleEventEmitter(BaseEventEmitterBackend):
    """In-process emitter with a bounded queue, a worker pool, retries, timeouts and stats.

    ``emit`` raises :class:`QueueFullError` when the queue has no room for every delivery of
    the event (nothing is queued then); ``await aemit(...)`` waits for room instead. Leaving the
    context drains the queue, waiting at most ``shutdown_timeout`` seconds; deliveries still
    unfinished then are logged and kept in :attr:`unfinished`.
    """

    def __init__(
        self,
        listeners: Sequence[EventListener],
        *,
        queue_size: int = 10_000,
        concurrency: int = 64,
        shutdown_timeout: float = 30.0,
        keep_failed: int = 1000,
        defaults: DeliveryOptions | None = None,
        max_threads: int = 40,
    ) -> None:
        super().__init__(listeners)
        for key, value in (
            ("queue_size", queue_size), ("concurrency", concurrency), ("max_threads", max_threads)
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a whole number >= 1, not {value!r}")
        defaults = defaults or DeliveryOptions()
        self._slots = [Slot(item, item.options_with(defaults)) for item in self.listeners]
        names: dict[str, EventListener] = {}
        for slot in self._slots:
            other = names.setdefault(slot.listener.name, slot.listener)
            if other is not slot.listener:
                raise ListenerError(
                    slot.listener.name,
                    f"two listeners have this name ({other.module} and {slot.listener.module});"
                    " rename one or pass listener(..., name=...)",
                )
        self._router = Router((slot.listener.event_ids, slot) for slot in self._slots)
        self._queue_size = queue_size
        self._low_water = queue_size // 2
        self._concurrency = concurrency
        self._shutdown_timeout = shutdown_timeout
        self._max_threads = max_threads
        self._pending: deque[Delivery] = deque()
        self._retrying: list[tuple[float, int, Delivery]] = []
        self._failed: deque[Delivery] = deque(maxlen=keep_failed)
        self._workers: list[Worker] = []
        self._idle: deque[anyio.Event] = deque()
        self._room_waiters: list[anyio.Event] = []
        self._retry_wakeup = anyio.Event()
        self._drained: anyio.Event | None = None
        self._ids = count(1)
        self._outstanding = 0
        self._unrouted = 0
        self._state = _NEW
        self._task_group: anyio.abc.TaskGroup | None = None
        self.unfinished: list[Delivery] = []
        """Deliveries that did not finish by the shutdown timeout (filled on exit)."""

    async def __aenter__(self) -> SimpleEventEmitter:
        if self._state is not _NEW:
            raise EmitterNotRunningError(f"{self._state} and cannot be started again")
        self._retry_wakeup = anyio.Event()
        limiter = anyio.CapacityLimiter(self._max_threads)
        self._workers = [Worker(self, limiter) for _ in range(self._concurrency)]
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        for worker in self._workers:
            self._task_group.start_soon(worker.run)
        self._task_group.start_soon(self._schedule_retries)
        self._task_group.start_soon(self._watch_timeouts)
        self._state = _RUNNING
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task_group is not None
        self._state = _CLOSING
        self._wake_room_waiters()
        try:
            if self._outstanding and not isinstance(exc, anyio.get_cancelled_exc_class()):
                self._drained = anyio.Event()
                with anyio.move_on_after(self._shutdown_timeout):
                    await self._drained.wait()
        finally:
            self.unfinished = [d for d in self.deliveries() if d.state is not DeliveryState.FAILED]
            if self.unfinished:
                listed = ", ".join(f"{d.id} ({d.event} -> {d.listener.name})" for d in
                                   self.unfinished[:20])
                logger.warning(
                    "%d deliveries unfinished at shutdown: %s%s", len(self.unfinished), listed,
                    " ..." if len(self.unfinished) > 20 else "",
                )
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._state = _CLOSED

    def emit(self, event_id: str, *args: Any, **kwargs: Any) -> int:
        """Queue one delivery per listener of ``event_id``; raise if the queue lacks room.

        Returns the number of deliveries queued (0 for an unrouted event, which is counted).
        """
        if self._state is not _RUNNING:
            raise EmitterNotRunningError(self._state)
        slots = self._router.get(event_id)
        if not slots:
            self._unrouted += 1
            return 0
        if len(self._pending) + len(self._retrying) + len(slots) > self._queue_size:
            raise QueueFullError(event_id, len(slots), self._queue_size)
        return self._enqueue(event_id, slots, args, kwargs)

    async def aemit(self, event_id: str, *args: Any, **kwargs: Any) -> int:
        """Like :meth:`emit`, but wait for room in the queue instead of raising."""
        if self._state is not _RUNNING:
            raise EmitterNotRunningError(self._state)
        slots = self._router.get(event_id)
        if not slots:
            self._unrouted += 1
            return 0
        if len(slots) > self._queue_size:
            raise QueueFullError(event_id, len(slots), self._queue_size)
        while len(self._pending) + len(self._retrying) + len(slots) > self._queue_size:
            room = anyio.Event()
            self._room_waiters.append(room)
            await room.wait()
            if self._state is not _RUNNING:
                raise EmitterNotRunningError(self._state)
        return self._enqueue(event_id, slots, args, kwargs)

    def _enqueue(
        self, event_id: str, slots: tuple[Slot, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> int:
        pending, idle, ids = self._pending, self._idle, self._ids
        for slot in slots:
            slot.stats.pending += 1
            pending.append(Delivery(next(ids), event_id, args, kwargs, slot))
            if idle:
                idle.popleft().set()
        self._outstanding += len(slots)
        return len(slots)

    # -- called by workers ------------------------------------------------------------------

    async def next_delivery(self) -> Delivery:
        """Wait for and take the oldest pending delivery."""
        pending = self._pending
        while not pending:
            ready = anyio.Event()
            self._idle.append(ready)
            await ready.wait()
        delivery = pending.popleft()
        if self._room_waiters and len(pending) <= self._low_water:
            self._wake_room_waiters()
        return delivery

    def finished(self, delivery: Delivery) -> None:
        self._outstanding -= 1
        if self._drained is not None and not self._outstanding:
            self._drained.set()

    def attempt_failed(self, delivery: Delivery, exc: BaseException) -> None:
        """Record a failed attempt: schedule its retry, or move it to the failed list."""
        slot, stats = delivery.slot, delivery.slot.stats
        delivery.error, delivery.traceback, retryable = describe_failure(delivery, exc)
        name, module = slot.listener.name, slot.listener.module
        where = f"listener {name} ({module}) on event {delivery.event!r}"
        if retryable and delivery.attempts <= slot.options.retries:
            delay = slot.options.delay_before(delivery.attempts + 1)
            logger.warning("%s failed attempt %d, retrying in %.3gs: %s", where,
                           delivery.attempts, delay, delivery.error)
            delivery.state = DeliveryState.RETRYING
            stats.retrying += 1
            entry = (time.monotonic() + delay, delivery.id, delivery)
            heapq.heappush(self._retrying, entry)
            if self._retrying[0] is entry:
                self._retry_wakeup.set()
            return
        logger.error("%s failed after %d attempt(s): %s\n%s", where, delivery.attempts,
                     delivery.error, delivery.traceback)
        delivery.state = DeliveryState.FAILED
        stats.failed += 1
        self._failed.append(delivery)
        self.finished(delivery)

    # -- helper tasks -------------------------------------------------------------------------

    async def _schedule_retries(self) -> None:
        heap = self._retrying
        while True:
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                delivery = heapq.heappop(heap)[2]
                delivery.state = DeliveryState.PENDING
                delivery.slot.stats.retrying -= 1
                delivery.slot.stats.pending += 1
                delivery.slot.stats.retried += 1
                self._pending.append(delivery)
                if self._idle:
                    self._idle.popleft().set()
            self._retry_wakeup = anyio.Event()
            with anyio.move_on_after(heap[0][0] - now if heap else None):
                await self._retry_wakeup.wait()

    async def _watch_timeouts(self) -> None:
        shortest = min((slot.options.timeout for slot in self._slots), default=math.inf)
        tick = min(max(shortest / 20, 0.002), 0.5)
        while True:
            await anyio.sleep(tick)
            now = time.monotonic()
            for worker in self._workers:
                worker.cancel_if_late(now)

    def _wake_room_waiters(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        for room in waiters:
            room.set()

    # -- inspection ---------------------------------------------------------------------------

    def stats(self) -> EmitterStats:
        """Counters in total and per listener, as a snapshot."""
        per_listener = {slot.listener.name: slot.stats.copy() for slot in self._slots}
        total = ListenerStats()
        for stats in per_listener.values():
            for key in ("running", "succeeded", "failed"):
                setattr(total, key, getattr(total, key) + getattr(stats, key))
        return EmitterStats(
            pending=len(self._pending),
            running=total.running,
            retrying=len(self._retrying),
            succeeded=total.succeeded,
            failed=total.failed,
            unrouted=self._unrouted,
            listeners=per_listener,
        )

    @property
    def failed(self) -> list[Delivery]:
        """The kept failed deliveries, oldest first (at most ``keep_failed``)."""
        return list(self._failed)

    def deliveries(self, state: DeliveryState | None = None) -> Iterator[Delivery]:
        """Current deliveries: pending, running, retrying and failed, or those of one state."""
        running = [w.current for w in self._workers if w.current is not None]
        retrying = [entry[2] for entry in sorted(self._retrying)]
        for group in (list(self._pending), running, retrying, list(self._failed)):
            for delivery in group:
                if state is None or delivery.state is state:
                    yield delivery

    def listeners_for(self, event_id: str) -> tuple[EventListener, ...]:
        """The listeners an event named ``event_id`` is delivered to."""
        return tuple(slot.listener for slot in self._router.get(event_id))
