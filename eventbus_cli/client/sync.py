"""The client of the daemon on the standard ``socket`` module: :class:`Client`, what the CLI
uses, so ``eventbus emit`` imports neither anyio nor rich; and the reading of an events file
for ``emit --file``. What it shares with the async client is in :mod:`.calls`.
"""

from __future__ import annotations

import _socket  # not `socket`: see peers.py
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from ..errors import EventbusError, EventFileError, ProtocolError, RemoteError, remote_error
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
from .ops import sync_op

if TYPE_CHECKING:  # types only: `eventbus emit` starts without building them

    pass

__all__ = ("Client", "read_event_lines")

DEFAULT_TIMEOUT = 30.0  # longer than the daemon lets an emit wait for room in a full queue
_BATCH_EVENTS = 1000
_WINDOW = 4  # emit_many batches in flight at once


def read_event_lines(stream: IO[bytes], source: str) -> tuple[list[bytes], list[int]]:
    """Read and check every event line of ``stream``; return the lines and their numbers.

    Blank lines are skipped. All lines are checked before any is sent, so a bad line sends
    nothing: :class:`EventFileError` names the line and what is wrong with it.
    """
    from ..protocol.event import decode_event  # only here: a single emit need not load it

    lines: list[bytes] = []
    numbers: list[int] = []
    for number, line in enumerate(stream, 1):
        line = line.strip()
        if not line:
            continue
        try:
            decode_event(line)
        except ProtocolError as exc:
            raise EventFileError(source, number, exc.problem) from None
        lines.append(line)
        numbers.append(number)
    return lines, numbers


