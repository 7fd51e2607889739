"""What the daemon does for each op of :data:`~eventbus_cli.protocol.OPS`: request in, reply out.

:class:`Operations` holds one handler per op, registered with :func:`_handles`; the module
checks at import that the handlers and the op table name the same ops.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import anyio

from .._version import __version__
from ..bus.delivery import Delivery, DeliveryState, iso_time
from ..bus.emitter import SimpleEventEmitter
from ..bus.schedules import Schedule
from ..config import Config, import_paths
from ..errors import (
    BackendError,
    BadArgumentsError,
    ErrorCode,
    EventbusError,
    ListenerError,
    LoaderError,
    ProtocolError,
    QueueFullError,
    ScheduleError,
    UnknownListenerError,
)
from ..protocol.codec import encode_error, encode_result
from ..protocol.ops import OPS, PROTOCOL_VERSION, decode_request
from ..protocol.requests import (
    EmitManyRequest,
    EmitRequest,
    FireRequest,
    JoinRequest,
    ListRequest,
    Matching,
    PauseRequest,
    PurgeRequest,
    Request,
    ResumeRequest,
    RetryRequest,
    SchemaRequest,
    ShowRequest,
    StopRequest,
    SubscribeRequest,
)
from ..protocol.results import (
    Acknowledged,
    DeliveryDetail,
    DeliveryInfo,
    EmitManyResult,
    EmitResult,
    EventInfo,
    Hello,
    Idle,
    ListenerCounts,
    ListenerInfo,
    PauseState,
    Purged,
    QueueCounts,
    ReloadResult,
    Retried,
    ScheduleInfo,
    SchedulesStatus,
    Status,
    Stopping,
    ThreadsStatus,
)
from .catalog import event_catalog, event_schema
from .health import Health
from .intake import Intake, Refused
from .loader import MODULE_PREFIX, load_modules
from .metrics import Metrics
from .monitor import Monitor, Subscription
from .scheduler import Scheduler, config_schedules

__all__ = ("LIST_REPLY_BYTES", "Operations")

logger = logging.getLogger("eventbus.daemon")

LIST_REPLY_BYTES = 16 << 20
"""About how many bytes a ``list`` reply holds at most: the newest deliveries that fit."""

Flush = Callable[[], Awaitable[None]]
Handler = Callable[["Operations", Any, Flush], Awaitable[Any]]
"""A method of :class:`Operations` taking its op's request Struct (see ``OPS``)."""
_HANDLERS: dict[str, Handler] = {}


def _handles(op: str) -> Callable[[Handler], Handler]:
    """Register the decorated method as the handler of ``op``."""
    def register(handler: Handler) -> Handler:
        _HANDLERS[op] = handler
        return handler
    return register


