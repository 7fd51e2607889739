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
from typing import IO, TYPE_CHECKING, Any, Self, cast

from ..errors import EventbusError, EventFileError, ProtocolError, RemoteError
from ..peers import check_server
from ..protocol.codec import Reply, decode_reply, encode_request
from .calls import (
    BulkResult,
    ReplyLines,
    emit_fields,
    list_fields,
    no_daemon,
    result_of,
    retry_fields,
)

if TYPE_CHECKING:  # types only: `eventbus emit` starts without building them
    from datetime import datetime

    from ..results import (
        DeliveryInfo,
        EmitResult,
        EventInfo,
        Hello,
        ListenerInfo,
        QueueCounts,
        ReloadResult,
        ScheduleInfo,
    )

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
    the daemon answers with an error, :class:`NoDaemonError` when none listens."""

    def __init__(self, socket_path: Path | str, *, timeout: float = DEFAULT_TIMEOUT,
                 trusted_uids: Iterable[int] = ()) -> None:
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
        try:
            self._send(encode_request(next(self._ids), op, **fields))
        except EventbusError as lost:
            # A daemon that refuses us writes why, then closes: read that if it is there.
            try:
                reply = self._receive()
            except EventbusError:
                raise lost from None
            return result_of(reply)
        return result_of(self._receive())

    def emit(self, event_id: str, /, *args: Any, **kwargs: Any) -> int:
        """Emit one event; return how many deliveries the daemon queued (0: unrouted)."""
        return int(self.submit(event_id, args, kwargs)["deliveries"])

    def emit_in(self, seconds: float, event_id: str, /, *args: Any, **kwargs: Any) -> int:
        """Emit one event whose deliveries run in ``seconds``; return how many."""
        return int(self.submit(event_id, args, kwargs, delay=seconds)["deliveries"])

    def emit_at(self, when: datetime, event_id: str, /, *args: Any, **kwargs: Any) -> int:
        """Emit one event whose deliveries run at ``when`` (naive: local time)."""
        return int(self.submit(event_id, args, kwargs, at=when)["deliveries"])

    def wait(self, seconds: float, event_id: str, /, *args: Any, **kwargs: Any) -> EmitResult:
        """Emit one event and wait up to ``seconds`` for its deliveries to finish; the
        answer's ``results`` say how each ended (``ok`` None: not finished in time)."""
        return self.submit(event_id, args, kwargs, wait=seconds)

    def submit(self, event_id: str, args: Sequence[Any] = (),
               kwargs: Mapping[str, Any] | None = None, *, wait: float | None = None,
               require_listener: bool = False, check: bool = True,
               dry_run: bool = False, delay: float | None = None,
               at: datetime | None = None, key: str | None = None) -> EmitResult:
        """Emit one event and return the daemon's whole answer: ``{"event_id",
        "deliveries"}``, and with ``wait`` (seconds) the ``results`` of its deliveries.
        ``check=False`` skips the argument check; ``dry_run`` queues nothing and answers
        which listeners would get the event and whether each takes its arguments; ``delay``
        (seconds) or ``at`` schedule the deliveries for later. With a dedupe ``key``, a
        repeat within the daemon's ``dedupe_window`` is answered as the first was, with
        ``"duplicate": true``, and queues nothing."""
        return cast("EmitResult", self.call("emit", **emit_fields(
            event_id, args, kwargs, wait=wait, require_listener=require_listener,
            check=check, dry_run=dry_run, delay=delay, at=at, key=key)))

    def join(self, seconds: float = 60.0) -> bool:
        """Wait until nothing is pending, running or retrying in the daemon (scheduled
        deliveries aside); return False if ``seconds`` passed first."""
        return bool(self.call("join", timeout=seconds)["idle"])

    def schedules(self) -> list[ScheduleInfo]:
        """The daemon's schedules, as ``schedule list --json`` shows them."""
        return cast("list[ScheduleInfo]", self.call("schedules"))

    def fire(self, name: str) -> ScheduleInfo:
        """Fire the schedule ``name`` now; return it as ``schedule list`` shows it."""
        return cast("ScheduleInfo", self.call("fire", name=name))

    def events(self) -> list[EventInfo]:
        """The event catalog, as ``events --json`` shows it."""
        return cast("list[EventInfo]", self.call("events"))

    def schema(self, event_id: str) -> dict[str, Any]:
        """The JSON Schema of what every listener of ``event_id`` takes together."""
        return cast("dict[str, Any]", self.call("schema", event=event_id))

    def hello(self) -> Hello:
        """The daemon's protocol version, version, pid and ``max_message_bytes``."""
        return cast("Hello", self.call("hello"))

    def listeners(self) -> list[ListenerInfo]:
        """The listeners the daemon runs, as ``listeners list --json`` shows them."""
        return cast("list[ListenerInfo]", self.call("listeners"))

    def queue(self) -> QueueCounts:
        """The counters, as ``queue --json`` shows them."""
        return cast("QueueCounts", self.call("queue"))

    def deliveries(self, state: str | None = None,
                   limit: int | None = None) -> list[DeliveryInfo]:
        """The deliveries held (of one state), newest first, as ``queue list --json``."""
        return cast("list[DeliveryInfo]", self.call("list", **list_fields(state, limit)))

    def delivery(self, delivery_id: int) -> DeliveryInfo:
        """One delivery with its traceback, as ``queue show --json`` shows it."""
        return cast("DeliveryInfo", self.call("show", delivery=delivery_id))

    def retry(self, delivery_ids: Sequence[int] | None = None) -> list[int]:
        """Queue failed deliveries again (every one for None); return their ids."""
        return list(self.call("retry", **retry_fields(delivery_ids))["retried"])

    def purge(self, state: str) -> int:
        """Drop the ``failed``, ``pending`` or ``scheduled`` deliveries; return how many."""
        return int(self.call("purge", state=state)["purged"])

    def reload(self) -> ReloadResult:
        """Import the listeners afresh; what changed, as ``listeners reload --json``."""
        return cast("ReloadResult", self.call("reload"))

    def status(self) -> dict[str, Any]:
        """The daemon's status, as ``status --json`` shows it."""
        return cast("dict[str, Any]", self.call("status"))

    def stop(self, *, drain: bool = True) -> int:
        """Ask the daemon to stop (``drain``: after finishing what it accepted, within its
        ``shutdown_timeout``; else at once); return its pid, to wait for its exit."""
        return int(self.call("stop", drain=drain)["pid"])

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
        limit = int(self.hello()["max_message_bytes"]) - 64
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
                from ..remote import remote_error

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