class Client:
    """A connection to a daemon; a context manager. Methods raise :class:`RemoteError` when
    the daemon answers with an error, :class:`NoDaemonError` when none listens.

    ``socket_path`` None finds the socket as the CLI does (EVENTBUS_SOCKET, else the nearest
    ``eventbus.toml``), trusting that config's ``allow_uids`` too."""

    def __init__(self, socket_path: Path | str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, trusted_uids: Iterable[int] = ()) -> None:
        if socket_path is None:  # as the CLI finds it: EVENTBUS_SOCKET, else eventbus.toml
            socket_path, found = daemon_socket(None)
            trusted_uids = (*trusted_uids, *found)
        self.socket_path = Path(socket_path)
        self._sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self._timeout = timeout
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(socket_path))
            check_server(self._sock, str(socket_path), trusted_uids)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            self._sock.close()
            raise no_daemon(self.socket_path, exc) from None
        except OSError as exc:
            self._sock.close()
            raise EventbusError(f"cannot connect to {socket_path}: {exc}") from exc
        except EventbusError:
            self._sock.close()
            raise
        self._ids = itertools.count(1)
        self._lines = ReplyLines()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def call(self, op: str, /, **fields: Any) -> Any:
        """Send one request of ``op`` (see ``protocol.OPS``) and return its result. A request
        with a ``timeout`` (a wait, a join) may take that long on top of the client's own."""
        waits = fields.get("timeout")
        if waits:
            self._sock.settimeout(self._timeout + float(waits))
        try:
            return self._call(op, fields)
        finally:
            if waits:
                self._sock.settimeout(self._timeout)

    def _call(self, op: str, fields: dict[str, Any]) -> Any:
        data = encode_request(next(self._ids), op, **fields)
        try:
            self._send(data)
        except EventbusError as lost:
            # A daemon that refuses us writes why, then closes: read that if it is there.
            try:
                reply = self._receive()
            except EventbusError:
                raise lost from None
            return result_of(reply, len(data))
        return result_of(self._receive(), len(data))

    # -- the ops, each written once in ops.py ----------------------------------------------

    submit = sync_op(ops.submit)
    emit = sync_op(ops.emit)
    emit_in = sync_op(ops.emit_in)
    emit_at = sync_op(ops.emit_at)
    wait = sync_op(ops.wait)
    join = sync_op(ops.join)
    hello = sync_op(ops.hello)
    listeners = sync_op(ops.listeners)
    queue = sync_op(ops.queue)
    deliveries = sync_op(ops.deliveries)
    delivery = sync_op(ops.delivery)
    status = sync_op(ops.status)
    acknowledge = sync_op(ops.acknowledge)
    schedules = sync_op(ops.schedules)
    events = sync_op(ops.events)
    schema = sync_op(ops.schema)
    fire = sync_op(ops.fire)
    retry = sync_op(ops.retry)
    purge = sync_op(ops.purge)
    pause = sync_op(ops.pause)
    resume = sync_op(ops.resume)
    reload = sync_op(ops.reload)
    stop = sync_op(ops.stop)

    def emit_many(self, events: Iterable[Mapping[str, Any]]) -> BulkResult:
        """Emit events given as ``{"event", "args", "kwargs"}`` mappings, in batches."""
        lines = [json.dumps(dict(event), separators=(",", ":")).encode() for event in events]
        return self.emit_lines(lines)

    def emit_lines(
        self, lines: Sequence[bytes], *, progress: Callable[[int], None] | None = None,
        check: bool = True,
    ) -> BulkResult:
        """Emit events given as JSON lines, pipelining ``emit_many`` batches.

        ``progress`` is called with the number of events each accepted batch held. After an
        error, the batches already sent are answered and the rest are not sent.
        """
        tail = b"" if check else b',"check":false'
        limit = int(self.call("hello")["max_message_bytes"]) - 64  # raw: no msgspec to load
        pending = _batches(lines, limit)
        sent: list[tuple[int, int]] = []  # (start, stop) of each batch awaiting its reply
        accepted = deliveries = unrouted = duplicates = 0
        error: RemoteError | None = None
        rejected: list[tuple[int, int]] = []
        sent_until = 0
        while True:
            while error is None and len(sent) < _WINDOW and (batch := next(pending, None)):
                start, body = batch
                self._send(b'{"id":%d,"op":"emit_many","events":[%s]%s}\n'
                           % (next(self._ids), b",".join(body), tail))
                sent.append((start, start + len(body)))
                sent_until = start + len(body)
            if not sent:
                break
            start, stop = sent.pop(0)
            reply = self._receive()
            done = reply.result if reply.ok else reply.details
            counts = done if isinstance(done, dict) else {}
            taken = int(counts.get("accepted", 0))
            accepted += taken
            deliveries += int(counts.get("deliveries", 0))
            unrouted += int(counts.get("unrouted", 0))
            duplicates += int(counts.get("duplicates", 0))
            if not reply.ok:
                details = dict(reply.details) if isinstance(reply.details, dict) else {}
                if isinstance(index := details.get("index"), int):
                    details["index"] = start + index  # in the lines given, not the batch
                error = error or remote_error(reply.code, reply.message, details)
                rejected.append((start + taken, stop))
            if progress is not None and taken:
                progress(taken)
        if error is not None and sent_until < len(lines):
            rejected.append((sent_until, len(lines)))  # never sent, after the error
        return BulkResult(len(lines), accepted, deliveries, unrouted, error, _merged(rejected),
                          duplicates)

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise EventbusError(f"lost the connection to {self.socket_path}: {exc}") from exc

    def subscribe(self, patterns: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
        """Subscribe to the daemon's live records (events whose id matches one of the glob
        ``patterns``, or all); the iterator returned yields each as it comes, until the
        daemon goes away.

        The connection serves only the subscription from then on.
        """
        self.call("subscribe", patterns=list(patterns))
        self._sock.settimeout(None)
        return self._records()

    def _records(self) -> Iterator[dict[str, Any]]:
        while (line := self._line(eof_ok=True)) is not None:
            yield json.loads(line)

    def _receive(self) -> Reply:
        line = self._line(eof_ok=False)
        assert line is not None
        return decode_reply(line)

    def _line(self, *, eof_ok: bool) -> bytes | None:
        while (line := self._lines.next()) is None:
            try:
                chunk = self._sock.recv(1 << 20)
            except TimeoutError:
                problem = f"no reply from the daemon on {self.socket_path} in time"
                raise EventbusError(problem) from None
            except OSError as exc:
                raise EventbusError(f"lost the connection to {self.socket_path}: {exc}") from exc
            if not chunk:
                if eof_ok:
                    return None
                raise EventbusError(f"the daemon on {self.socket_path} closed the connection")
            self._lines.feed(chunk)
        return line


def _merged(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """``(start, stop)`` ranges, sorted, empty ones dropped and touching ones joined."""
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(ranges):
        if start >= stop:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
        else:
            merged.append((start, stop))
    return tuple(merged)


def _batches(lines: Sequence[bytes], max_bytes: int) -> Iterator[tuple[int, list[bytes]]]:
    start, size = 0, 0
    body: list[bytes] = []
    for index, line in enumerate(lines):
        if body and (len(body) >= _BATCH_EVENTS or size + len(line) + 1 > max_bytes):
            yield start, body
            start, body, size = index, [], 0
        body.append(line)
        size += len(line) + 1
    if body:
        yield start, body
