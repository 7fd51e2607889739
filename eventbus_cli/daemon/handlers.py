"""What the daemon does for each request op, apart from any socket: request in, reply out."""

from __future__ import annotations

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
from ..bus.delivery import Delivery, DeliveryState
from ..bus.emitter import SimpleEventEmitter
from ..config import Config
from ..errors import (
    DeliveryError,
    EmitterNotRunningError,
    ListenerError,
    LoaderError,
    ProtocolError,
    QueueFullError,
)
from ..protocol import (
    PROTOCOL_VERSION,
    ErrorCode,
    Request,
    decode_request,
    encode_error,
    encode_result,
)
from .health import Health
from .loader import MODULE_PREFIX, load_listeners
from .monitor import Monitor, Subscription

__all__ = ("QUEUE_WAIT_SECONDS", "Operations")

logger = logging.getLogger("eventbus.daemon")

QUEUE_WAIT_SECONDS = 10.0
"""How long an emit that finds the queue full waits for room before it gets ``queue_full``."""

Flush = Callable[[], Awaitable[None]]


class Operations:
    """Answers request lines for one daemon: its config, its emitter, and how long it has run."""

    def __init__(self, config: Config, emitter: SimpleEventEmitter, socket_path: Path) -> None:
        self.config = config
        self.emitter = emitter
        self.socket_path = socket_path
        self.broker = emitter.broker
        self.monitor = Monitor(emitter)
        self.health = Health(emitter)
        self.started = time.monotonic()
        self.draining = False
        self._readers: dict[str, Callable[[Request], Any]] = {
            "hello": self._hello,
            "listeners": self._listeners,
            "queue": self._queue,
            "list": self._list,
            "show": self._show,
            "retry": self._retry,
            "purge": self._purge,
            "reload": self._reload,
            "status": self._status,
        }

    async def answer(self, line: bytes, flush: Flush) -> bytes | Subscription:
        """The reply line to one request line, or for ``subscribe`` the new subscription
        (the caller streams it, then unsubscribes). ``flush`` sends the replies owed so far;
        it is called before an emit waits for room, so earlier replies are not held up."""
        request_id: object = None
        try:
            request = decode_request(line)
            request_id = request.id
            if request.wait is not None or request.require_listener:
                return encode_result(request.id, await self._emit_one(request, flush))
            if request.events:
                return encode_result(request.id, await self._emit(request, flush))
            if request.op == "emit_many":
                return encode_result(request.id, {"accepted": 0, "deliveries": 0, "unrouted": 0})
            if request.op == "subscribe":
                return self.monitor.subscribe(request.patterns, request.id)
            return encode_result(request.id, self._readers[request.op](request))
        except ProtocolError as exc:
            return encode_error(exc.request_id, exc.code, exc.problem)
        except _EmitFailed as exc:
            return encode_error(request_id, exc.code, exc.message, accepted=exc.accepted)
        except DeliveryError as exc:
            code = ErrorCode.NOT_FOUND if exc.missing else ErrorCode.CONFLICT
            return encode_error(request_id, code, str(exc), delivery=exc.delivery_id)
        except QueueFullError as exc:
            return encode_error(request_id, ErrorCode.QUEUE_FULL, str(exc))
        except LoaderError as exc:
            return encode_error(request_id, ErrorCode.RELOAD_FAILED, str(exc),
                                file=str(exc.file), line=exc.line)
        except ListenerError as exc:
            return encode_error(request_id, ErrorCode.RELOAD_FAILED, str(exc))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise  # the client left while an emit waited: the connection ends, quietly
        except Exception as exc:  # a bug here must cost one reply, never the daemon
            logger.exception("request %r failed", line[:200])
            return encode_error(request_id, ErrorCode.INTERNAL, f"internal error: {exc!r}")

    async def settled(self) -> None:
        """Return once what was accepted so far is committed to the journal, if there is one:
        replies are sent only after this."""
        await self.broker.settled()

    async def _emit_one(self, request: Request, flush: Flush) -> dict[str, Any]:
        """An emit with ``require_listener`` or ``wait``."""
        message = request.events[0]
        if request.require_listener and not self.emitter.listeners_for(message.event):
            problem = (f"no listener matches event {message.event!r}, so it was not emitted "
                       "(`eventbus listeners list` shows what is loaded)")
            raise _EmitFailed(ErrorCode.UNROUTED, problem, 0)
        if request.wait is None:
            return await self._emit(request, flush)
        queued: list[Delivery] = []
        result = await self._emit(request, flush, queued)
        # No await between the emit and this: none of its deliveries can have ended unseen.
        return {**result, "results": await self.monitor.wait(queued, request.wait)}

    async def _emit(self, request: Request, flush: Flush,
                    queued: list[Delivery] | None = None) -> dict[str, Any]:
        """Emit the request's events in order; collect their deliveries into ``queued``."""
        emitter = self.emitter
        accepted = deliveries = unrouted = 0
        for message in request.events:
            if self.draining:
                raise _EmitFailed(ErrorCode.SHUTTING_DOWN, _SHUTTING_DOWN, accepted)
            try:
                made = emitter.submit(message.event, *message.args, **message.kwargs)
            except QueueFullError as exc:
                if exc.needed > exc.queue_size:
                    raise _EmitFailed(ErrorCode.QUEUE_FULL, str(exc), accepted) from None
                made = await self._emit_when_room(message.event, message.args, message.kwargs,
                                                  flush, accepted)
            except EmitterNotRunningError:
                raise _EmitFailed(ErrorCode.SHUTTING_DOWN, _SHUTTING_DOWN, accepted) from None
            if queued is not None:
                queued += made
            accepted += 1
            deliveries += len(made)
            unrouted += not made
        if request.op == "emit":
            return {"event_id": request.events[0].event, "deliveries": deliveries}
        return {"accepted": accepted, "deliveries": deliveries, "unrouted": unrouted}

    async def _emit_when_room(
        self, event: str, args: list[Any], kwargs: dict[str, Any], flush: Flush, accepted: int
    ) -> Sequence[Delivery]:
        await flush()
        try:
            with anyio.fail_after(QUEUE_WAIT_SECONDS):
                return await self.emitter.asubmit(event, *args, **kwargs)
        except TimeoutError:
            problem = (f"queue full: event {event!r} found no room within {QUEUE_WAIT_SECONDS:g}s "
                       "and was not accepted; emit it again later, or raise queue_size")
            raise _EmitFailed(ErrorCode.QUEUE_FULL, problem, accepted) from None
        except EmitterNotRunningError:
            raise _EmitFailed(ErrorCode.SHUTTING_DOWN, _SHUTTING_DOWN, accepted) from None

    def _hello(self, request: Request) -> dict[str, Any]:
        return {"protocol": PROTOCOL_VERSION, "version": __version__, "pid": os.getpid(),
                "max_message_bytes": self.config.daemon.max_message_bytes}

    def _listeners(self, request: Request) -> list[dict[str, Any]]:
        return [
            {
                "name": item.name,
                "module": item.module.removeprefix(MODULE_PREFIX),
                "file": getattr(getattr(item.fn, "__code__", None), "co_filename", None),
                "events": sorted(item.event_ids),
                "retries": options.retries,
                "backoff": options.backoff,
                "timeout": None if math.isinf(options.timeout) else options.timeout,
                "async": item.is_async,
            }
            for item, options in self.emitter.listener_options()
        ]

    def _queue(self, request: Request) -> dict[str, Any]:
        return {**self.emitter.stats().to_dict(), "queue_size": self.broker.size}

    def _list(self, request: Request) -> list[dict[str, Any]]:
        state = DeliveryState(request.state) if request.state else None
        found: list[dict[str, Any]] = []
        for delivery in self.emitter.deliveries(state):
            if request.limit is not None and len(found) >= request.limit:
                break
            found.append(delivery.to_dict())
        return found

    def _show(self, request: Request) -> dict[str, Any]:
        assert request.deliveries
        delivery = self.broker.find(request.deliveries[0])
        return {**delivery.to_dict(), "traceback": delivery.traceback}

    def _retry(self, request: Request) -> dict[str, Any]:
        retried = self.emitter.retry(request.deliveries)
        return {"retried": [delivery.id for delivery in retried]}

    def _purge(self, request: Request) -> dict[str, Any]:
        assert request.state is not None
        return {"purged": self.emitter.purge(DeliveryState(request.state)), "state": request.state}

    def _reload(self, request: Request) -> dict[str, Any]:
        return self.reload()

    def reload(self) -> dict[str, Any]:
        """Import the listeners directory afresh and swap the new set in, at once.

        If a file fails (or two listeners share a name) nothing changes: the error is
        logged and raised, naming the file.
        """
        directory = self.config.daemon.listeners_dir
        try:
            changes = self.emitter.replace_listeners(load_listeners(directory))
        except (LoaderError, ListenerError) as exc:
            logger.error("reload failed; the %d listeners loaded before keep running: %s",
                         len(self.emitter.listeners), exc)
            raise
        logger.info("reloaded %d listeners from %s (added: %s; removed: %s)%s",
                    len(self.emitter.listeners), directory.absolute(),
                    ", ".join(changes.added) or "none", ", ".join(changes.removed) or "none",
                    f"; {changes.failed} waiting deliveries of removed listeners failed"
                    if changes.failed else "")
        return {"listeners": len(self.emitter.listeners), **changes._asdict()}

    def _status(self, request: Request) -> dict[str, Any]:
        daemon = self.config.daemon
        return {
            "pid": os.getpid(),
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "socket": str(self.socket_path),
            "config": str(self.config.path.absolute()) if self.config.path else None,
            "listeners_dir": str(daemon.listeners_dir.absolute()),
            "listeners": len(self.emitter.listeners),
            "journal": {"path": str(journal.path.absolute()), "bytes": journal.size_on_disk()}
            if isinstance(journal := self.broker, JournalBroker) else None,
            "draining": self.draining,
            "health": self.health.report(draining=self.draining),
            "queue": self._queue(request),
        }


_SHUTTING_DOWN = "the daemon is shutting down and takes no more events; emit again once it is back"


class _EmitFailed(Exception):
    def __init__(self, code: str, message: str, accepted: int) -> None:
        self.code = code
        self.message = message
        self.accepted = accepted
