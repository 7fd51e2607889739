"""``Intake``: how one daemon takes events in, for the ``emit`` and ``emit_many`` ops.

An event is queued at once when there is room; otherwise the replies owed are sent and the
emit waits for room, up to :data:`QUEUE_WAIT_SECONDS`. A refusal says why and, for a batch,
how many of its events were accepted before it, so the client can resume there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from ..bus.delivery import Delivery, iso_time
from ..bus.emitter import SimpleEventEmitter
from ..errors import (
    BackendError,
    BadArgumentsError,
    EmitterNotRunningError,
    ErrorCode,
    QueueFullError,
)
from ..protocol.event import EventMessage
from ..protocol.requests import EmitManyRequest, EmitRequest
from ..protocol.results import EmitManyResult, EmitResult
from .catalog import dry_run
from .metrics import Metrics
from .monitor import Monitor
from .unrouted import Unrouted

__all__ = ("QUEUE_WAIT_SECONDS", "SHUTTING_DOWN", "EmitFailed", "Intake", "Refused")

QUEUE_WAIT_SECONDS = 10.0
"""How long an emit that finds the queue full waits for room before it gets ``queue_full``."""
SHUTTING_DOWN = "the daemon is shutting down and takes no more events; emit again once it is back"

Flush = Callable[[], Awaitable[None]]


class Refused(Exception):
    """A request answered with the error ``code``; ``details`` go into the error object."""

    def __init__(self, code: str, message: str, **details: object) -> None:
        self.code = code
        self.message = message
        self.details = details


class EmitFailed(Refused):
    """An emit that was refused after ``accepted`` events of its request; ``counts`` adds
    the deliveries and unrouted events of those, for emit_many."""

    def __init__(self, code: str, message: str, accepted: int, **details: object) -> None:
        super().__init__(code, message, accepted=accepted, **details)


class Intake:
    """Queues the events of emit requests into ``emitter``, counting them for ``metrics``
    and following them for ``--wait`` through ``monitor``."""

    def __init__(self, emitter: SimpleEventEmitter, monitor: Monitor,
                 metrics: Metrics | None) -> None:
        self.emitter = emitter
        self.broker = emitter.broker
        self.monitor = monitor
        self.metrics = metrics
        self.draining = False
        """Set when the daemon shuts down: from then on every emit is refused."""
        self.unrouted = Unrouted(lambda: (event_id for listener in emitter.listeners
                                          for event_id in listener.event_ids))
        """Emits no listener takes: logged once per id, with a did-you-mean."""
        self._on_its_way: dict[str, anyio.Event] = {}
        """Dedupe keys of emits accepted for checking but still waiting for room, each
        with an event set once that emit is answered."""

    async def emit(self, request: EmitRequest, flush: Flush) -> EmitResult:
        """The reply to an ``emit``: one event, now or for later, waited on with ``wait``; a
        dedupe key seen lately answers as its first emit did."""
        message = request.event
        key = message.key
        if key is None or request.dry_run:
            return await self._emit_once(request, message, flush)
        if first := await self._answered(key):
            return EmitResult(**first, duplicate=True)  # as the first was; nothing queued
        self._on_its_way[key] = anyio.Event()  # no await since the check above
        try:
            return await self._emit_once(request, message, flush)
        finally:
            self._settle(key)  # refused (accepted, _accepted settled it)

    async def _answered(self, key: str) -> dict[str, Any] | None:
        """The first answer for dedupe ``key``, if an emit with it was accepted lately. An
        emit with the key still on its way (waiting for room) is waited for first: accepted,
        it answers the repeat; refused, the key is free again."""
        while (on_its_way := self._on_its_way.get(key)) is not None:
            await on_its_way.wait()
        return self.broker.answer_for(key)

    def _accepted(self, message: EventMessage, result: EmitResult) -> None:
        """The event is queued: count it, and keep its answer under its dedupe key from now
        on, before any wait for its outcome, so a repeat meanwhile is a duplicate."""
        if self.metrics is not None:
            self.metrics.count_emitted(message.event, result.deliveries)
        if message.key is not None:
            first: dict[str, Any] = {"event_id": result.event_id,
                                     "deliveries": result.deliveries}
            if result.due is not None:
                first["due"] = result.due
            self.broker.remember(message.key, first)
            self._settle(message.key)

    def _settle(self, key: str) -> None:
        """The emit with ``key`` is answered (accepted or refused): wake its repeats."""
        settled = self._on_its_way.pop(key, None)
        if settled is not None:
            settled.set()

    async def _emit_once(self, request: EmitRequest, message: EventMessage,
                         flush: Flush) -> EmitResult:
        if request.dry_run:
            return dry_run(self.emitter, message.event, message.args, message.kwargs)
        if request.require_listener and not self.broker.targets(
                message.event, self.emitter.slots_for(message.event)):
            close = self.unrouted.seen(message.event, refused=True)
            hint = (f"did you mean {close!r}?" if close
                    else "`eventbus listeners list` shows what is loaded")
            problem = f"no listener matches event {message.event!r}, so it was not emitted ({hint})"
            raise EmitFailed(ErrorCode.UNROUTED, problem, 0)
        due = None
        if request.due_at is not None:  # for later: no waiting for room, its bound is its own
            if self.draining:
                raise EmitFailed(ErrorCode.SHUTTING_DOWN, SHUTTING_DOWN, 0)
            made = self.emitter.put(message.event, tuple(message.args), message.kwargs,
                                    size=request.size, check=request.check,
                                    due_at=request.due_at, key=message.key,
                                    ordering=message.ordering)
            due = iso_time(request.due_at)
        else:
            try:  # the common case, without another coroutine
                made = self._submit_now(message, request.size, request.check)
            except (QueueFullError, EmitterNotRunningError):
                made = await self._submit(message, request.size, flush, 0, request.check)
        if message.trace is not None:  # the emit path pays one test, not a call
            _carry_trace(made, message.trace)
        watch = None
        if request.wait is not None and due is None:
            # No await since the submit: none of its deliveries can have ended unseen.
            self.broker.follow(made)
            watch = self.monitor.watch(made)
        try:
            if message.key is not None and (first := await self._elsewhere(message.key)):
                return EmitResult(**first, duplicate=True)  # nothing was queued
            result = EmitResult(message.event, len(made), due=due)
            if due is not None and made and not self.broker.durable:
                result.volatile = True
            if not made:
                result.suggestion = self.unrouted.seen(message.event)
            self._accepted(message, result)
            if watch is not None and request.wait is not None:
                result.results = await self.monitor.wait(watch, request.wait)
            return result
        finally:
            if watch is not None:
                self.monitor.unwatch(watch)

    async def _elsewhere(self, key: str) -> dict[str, Any] | None:
        """Where daemons share dedupe keys: once the emit just put with ``key`` is stored,
        the answer another emit with that key got first, if any (this one queued nothing)."""
        if not self.broker.keys_shared:
            return None
        await self.broker.settled()
        first = self.broker.claimed_elsewhere(key)
        if first is not None:
            self.broker.remember(key, first)
        return first

    async def emit_many(self, request: EmitManyRequest, flush: Flush) -> EmitManyResult:
        """The reply to an ``emit_many``: its events in order, checked as a whole first."""
        accepted = deliveries = unrouted = duplicates = 0
        size = request.size // len(request.events)  # what each holds of the line, on average
        if request.check:  # the whole batch first: one that does not fit is refused whole
            for index, message in enumerate(request.events):
                try:
                    self.emitter.check_arguments(message.event, message.args, message.kwargs)
                except BadArgumentsError as exc:
                    raise EmitFailed(ErrorCode.BAD_ARGUMENTS, f"event {index + 1} of the "
                                      f"batch: {exc}; the batch was not accepted", 0,
                                      index=index, deliveries=0, unrouted=0) from None
        broker = self.broker
        on_its_way = self._on_its_way
        claims: dict[str, tuple[EventMessage, Sequence[Delivery]]] = {}  # on a shared store
        repeats: list[str] = []  # keys of this batch's claims, met again in it
        for index, message in enumerate(request.events):
            key = message.key
            if request.require_listener and not broker.targets(
                    message.event, self.emitter.slots_for(message.event)):
                close = self.unrouted.seen(message.event, refused=True)
                hint = f"; did you mean {close!r}?" if close else ""
                problem = (f"event {index + 1} of the batch: no listener matches "
                           f"{message.event!r}, so it was not emitted, nor those after "
                           f"it{hint}")
                raise EmitFailed(ErrorCode.UNROUTED, problem, accepted, index=index,
                                 deliveries=deliveries, unrouted=unrouted,
                                 duplicates=duplicates)
            if key is not None and (await self._answered(key) if key in on_its_way
                                    else broker.answer_for(key)) is not None:
                accepted += 1
                duplicates += 1
                continue
            if key is not None and key in claims:  # a duplicate of an event before it
                accepted += 1
                repeats.append(key)
                continue
            try:  # the common case, without a coroutine per event
                made = self._submit_now(message, size, False)
            except (QueueFullError, EmitterNotRunningError):
                if key is not None:
                    on_its_way[key] = anyio.Event()
                try:
                    made = await self._submit(message, size, flush, accepted, False)
                except EmitFailed as exc:  # say what the events before it made, and which
                    never = {"never_fits": True} if exc.details.get("never_fits") else {}
                    raise EmitFailed(exc.code, exc.message, accepted, index=index,
                                     deliveries=deliveries, unrouted=unrouted,
                                     duplicates=duplicates, **never) from None
                finally:
                    if key is not None:
                        self._settle(key)
            except BackendError as exc:  # Redis went away: the events before it may stand
                raise EmitFailed(ErrorCode.BACKEND, str(exc), accepted, deliveries=deliveries,
                                  unrouted=unrouted, duplicates=duplicates) from None
            accepted += 1
            if message.trace is not None:  # the emit path pays one test, not a call
                _carry_trace(made, message.trace)
            if key is not None and broker.keys_shared:  # the store says whose the key is
                claims[key] = (message, made)
                continue
            deliveries += len(made)
            if not made:
                unrouted += 1
                self.unrouted.seen(message.event)
            if self.metrics is not None:
                self.metrics.count_emitted(message.event, len(made))
            if key is not None:
                broker.remember(key, {"event_id": message.event, "deliveries": len(made)})
        for key, (message, made) in claims.items():  # the first waits for the store
            if await self._elsewhere(key) is not None:
                duplicates += 1
            else:
                deliveries += len(made)
                if not made:
                    unrouted += 1
                    self.unrouted.seen(message.event)
                self._count_accepted(message, made)
        for key in repeats:  # answered now as the first was: counted bus-wide as duplicates
            broker.answer_for(key)
            duplicates += 1
        return EmitManyResult(accepted, deliveries, unrouted, duplicates)

    def _count_accepted(self, message: EventMessage, made: Sequence[Delivery]) -> None:
        """An event of a batch is queued: count it, and keep its answer under its key."""
        if self.metrics is not None:
            self.metrics.count_emitted(message.event, len(made))
        if message.key is not None:
            self.broker.remember(message.key, {"event_id": message.event,
                                               "deliveries": len(made)})

    def _submit_now(self, message: EventMessage, size: int, check: bool) -> Sequence[Delivery]:
        """Queue one event of ``size`` bytes if there is room now; raise for anything else,
        which :meth:`_submit` then handles."""
        if self.draining:
            raise EmitterNotRunningError("closing")
        return self.emitter.put(message.event, tuple(message.args), message.kwargs, size=size,
                                check=check, key=message.key, ordering=message.ordering)

    async def _submit(self, message: EventMessage, size: int, flush: Flush,
                      accepted: int, check: bool) -> Sequence[Delivery]:
        """Queue one event; when the queue is full, send the replies owed and wait for room
        (up to :data:`QUEUE_WAIT_SECONDS`). ``accepted`` events of the request came before."""
        if self.draining:
            raise EmitFailed(ErrorCode.SHUTTING_DOWN, SHUTTING_DOWN, accepted)
        event, args, kwargs, key = message.event, message.args, message.kwargs, message.key
        bound = "queue_size"
        try:
            try:
                return self.emitter.put(event, tuple(args), kwargs, size=size, check=check,
                                        key=key, ordering=message.ordering)
            except QueueFullError as exc:
                if exc.never_fits:  # sending it again cannot help: the client is told so
                    raise EmitFailed(ErrorCode.QUEUE_FULL, str(exc), accepted,
                                     never_fits=True) from None
                bound = "max_queue_bytes" if exc.unit == "bytes" else bound
            await flush()
            with anyio.fail_after(QUEUE_WAIT_SECONDS):
                return await self.emitter.aput(event, tuple(args), kwargs, size=size,
                                               check=check, key=key, ordering=message.ordering)
        except TimeoutError:
            problem = (f"queue full: event {event!r} found no room within {QUEUE_WAIT_SECONDS:g}s "
                       f"and was not accepted; emit it again later, or raise {bound}")
            raise EmitFailed(ErrorCode.QUEUE_FULL, problem, accepted) from None
        except EmitterNotRunningError:
            raise EmitFailed(ErrorCode.SHUTTING_DOWN, SHUTTING_DOWN, accepted) from None


def _carry_trace(made: Sequence[Delivery], trace: dict[str, str]) -> None:
    """Give the deliveries the emit's trace context; no worker can have taken them yet."""
    for delivery in made:
        delivery.trace = trace
