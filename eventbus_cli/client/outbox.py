"""An emitter for applications whose listeners run in the daemon: :class:`DaemonEmitter`.

``emit`` never waits on the socket: it puts the event in a bounded buffer and returns; a
background task sends the buffer to the daemon in pipelined ``emit_many`` batches. Each event
carries a dedupe key made here, so a batch sent again after a lost connection (the daemon
restarting, say) is answered as duplicates for what the daemon had already taken: every
event is queued once.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from itertools import count
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.abc
import msgspec

from ..errors import (
    EmitterNotRunningError,
    EventbusError,
    ProtocolError,
    QueueFullError,
    RemoteError,
)
from ..names import validate_event_id
from ..plural import counted
from ..protocol.event import ordering_of
from .aio import AsyncClient
from .calls import daemon_socket, trace_fields
from .spill import Spill

if TYPE_CHECKING:
    from .relay import Relay

__all__ = ("DaemonEmitter",)

logger = logging.getLogger("eventbus.outbox")

_BATCH_EVENTS = 500
_BATCH_BYTES = 512 * 1024  # at most; half the daemon's max_message_bytes where that is less
_ENVELOPE = 128  # bytes of an emit_many line around its one event, at most
_WINDOW = 4  # batches in flight at once
_BACKOFF_FIRST, _BACKOFF_MAX = 0.05, 2.0
_TELL_EVERY = 30.0  # seconds between two warnings while sends keep failing


class _Event(msgspec.Struct, omit_defaults=True):
    event: str
    args: Sequence[Any]
    kwargs: dict[str, Any]
    key: str
    priority: str | None = None
    order_key: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None


class DaemonEmitter:
    """Emit to the daemon without blocking: ``async with DaemonEmitter() as bus:
    bus.emit("user_created", email=...)``.

    The socket is ``socket`` if given, else the one the CLI would use (EVENTBUS_SOCKET, or the
    ``eventbus.toml`` of the working directory or a parent). ``emit`` raises
    :class:`QueueFullError` when ``buffer_size`` events (or ``buffer_bytes``) wait to be sent:
    while the daemon is down the buffer fills, and nothing is dropped silently. Batches are
    sized from the daemon's ``max_message_bytes``, and once it is known an event larger than
    it raises ``ValueError`` at ``emit``. An event the daemon refuses for good (its arguments
    do not fit a listener, it can never fit the queue; with ``require_listener``, no listener
    takes it) is logged at ERROR with its id and why, and the rest go on. Leaving the context
    sends what is left, for at most ``flush_timeout`` seconds; with ``spill`` (a file path)
    every buffered event is also in that file, and what is left there is sent at the next
    start, even after a crash; without it, what is left is logged at ERROR, an event a line,
    and :attr:`unsent` holds it.
    """

    def __init__(self, socket: Path | str | None = None, *, buffer_size: int = 10_000,
                 buffer_bytes: int = 64 << 20, flush_timeout: float = 10.0,
                 relay: Relay | None = None, require_listener: bool = False,
                 spill: Path | str | None = None) -> None:
        self.socket_path, self._trusted = daemon_socket(socket)
        self.buffer_size = buffer_size
        self.buffer_bytes = buffer_bytes
        self.flush_timeout = flush_timeout
        self._buffer: deque[bytes] = deque()  # encoded events, oldest first: the one owner
        self._bytes = 0
        self._keys = count(1)
        self._prefix = f"{os.getpid()}-{os.urandom(6).hex()}-"  # unique to this emitter
        self._wake = anyio.Event()  # set by emit: there is something to send
        self._emptied = anyio.Event()  # set by the sender when the buffer empties
        self._encode = msgspec.json.Encoder().encode
        self._running = False
        self._pause: float | None = None  # the backoff, while sends fail
        self._failing_since = self._told_at = 0.0  # time.monotonic(): when sends began to
        # fail, and when that was last said
        self._tasks: anyio.abc.TaskGroup | None = None
        self.sent = 0
        """Events the daemon acknowledged, each once (a resend answered as a duplicate
        acknowledges an event whose first answer was lost with the connection)."""
        self.duplicates = 0
        """Events the daemon answered as duplicates: sent again after a lost connection,
        they had been taken already."""
        self.refused = 0
        """Events the daemon refused for good; each was logged."""
        self.unsent: list[bytes] = []
        """Events still unsent when the flush timeout ran out on exit, as JSON lines."""
        self.relay = relay
        """The outbox relay this emitter runs while it runs (see :class:`Relay`)."""
        self.spill = Spill(spill) if spill is not None else None
        """Where the buffer is kept as well, so a stop or a crash loses none of it."""
        self._limit = _BATCH_BYTES
        """The most bytes a batch may hold: from the daemon's max_message_bytes, once known."""
        self._max_event: int | None = None  # the largest event the daemon takes, once known
        self.require_listener = require_listener
        """Whether the daemon refuses (and this emitter logs and drops) an event no listener
        takes, rather than counting it as unrouted."""

    async def __aenter__(self) -> Self:
        if self.spill is not None:
            for line in self.spill.open():
                self._buffer.append(line)
                self._bytes += len(line)
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._send_forever)
        if self.relay is not None:
            await self._tasks.start(self.relay.run)
        self._running = True
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._running = False
        assert self._tasks is not None
        with anyio.move_on_after(self.flush_timeout):
            while self._buffer:
                self._emptied = anyio.Event()
                await self._emptied.wait()
        self._tasks.cancel_scope.cancel()
        await self._tasks.__aexit__(None, None, None)
        if self.spill is not None:
            self.spill.close()
        if not self._buffer:
            return
        self.unsent = list(self._buffer)
        if self.spill is not None:
            logger.warning("%s not sent to the daemon on %s within the flush timeout of %gs: "
                           "kept in %s, sent at the next start", counted(len(self.unsent),
                           "event"), self.socket_path, self.flush_timeout, self.spill.path)
            return
        logger.error("%s not sent to the daemon on %s within the flush timeout of %gs, "
                     "and lost (a spill file would keep them); each follows",
                     counted(len(self.unsent), "event"), self.socket_path, self.flush_timeout)
        for line in self.unsent:
            logger.error("lost: %s", line[:2000].decode(errors="replace"))

    @property
    def pending(self) -> int:
        """Events in the buffer, not yet accepted by the daemon."""
        return len(self._buffer)

    def emit(self, event_id: str, /, *args: Any, priority: str | None = None,
             order_key: str | None = None, **kwargs: Any) -> None:
        """Buffer one event for the daemon; return at once. Raises
        :class:`InvalidEventIdError` for a bad id, ``TypeError`` for arguments that are not
        JSON values, ``ValueError`` for a bad ``priority`` or ``order_key`` (ours, as on
        :meth:`Client.emit`, never the listeners'), and :class:`QueueFullError` when the
        buffer is full."""
        if not self._running:
            raise EmitterNotRunningError("not running", "DaemonEmitter")
        validate_event_id(event_id)
        if priority is not None or order_key is not None:
            try:
                ordering_of(priority, order_key)
            except ProtocolError as exc:
                raise ValueError(f"event {event_id!r}: {exc.problem}") from None
        try:
            key = self._prefix + str(next(self._keys))
            line = self._encode(_Event(event_id, args, kwargs, key, priority, order_key,
                                       **trace_fields()))
        except (TypeError, msgspec.EncodeError) as exc:
            raise TypeError(f"event {event_id!r}: the arguments must be JSON values ({exc})"
                            ) from None
        if len(self._buffer) >= self.buffer_size:
            raise QueueFullError(event_id, 1, self.buffer_size, unit="buffered events")
        if self._max_event is not None and len(line) > self._max_event:
            raise ValueError(f"event {event_id!r} takes {len(line)} bytes encoded, and the "
                             f"daemon takes at most {self._max_event} (its max_message_bytes); "
                             "send less, or raise max_message_bytes")
        if self._bytes + len(line) > self.buffer_bytes:
            raise QueueFullError(event_id, self._bytes + len(line), self.buffer_bytes,
                                 unit="buffered bytes")
        self._buffer.append(line)
        self._bytes += len(line)
        if self.spill is not None:
            self.spill.add(line)
        self._wake.set()

    async def _send_forever(self) -> None:
        while True:
            if not self._buffer:
                self._wake = anyio.Event()
                await self._wake.wait()
            try:
                async with AsyncClient(self.socket_path, trusted_uids=self._trusted) as client:
                    limit = (await client.hello()).max_message_bytes
                    self._limit = min(_BATCH_BYTES, limit // 2)
                    self._max_event = limit - _ENVELOPE
                    await self._send_while_connected(client)
            except EventbusError as exc:
                now = time.monotonic()
                if self._pause is None:  # the first failure of a run of them
                    self._pause = _BACKOFF_FIRST
                    self._failing_since = self._told_at = now
                    logger.warning("cannot send events to the daemon (%s); %s wait, trying "
                                   "again with backoff", exc, counted(len(self._buffer),
                                                                      "event"))
                elif now - self._told_at >= _TELL_EVERY:  # said again while it lasts
                    self._told_at = now
                    logger.warning("still cannot send events to the daemon (%s) after %.0fs; "
                                   "%s wait", exc, now - self._failing_since,
                                   counted(len(self._buffer), "event"))
                await anyio.sleep(self._pause)
                self._pause = min(self._pause * 2, _BACKOFF_MAX)

    async def _send_while_connected(self, client: AsyncClient) -> None:
        while True:
            if not self._buffer:
                self._wake = anyio.Event()
                await self._wake.wait()
            batches = self._next_batches()
            outcomes: list[BaseException | dict[str, int] | None] = [None] * len(batches)
            async with anyio.create_task_group() as tasks:
                for index, batch in enumerate(batches):
                    tasks.start_soon(_send, client, batch, outcomes, index,
                                     self.require_listener)
            lost = self._settle(batches, outcomes)
            if lost is not None:
                raise lost

    def _next_batches(self) -> list[list[bytes]]:
        """Up to ``_WINDOW`` batches from the front of the buffer (left in it until done)."""
        batches: list[list[bytes]] = []
        batch: list[bytes] = []
        size = 0
        for line in self._buffer:
            if batch and (len(batch) >= _BATCH_EVENTS or size + len(line) > self._limit):
                batches.append(batch)
                if len(batches) == _WINDOW:
                    return batches
                batch, size = [], 0
            batch.append(line)
            size += len(line) + 1
        if batch:
            batches.append(batch)
        return batches

    def _settle(self, batches: list[list[bytes]],
                outcomes: Sequence[BaseException | dict[str, int] | None]) -> EventbusError | None:
        """Take out of the buffer what the daemon took or refused for good; keep the rest
        (in order) to send again. Return the error to reconnect on, if any."""
        taken = sum(len(batch) for batch in batches)
        head = [self._buffer.popleft() for _ in range(taken)]
        keep: list[bytes] = []
        reconnect: EventbusError | None = None
        start = 0
        for batch, outcome in zip(batches, outcomes, strict=True):
            lines = head[start:start + len(batch)]
            start += len(batch)
            if isinstance(outcome, dict):
                self.duplicates += int(outcome.get("duplicates", 0))
                self.sent += int(outcome.get("accepted", 0))
                if self._pause is not None:
                    self._pause = None
                    logger.info("sending events to the daemon on %s again, after %.0fs: %s "
                                "that waited go now", self.socket_path,
                                time.monotonic() - self._failing_since,
                                counted(len(self._buffer) + taken, "event"))
                continue
            done = 0
            if isinstance(outcome, RemoteError):
                done = int(outcome.details.get("accepted", 0))  # type: ignore[call-overload]
                self.duplicates += int(outcome.details.get("duplicates", 0))  # type: ignore[call-overload]
                index = outcome.details.get("index")
                for_good = outcome.for_good  # logged and dropped: the rest go on
                if for_good and isinstance(index, int):
                    self._log_refused(lines[index], outcome)
                    lines = lines[:index] + lines[index + 1:]
                    done = min(done, index)
                elif for_good and len(lines) == 1:
                    self._log_refused(lines[0], outcome)
                    lines = []
                else:
                    reconnect = reconnect or EventbusError(str(outcome))
            elif isinstance(outcome, EventbusError):
                reconnect = reconnect or outcome
            self.sent += done
            keep += lines[done:]
        self._buffer.extendleft(reversed(keep))
        self._bytes -= sum(map(len, head)) - sum(map(len, keep))
        if self.spill is not None:
            self.spill.sent(self._buffer, self._bytes)
        if not self._buffer:
            self._emptied.set()
        return reconnect

    def _log_refused(self, line: bytes, error: RemoteError) -> None:
        self.refused += 1
        event = msgspec.json.decode(line).get("event")
        why = error.message.removesuffix("; the batch was not accepted")
        if why.startswith("event ") and " of the batch: " in why:
            why = why.partition(" of the batch: ")[2]
        if self.spill is not None:  # kept for an operator: `eventbus emit --file` resends it
            kept = self.spill.set_aside(line)
            logger.error("the daemon refused event %r (set aside in %s; the others go on): "
                         "%s", event, kept, why)
            return
        logger.error("the daemon refused event %r (dropped; the others go on): %s; the event: "
                     "%s", event, why, line[:2000].decode(errors="replace"))


async def _send(client: AsyncClient, batch: list[bytes],
                outcomes: list[BaseException | dict[str, int] | None], index: int,
                require_listener: bool) -> None:
    """Send one batch; put its counts, or why it failed, in ``outcomes[index]``."""
    try:
        outcomes[index] = await client.emit_batch(batch, require_listener=require_listener)
    except EventbusError as exc:  # RemoteError included
        outcomes[index] = exc
