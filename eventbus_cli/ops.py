"""What the daemon does for each request op, apart from any socket: request in, reply out."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from . import __version__
from .config import Config
from .delivery import DeliveryState
from .emitter import SimpleEventEmitter
from .errors import EmitterNotRunningError, ProtocolError, QueueFullError
from .loader import MODULE_PREFIX
from .protocol import (
    PROTOCOL_VERSION,
    ErrorCode,
    Request,
    decode_request,
    encode_error,
    encode_result,
)

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
        self.started = time.monotonic()
        self.draining = False
        self._readers: dict[str, Callable[[Request], Any]] = {
            "hello": self._hello,
            "listeners": self._listeners,
            "queue": self._queue,
            "list": self._list,
            "status": self._status,
        }

    async def answer(self, line: bytes, flush: Flush) -> bytes:
        """The reply line to one request line. ``flush`` sends the replies owed so far; it is
        called before an emit waits for room, so earlier replies are not held up."""
        request_id: object = None
        try:
            request = decode_request(line)
            request_id = request.id
            if request.events:
                return encode_result(request.id, await self._emit(request, flush))
            if request.op == "emit_many":
                return encode_result(request.id, {"accepted": 0, "deliveries": 0, "unrouted": 0})
            return encode_result(request.id, self._readers[request.op](request))
        except ProtocolError as exc:
            return encode_error(exc.request_id, exc.code, exc.problem)
        except _EmitFailed as exc:
            return encode_error(request_id, exc.code, exc.message, accepted=exc.accepted)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise  # the client left while an emit waited: the connection ends, quietly
        except Exception as exc:  # a bug here must cost one reply, never the daemon
            logger.exception("request %r failed", line[:200])
            return encode_error(request_id, ErrorCode.INTERNAL, f"internal error: {exc!r}")

    async def _emit(self, request: Request, flush: Flush) -> dict[str, Any]:
        emitter = self.emitter
        accepted = deliveries = unrouted = 0
        for message in request.events:
            if self.draining:
                raise _EmitFailed(ErrorCode.SHUTTING_DOWN, _SHUTTING_DOWN, accepted)
            try:
                count = emitter.emit(message.event, *message.args, **message.kwargs)
            except QueueFullError as exc:
                if exc.needed > exc.queue_size:
                    raise _EmitFailed(ErrorCode.QUEUE_FULL, str(exc), accepted) from None
                count = await self._emit_when_room(message.event, message.args, message.kwargs,
                                                   flush, accepted)
            except EmitterNotRunningError:
                raise _EmitFailed(ErrorCode.SHUTTING_DOWN, _SHUTTING_DOWN, accepted) from None
            accepted += 1
            deliveries += count
            unrouted += not count
        if request.op == "emit":
            return {"event_id": request.events[0].event, "deliveries": deliveries}
        return {"accepted": accepted, "deliveries": deliveries, "unrouted": unrouted}

    async def _emit_when_room(
        self, event: str, args: list[Any], kwargs: dict[str, Any], flush: Flush, accepted: int
    ) -> int:
        await flush()
        try:
            with anyio.fail_after(QUEUE_WAIT_SECONDS):
                return await self.emitter.aemit(event, *args, **kwargs)
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
        return {**self.emitter.stats().to_dict(), "queue_size": self.emitter.queue_size}

    def _list(self, request: Request) -> list[dict[str, Any]]:
        state = DeliveryState(request.state) if request.state else None
        found: list[dict[str, Any]] = []
        for delivery in self.emitter.deliveries(state):
            if request.limit is not None and len(found) >= request.limit:
                break
            found.append(delivery.to_dict())
        return found

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
            "journal": None,
            "draining": self.draining,
            "queue": self._queue(request),
        }


_SHUTTING_DOWN = "the daemon is shutting down and takes no more events; emit again once it is back"


class _EmitFailed(Exception):
    def __init__(self, code: str, message: str, accepted: int) -> None:
        self.code = code
        self.message = message
        self.accepted = accepted