class Operations:
    """Answers request lines for one daemon: its config, its emitter and broker, its live
    views, and how long it has run."""

    def __init__(self, config: Config, emitter: SimpleEventEmitter, socket_path: Path, *,
                 metrics: Metrics | None = None) -> None:
        self.config = config
        self.emitter = emitter
        self.broker = emitter.broker
        self.socket_path = socket_path
        self.monitor = Monitor(emitter)
        self.health = Health(emitter)
        self.reload_failure: str | None = None
        """What the last reload raised, until a reload succeeds (health says so)."""
        self.started = time.monotonic()
        self.stop_asked = False
        """Whether a ``stop`` op came; its connection sends the reply, closes, and sets
        :attr:`stopping`."""
        self.stopping = anyio.Event()
        """The server shuts down once this is set, as on its shutdown trigger."""
        self._reloading = anyio.Lock()
        self.metrics = metrics
        """What ``/metrics`` serves, with ``[metrics]`` set."""
        self.intake = Intake(emitter, self.monitor, metrics)
        self.scheduler = Scheduler(emitter, on_fire=self._fired)
        self.config_schedules = config_schedules(config)
        """The ``[[schedule]]`` tables, fixed for the daemon's life (a reload keeps them)."""

    def _fired(self, name: str, event_id: str, outcome: str, deliveries: int) -> None:
        self.monitor.fired(name, event_id, outcome)
        if self.metrics is not None:
            self.metrics.count_fire(name, event_id, deliveries)

    def serve_schedules(self, schedules: list[Schedule]) -> None:
        """Serve the listener files' ``schedules`` and the config's from now on."""
        self.scheduler.replace(self.scheduler.check_names(schedules, self.config_schedules))

    async def answer(self, line: bytes, flush: Flush) -> tuple[bytes, bool] | Subscription:
        """The reply line to one request line, and whether the request may have changed
        what the broker holds (its reply then waits for the store); or for ``subscribe`` the
        new subscription (the caller streams it, then unsubscribes). ``flush`` sends the
        replies owed so far; it is called before an emit waits for room."""
        try:
            request = decode_request(line)
        except ProtocolError as exc:
            return encode_error(exc.request_id, exc.code, exc.problem), False
        except Exception as exc:  # a bug of the reader: one reply lost, not the connection
            logger.error("a request line could not be read: %r", line[:200], exc_info=exc)
            return encode_error(None, ErrorCode.INTERNAL, f"internal error: {exc!r}"), False
        reply = await self._answer(request, flush)
        return reply if isinstance(reply, Subscription) else (reply, OPS[request.op].writes)

    async def _answer(self, request: Request, flush: Flush) -> bytes | Subscription:
        request_id = request.id
        try:
            result = await _HANDLERS[request.op](self, request, flush)
            if isinstance(result, Subscription):
                return result
            return encode_result(request.id, result)
        except Refused as exc:
            if self.metrics is not None:
                self._count_refused(request, exc)
            return encode_error(request_id, exc.code, exc.message, **exc.details)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise  # the client left while an emit waited: the connection ends, quietly
        except EventbusError as exc:  # each that crosses the wire carries its code
            if exc.code is None:
                return self._internal(request, exc)
            if self.metrics is not None and isinstance(exc, BadArgumentsError | QueueFullError):
                self.metrics.count_refused(exc.event_id, exc.code)
            return encode_error(request_id, exc.code, str(exc), **exc.error_fields())
        except Exception as exc:  # a bug here must cost one reply, never the daemon
            return self._internal(request, exc)

    def _internal(self, request: Request, exc: Exception) -> bytes:
        logger.error("request %r failed", (request.id, request.op), exc_info=exc)
        return encode_error(request.id, ErrorCode.INTERNAL, f"internal error: {exc!r}")

    def _count_refused(self, request: Request, exc: Refused) -> None:
        """Count a refused emit for metrics: the event at its ``index``, or the first one it
        did not accept."""
        index = exc.details.get("index", exc.details.get("accepted", 0))
        events = (request.events if isinstance(request, EmitManyRequest)
                  else (request.event,) if isinstance(request, EmitRequest) else ())
        if self.metrics is not None and isinstance(index, int) and 0 <= index < len(events):
            self.metrics.count_refused(events[index].event, exc.code)

    # -- emitting ----------------------------------------------------------------------------

    @_handles("emit")
    async def _emit(self, request: EmitRequest, flush: Flush) -> EmitResult:
        return await self.intake.emit(request, flush)

    @_handles("emit_many")
    async def _emit_many(self, request: EmitManyRequest, flush: Flush) -> EmitManyResult:
        return await self.intake.emit_many(request, flush)

    @_handles("subscribe")
    async def _subscribe(self, request: SubscribeRequest, flush: Flush) -> Subscription:
        return self.monitor.subscribe(request.patterns, request.id)

    # -- reading -----------------------------------------------------------------------------

    @_handles("hello")
    async def _hello(self, request: Request, flush: Flush) -> Hello:
        return Hello(PROTOCOL_VERSION, __version__, os.getpid(),
                     self.config.daemon.max_message_bytes)

    @_handles("listeners")
    async def _listeners(self, request: Request, flush: Flush) -> list[ListenerInfo]:
        return [
            ListenerInfo(
                name=item.name,
                module=item.module.removeprefix(MODULE_PREFIX),
                file=getattr(getattr(item.func, "__code__", None), "co_filename", None),
                events=sorted(item.event_ids),
                retries=options.retries,
                backoff=float(options.backoff),
                timeout=None if math.isinf(options.timeout) else float(options.timeout),
                is_async=item.is_async,
                signature=slot.arguments.text if slot.arguments is not None else None,
                check=options.check,
            )
            for slot in self.emitter.slots
            for item, options in ((slot.listener, slot.options),)
        ]

    @_handles("events")
    async def _events(self, request: Request, flush: Flush) -> list[EventInfo]:
        return event_catalog(self.emitter)

    @_handles("schema")
    async def _schema(self, request: SchemaRequest, flush: Flush) -> dict[str, Any]:
        schema = event_schema(self.emitter, request.event)
        if schema is None:
            raise Refused(ErrorCode.UNROUTED, f"no listener takes event {request.event!r} "
                           "(`eventbus events` lists the events that are taken)")
        return schema

    @_handles("join")
    async def _join(self, request: JoinRequest, flush: Flush) -> Idle:
        with anyio.move_on_after(request.wait):
            await self.emitter.join()
            return Idle(True)
        return Idle(False)

    @_handles("schedules")
    async def _schedules(self, request: Request, flush: Flush) -> list[ScheduleInfo]:
        return self.scheduler.listing()

    @_handles("fire")
    async def _fire(self, request: FireRequest, flush: Flush) -> ScheduleInfo:
        return await self.scheduler.run_now(request.name)

    @_handles("queue")
    async def _queue(self, request: Request, flush: Flush) -> QueueCounts:
        await self.broker.refresh()
        return self.queue()

    def queue(self) -> QueueCounts:
        """The ``queue`` document."""
        stats = self.broker.stats().to_dict()
        paused = {name: iso_time(until) for name, until in self.broker.paused().items()}
        listeners = {name: ListenerCounts(**counts | {"paused": name in paused})
                     for name, counts in stats.pop("listeners").items()}
        return QueueCounts(**stats | {"next_due": iso_time(stats["next_due"])},
                           listeners=listeners, queue_size=self.broker.size,
                           max_queue_bytes=self.broker.max_bytes,
                           max_scheduled=self.broker.max_scheduled, paused=paused)

    @_handles("list")
    async def _list(self, request: ListRequest, flush: Flush) -> list[DeliveryInfo]:
        state = DeliveryState(request.state) if request.state else None
        await self.broker.refresh(listing=True)
        held: Iterable[Delivery] = self.broker.deliveries(state)
        if request.before is not None or request.matching:
            held = _chosen(held, request.before, request.matching)
        newest = (heapq.nlargest(request.limit, held, key=_by_id) if request.limit is not None
                  else sorted(held, key=_by_id, reverse=True))
        found: list[DeliveryInfo] = []
        budget = LIST_REPLY_BYTES
        for delivery in newest:
            budget -= delivery.size + len(delivery.error or "") + 256
            if budget < 0 and found:
                break
            found.append(DeliveryInfo(**delivery.to_dict()))
        return found

    @_handles("show")
    async def _show(self, request: ShowRequest, flush: Flush) -> DeliveryDetail:
        await self.broker.refresh(listing=True)
        delivery = self.broker.find(request.delivery)
        return DeliveryDetail(**delivery.to_dict(), traceback=delivery.traceback)

    @_handles("acknowledge")
    async def _acknowledge(self, request: Request, flush: Flush) -> Acknowledged:
        acknowledged = self.broker.acknowledge()
        for problem in acknowledged:
            logger.warning("an operator acknowledged: %s", problem)
        return Acknowledged(acknowledged)

    @_handles("status")
    async def _status(self, request: Request, flush: Flush) -> Status:
        daemon = self.config.daemon
        broker = self.broker
        # A shared store that does not answer leaves the counts last read; health says why.
        with contextlib.suppress(BackendError):
            await broker.refresh(listing=True)
        journal, backend = broker.status()
        return Status(
            pid=os.getpid(),
            version=__version__,
            protocol=PROTOCOL_VERSION,
            uptime_s=round(time.monotonic() - self.started, 3),
            socket=str(self.socket_path),
            config=str(self.config.path) if self.config.path else None,
            listeners_dir=str(daemon.listeners_dir),
            listeners=len(self.emitter.listeners),
            journal=journal,
            backend=backend,
            metrics=(f"http://{self.config.metrics.listen}/metrics"
                     if self.config.metrics is not None else None),
            threads=ThreadsStatus(self.emitter.threads.max_threads, self.emitter.threads.stuck),
            schedules=SchedulesStatus(len(self.scheduler), iso_time(self.scheduler.next_fire)),
            draining=self.intake.draining,
            health=self.health.report(draining=self.intake.draining,
                                      reload_failure=self.reload_failure),
            queue=self.queue(),
        )

    # -- changing ----------------------------------------------------------------------------

    @_handles("stop")
    async def _stop(self, request: StopRequest, flush: Flush) -> Stopping:
        if not request.drain:
            self.emitter.cut_drain()
        if not self.stop_asked:
            logger.info("stop requested by a client (%s)", "draining first" if request.drain
                        else "without draining: what runs is cut short")
            self.stop_asked = True  # its connection sets stopping once the reply is sent
        dropped = 0 if self.broker.durable else self.broker.stats().scheduled
        return Stopping(stopping=True, drain=request.drain, pid=os.getpid(),
                        dropped_scheduled=dropped)

    @_handles("retry")
    async def _retry(self, request: RetryRequest, flush: Flush) -> Retried:
        chosen = request.deliveries
        if request.matching:
            await self.broker.refresh(listing=True)
            chosen = tuple(delivery.id for delivery in
                           _chosen(self.broker.failed_list, None, request.matching))
            if not chosen:
                return Retried([])
        retried = await self.broker.retry(chosen)
        return Retried([delivery.id for delivery in retried])

    @_handles("purge")
    async def _purge(self, request: PurgeRequest, flush: Flush) -> Purged:
        purged = await self.broker.purge(DeliveryState(request.state))
        return Purged(purged, request.state)

    @_handles("pause")
    async def _pause(self, request: PauseRequest, flush: Flush) -> PauseState:
        self._known(request.listener)
        await self.broker.pause(request.listener, request.until)
        until = iso_time(request.until)
        logger.warning("listener %s paused by a client%s: its deliveries wait",
                       request.listener, f" until {until}" if until else "")
        return PauseState(request.listener, True, until)

    @_handles("resume")
    async def _resume(self, request: ResumeRequest, flush: Flush) -> PauseState:
        self._known(request.listener)
        await self.broker.resume(request.listener)
        logger.warning("listener %s resumed by a client", request.listener)
        return PauseState(request.listener, False, None)

    def _known(self, name: str) -> None:
        known = self.broker.known_listeners()
        if name not in known:
            raise UnknownListenerError(name, known)

    @_handles("reload")
    async def _reload(self, request: Request, flush: Flush) -> ReloadResult:
        return await self.reload()

    async def reload(self) -> ReloadResult:
        """Import the listeners directory afresh, in a worker thread so that a slow file
        does not hold up other clients, and swap the new set in, at once.

        If a file fails (or two listeners share a name) nothing changes: the error is
        logged and raised, naming the file.
        """
        directory = self.config.daemon.listeners_dir
        try:
            async with self._reloading:  # one reload at a time
                loaded = await anyio.to_thread.run_sync(load_modules, directory,
                                                        import_paths(self.config))
            schedules = self.scheduler.check_names(loaded.schedules, self.config_schedules)
            changes = self.emitter.replace_listeners(loaded.listeners)
            self.scheduler.replace(schedules)
            self.intake.unrouted.forget()
        except (LoaderError, ListenerError, ScheduleError) as exc:
            logger.error("reload failed; the %d listeners loaded before keep running: %s",
                         len(self.emitter.listeners), exc)
            self.reload_failure = str(exc)
            raise
        self.reload_failure = None
        logger.info("reloaded %d listeners from %s (added: %s; removed: %s)%s",
                    len(self.emitter.listeners), directory,
                    ", ".join(changes.added) or "none", ", ".join(changes.removed) or "none",
                    f"; {changes.failed} waiting deliveries of removed listeners failed"
                    if changes.failed else "")
        return ReloadResult(len(self.emitter.listeners), list(changes.added),
                            list(changes.removed), list(changes.kept), changes.failed,
                            len(schedules))


def _chosen(deliveries: Iterable[Delivery], before: int | None,
            matching: Matching) -> Iterator[Delivery]:
    for delivery in deliveries:
        if (before is None or delivery.id < before) and matching.admits(
                delivery.listener, delivery.event, delivery.error):
            yield delivery


def _by_id(delivery: Delivery) -> int:
    return delivery.id


if set(_HANDLERS) != set(OPS):  # pragma: no cover - a mistake in this module, caught by CI
    raise RuntimeError(f"handlers {sorted(_HANDLERS)} do not match the ops {sorted(OPS)}")
