"""What the daemon does for each op of :data:`~eventbus_cli.protocol.OPS`: request in, reply out.

:class:`Operations` holds one handler per op, registered with :func:`_handles`; the module
checks at import that the handlers and the op table name the same ops.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from .._version import __version__
from ..brokers.journal import JournalBroker
from ..brokers.redis import RedisBroker
from ..bus.delivery import Delivery, DeliveryState, iso_time
from ..bus.emitter import SimpleEventEmitter
from ..bus.schedules import Schedule
from ..codec import encode_error, encode_result
from ..config import Config
from ..errors import (
    BackendError,
    BadArgumentsError,
    DeliveryError,
    EmitterNotRunningError,
    ListenerError,
    LoaderError,
    ProtocolError,
    QueueFullError,
    ScheduleError,
)
from ..protocol import OPS, PROTOCOL_VERSION, ErrorCode, EventMessage, Request, decode_request
from .catalog import dry_run, event_catalog, event_schema
from .health import Health
from .loader import MODULE_PREFIX, load_modules
from .metrics import Metrics
from .monitor import Monitor, Subscription
from .scheduler import Scheduler, UnknownScheduleError, config_schedules

__all__ = ("LIST_REPLY_BYTES", "QUEUE_WAIT_SECONDS", "Operations")

logger = logging.getLogger("eventbus.daemon")

QUEUE_WAIT_SECONDS = 10.0
"""How long an emit that finds the queue full waits for room before it gets ``queue_full``."""
LIST_REPLY_BYTES = 16 << 20
"""About how many bytes a ``list`` reply holds at most: the newest deliveries that fit."""

Flush = Callable[[], Awaitable[None]]
Handler = Callable[["Operations", Request, Flush], Awaitable[Any]]
_HANDLERS: dict[str, Handler] = {}
_SHUTTING_DOWN = "the daemon is shutting down and takes no more events; emit again once it is back"


def _handles(op: str) -> Callable[[Handler], Handler]:
    """Register the decorated method as the handler of ``op``."""
    def register(handler: Handler) -> Handler:
        _HANDLERS[op] = handler
        return handler
    return register


class _Refused(Exception):
    """A request answered with the error ``code``; ``details`` go into the error object."""

    def __init__(self, code: str, message: str, **details: object) -> None:
        self.code = code
        self.message = message
        self.details = details


class _EmitFailed(_Refused):
    """An emit that was refused after ``accepted`` events of its request; ``counts`` adds
    the deliveries and unrouted events of those, for emit_many."""

    def __init__(self, code: str, message: str, accepted: int, **counts: int) -> None:
        super().__init__(code, message, accepted=accepted, **counts)


class Operations:
    """Answers request lines for one daemon: its config, its emitter and broker, its live
    views, and how long it has run."""

    def __init__(self, config: Config, emitter: SimpleEventEmitter, socket_path: Path) -> None:
        self.config = config
        self.emitter = emitter
        self.broker = emitter.broker
        self.socket_path = socket_path
        self.monitor = Monitor(emitter)
        self.health = Health(emitter)
        self.started = time.monotonic()
        self.draining = False
        self._reloading = anyio.Lock()
        self.metrics: Metrics | None = None
        """What ``/metrics`` serves, with ``[metrics]`` set."""
        self.scheduler = Scheduler(emitter, on_fire=self._fired)
        self.config_schedules = config_schedules(config)
        """The ``[[schedule]]`` tables, fixed for the daemon's life (a reload keeps them)."""

    def _fired(self, name: str, event_id: str, outcome: str) -> None:
        self.monitor.fired(name, event_id, outcome)
        if self.metrics is not None:
            self.metrics.count_fire(name, event_id, outcome)

    def serve_schedules(self, schedules: list[Schedule]) -> None:
        """Serve the listener files' ``schedules`` and the config's from now on."""
        self.scheduler.replace(self.scheduler.check_names(schedules, self.config_schedules))

    async def answer(self, line: bytes, flush: Flush) -> tuple[bytes, bool] | Subscription:
        """The reply line to one request line, and whether the request may have changed
        what the broker holds (its reply then waits for the store); or for ``subscribe`` the
        new subscription (the caller streams it, then unsubscribes). ``flush`` sends the
        replies owed so far; it is called before an emit waits for room."""
        writes = False
        try:
            request = decode_request(line)
            writes = OPS[request.op].writes
            reply = await self._answer(request, flush)
            return reply if isinstance(reply, Subscription) else (reply, writes)
        except ProtocolError as exc:
            return encode_error(exc.request_id, exc.code, exc.problem), writes

    async def _answer(self, request: Request, flush: Flush) -> bytes | Subscription:
        request_id = request.id
        try:
            result = await _HANDLERS[request.op](self, request, flush)
            if isinstance(result, Subscription):
                return result
            return encode_result(request.id, result)
        except _Refused as exc:
            if self.metrics is not None:
                self._count_refused(request, exc)
            return encode_error(request_id, exc.code, exc.message, **exc.details)
        except BadArgumentsError as exc:
            if self.metrics is not None:
                self.metrics.count_refused(exc.event_id, ErrorCode.BAD_ARGUMENTS)
            return encode_error(request_id, ErrorCode.BAD_ARGUMENTS, str(exc),
                                **_refusal_details(exc))
        except DeliveryError as exc:
            code = ErrorCode.NOT_FOUND if exc.missing else ErrorCode.CONFLICT
            return encode_error(request_id, code, str(exc), delivery=exc.delivery_id)
        except QueueFullError as exc:
            if self.metrics is not None:
                self.metrics.count_refused(exc.event_id, ErrorCode.QUEUE_FULL)
            return encode_error(request_id, ErrorCode.QUEUE_FULL, str(exc))
        except BackendError as exc:
            return encode_error(request_id, ErrorCode.BACKEND, str(exc))
        except LoaderError as exc:
            return encode_error(request_id, ErrorCode.RELOAD_FAILED, str(exc),
                                file=str(exc.file), line=exc.line)
        except (ListenerError, ScheduleError) as exc:
            return encode_error(request_id, ErrorCode.RELOAD_FAILED, str(exc))
        except UnknownScheduleError as exc:
            return encode_error(request_id, ErrorCode.NOT_FOUND, str(exc), schedules=exc.known)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise  # the client left while an emit waited: the connection ends, quietly
        except Exception as exc:  # a bug here must cost one reply, never the daemon
            logger.exception("request %r failed", request[:2])
            return encode_error(request_id, ErrorCode.INTERNAL, f"internal error: {exc!r}")

    def _count_refused(self, request: Request, exc: _Refused) -> None:
        """Count a refused emit for metrics: the event at its ``index``, or the first one it
        did not accept."""
        index = exc.details.get("index", exc.details.get("accepted", 0))
        events = request.events
        if self.metrics is not None and isinstance(index, int) and 0 <= index < len(events):
            self.metrics.count_refused(events[index].event, exc.code)

    # -- emitting ----------------------------------------------------------------------------

    @_handles("emit")
    async def _emit(self, request: Request, flush: Flush) -> dict[str, Any]:
        message = request.events[0]
        if message.key is not None and (first := self.broker.answer_for(message.key)):
            return {**first, "duplicate": True}  # answered as the first was; nothing queued
        result = await self._emit_once(request, message, flush)
        if self.metrics is not None and not request.dry_run:
            self.metrics.count_emitted(message.event, result["deliveries"])
        if message.key is not None:
            self.broker.remember(message.key, {name: result[name] for name in
                                               ("event_id", "deliveries", "due") if name in result})
        return result

    async def _emit_once(self, request: Request, message: EventMessage,
                         flush: Flush) -> dict[str, Any]:
        if request.dry_run:
            return dry_run(self.emitter, message.event, message.args, message.kwargs)
        if request.require_listener and not self.broker.targets(
                message.event, self.emitter.slots_for(message.event)):
            problem = (f"no listener matches event {message.event!r}, so it was not emitted "
                       "(`eventbus listeners list` shows what is loaded)")
            raise _EmitFailed(ErrorCode.UNROUTED, problem, 0)
        if request.due_at is not None:  # for later: no waiting for room, its bound is its own
            if self.draining:
                raise _EmitFailed(ErrorCode.SHUTTING_DOWN, _SHUTTING_DOWN, 0)
            made = self.emitter.put(message.event, tuple(message.args), message.kwargs,
                                    size=request.size, check=request.check,
                                    due_at=request.due_at, key=message.key)
            if message.trace is not None:  # the emit path pays one test, not a call
                _carry_trace(made, message.trace)
            return {"event_id": message.event, "deliveries": len(made),
                    "due": iso_time(request.due_at)}
        try:  # the common case, without another coroutine
            made = self._submit_now(message, request.size, request.check)
        except (QueueFullError, EmitterNotRunningError):
            made = await self._submit(message, request.size, flush, 0, request.check)
        if message.trace is not None:
            _carry_trace(made, message.trace)
        result: dict[str, Any] = {"event_id": message.event, "deliveries": len(made)}
        if request.wait is not None:
            # No await since the submit: none of its deliveries can have ended unseen.
            self.broker.follow(made)
            result["results"] = await self.monitor.wait(made, request.wait)
        return result

    @_handles("emit_many")
    async def _emit_many(self, request: Request, flush: Flush) -> dict[str, Any]:
        accepted = deliveries = unrouted = duplicates = 0
        size = request.size // len(request.events)  # what each holds of the line, on average
        if request.check:  # the whole batch first: one that does not fit is refused whole
            for index, message in enumerate(request.events):
                try:
                    self.emitter.check_arguments(message.event, message.args, message.kwargs)
                except BadArgumentsError as exc:
                    raise _EmitFailed(ErrorCode.BAD_ARGUMENTS, f"event {index + 1} of the "
                                      f"batch: {exc}; the batch was not accepted", 0,
                                      index=index, deliveries=0, unrouted=0) from None
        broker = self.broker
        for message in request.events:
            if message.key is not None and broker.answer_for(message.key) is not None:
                accepted += 1
                duplicates += 1
                continue
            try:  # the common case, without a coroutine per event
                made = self._submit_now(message, size, False)
            except (QueueFullError, EmitterNotRunningError):
                try:
                    made = await self._submit(message, size, flush, accepted, False)
                except _EmitFailed as exc:  # say what the events before it made
                    raise _EmitFailed(exc.code, exc.message, accepted, deliveries=deliveries,
                                      unrouted=unrouted, duplicates=duplicates) from None
            except BackendError as exc:  # Redis went away: the events before it may stand
                raise _EmitFailed(ErrorCode.BACKEND, str(exc), accepted, deliveries=deliveries,
                                  unrouted=unrouted, duplicates=duplicates) from None
            accepted += 1
            deliveries += len(made)
            unrouted += not made
            if message.trace is not None:  # the emit path pays one test, not a call
                _carry_trace(made, message.trace)
            if self.metrics is not None:
                self.metrics.count_emitted(message.event, len(made))
            if message.key is not None:
                broker.remember(message.key, {"event_id": message.event,
                                              "deliveries": len(made)})
        return {"accepted": accepted, "deliveries": deliveries, "unrouted": unrouted,
                "duplicates": duplicates}

    def _submit_now(self, message: EventMessage, size: int, check: bool) -> Sequence[Delivery]:
        """Queue one event of ``size`` bytes if there is room now; raise for anything else,
        which :meth:`_submit` then handles."""
        if self.draining:
            raise EmitterNotRunningError("closing")
        return self.emitter.put(message.event, tuple(message.args), message.kwargs, size=size,
                                check=check, key=message.key)

    async def _submit(self, message: EventMessage, size: int, flush: Flush,
                      accepted: int, check: bool) -> Sequence[Delivery]:
        """Queue one event; when the queue is full, send the replies owed and wait for room
        (up to :data:`QUEUE_WAIT_SECONDS`). ``accepted`` events of the request came before."""
        if self.draining:
            raise _EmitFailed(ErrorCode.SHUTTING_DOWN, _SHUTTING_DOWN, accepted)
        event, args, kwargs, key = message.event, message.args, message.kwargs, message.key
        try:
            try:
                return self.emitter.put(event, tuple(args), kwargs, size=size, check=check,
                                        key=key)
            except QueueFullError as exc:
                if exc.never_fits:
                    raise _EmitFailed(ErrorCode.QUEUE_FULL, str(exc), accepted) from None
            await flush()
            with anyio.fail_after(QUEUE_WAIT_SECONDS):
                return await self.emitter.aput(event, tuple(args), kwargs, size=size,
                                               check=check, key=key)
        except TimeoutError:
            problem = (f"queue full: event {event!r} found no room within {QUEUE_WAIT_SECONDS:g}s "
                       "and was not accepted; emit it again later, or raise queue_size")
            raise _EmitFailed(ErrorCode.QUEUE_FULL, problem, accepted) from None
        except EmitterNotRunningError:
            raise _EmitFailed(ErrorCode.SHUTTING_DOWN, _SHUTTING_DOWN, accepted) from None

    @_handles("subscribe")
    async def _subscribe(self, request: Request, flush: Flush) -> Subscription:
        return self.monitor.subscribe(request.patterns, request.id)

    # -- reading -----------------------------------------------------------------------------

    @_handles("hello")
    async def _hello(self, request: Request, flush: Flush) -> dict[str, Any]:
        return {"protocol": PROTOCOL_VERSION, "version": __version__, "pid": os.getpid(),
                "max_message_bytes": self.config.daemon.max_message_bytes}

    @_handles("listeners")
    async def _listeners(self, request: Request, flush: Flush) -> list[dict[str, Any]]:
        return [
            {
                "name": item.name,
                "module": item.module.removeprefix(MODULE_PREFIX),
                "file": getattr(getattr(item.fn, "__code__", None), "co_filename", None),
                "events": sorted(item.event_ids),
                "retries": options.retries,
                "backoff": float(options.backoff),
                "timeout": None if math.isinf(options.timeout) else float(options.timeout),
                "async": item.is_async,
                "signature": slot.arguments.text if slot.arguments is not None else None,
                "check": options.check,
            }
            for slot in self.emitter.slots
            for item, options in ((slot.listener, slot.options),)
        ]

    @_handles("events")
    async def _events(self, request: Request, flush: Flush) -> list[dict[str, Any]]:
        return event_catalog(self.emitter)

    @_handles("schema")
    async def _schema(self, request: Request, flush: Flush) -> dict[str, Any]:
        assert request.event is not None
        schema = event_schema(self.emitter, request.event)
        if schema is None:
            raise _Refused(ErrorCode.UNROUTED, f"no listener takes event {request.event!r} "
                           "(`eventbus events` lists the events that are taken)")
        return schema

    @_handles("join")
    async def _join(self, request: Request, flush: Flush) -> dict[str, Any]:
        with anyio.move_on_after(request.wait):
            await self.emitter.join()
            return {"idle": True}
        return {"idle": False}

    @_handles("schedules")
    async def _schedules(self, request: Request, flush: Flush) -> list[dict[str, Any]]:
        return self.scheduler.listing()

    @_handles("fire")
    async def _fire(self, request: Request, flush: Flush) -> dict[str, Any]:
        assert request.event is not None  # the schedule's name
        return self.scheduler.run_now(request.event)

    @_handles("queue")
    async def _queue(self, request: Request, flush: Flush) -> dict[str, Any]:
        await self.broker.refresh()
        return self.queue()

    def queue(self) -> dict[str, Any]:
        """The ``queue --json`` document."""
        stats = self.broker.stats().to_dict()
        return {**stats, "next_due": iso_time(stats["next_due"]), "queue_size": self.broker.size,
                "max_queue_bytes": self.broker.max_bytes,
                "max_scheduled": self.broker.max_scheduled}

    @_handles("list")
    async def _list(self, request: Request, flush: Flush) -> list[dict[str, Any]]:
        state = DeliveryState(request.state) if request.state else None
        await self.broker.refresh(listing=True)
        held = self.broker.deliveries(state)
        newest = (heapq.nlargest(request.limit, held, key=_by_id) if request.limit is not None
                  else sorted(held, key=_by_id, reverse=True))
        found: list[dict[str, Any]] = []
        budget = LIST_REPLY_BYTES
        for delivery in newest:
            budget -= delivery.size + len(delivery.error or "") + 256
            if budget < 0 and found:
                break
            found.append(delivery.to_dict())
        return found

    @_handles("show")
    async def _show(self, request: Request, flush: Flush) -> dict[str, Any]:
        assert request.deliveries
        await self.broker.refresh(listing=True)
        delivery = self.broker.find(request.deliveries[0])
        return {**delivery.to_dict(), "traceback": delivery.traceback}

    @_handles("status")
    async def _status(self, request: Request, flush: Flush) -> dict[str, Any]:
        daemon = self.config.daemon
        broker = self.broker
        await broker.refresh(listing=True)
        return {
            "pid": os.getpid(),
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "socket": str(self.socket_path),
            "config": str(self.config.path.absolute()) if self.config.path else None,
            "listeners_dir": str(daemon.listeners_dir.absolute()),
            "listeners": len(self.emitter.listeners),
            "journal": {"path": str(broker.path.absolute()), "bytes": broker.size_on_disk(),
                        "writable": broker.failure is None,
                        "error": None if broker.failure is None else str(broker.failure)}
            if isinstance(broker, JournalBroker) else None,
            "backend": broker.backend_status() if isinstance(broker, RedisBroker) else None,
            "metrics": (f"http://{self.config.metrics.listen}/metrics"
                        if self.config.metrics is not None else None),
            "threads": {"max": self.emitter.threads.max_threads,
                        "stuck": self.emitter.threads.stuck},
            "schedules": {"count": len(self.scheduler),
                          "next": iso_time(self.scheduler.next_fire)},
            "draining": self.draining,
            "health": self.health.report(draining=self.draining),
            "queue": self.queue(),
        }

    # -- changing ----------------------------------------------------------------------------

    @_handles("retry")
    async def _retry(self, request: Request, flush: Flush) -> dict[str, Any]:
        retried = await self.broker.aretry(request.deliveries)
        return {"retried": [delivery.id for delivery in retried]}

    @_handles("purge")
    async def _purge(self, request: Request, flush: Flush) -> dict[str, Any]:
        assert request.state is not None
        purged = await self.broker.apurge(DeliveryState(request.state))
        return {"purged": purged, "state": request.state}

    @_handles("reload")
    async def _reload(self, request: Request, flush: Flush) -> dict[str, Any]:
        return await self.reload()

    async def reload(self) -> dict[str, Any]:
        """Import the listeners directory afresh, in a worker thread so that a slow file
        does not hold up other clients, and swap the new set in, at once.

        If a file fails (or two listeners share a name) nothing changes: the error is
        logged and raised, naming the file.
        """
        directory = self.config.daemon.listeners_dir
        try:
            async with self._reloading:  # one reload at a time
                loaded = await anyio.to_thread.run_sync(load_modules, directory)
            schedules = self.scheduler.check_names(loaded.schedules, self.config_schedules)
            changes = self.emitter.replace_listeners(loaded.listeners)
            self.scheduler.replace(schedules)
        except (LoaderError, ListenerError, ScheduleError) as exc:
            logger.error("reload failed; the %d listeners loaded before keep running: %s",
                         len(self.emitter.listeners), exc)
            raise
        logger.info("reloaded %d listeners from %s (added: %s; removed: %s)%s",
                    len(self.emitter.listeners), directory.absolute(),
                    ", ".join(changes.added) or "none", ", ".join(changes.removed) or "none",
                    f"; {changes.failed} waiting deliveries of removed listeners failed"
                    if changes.failed else "")
        return {"listeners": len(self.emitter.listeners), **changes._asdict(),
                "schedules": len(schedules)}


def _carry_trace(made: Sequence[Delivery], trace: dict[str, str]) -> None:
    """Give the deliveries the emit's trace context; no worker can have taken them yet."""
    for delivery in made:
        delivery.trace = trace


def _refusal_details(exc: BadArgumentsError) -> dict[str, Any]:
    return {"event": exc.event_id, "listeners": [
        {"listener": name, "signature": signature, "problem": f"{name}{signature}{problem}"}
        for name, signature, problem in exc.refusals]}


def _by_id(delivery: Delivery) -> int:
    return delivery.id


if set(_HANDLERS) != set(OPS):  # pragma: no cover - a mistake in this module, caught by CI
    raise RuntimeError(f"handlers {sorted(_HANDLERS)} do not match the ops {sorted(OPS)}")
