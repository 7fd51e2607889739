"""Emitters: ``BaseEventEmitterBackend`` and the in-memory ``SimpleEventEmitter``.

``SimpleEventEmitter`` keeps its deliveries in a bounded :class:`DeliveryQueue` and runs them
on a fixed pool of ``concurrency`` worker tasks, beside two helper tasks: the queue's retry
scheduler (so no worker sleeps through a backoff) and a timeout watchdog (one timer for all
workers, far cheaper than a cancel scope per call).
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc

from .delivery import Delivery, DeliveryState, EmitterStats, Slot
from .errors import EmitterNotRunningError, ListenerError, QueueFullError
from .listener import DeliveryOptions, EventListener, Router, find_name_clash, validate_event_id
from .queue import DeliveryQueue
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

    async def __aenter__(self) -> Self:
        return self

    def listeners_for(self, event_id: str) -> tuple[EventListener, ...]:
        """The listeners an event named ``event_id`` is delivered to, in order."""
        validate_event_id(event_id)
        return tuple(item for item in self.listeners if item.matches(event_id))

    @abstractmethod
    def emit(self, event_id: str, /, *args: Any, **kwargs: Any) -> int:
        """Queue one delivery of ``*args, **kwargs`` to each listener of ``event_id``.

        Returns the number of deliveries queued; 0 means no listener matched (unrouted).
        """


class SimpleEventEmitter(BaseEventEmitterBackend):
    """In-process emitter with a bounded queue, a worker pool, retries, timeouts and stats.

    ``emit`` raises :class:`QueueFullError` when the queue has no room for every delivery of
    the event (nothing is queued then); ``await aemit(...)`` waits for room instead. Leaving the
    context drains the queue, waiting at most ``shutdown_timeout`` seconds; deliveries still
    unfinished then are logged and kept in :attr:`unfinished`. With more than one listener,
    none may take more than ``max_per_listener`` workers at once (by default as many as leaves
    every other listener a worker of its own).
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
        max_per_listener: int | None = None,
    ) -> None:
        super().__init__(listeners)
        _check_number("queue_size", queue_size, minimum=1, whole=True)
        _check_number("concurrency", concurrency, minimum=1, whole=True)
        _check_number("max_threads", max_threads, minimum=1, whole=True)
        _check_number("keep_failed", keep_failed, minimum=0, whole=True)
        _check_number("shutdown_timeout", shutdown_timeout, minimum=0, whole=False)
        if max_per_listener is not None:
            _check_number("max_per_listener", max_per_listener, minimum=1, whole=True)
        others = len(self.listeners) - 1
        limit = max_per_listener or (max(1, (concurrency - 1) // others) if others else concurrency)
        defaults = defaults or DeliveryOptions()
        self._slots = [Slot(item, item.options_with(defaults), limit) for item in self.listeners]
        clash = find_name_clash(self.listeners)
        if clash is not None:
            raise ListenerError(
                clash[1].name,
                f"two listeners have this name ({clash[0].module} and {clash[1].module});"
                " rename one or pass listener(..., name=...)",
            )
        self._router = Router((slot.listener.event_ids, slot) for slot in self._slots)
        self._queue = DeliveryQueue(queue_size)
        self._concurrency = concurrency
        self._shutdown_timeout = shutdown_timeout
        self._max_threads = max_threads
        self._failed: deque[Delivery] = deque(maxlen=keep_failed)
        self._workers: list[Worker] = []
        self._drained: anyio.Event | None = None
        self._outstanding = 0
        self._unrouted = 0
        self._state = _NEW
        self._task_group: anyio.abc.TaskGroup | None = None
        self.unfinished: list[Delivery] = []
        """Deliveries that did not finish by the shutdown timeout (filled on exit)."""

    async def __aenter__(self) -> Self:
        if self._state is not _NEW:
            raise EmitterNotRunningError(f"{self._state} and cannot be started again")
        limiter = anyio.CapacityLimiter(self._max_threads)
        self._workers = [Worker(self._queue, self, limiter) for _ in range(self._concurrency)]
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        for worker in self._workers:
            self._task_group.start_soon(worker.run)
        self._task_group.start_soon(self._queue.run_retries)
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
        self._queue.wake_all()
        try:
            if self._outstanding and not isinstance(exc, anyio.get_cancelled_exc_class()):
                self._drained = anyio.Event()
                with anyio.move_on_after(self._shutdown_timeout):
                    await self._drained.wait()
        finally:
            self.unfinished = [d for d in self.deliveries() if d.state is not DeliveryState.FAILED]
            if self.unfinished:
                listed = ", ".join(
                    f"{d.id} ({d.event} -> {d.listener.name})" for d in self.unfinished[:20]
                )
                more = " ..." if len(self.unfinished) > 20 else ""
                logger.warning(
                    "%d deliveries unfinished at shutdown: %s%s", len(self.unfinished), listed, more
                )
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._state = _CLOSED

    def emit(self, event_id: str, /, *args: Any, **kwargs: Any) -> int:
        """Queue one delivery per listener of ``event_id``; raise if the queue lacks room.

        Returns the number of deliveries queued (0 for an unrouted event, which is counted).
        """
        slots = self._route(event_id)
        if slots and not self._queue.has_room(len(slots)):
            raise QueueFullError(event_id, len(slots), self._queue.size)
        return self._accept(event_id, slots, args, kwargs)

    async def aemit(self, event_id: str, /, *args: Any, **kwargs: Any) -> int:
        """Like :meth:`emit`, but wait for room in the queue instead of raising.

        Once the queue is full it waits until the queue has drained to half full, so that a
        busy producer and the workers take turns in batches rather than one by one.
        """
        slots = self._route(event_id)
        if len(slots) > self._queue.size:
            raise QueueFullError(event_id, len(slots), self._queue.size)
        while slots and not self._queue.has_room(len(slots)):
            await self._queue.wait_for_room()
            if self._state is not _RUNNING:
                raise EmitterNotRunningError(self._state)
        return self._accept(event_id, slots, args, kwargs)

    def _route(self, event_id: str) -> tuple[Slot, ...]:
        if self._state is not _RUNNING:
            raise EmitterNotRunningError(self._state)
        return self._router.get(event_id)

    def _accept(
        self, event_id: str, slots: tuple[Slot, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> int:
        if not slots:
            self._unrouted += 1
            logger.debug("event %r matched no listener; counted as unrouted", event_id)
            return 0
        self._queue.put(event_id, slots, args, kwargs)
        self._outstanding += len(slots)
        return len(slots)

    # -- called by workers ------------------------------------------------------------------

    def delivery_done(self, delivery: Delivery, exc: BaseException | None) -> None:
        """Record the end of an attempt: success, a retry to schedule, or a final failure."""
        self._queue.release(delivery)
        slot = delivery.slot
        if exc is None:
            slot.stats.succeeded += 1
            delivery.state = DeliveryState.SUCCEEDED
            self._finished()
            return
        delivery.error, delivery.traceback, retryable = describe_failure(delivery, exc)
        name, module = slot.listener.name, slot.listener.module
        where = f"listener {name} ({module}) on event {delivery.event!r}"
        if retryable and delivery.attempts <= slot.options.retries:
            delay = slot.options.delay_before(delivery.attempts + 1)
            logger.warning("%s failed attempt %d, retrying in %.3gs: %s", where,
                           delivery.attempts, delay, delivery.error)
            self._queue.retry_later(delivery, delay)
            return
        logger.error("%s failed after %d attempt(s): %s\n%s", where, delivery.attempts,
                     delivery.error, delivery.traceback)
        delivery.state = DeliveryState.FAILED
        slot.stats.failed += 1
        self._failed.append(delivery)
        self._finished()

    def _finished(self) -> None:
        self._outstanding -= 1
        if self._drained is not None and not self._outstanding:
            self._drained.set()

    async def _watch_timeouts(self) -> None:
        shortest = min((slot.options.timeout for slot in self._slots), default=math.inf)
        tick = min(max(shortest / 20, 0.002), 0.5)
        while True:
            await anyio.sleep(tick)
            now = time.monotonic()
            for worker in self._workers:
                worker.cancel_if_late(now)

    # -- inspection ---------------------------------------------------------------------------

    def stats(self) -> EmitterStats:
        """Counters in total and per listener, as a snapshot."""
        per_listener = {slot.listener.name: slot.snapshot() for slot in self._slots}
        counts = per_listener.values()
        return EmitterStats(
            pending=self._queue.pending,
            running=sum(stats.running for stats in counts),
            retrying=self._queue.retrying,
            succeeded=sum(stats.succeeded for stats in counts),
            failed=sum(stats.failed for stats in counts),
            unrouted=self._unrouted,
            listeners=per_listener,
        )

    @property
    def queue_size(self) -> int:
        """How many deliveries may wait (pending or retrying) at once."""
        return self._queue.size

    def listener_options(self) -> list[tuple[EventListener, DeliveryOptions]]:
        """Each listener with the options it runs with: its own, else the emitter's defaults."""
        return [(slot.listener, slot.options) for slot in self._slots]

    @property
    def failed(self) -> list[Delivery]:
        """The kept failed deliveries, oldest first (at most ``keep_failed``)."""
        return list(self._failed)

    def deliveries(self, state: DeliveryState | None = None) -> Iterator[Delivery]:
        """Current deliveries: pending, running, retrying and failed, or those of one state."""
        running = sorted((w.current for w in self._workers if w.current), key=lambda d: d.id)
        found = [
            *self._queue.pending_deliveries(self._slots),
            *running,
            *self._queue.retrying_deliveries(),
            *self._failed,
        ]
        return (d for d in found if state is None or d.state is state)

    def listeners_for(self, event_id: str) -> tuple[EventListener, ...]:
        """The listeners an event named ``event_id`` is delivered to, in order."""
        return tuple(slot.listener for slot in self._router.get(event_id))


def _check_number(key: str, value: object, *, minimum: int, whole: bool) -> None:
    kinds = int if whole else int | float
    if not isinstance(value, kinds) or isinstance(value, bool) or not value >= minimum:
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"SimpleEventEmitter: {key} must be {kind} >= {minimum}, not {value!r}")
