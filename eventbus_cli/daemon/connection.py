"""One client connection: check who is calling, read request lines, answer them in order."""

from __future__ import annotations

import contextlib
import logging
import socket
import time

import anyio
import anyio.abc
import anyio.lowlevel

from ..errors import BackendError, ErrorCode, JournalError
from ..peers import peer_of
from ..protocol.codec import LineSplitter, decode_reply, encode_error, encode_result
from ..protocol.results import Subscribed
from .accepting import accept_forever
from .handlers import Operations
from .monitor import Subscription

__all__ = ("Connection", "Connections", "serve_connection")

logger = logging.getLogger("eventbus.daemon")

_READ_SIZE = 256 * 1024
_REFUSED_LINGER = 5.0  # seconds a refused peer has to read its refusal and close
_REFUSED_READS = 16  # reads of a refused peer's input, at most, before it is cut off
_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


class Connection:
    """One open connection, as :class:`Connections` sees it: how long it has waited for a
    complete request (None while it is answered, streams a subscription, or waits for an
    emit's deliveries), and how long it may."""

    __slots__ = ("expired", "limit", "socket", "streaming", "waiting_since")

    def __init__(self, stream: anyio.abc.SocketStream, limit: float) -> None:
        self.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        self.limit = limit
        self.waiting_since: float | None = time.monotonic()
        self.expired = False
        self.streaming = False

    def expire(self) -> None:
        """End the wait for a request: its pending read returns at once, as at the end of
        the stream (a cancelled read can make anyio log an error on asyncio)."""
        self.expired = True
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RD)


