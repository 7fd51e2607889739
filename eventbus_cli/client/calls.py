"""What a call to the daemon is, whichever client makes it (:class:`~.client.Client` on the
standard ``socket`` module, :class:`~.async_client.AsyncClient` on anyio): the fields each op
sends, the reply reader, the result or error a reply holds, what a bulk emit achieved, and
how a failed connect is told. No I/O; on the ``eventbus emit`` path, so it imports little.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import ErrorCode, NoDaemonError, RemoteError, remote_error
from ..protocol.codec import LineSplitter, Reply

if TYPE_CHECKING:  # types only: `eventbus emit` starts without building them
    from datetime import datetime

__all__ = ("BulkResult", "ReplyLines", "daemon_socket", "emit_fields", "list_fields",
           "no_daemon", "result_of", "retry_fields", "trace_fields")


class BulkResult(NamedTuple):
    """What :meth:`Client.emit_lines` achieved: ``accepted`` of ``total`` events."""

    total: int
    accepted: int
    deliveries: int
    unrouted: int
    error: RemoteError | None = None
    rejected: tuple[tuple[int, int], ...] = ()
    """The events not accepted, as ``(start, stop)`` index ranges, in order."""
    duplicates: int = 0
    """Accepted events whose dedupe key had been seen lately: they queued nothing."""


class ReplyLines:
    """The reply lines a client has received and not yet read, on the codec's splitter."""

    def __init__(self) -> None:
        self._splitter = LineSplitter(1 << 62)  # the daemon bounds what it sends
        self._ready: deque[bytes] = deque()

    def feed(self, data: bytes) -> None:
        self._ready.extend(self._splitter.feed(data))

    def next(self) -> bytes | None:
        return self._ready.popleft() if self._ready else None


def result_of(reply: Reply, sent: int | None = None) -> Any:
    """The result of ``reply``; its :class:`RemoteError` subclass if it is an error (a
    ``too_large`` one says how big the request was, ``sent`` bytes, where known)."""
    if not reply.ok:
        message = reply.message
        if reply.code == ErrorCode.TOO_LARGE and sent is not None:
            message = f"{message} (this request was {sent:,} bytes)"
        raise remote_error(reply.code, message, reply.details)
    return reply.result


def emit_fields(event_id: str, args: Sequence[Any] = (),
                kwargs: Mapping[str, Any] | None = None, *, wait: float | None = None,
                require_listener: bool = False, check: bool = True, dry_run: bool = False,
                delay: float | None = None, at: datetime | None = None,
                key: str | None = None, priority: str | None = None,
                order_key: str | None = None) -> dict[str, Any]:
    """The fields of an ``emit`` request (see :meth:`Client.submit`), leaving out defaults."""
    fields: dict[str, Any] = {"event": event_id, "args": list(args),
                              "kwargs": dict(kwargs or {})}
    if wait is not None:
        fields.update(wait=True, timeout=wait)
    for name, given in (("require_listener", require_listener), ("dry_run", dry_run)):
        if given:
            fields[name] = True
    if not check:
        fields["check"] = False
    if delay is not None:
        fields["delay"] = delay
    if key is not None:
        fields["key"] = key
    if priority is not None:
        fields["priority"] = priority
    if order_key is not None:
        fields["order_key"] = order_key
    if at is not None:
        fields["at"] = _timestamp(at)
    fields.update(trace_fields())
    return fields


def trace_fields() -> dict[str, str]:
    """The caller's W3C trace context (``traceparent``, ``tracestate``) to send with an emit,
    if OpenTelemetry is loaded and a span is current; else nothing. Nothing of OpenTelemetry
    is imported where the program did not import it."""
    if "opentelemetry.trace" not in sys.modules:
        return {}
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {name: carrier[name] for name in ("traceparent", "tracestate") if name in carrier}


def list_fields(**values: Any) -> dict[str, Any]:
    """The fields of a ``list`` or ``retry`` request: the values given, Nones left out."""
    return {key: value for key, value in values.items() if value is not None}


def retry_fields(delivery_ids: Sequence[int] | None, **matching: str | None) -> dict[str, Any]:
    """The fields of a ``retry`` request: every failed delivery (that ``matching`` admits)
    for None; the daemon refuses ids with ``matching``."""
    chosen = {"all": True} if delivery_ids is None else {"deliveries": list(delivery_ids)}
    return chosen | list_fields(**matching)


def _timestamp(when: datetime) -> str:
    """``when`` as the protocol's ISO 8601, with this machine's offset if it had none."""
    return (when if when.tzinfo is not None else when.astimezone()).isoformat()


def daemon_socket(socket: Path | str | None) -> tuple[Path, tuple[int, ...]]:
    """The socket an app-side sender uses, and the uids it trusts there besides its own:
    ``socket`` if given (trusting none), else the one the CLI would use (EVENTBUS_SOCKET, or
    the nearest ``eventbus.toml``) with that config's ``allow_uids``."""
    if socket is not None:
        return Path(socket), ()
    from ..config import resolve_config

    daemon = resolve_config().daemon
    return daemon.socket_path, daemon.allow_uids


def no_daemon(path: Path, exc: OSError) -> NoDaemonError:
    """What connecting to ``path`` found instead of a daemon."""
    if isinstance(exc, FileNotFoundError):
        return NoDaemonError(path, "no socket file")
    if path.is_dir():
        return NoDaemonError(path, "it is a folder, not a socket", "point --socket / "
                             "EVENTBUS_SOCKET at the socket file in it, e.g. eventbus.sock")
    if path.is_file():
        return NoDaemonError(path, "it is a regular file, not a socket", "point --socket / "
                             "EVENTBUS_SOCKET at the daemon's socket")
    return NoDaemonError(path, "a socket file is there, but no process listens on it: the "
                         "daemon that made it has stopped")
