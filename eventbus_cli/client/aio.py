"""The async client of the daemon, on anyio (asyncio or trio): :class:`AsyncClient`.

Requests are pipelined: any number of tasks may share one client, each ``await`` sends its
request at once and a reader task hands every reply to the task that asked for it by id.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import anyio
import anyio.abc

from ..errors import EventbusError, RemoteError
from ..peers import check_server
from ..protocol.codec import Reply, decode_reply, encode_request
from . import ops
from .calls import (
    BulkResult,
    ReplyLines,
    daemon_socket,
    no_daemon,
    result_of,
)
from .ops import async_op
from .sync import DEFAULT_TIMEOUT

__all__ = ("AsyncClient",)

_BATCH_EVENTS = 1000


class _Waiter:
    __slots__ = ("done", "error", "reply")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.reply: Reply | None = None
        self.error: EventbusError | None = None


class AsyncClient:
    """A connection to a daemon: ``async with AsyncClient() as client`` (the socket found as
    :class:`~eventbus_cli.Client` finds it, or a path). Methods are those of
    :class:`~eventbus_cli.Client`, awaited; many tasks may call them at once.

    Each call waits at most ``timeout`` seconds for its reply. A lost connection fails every
    call waiting on it with :class:`EventbusError`; open a new client to go on.
    """

    def __init__(self, socket_path: Path | str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, trusted_uids: Iterable[int] = ()) -> None:
        if socket_path is None:  # as the CLI finds it: EVENTBUS_SOCKET, else eventbus.toml
            socket_path, found = daemon_socket(None)
            trusted_uids = (*trusted_uids, *found)
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._trusted = tuple(trusted_uids)
        self._stream: anyio.abc.SocketStream | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._send_lock = anyio.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, _Waiter] = {}
        self._lost: EventbusError | None = None
        self._records: anyio.abc.ObjectSendStream[dict[str, Any]] | None = None
        self._subscription: anyio.abc.ObjectReceiveStream[dict[str, Any]] | None = None

    async def __aenter__(self) -> Self:
        try:
            self._stream = await anyio.connect_unix(self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise no_daemon(self.socket_path, exc) from None
        except OSError as exc:
            raise EventbusError(f"cannot connect to {self.socket_path}: {exc}") from exc
        try:
            check_server(self._stream.extra(anyio.abc.SocketAttribute.raw_socket),
                         str(self.socket_path), self._trusted)
        except EventbusError:
            await self._stream.aclose()
            raise
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._read)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tasks is not None:
                tasks, self._tasks = self._tasks, None
                tasks.cancel_scope.cancel()
                await tasks.__aexit__(None, None, None)
            self._fail_waiting(EventbusError(f"the client of {self.socket_path} was closed"))
        finally:
            with anyio.CancelScope(shield=True):  # closed even when the caller is cancelled
                if self._stream is not None:
                    await self._stream.aclose()
                for records in (self._records, self._subscription):
                    if records is not None:
                        await records.aclose()

    async def call(self, op: str, /, **fields: Any) -> Any:
        """Send one request of ``op`` (see ``protocol.OPS``) and return its result."""
        extra = float(fields.get("timeout") or 0)  # a wait or join: the daemon's own bound
        return await self._request(lambda request_id: encode_request(request_id, op, **fields),
                                   extra)

    async def emit_batch(self, lines: Sequence[bytes], *, check: bool = True,
                         require_listener: bool = False) -> dict[str, int]:
        """Send events given as JSON lines (``{"event", "args", "kwargs", "key"}``) in one
        ``emit_many`` request; return its counts (``accepted``, ``deliveries``,
        ``unrouted``, ``duplicates``). The batch must fit the daemon's
        ``max_message_bytes``. A refusal raises its RemoteError, whose ``details`` say how
        many events were ``accepted`` before it (and the ``index`` of one that does not fit;
        with ``require_listener``, of one no listener takes)."""
        tail = (b"" if check else b',"check":false') + (
            b',"require_listener":true' if require_listener else b"")
        body = b",".join(lines)
        return cast(dict[str, int], await self._request(
            lambda request_id: b'{"id":%d,"op":"emit_many","events":[%s]%s}\n'
            % (request_id, body, tail)))

    async def _request(self, encode: Callable[[int], bytes], extra: float = 0.0) -> Any:
        if self._stream is None or self._tasks is None:
            raise EventbusError("use the client inside `async with AsyncClient(...)`")
        if self._lost is not None:
            raise self._lost
        request_id = next(self._ids)
        waiter = self._waiting[request_id] = _Waiter()
        try:
            with anyio.fail_after(self.timeout + extra):
                async with self._send_lock:
                    try:
                        await self._stream.send(encode(request_id))
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError,
                            OSError) as exc:
                        raise EventbusError(f"lost the connection to {self.socket_path}: "
                                            f"{exc}") from exc
                await waiter.done.wait()
        except TimeoutError:
            raise EventbusError(f"no reply from the daemon on {self.socket_path} in time"
                                ) from None
        finally:
            self._waiting.pop(request_id, None)
        if waiter.error is not None:
            raise waiter.error
        assert waiter.reply is not None
        return result_of(waiter.reply)

    async def _read(self) -> None:
        assert self._stream is not None
        lines = ReplyLines()
        try:
            while True:
                try:
                    lines.feed(await self._stream.receive(1 << 20))
                except anyio.EndOfStream:
                    raise EventbusError(f"the daemon on {self.socket_path} closed the "
                                        "connection") from None
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                    raise EventbusError(f"lost the connection to {self.socket_path}: "
                                        f"{exc}") from exc
                while (line := lines.next()) is not None:
                    await self._dispatch(line)
        except EventbusError as lost:
            self._fail_waiting(lost)
            if self._records is not None:
                await self._records.aclose()

    def _fail_waiting(self, lost: EventbusError) -> None:
        """Fail every call waiting for a reply, and every call from now on, with ``lost``."""
        self._lost = self._lost or lost
        for waiter in self._waiting.values():
            if not waiter.done.is_set():  # a reply that came before the loss stands
                waiter.error = self._lost
                waiter.done.set()

    async def _dispatch(self, line: bytes) -> None:
        # The daemon writes every reply with "id" first; a subscription's records have none.
        if self._records is not None and not line.startswith(b'{"id"'):
            await self._records.send(json.loads(line))  # waits for a slow reader: no bound
            return                                      # is broken, the daemon skips for it
        reply = decode_reply(line)
        waiter = self._waiting.get(reply.id) if isinstance(reply.id, int) else None
        if waiter is not None:  # else its caller gave up waiting: drop it
            waiter.reply = reply
            waiter.done.set()

    # -- the ops, each written once in ops.py ----------------------------------------------

    submit = async_op(ops.submit)
    emit = async_op(ops.emit)
    emit_in = async_op(ops.emit_in)
    emit_at = async_op(ops.emit_at)
    wait = async_op(ops.wait)
    join = async_op(ops.join)
    hello = async_op(ops.hello)
    listeners = async_op(ops.listeners)
    queue = async_op(ops.queue)
    deliveries = async_op(ops.deliveries)
    delivery = async_op(ops.delivery)
    status = async_op(ops.status)
    acknowledge = async_op(ops.acknowledge)
    schedules = async_op(ops.schedules)
    events = async_op(ops.events)
    schema = async_op(ops.schema)
    fire = async_op(ops.fire)
    retry = async_op(ops.retry)
    purge = async_op(ops.purge)
    pause = async_op(ops.pause)
    resume = async_op(ops.resume)
    reload = async_op(ops.reload)
    stop = async_op(ops.stop)

    async def subscribe(self, patterns: Sequence[str] = ()) -> AsyncIterator[dict[str, Any]]:
        """Subscribe to the daemon's live records (see :meth:`Client.subscribe`); the
        iterator returned yields each as it comes, until the daemon goes away."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](1000)
        self._records, self._subscription = send, receive
        await self.call("subscribe", patterns=list(patterns))
        return receive

    async def emit_many(self, events: Iterable[Mapping[str, Any]]) -> BulkResult:
        """Emit events given as ``{"event", "args", "kwargs", "key"}`` mappings, in batches
        of up to 1,000, stopping at the first batch refused (see :class:`BulkResult`)."""
        items = [dict(event) for event in events]
        accepted = deliveries = unrouted = duplicates = 0
        for start in range(0, len(items), _BATCH_EVENTS):
            batch = items[start:start + _BATCH_EVENTS]
            try:
                counts = await self.call("emit_many", events=batch)
            except RemoteError as exc:
                taken = int(exc.details.get("accepted", 0))  # type: ignore[call-overload]
                return BulkResult(len(items), accepted + taken, deliveries, unrouted, exc,
                                  ((start + taken, len(items)),), duplicates)
            accepted += int(counts["accepted"])
            deliveries += int(counts["deliveries"])
            unrouted += int(counts["unrouted"])
            duplicates += int(counts.get("duplicates", 0))
        return BulkResult(len(items), accepted, deliveries, unrouted, None, (), duplicates)