class Connections:
    """The daemon's open connections: at most ``max_connections`` at once (one more gets a
    ``busy`` error and is closed), and none left waiting for a request past its limit."""

    def __init__(self, max_connections: int, idle_timeout: float) -> None:
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._open: set[Connection] = set()

    def __len__(self) -> int:
        return len(self._open)

    async def serve(self, listener: anyio.abc.SocketListener, ops: Operations,
                    group: anyio.abc.TaskGroup) -> None:
        """Accept connections forever (see :func:`accept_forever`: an accept that fails for
        want of descriptors is never fatal); one past ``max_connections`` is told busy."""
        def take(stream: anyio.abc.SocketStream) -> None:
            if len(self._open) >= self.max_connections:
                group.start_soon(self._refuse_busy, stream)
            else:
                group.start_soon(self._serve, stream, ops)

        await accept_forever(listener, "the socket", take)

    async def _serve(self, stream: anyio.abc.SocketStream, ops: Operations) -> None:
        connection = Connection(stream, self.idle_timeout)
        self._open.add(connection)
        try:
            await serve_connection(stream, ops, connection)
        finally:
            self._open.discard(connection)

    async def _refuse_busy(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            message = (f"the daemon has {self.max_connections} connections open, its "
                       "max_connections; try again shortly, or raise [daemon] max_connections")
            with contextlib.suppress(*_GONE, OSError):
                await stream.send(encode_error(None, ErrorCode.BUSY, message))

    async def answered(self, seconds: float) -> None:
        """Return once no connection is answering a request (a subscription aside), or
        after ``seconds``: at shutdown, the replies owed go out before connections close."""
        with anyio.move_on_after(seconds):
            while any(connection.waiting_since is None and not connection.streaming  # noqa: ASYNC110 - once, at shutdown
                      for connection in self._open):
                await anyio.sleep(0.01)

    async def sweep(self) -> None:
        """Expire connections that waited too long for a request; forever."""
        while True:
            await anyio.sleep(min(1.0, self.idle_timeout / 4, _REFUSED_LINGER / 4))
            now = time.monotonic()
            for connection in list(self._open):
                since = connection.waiting_since
                if since is not None and not connection.expired and now - since > connection.limit:
                    connection.expire()


async def serve_connection(stream: anyio.abc.SocketStream, ops: Operations,
                           connection: Connection) -> None:
    """Answer the requests of one connection until the client closes it.

    Requests may be pipelined; the replies to the lines of one read go out in one write.
    A peer whose uid and gid are not allowed gets one ``not_allowed`` error and is cut off.
    """
    async with stream:
        try:
            if not await _peer_allowed(stream, ops, connection):
                return
            await _serve_lines(stream, ops, connection)
        except _GONE:
            pass  # the client went away; nothing is owed to it
        except Exception:  # never let one connection take the daemon down
            logger.exception("connection failed")


async def _peer_allowed(stream: anyio.abc.SocketStream, ops: Operations,
                        connection: Connection) -> bool:
    daemon = ops.config.daemon
    peer = peer_of(stream.extra(anyio.abc.SocketAttribute.raw_socket))
    if peer is None or peer.allowed(daemon.allow_uids, daemon.allow_gids):
        return True
    logger.warning("refused a connection from pid %d (uid %d, gid %d): not allowed",
                   peer.pid, peer.uid, peer.gid)
    message = (f"uid {peer.uid} (gid {peer.gid}) may not use this daemon; the daemon's owner "
               "can add it to [daemon] allow_uids or allow_gids in eventbus.toml")
    await stream.send(encode_error(None, ErrorCode.NOT_ALLOWED, message))
    await _linger(stream, connection)
    return False


async def _linger(stream: anyio.abc.SocketStream, connection: Connection) -> None:
    """After a last error reply: read what the peer still sends until it closes (bounded
    by count and by time), rather than closing on it, since a client whose request is still
    on its way would otherwise get EPIPE and never read why."""
    await stream.send_eof()
    connection.limit = _REFUSED_LINGER
    connection.waiting_since = time.monotonic()  # the sweep cuts it off after the linger
    with contextlib.suppress(*_GONE):
        for _ in range(_REFUSED_READS):
            await stream.receive(_READ_SIZE)


async def _serve_lines(stream: anyio.abc.SocketStream, ops: Operations,
                       connection: Connection) -> None:
    splitter = LineSplitter(ops.config.daemon.max_message_bytes)
    replies: list[bytes] = []
    writes: list[int] = []  # indexes in replies of requests that may have changed something

    async def flush() -> None:
        if not replies:
            return
        if writes:
            try:
                await ops.broker.settled()  # with a journal, acknowledge only what is committed
            except (JournalError, BackendError) as exc:  # the reads are answered all the same
                for index in writes:
                    replies[index] = _unacknowledged(replies[index], exc)
            writes.clear()
        data = b"".join(replies)
        replies.clear()
        await stream.send(data)

    while True:
        try:
            data = await stream.receive(_READ_SIZE)
        except anyio.EndOfStream:
            if connection.expired:
                seconds = connection.limit
                error = (f"no complete request in {seconds:g}s (idle_timeout), so the daemon "
                         "closes this connection; connect again when there is one to send")
                replies.append(encode_error(None, ErrorCode.IDLE, error))
                await flush()
            elif splitter.pending.strip():  # half a line, then the client closed its side
                error = "the connection ended in the middle of a request line; nothing was done"
                replies.append(encode_error(None, ErrorCode.BAD_JSON, error))
                await flush()
            return
        lines = splitter.feed(data)
        if lines:
            connection.waiting_since = None  # answering: exempt until the next read
        for line in lines:
            line = line.strip()
            if not line:
                continue
            asked = ops.stop_asked
            answer = await ops.answer(line, flush)
            if isinstance(answer, Subscription):  # the connection serves it alone from now on
                connection.streaming = True
                try:
                    replies.append(encode_result(answer.request_id, Subscribed()))
                    await flush()
                    await _stream(stream, answer)
                finally:
                    ops.monitor.unsubscribe(answer)
                return
            reply, wrote = answer
            if wrote:
                writes.append(len(replies))
            replies.append(reply)
            if ops.stop_asked and not asked:  # this was the stop: reply, close, then stop
                try:
                    await flush()
                finally:
                    ops.stopping.set()
                return
        if splitter.too_large:
            refusal = splitter.too_large_error()
            replies.append(encode_error(None, refusal.code, refusal.problem))
            await flush()
            await _linger(stream, connection)
            return
        # Workers start the deliveries just queued before the reply is written: writing
        # wakes the client, which on a busy machine can take the CPU for a while.
        await anyio.lowlevel.checkpoint()
        await flush()
        if lines:
            connection.waiting_since = time.monotonic()


async def _stream(stream: anyio.abc.SocketStream, subscription: Subscription) -> None:
    """Send the subscription's records until the client closes the connection. Whatever the
    client sends meanwhile is read and ignored, so its closing is noticed at once.

    The read is never cancelled while it waits (it ends at the client's EOF): on asyncio,
    cancelling a pending read of a UNIX socket can make anyio log an InvalidStateError.
    """
    sending = anyio.CancelScope()

    async def send_records() -> None:
        with sending:
            try:
                while True:
                    await stream.send(await subscription.next_lines())
            except _GONE:
                pass  # the client left while records were on their way; the read sees it too

    async with anyio.create_task_group() as group:
        group.start_soon(send_records)
        try:
            while True:
                await stream.receive(_READ_SIZE)
        except _GONE:
            pass
        sending.cancel()


def _unacknowledged(reply: bytes, exc: JournalError | BackendError) -> bytes:
    """The error that replaces a reply whose changes the store did not take."""
    request_id = decode_reply(reply).id
    if isinstance(exc, BackendError):
        return encode_error(request_id, ErrorCode.BACKEND, str(exc))
    problem = (f"{exc}; the request was not acknowledged: it may or may not take effect, so "
               "check before you repeat it")
    return encode_error(request_id, ErrorCode.JOURNAL, problem)
