"""One client connection: check who is calling, read request lines, answer them in order."""

from __future__ import annotations

import logging

import anyio
import anyio.abc
import anyio.lowlevel

from ..codec import LineSplitter, decode_reply, encode_error, encode_result
from ..errors import JournalError
from ..protocol import ErrorCode
from .handlers import Operations
from .monitor import Subscription
from .socketfile import peer_of

__all__ = ("serve_connection",)

logger = logging.getLogger("eventbus.daemon")

_READ_SIZE = 256 * 1024
_REFUSED_LINGER = 5.0  # seconds a refused peer has to read its refusal and close
_REFUSED_READS = 16  # reads of a refused peer's input, at most, before it is cut off
_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


async def serve_connection(stream: anyio.abc.SocketStream, ops: Operations) -> None:
    """Answer the requests of one connection until the client closes it.

    Requests may be pipelined; the replies to the lines of one read go out in one write.
    A peer whose uid and gid are not allowed gets one ``not_allowed`` error and is cut off.
    """
    async with stream:
        try:
            if not await _peer_allowed(stream, ops):
                return
            await _serve_lines(stream, ops)
        except _GONE:
            pass  # the client went away; nothing is owed to it
        except Exception:  # never let one connection take the daemon down
            logger.exception("connection failed")


async def _peer_allowed(stream: anyio.abc.SocketStream, ops: Operations) -> bool:
    daemon = ops.config.daemon
    peer = peer_of(stream.extra(anyio.abc.SocketAttribute.raw_socket))
    if peer is None or peer.allowed(daemon.allow_uids, daemon.allow_gids):
        return True
    logger.warning("refused a connection from pid %d (uid %d, gid %d): not allowed",
                   peer.pid, peer.uid, peer.gid)
    message = (f"uid {peer.uid} (gid {peer.gid}) may not use this daemon; the daemon's owner "
               "can add it to [daemon] allow_uids or allow_gids in eventbus.toml")
    await stream.send(encode_error(None, ErrorCode.NOT_ALLOWED, message))
    # Read what the peer sends until it closes (bounded), rather than closing on it: a
    # client whose request is still on its way would otherwise get EPIPE and never read why.
    await stream.send_eof()
    with anyio.move_on_after(_REFUSED_LINGER):
        for _ in range(_REFUSED_READS):
            await stream.receive(_READ_SIZE)
    return False


async def _serve_lines(stream: anyio.abc.SocketStream, ops: Operations) -> None:
    splitter = LineSplitter(ops.config.daemon.max_message_bytes)
    replies: list[bytes] = []

    async def flush() -> None:
        if replies:
            try:
                await ops.broker.settled()  # with a journal, acknowledge only what is committed
            except JournalError as exc:
                replies[:] = [_unacknowledged(reply, exc) for reply in replies]
            data = b"".join(replies)
            replies.clear()
            await stream.send(data)

    while True:
        try:
            data = await stream.receive(_READ_SIZE)
        except anyio.EndOfStream:
            if splitter.pending.strip():  # half a line, then the client closed its side
                error = "the connection ended in the middle of a request line; nothing was done"
                replies.append(encode_error(None, ErrorCode.BAD_JSON, error))
                await flush()
            return
        for line in splitter.feed(data):
            line = line.strip()
            if not line:
                continue
            reply = await ops.answer(line, flush)
            if isinstance(reply, Subscription):  # the connection serves it alone from now on
                try:
                    replies.append(encode_result(reply.request_id, {"subscribed": True}))
                    await flush()
                    await _stream(stream, reply)
                finally:
                    ops.monitor.unsubscribe(reply)
                return
            replies.append(reply)
        if splitter.too_large:
            refusal = splitter.too_large_error()
            replies.append(encode_error(None, refusal.code, refusal.problem))
            await flush()
            return
        # Workers start the deliveries just queued before the reply is written: writing
        # wakes the client, which on a busy machine can take the CPU for a while.
        await anyio.lowlevel.checkpoint()
        await flush()


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


def _unacknowledged(reply: bytes, exc: JournalError) -> bytes:
    """The ``journal`` error that replaces a reply whose changes could not be committed."""
    request_id = decode_reply(reply).id
    problem = (f"{exc}; the request was not acknowledged: it may or may not take effect, so "
               "check before you repeat it")
    return encode_error(request_id, ErrorCode.JOURNAL, problem)
