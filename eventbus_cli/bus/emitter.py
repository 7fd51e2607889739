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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc

from ..checks import number_problem
from ..config import DaemonConfig, DeliveryConfig
from ..errors import DeliveryError, EmitterNotRunningError, QueueFullError
from ..names import validate_event_id
from .delivery import Delivery, DeliveryObserver, DeliveryState, EmitterStats, Slot
from .failures import FailedList
from .listener import DeliveryOptions, EventListener
from .memory import DeliveryQueue
from .routing import ListenerChanges, ListenerSet, unique_listeners
from .worker import Worker, describe_failure

__all__ = ("BaseEventEmitterBackend", "SimpleEventEmitter")

logger = logging.getLogger("eventbus.emitter")
_NEW, _RUNNING, _CLOSING, _CLOSED = "not started", "running", "closing", "closed"


class BaseEventEmitterBackend(AbstractAsyncContextManager["BaseEventEmitterBackend"], ABC):
    """An emitter: an async context manager that delivers emitted events to listeners."""

    def __init__(self, listeners: Sequence[EventListener]) -> None:
        self.listeners: tuple[EventListener, ...] = unique_listeners(listeners)

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
        queue_size: int = DaemonConfig.queue_size,
        concurrency: int = DaemonConfig.concurrency,
        shutdown_timeout: float = DaemonConfig.shutdown_timeout,
        keep_failed: int = DeliveryConfig.keep_failed,
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
        self._defaults = defaults or DeliveryOptions()
        self._max_per_listener = max_per_listener
        self._concurrency = concurrency
        self._set = self._listener_set(self.listeners, None)
        self._queue = DeliveryQueue(queue_size)
        self._shutdown_timeout = shutdown_timeout
        self._max_threads = max_threads
        self._observers: list[DeliveryObserver] = []
        self._failed = FailedList(keep_failed, partial(self._tell, "removed"))
        self.observed = False
        """Whether any observer listens (workers report starts only then)."""
        self._workers: list[Worker] = []
        self._drained: anyio.Event | None = None
        self._outstanding = 0
        self._unrouted = 0
        self._state = _NEW
        self._task_group: anyio.abc.TaskGroup | None = None
        self.unfinished: list[Delivery] = []
        """Deliveries that did not finish by the shutdown timeout (filled on exit)."""
        self.durable = False
        """Set by whoever keeps the deliveries beyond the process (the journal)."""

    def _listener_set(self, listeners: Sequence[EventListener],
                      previous: ListenerSet | None) -> ListenerSet:
        return ListenerSet(listeners, defaults=self._defaults, concurrency=self._concurrency,
                           max_per_listener=self._max_per_listener, previous=previous)

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
                fate = ("are kept in the journal and run again on the next start"
                        if self.durable else "are lost (no journal)")
                logger.warning("%d deliveries unfinished at shutdown %s: %s%s",
                               len(self.unfinished), fate, listed, more)
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._state = _CLOSED

    def emit(self, event_id: str, /, *args: Any, **kwargs: Any) -> int:
        """Queue one delivery per listener of ``event_id``; raise if the queue lacks room.

        Returns the number of deliveries queued (0 for an unrouted event, which is counted).
        """
        return len(self.submit(event_id, *args, **kwargs))

    def submit(self, event_id: str, /, *args: Any, **kwargs: Any) -> Sequence[Delivery]:
        """Like :meth:`emit`, but return the deliveries queued, to follow them."""
        slots = self._route(event_id)
        if slots and not self._queue.has_room(len(slots)):
            raise QueueFullError(event_id, len(slots), self._queue.size)
        return self._accept(event_id, slots, args, kwargs)

    async def aemit(self, event_id: str, /, *args: Any, **kwargs: Any) -> int:
        """Like :meth:`emit`, but wait for room in the queue instead of raising.

        Once the queue is full it waits until the queue has drained to half full, so that a
        busy producer and the workers take turns in batches rather than one by one.
        """
        return len(await self.asubmit(event_id, *args, **kwargs))

    async def asubmit(self, event_id: str, /, *args: Any, **kwargs: Any) -> Sequence[Delivery]:
        """Like :meth:`aemit`, but return the deliveries queued, to follow them."""
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
        return self._set.router.get(event_id)

    def _accept(
        self, event_id: str, slots: tuple[Slot, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Sequence[Delivery]:
        if not slots:
            self._unrouted += 1
            logger.debug("event %r matched no listener; counted as unrouted", event_id)
            if self._observers:
                self._tell("emitted", event_id, ())
            return ()
        deliveries = self._queue.put(event_id, slots, args, kwargs, self._clock())
        self._outstanding += len(slots)
        if self._observers:
            self._tell("emitted", event_id, deliveries)
        return deliveries

    def _clock(self) -> float:
        return time.monotonic() if self.observed else 0.0

    # -- called by workers ------------------------------------------------------------------

    def delivery_done(self, delivery: Delivery, exc: BaseException | None) -> None:
        """Record the end of an attempt: success, a retry to schedule, or a final failure."""
        self._queue.release(delivery)
        slot = delivery.slot
        if exc is None:
            slot.stats.succeeded += 1
            delivery.state = DeliveryState.SUCCEEDED
            self._notify_finished(delivery)
            self._finished()
            return
        delivery.error, delivery.traceback, retryable = describe_failure(delivery, exc)
        name, module = slot.listener.name, slot.listener.module
        where = f"listener {name} ({module}) on event {delivery.event!r}"
        live = slot.live()
        if retryable and delivery.attempts <= slot.options.retries and live is not None:
            delivery.slot = live  # a reload may have replaced the listener since the call began
            delay = slot.options.delay_before(delivery.attempts + 1)
            logger.warning("%s failed attempt %d, retrying in %.3gs: %s", where,
                           delivery.attempts, delay, delivery.error)
            self._queue.retry_later(delivery, delay)
            self._notify_finished(delivery)
            return
        logger.error("%s failed after %d attempt(s): %s\n%s", where, delivery.attempts,
                     delivery.error, delivery.traceback)
        self._fail(delivery)

    def _fail(self, delivery: Delivery) -> None:
        delivery.state = DeliveryState.FAILED
        delivery.slot.stats.failed += 1
        self._notify_finished(delivery)  # before the list may push it out again (keep 0)
        self._failed.add(delivery)
        self._finished()

    def _notify_finished(self, delivery: Delivery) -> None:
        if self._observers:
            self._tell("finished", delivery)

    def _tell(self, change: str, *details: Any) -> None:
        """Call each observer's method for ``change``; an observer that raises is logged,
        never let through to the worker or the emit that caused the change."""
        for observer in self._observers:
            try:
                getattr(observer, change)(*details)
            except Exception:
                logger.exception("observer %r failed on %s", observer, change)

    def _finished(self) -> None:
        self._outstanding -= 1
        if self._drained is not None and not self._outstanding:
            self._drained.set()

    async def _watch_timeouts(self) -> None:
        while True:
            shortest = min((slot.options.timeout for slot in self._set.slots), default=math.inf)
            await anyio.sleep(min(max(shortest / 20, 0.002), 0.5))
            now = time.monotonic()
            for worker in self._workers:
                worker.cancel_if_late(now)

    # -- inspection ---------------------------------------------------------------------------

    def stats(self) -> EmitterStats:
        """Counters in total and per listener, as a snapshot."""
        per_listener = {slot.listener.name: slot.snapshot() for slot in self._set.slots}
        counts = per_listener.values()
        return EmitterStats(
            pending=self._queue.pending,
            running=sum(worker.current is not None for worker in self._workers),
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
        return [(slot.listener, slot.options) for slot in self._set.slots]

    @property
    def failed(self) -> list[Delivery]:
        """The kept failed deliveries, oldest first (at most ``keep_failed``)."""
        return list(self._failed)

    def deliveries(self, state: DeliveryState | None = None) -> Iterator[Delivery]:
        """Current deliveries: pending, running, retrying and failed, or those of one state."""
        running = sorted((w.current for w in self._workers if w.current), key=lambda d: d.id)
        found = [
            *self._queue.pending_deliveries(self._set.slots),
            *running,
            *self._queue.retrying_deliveries(),
            *self._failed,
        ]
        return (d for d in found if state is None or d.state is state)

    def listeners_for(self, event_id: str) -> tuple[EventListener, ...]:
        """The listeners an event named ``event_id`` is delivered to, in order."""
        return tuple(slot.listener for slot in self._set.router.get(event_id))

    def _state_of(self, delivery_id: int) -> DeliveryState | None:
        return next((d.state for d in self.deliveries() if d.id == delivery_id), None)

    def find(self, delivery_id: int) -> Delivery:
        """The current delivery with this id; :class:`DeliveryError` if there is none."""
        for delivery in self.deliveries():
            if delivery.id == delivery_id:
                return delivery
        raise DeliveryError(delivery_id, "no such delivery: it succeeded, was purged, or never "
                            "existed (`eventbus queue list` shows the current ones)", missing=True)

    # -- changing the set of deliveries and listeners -------------------------------------

    def add_observer(self, observer: DeliveryObserver) -> None:
        """Tell ``observer`` of every event emitted and every delivery started, finished or
        removed from now on."""
        self._observers.append(observer)
        self.observed = True

    def remove_observer(self, observer: DeliveryObserver) -> None:
        """Stop telling ``observer``."""
        self._observers.remove(observer)
        self.observed = bool(self._observers)

    def delivery_started(self, delivery: Delivery) -> None:
        """Called by workers, only while :attr:`observed`."""
        self._tell("started", delivery)

    def retry(self, delivery_ids: Iterable[int] | None = None) -> list[Delivery]:
        """Queue failed deliveries again (every one when ``delivery_ids`` is None), each with
        its attempts counted afresh, to the listener of that name now loaded.

        Checks them all first: an id that is not failed, a listener no longer loaded or a
        queue without room raises, and nothing is retried.
        """
        chosen = self._failed.select(delivery_ids, self._state_of)
        slots = [self._set.by_name.get(delivery.listener.name) for delivery in chosen]
        for delivery, found in zip(chosen, slots, strict=True):
            if found is None:
                raise DeliveryError(delivery.id, f"listener {delivery.listener.name} is not "
                                    "loaded any more; add it back and reload, or purge it")
        if not self._queue.has_room(len(chosen)):
            raise QueueFullError(f"{len(chosen)} failed deliveries", len(chosen), self.queue_size)
        self._failed.remove(chosen)
        for delivery, found in zip(chosen, slots, strict=True):
            assert found is not None
            delivery.slot, delivery.attempts = found, 0
        self._queue.requeue(chosen)
        self._outstanding += len(chosen)
        self._tell("requeued", chosen)
        return chosen

    def purge(self, state: DeliveryState) -> int:
        """Drop every FAILED delivery, or every PENDING one (those waiting out a retry
        backoff too); running calls are left to finish. Returns how many were dropped."""
        if state is DeliveryState.FAILED:
            dropped = self._failed.clear()
        elif state is DeliveryState.PENDING:
            dropped = [d for slot in self._set.slots for d in self._queue.take_pending(slot)]
            dropped += self._queue.take_retrying(set(self._set.slots))
            for _ in dropped:
                self._finished()
        else:
            raise ValueError(f"purge takes failed or pending deliveries, not {state.value}")
        if dropped:
            logger.warning("purged %d %s deliveries", len(dropped), state.value)
            self._tell("removed", dropped)
        return len(dropped)

    def replace_listeners(self, listeners: Sequence[EventListener]) -> ListenerChanges:
        """Swap in a new set of listeners, at once.

        New deliveries go to the new set. Calls running finish on the code they started
        with. Waiting deliveries of a listener whose name is in the new set go to the new
        one; those of a listener the new set lacks fail with that reason. A bad set (a
        name clash, not a listener) raises and changes nothing.
        """
        new = self._listener_set(listeners, self._set)
        changes, orphans = new.take_over(self._set, self._queue)
        self._set, self.listeners = new, new.listeners
        for delivery in orphans:
            delivery.error = (f"ListenerRemoved: listener {delivery.listener.name} was removed "
                              "by a reload before this delivery ran")
            delivery.traceback = None
            self._fail(delivery)
        return changes

    def restore(self, deliveries: Iterable[Delivery], next_id: int) -> None:
        """Take back deliveries a journal kept, each bound to a slot of the listener of its
        name (or a detached one): failed ones into the failed list, the rest queued again."""
        waiting: list[Delivery] = []
        for delivery in deliveries:
            found = self._set.by_name.get(delivery.listener.name)
            if delivery.state is DeliveryState.FAILED:
                self._failed.add(delivery)
            elif found is None:
                delivery.error = (f"ListenerRemoved: listener {delivery.listener.name} is not "
                                  "loaded any more, so this delivery cannot run")
                self._outstanding += 1
                self._fail(delivery)
            else:
                delivery.slot = found
                waiting.append(delivery)
        self._queue.skip_ids(next_id - 1)
        self._queue.requeue(waiting)
        self._outstanding += len(waiting)


def _check_number(key: str, value: object, *, minimum: int, whole: bool) -> None:
    want = number_problem(value, whole=whole, minimum=minimum)
    if want is not None:
        raise ValueError(f"SimpleEventEmitter: {key} must be {want}, not {value!r}")
