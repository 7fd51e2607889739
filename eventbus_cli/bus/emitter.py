"""Emitters: ``BaseEventEmitterBackend`` and ``SimpleEventEmitter``, which routes events to its
listeners, keeps the deliveries in a :class:`Broker` and runs them on a fixed pool of workers.

Beside the ``concurrency`` workers run two helper tasks: the broker's own (which moves
deliveries back when their backoff is over, so no worker sleeps through one) and a timeout
watchdog (one timer for all workers, far cheaper than a cancel scope per call).
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc

from ..checks import number_problem
from ..config import DaemonConfig, DeliveryConfig, DeliveryOptions
from ..errors import BadArgumentsError, EmitterNotRunningError, ProtocolError
from ..names import validate_event_id
from ..plural import counted
from ..protocol.event import MAX_KEY, NORMAL, PRIORITIES, Ordering, Placing, ordering_of
from .broker import Broker
from .delivery import Delivery, DeliveryObserver, DeliveryState, EmitterStats
from .listener import EventListener, ListenerLike
from .memory import MemoryBroker
from .routing import ListenerChanges, ListenerSet, Slot, unique_listeners
from .threads import Threads
from .timings import Timings
from .tracing import load_tracing
from .worker import Worker

__all__ = ("BaseEventEmitterBackend", "SimpleEventEmitter")

logger = logging.getLogger("eventbus.emitter")
_NEW, _RUNNING, _CLOSING, _CLOSED = "not started", "running", "closing", "closed"
_REMOVED_BY_RELOAD = "was removed by a reload before this delivery ran"


class BaseEventEmitterBackend(AbstractAsyncContextManager["BaseEventEmitterBackend"], ABC):
    """An emitter: an async context manager that delivers emitted events to listeners."""

    def __init__(self, listeners: Sequence[ListenerLike]) -> None:
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
    """Emitter with a bounded queue, a worker pool, retries, timeouts and stats.

    The deliveries live in ``broker``: by default a :class:`MemoryBroker` of ``queue_size``
    that keeps the newest ``keep_failed`` failures (both settings are the broker's, so they
    are ignored when a broker is given). ``emit`` raises :class:`QueueFullError` when there is
    no room for every delivery of the event (nothing is queued then); ``await aemit(...)``
    waits for room instead. Leaving the context drains the queue, waiting at most
    ``shutdown_timeout`` seconds; deliveries still unfinished then are logged and kept in
    :attr:`unfinished`. With more than one listener, none may take more than
    ``max_per_listener`` workers at once (by default as many as leaves every other listener a
    worker of its own). ``timings`` keeps each listener's histograms of how long attempts
    ran and waited (for metrics); ``tracing`` runs each attempt in an OpenTelemetry span, where
    OpenTelemetry is installed and a tracer provider set (see ``bus.tracing``).
    """

    def __init__(
        self,
        listeners: Sequence[ListenerLike],
        *,
        queue_size: int = DaemonConfig.queue_size,
        concurrency: int = DaemonConfig.concurrency,
        shutdown_timeout: float = DaemonConfig.shutdown_timeout,
        keep_failed: int = DeliveryConfig.keep_failed,
        defaults: DeliveryOptions | None = None,
        max_threads: int = DaemonConfig.max_threads,
        max_per_listener: int | None = None,
        broker: Broker | None = None,
        timings: bool = False,
        tracing: bool = False,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(listeners)
        self._tracing = tracing
        self.timings = Timings() if timings else None
        """With ``timings``, each listener's histograms of how long its attempts ran and
        waited (for metrics), by listener name, kept across reloads."""
        _check_number("concurrency", concurrency, minimum=1, whole=True)
        _check_number("max_threads", max_threads, minimum=1, whole=True)
        _check_number("shutdown_timeout", shutdown_timeout, minimum=0, whole=False)
        if max_per_listener is not None:
            _check_number("max_per_listener", max_per_listener, minimum=1, whole=True)
        try:
            self.broker = broker or MemoryBroker(queue_size=queue_size, keep_failed=keep_failed)
        except ValueError as exc:
            raise ValueError(f"SimpleEventEmitter: {exc}") from None
        self._defaults = defaults or DeliveryOptions()
        self._max_per_listener = max_per_listener
        self._concurrency = concurrency
        self._overrides = overrides
        self._set = self._listener_set(self.listeners)
        self.broker.serve(self._set.slots, reason=_REMOVED_BY_RELOAD)
        self._shutdown_timeout = shutdown_timeout
        self.threads = Threads(max_threads)
        """Where sync listeners run; ``threads.stuck`` counts calls hung past their timeout."""
        self._workers: list[Worker] = []
        self._state = _NEW
        self._task_group: anyio.abc.TaskGroup | None = None
        self._drain: anyio.CancelScope | None = None
        self.drain_cut = False
        """Whether :meth:`cut_drain` was called: leaving will not wait for what was accepted."""
        self.unfinished: list[Delivery] = []
        """Deliveries that did not finish by the shutdown timeout (filled on exit)."""

    @property
    def concurrency(self) -> int:
        """How many workers run deliveries."""
        return self._concurrency

    def _listener_set(self, listeners: Sequence[ListenerLike]) -> ListenerSet:
        made = ListenerSet(listeners, defaults=self._defaults, concurrency=self._concurrency,
                           max_per_listener=self._max_per_listener, overrides=self._overrides)
        if self.timings is not None:
            for slot in made.slots:
                slot.timings = self.timings.of(slot.name)
        return made

    async def __aenter__(self) -> Self:
        if self._state is not _NEW:
            raise EmitterNotRunningError(f"{self._state} and cannot be started again")
        tracing = load_tracing() if self._tracing else None
        self._workers = [Worker(self.broker, self.threads, tracing, self.timings)
                         for _ in range(self._concurrency)]
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        for worker in self._workers:
            self._task_group.start_soon(worker.run)
        self._task_group.start_soon(self.broker.run)
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
        self.broker.stop_taking()
        self.broker.wake_all()
        try:
            if not isinstance(exc, anyio.get_cancelled_exc_class()) and not self.drain_cut:
                with anyio.move_on_after(self._shutdown_timeout) as self._drain:
                    await self.broker.join()
        finally:
            held = list(self.broker.deliveries())
            self.unfinished = [d for d in held if d.state is not DeliveryState.FAILED
                               and d.state is not DeliveryState.SCHEDULED]
            if self.unfinished:
                self._log_unfinished()
            if later := sum(d.state is DeliveryState.SCHEDULED for d in held):
                fate = (f"are kept in {self.broker.store}, to run when due"
                        if self.broker.durable else "are lost (no journal)")
                logger.warning("%s not due yet at shutdown %s", counted(later, "delivery"), fate)
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._state = _CLOSED

    def cut_drain(self) -> None:
        """Leave without waiting for what was accepted: on leaving the ``async with`` (or at
        once, if it is already draining), what is unfinished is handled as at the end of
        ``shutdown_timeout``: logged and kept in :attr:`unfinished`, running calls cancelled."""
        self.drain_cut = True
        if self._drain is not None:
            self._drain.cancel()

    def _log_unfinished(self) -> None:
        listed = ", ".join(f"{d.id} ({d.event} -> {d.listener})" for d in self.unfinished[:20])
        more = " ..." if len(self.unfinished) > 20 else ""
        fate = (f"are kept in {self.broker.store} and run again {self.broker.rerun}"
                if self.broker.durable else "are lost (no journal)")
        cut = sum(d.state is DeliveryState.RUNNING for d in self.unfinished)
        others = "" if cut == len(self.unfinished) else "; the others never started"
        how = (f" ({cut} of them were running and were cut short, so they may have done part "
               f"of their work{others})" if cut else "")
        logger.warning("%s unfinished at shutdown %s%s: %s%s",
                       counted(len(self.unfinished), "delivery"), fate, how, listed, more)

    def emit(self, event_id: str, /, *args: Any, priority: str | None = None,
             order_key: str | None = None, **kwargs: Any) -> int:
        """Queue one delivery per listener of ``event_id``; raise if the queue lacks room.

        ``priority`` (``"high"``, ``"normal"``, ``"low"``) and ``order_key`` are ours, never
        passed to listeners (see :meth:`put` to send kwargs of those names): higher priority
        runs first within each listener's lane; the deliveries of one order key run one at a
        time, in emit order, per listener. Returns the number of deliveries queued (0 for an
        unrouted event, which is counted).
        """
        return len(self.put(event_id, args, kwargs, ordering=_ordering(priority, order_key)))

    def submit(self, event_id: str, /, *args: Any, priority: str | None = None,
               order_key: str | None = None, **kwargs: Any) -> Sequence[Delivery]:
        """Like :meth:`emit`, but return the deliveries queued, to follow them."""
        return self.put(event_id, args, kwargs, ordering=_ordering(priority, order_key))

    def emit_in(self, seconds: float, event_id: str, /, *args: Any, priority: str | None = None,
                order_key: str | None = None, **kwargs: Any) -> int:
        """Like :meth:`emit`, but the deliveries wait ``seconds`` before they run (routed,
        checked and counted now, as ``scheduled``); returns how many were scheduled."""
        if (want := number_problem(seconds, whole=False, minimum=0)) is not None:
            raise ValueError(f"emit_in: seconds must be {want}, not {seconds!r}")
        return len(self.put(event_id, args, kwargs, due_at=time.time() + seconds,
                            ordering=_ordering(priority, order_key)))

    def emit_at(self, when: datetime | float, event_id: str, /, *args: Any,
                priority: str | None = None, order_key: str | None = None,
                **kwargs: Any) -> int:
        """Like :meth:`emit_in`, for a time: an aware datetime (a naive one is local time)
        or a time.time() value; a time already past runs now."""
        due = when.timestamp() if isinstance(when, datetime) else when
        if (want := number_problem(due, whole=False, minimum=0)) is not None:
            raise ValueError(f"emit_at: when must be a datetime or {want}, not {when!r}")
        return len(self.put(event_id, args, kwargs, due_at=float(due),
                            ordering=_ordering(priority, order_key)))

    def put(self, event_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], *,
            size: int = 0, check: bool = True, due_at: float | None = None,
            key: str | None = None, ordering: Placing | None = None) -> Sequence[Delivery]:
        """Like :meth:`submit`, with the values as a tuple and a dict and, where known, the
        encoded event's ``size`` in bytes, which counts against the broker's ``max_bytes``
        (the daemon passes the size of the request it read). ``check=False`` skips the
        argument check for this one emit; ``due_at`` (a time.time() value) schedules it;
        ``key`` is its dedupe key, for a broker that several daemons share; ``ordering``
        its priority and order key."""
        slots = self._route(event_id)
        if due_at is not None and due_at > time.time():
            if check:
                self.check_arguments(event_id, args, kwargs, slots)
            if slots and not self.broker.has_room(len(slots), later=True):
                raise self.broker.full(event_id, len(slots), later=True)
            return self.broker.put(event_id, slots, args, kwargs, size, due_at, key, ordering)
        for slot in slots:
            checked = slot.checked
            if checked is not None and check and not checked.accepts(args, kwargs) \
                    and checked.problem(args, kwargs) is not None:
                self.check_arguments(event_id, args, kwargs, slots)  # raises, or logs
                break
        if slots and not self.broker.has_room(len(slots), size):
            raise self.broker.full(event_id, len(slots), size)
        return self.broker.put(event_id, slots, args, kwargs, size, None, key, ordering)

    def check_arguments(self, event_id: str, args: tuple[Any, ...] | list[Any],
                        kwargs: dict[str, Any], slots: Sequence[Slot] | None = None) -> None:
        """Raise :class:`BadArgumentsError`, naming each listener of the event whose ``check``
        is "reject" that cannot take these arguments; log those whose check is "warn"."""
        refusals = []
        for slot in self._set.router.get(event_id) if slots is None else slots:
            checked = slot.checked
            if checked is None or checked.accepts(args, kwargs) or (
                    problem := checked.problem(args, kwargs)) is None:
                continue
            if slot.options.check == "warn":
                logger.warning("%s: %s%s%s (check = \"warn\": queued anyway)", event_id,
                               slot.name, checked.text, problem)
            else:
                refusals.append((slot.name, checked.text, problem))
        if refusals:
            raise BadArgumentsError(event_id, refusals)

    async def aemit(self, event_id: str, /, *args: Any, priority: str | None = None,
                    order_key: str | None = None, **kwargs: Any) -> int:
        """Like :meth:`emit`, but wait for room in the queue instead of raising.

        Once the queue is full it waits until the queue has drained to half full, so that a
        busy producer and the workers take turns in batches rather than one by one.
        """
        ordering = (None if priority is None and order_key is None
                    else _ordering(priority, order_key))
        if self._state is _RUNNING:  # the common case, without a second coroutine
            slots = self._set.router.get(event_id)
            for slot in slots:
                checked = slot.checked
                if checked is not None and not checked.accepts(args, kwargs) \
                        and checked.problem(args, kwargs) is not None:
                    self.check_arguments(event_id, args, kwargs, slots)  # raises, or logs
                    break
            if self.broker.has_room(len(slots)):
                if ordering is None:
                    return len(self.broker.put(event_id, slots, args, kwargs))
                return len(self.broker.put(event_id, slots, args, kwargs, 0, None, None,
                                           ordering))
        return len(await self.aput(event_id, args, kwargs, ordering=ordering))

    async def asubmit(self, event_id: str, /, *args: Any, priority: str | None = None,
                      order_key: str | None = None, **kwargs: Any) -> Sequence[Delivery]:
        """Like :meth:`aemit`, but return the deliveries queued, to follow them."""
        return await self.aput(event_id, args, kwargs, ordering=_ordering(priority, order_key))

    async def aput(self, event_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                   size: int = 0, check: bool = True, key: str | None = None,
                   ordering: Placing | None = None) -> Sequence[Delivery]:
        """Like :meth:`put`, but wait for room instead of raising, as :meth:`aemit` does."""
        slots = self._route(event_id)
        if check:
            self.check_arguments(event_id, args, kwargs, slots)
        broker = self.broker
        if slots and (error := broker.full(event_id, len(slots), size)).never_fits:
            raise error
        while slots and not broker.has_room(len(slots), size):
            await broker.wait_for_room()
            if self._state is not _RUNNING:
                raise EmitterNotRunningError(self._state)
        return broker.put(event_id, slots, args, kwargs, size, None, key, ordering)

    def _route(self, event_id: str) -> tuple[Slot, ...]:
        if self._state is not _RUNNING:
            raise EmitterNotRunningError(self._state)
        return self._set.router.get(event_id)

    async def join(self) -> None:
        """Return once every delivery accepted so far has finished (succeeded or failed)."""
        await self.broker.join()

    async def _watch_timeouts(self) -> None:
        while True:
            shortest = min((slot.options.timeout for slot in self._set.slots), default=math.inf)
            await anyio.sleep(min(max(shortest / 20, 0.002), 0.5))
            now = time.monotonic()
            for worker in self._workers:
                worker.cancel_if_late(now)
            self.threads.sweep()

    # -- inspection: the broker's answers -------------------------------------------------

    def stats(self) -> EmitterStats:
        """Counters in total and per listener, as a snapshot."""
        return self.broker.stats()

    @property
    def failed(self) -> list[Delivery]:
        """The kept failed deliveries, oldest first (at most ``keep_failed``)."""
        return self.broker.failed_list

    def deliveries(self, state: DeliveryState | None = None) -> Iterator[Delivery]:
        """Current deliveries: pending, running, retrying and failed, or those of one state."""
        return self.broker.deliveries(state)

    def listener_options(self) -> list[tuple[EventListener, DeliveryOptions]]:
        """Each listener with the options it runs with: its own, else the emitter's defaults."""
        return [(slot.listener, slot.options) for slot in self._set.slots]

    @property
    def slots(self) -> list[Slot]:
        """Each listener as it runs: with its options and what its function takes."""
        return list(self._set.slots)

    def slots_for(self, event_id: str) -> tuple[Slot, ...]:
        """The slots an event named ``event_id`` is delivered to, in order."""
        return self._set.router.get(event_id)

    def listeners_for(self, event_id: str) -> tuple[EventListener, ...]:
        """The listeners an event named ``event_id`` is delivered to, in order."""
        return tuple(slot.listener for slot in self._set.router.get(event_id))

    def add_observer(self, observer: DeliveryObserver) -> None:
        """Tell ``observer`` of every delivery emitted, started, finished or removed."""
        self.broker.add_observer(observer)

    def remove_observer(self, observer: DeliveryObserver) -> None:
        """Stop telling ``observer``."""
        self.broker.remove_observer(observer)

    # -- changing the deliveries and the listeners -----------------------------------------

    async def retry(self, delivery_ids: Iterable[int] | None = None) -> list[Delivery]:
        """Queue failed deliveries again (every one when ``delivery_ids`` is None), each with
        its attempts counted afresh, to the listener of that name now loaded.

        Checks them all first: an id that is not failed, a listener no longer loaded or a
        queue without room raises, and nothing is retried.
        """
        return await self.broker.retry(delivery_ids)

    async def purge(self, state: DeliveryState) -> int:
        """Drop every FAILED delivery, or every PENDING one (those waiting out a retry
        backoff too); running calls are left to finish. Returns how many were dropped."""
        return await self.broker.purge(state)

    def replace_listeners(self, listeners: Sequence[ListenerLike]) -> ListenerChanges:
        """Swap in a new set of listeners, at once.

        New deliveries go to the new set. Calls running finish on the code they started
        with. Waiting deliveries of a listener whose name is in the new set go to the new
        one; those of a listener the new set lacks fail with that reason. A bad set (a
        name clash, not a listener) raises and changes nothing.
        """
        new = self._listener_set(listeners)
        failed = self.broker.serve(new.slots, reason=_REMOVED_BY_RELOAD)
        changes = new.changes_from(self._set, failed)
        self._set, self.listeners = new, new.listeners
        return changes


_BY_PRIORITY = {name: Ordering(level) for level, name in enumerate(PRIORITIES)}


def _ordering(priority: str | None, order_key: str | None) -> Placing | None:
    """The placing of an in-process emit in its lanes, or ValueError naming the value."""
    if order_key is None:
        if priority is None:
            return None
        if (known := _BY_PRIORITY.get(priority)) is not None:
            return known
    elif (priority is None and type(order_key) is str and 0 < len(order_key) <= MAX_KEY
          and order_key.isprintable()):
        return (NORMAL, order_key)  # a plain tuple: made for every keyed emit, so cheaply
    try:
        return ordering_of(priority, order_key)
    except ProtocolError as exc:
        raise ValueError(exc.problem) from None


def _check_number(key: str, value: object, *, minimum: int, whole: bool) -> None:
    want = number_problem(value, whole=whole, minimum=minimum)
    if want is not None:
        raise ValueError(f"SimpleEventEmitter: {key} must be {want}, not {value!r}")
