"""The wire protocol: newline-delimited JSON requests and replies. Bytes in, bytes out, no I/O.

A request is one JSON object on one line, ``{"id": 1, "op": "emit", ...}``; each gets one reply
line with the same ``id``: ``{"id": 1, "ok": true, "result": ...}`` or
``{"id": 1, "ok": false, "error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NamedTuple

from .checks import is_whole, number_problem
from .errors import InvalidEventIdError, ProtocolError
from .names import validate_event_id

__all__ = (
    "DEFAULT_WAIT",
    "LIST_STATES",
    "MAX_DEPTH",
    "OPS",
    "PROTOCOL_VERSION",
    "PURGE_STATES",
    "ErrorCode",
    "EventMessage",
    "LineSplitter",
    "Reply",
    "Request",
    "decode_event",
    "decode_reply",
    "decode_request",
    "encode_error",
    "encode_line",
    "encode_request",
    "encode_result",
)

PROTOCOL_VERSION = 1
MAX_DEPTH = 64
"""How deep the lists and objects inside an event's args and kwargs may nest."""
_TOO_DEEP = f"values nest more than {MAX_DEPTH} deep; send flatter ones"


class ErrorCode:
    """The ``error.code`` values a daemon sends."""

    BAD_JSON = "bad_json"  # the line is not a JSON object in UTF-8
    BAD_REQUEST = "bad_request"  # a field is missing, unknown, or of the wrong type
    UNKNOWN_OP = "unknown_op"
    UNROUTED = "unrouted"  # an emit with "require_listener" that no listener matches
    INVALID_EVENT = "invalid_event"  # an event id breaks the naming rule
    TOO_LARGE = "too_large"  # the line is over max_message_bytes; the connection is closed
    QUEUE_FULL = "queue_full"
    SHUTTING_DOWN = "shutting_down"
    NOT_ALLOWED = "not_allowed"  # the peer's uid/gid may not use the socket
    NOT_FOUND = "not_found"  # no delivery has that id
    CONFLICT = "conflict"  # the delivery cannot be retried: not failed, or its listener is gone
    RELOAD_FAILED = "reload_failed"  # a listener file failed; details name "file" and "line"
    JOURNAL = "journal"  # the journal could not be written; the emit was not acknowledged
    INTERNAL = "internal"


# The fields each op takes besides "id" and "op"; anything else is a bad request.
OPS: dict[str, frozenset[str]] = {
    "hello": frozenset(),
    "emit": frozenset({"event", "args", "kwargs", "wait", "timeout", "require_listener"}),
    "emit_many": frozenset({"events"}),
    "listeners": frozenset(),
    "queue": frozenset(),
    "list": frozenset({"state", "limit"}),
    "show": frozenset({"delivery"}),
    "retry": frozenset({"deliveries", "all"}),
    "purge": frozenset({"state"}),
    "reload": frozenset(),
    "subscribe": frozenset({"patterns"}),
    "status": frozenset(),
}
_ALLOWED = {op: fields | {"id", "op"} for op, fields in OPS.items()}
_EVENT_FIELDS = frozenset({"event", "args", "kwargs"})
_EMIT_OPTIONS = frozenset({"wait", "timeout", "require_listener"})
DEFAULT_WAIT = 60.0
"""Seconds an ``emit`` with ``"wait": true`` waits for its deliveries unless it says."""
MAX_WAIT = 86_400
LIST_STATES = ("pending", "running", "retrying", "failed")
PURGE_STATES = ("pending", "failed")
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=repr)


# NamedTuples rather than dataclasses: they are made at import, and `eventbus emit` imports
# this module on a path where every millisecond of start-up shows.
class EventMessage(NamedTuple):
    """One event to emit: its id and the values the listeners receive."""

    event: str
    args: list[Any]
    kwargs: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "args": self.args, "kwargs": self.kwargs}


class Request(NamedTuple):
    """A checked request. ``events`` holds the events of ``emit`` (one) and ``emit_many``."""

    id: int | str
    op: str
    events: tuple[EventMessage, ...] = ()
    state: str | None = None
    limit: int | None = None
    deliveries: tuple[int, ...] | None = None  # show: one id; retry: the ids, None for all
    patterns: tuple[str, ...] = ()  # subscribe: event-id globs, none for every event
    wait: float | None = None  # emit: seconds to wait for the deliveries to finish
    require_listener: bool = False  # emit: refuse an event that no listener matches


class Reply(NamedTuple):
    """A decoded reply: ``result`` when ``ok``, else ``code`` and ``message`` (and ``details``)."""

    id: int | str | None
    ok: bool
    result: Any = None
    code: str = ""
    message: str = ""
    details: dict[str, Any] | None = None


class LineSplitter:
    """Cuts a byte stream into lines, refusing any line longer than ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.too_large = False
        """Set once a line passes ``max_bytes``: answer the lines returned, then close."""
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The complete lines (without their newline) that ``data`` finishes.

        Once a line passes ``max_bytes`` it returns only the lines before it and sets
        :attr:`too_large`; the stream cannot be trusted after that, so it should be closed.
        """
        buffer = self._buffer + data if self._buffer else data
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        limit = self.max_bytes
        for index, line in enumerate(lines):
            if len(line) > limit:
                self.too_large = True
                return lines[:index]
        if len(self._buffer) > limit:
            self.too_large = True
        return lines

    @property
    def pending(self) -> bytes:
        """Bytes received after the last complete line."""
        return self._buffer

    def too_large_error(self) -> ProtocolError:
        return ProtocolError(
            ErrorCode.TOO_LARGE,
            f"a message is over max_message_bytes ({self.max_bytes} bytes), so the connection "
            "is closed; send smaller messages (emit_many in smaller batches) or raise the limit",
        )


def _loads(line: bytes | str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_JSON, _TOO_DEEP) from None


def _shallow(values: Iterable[Any], depth: int) -> bool:
    """Whether no list or object among ``values`` nests more than ``depth`` deep."""
    for value in values:
        kind = type(value)
        if kind is dict:
            if not depth or not _shallow(value.values(), depth - 1):
                return False
        elif kind is list and (not depth or not _shallow(value, depth - 1)):
            return False
    return True


def decode_request(line: bytes | str) -> Request:
    """Parse and check one request line; raise :class:`ProtocolError` naming the problem."""
    data = _loads(line)
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ProtocolError(ErrorCode.BAD_JSON, f"a request is a JSON object, not a {kind}")
    request_id = data.get("id")
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        problem = f'"id" must be a number or a string, got {request_id!r}'
        raise ProtocolError(ErrorCode.BAD_REQUEST, problem)
    op = data.get("op")
    if not isinstance(op, str) or op not in OPS:
        known = ", ".join(OPS)
        raise ProtocolError(
            ErrorCode.UNKNOWN_OP, f"unknown op {op!r}; the ops are {known}", request_id=request_id
        )
    if not _ALLOWED[op].issuperset(data):
        unknown = sorted(set(data) - _ALLOWED[op])
        problem = f"op {op!r} takes no field {unknown[0]!r}; it takes {sorted(OPS[op]) or 'none'}"
        raise ProtocolError(ErrorCode.BAD_REQUEST, problem, request_id=request_id)
    try:
        return _checked(request_id, op, data)
    except ProtocolError as exc:
        raise ProtocolError(exc.code, exc.problem, request_id=request_id) from None


def _checked(request_id: int | str, op: str, data: dict[str, Any]) -> Request:
    if op == "emit":
        event = (_event(data, None),)
        if _EMIT_OPTIONS.isdisjoint(data):  # the common case, quickly
            return Request(request_id, op, event)
        return _emit_options(Request(request_id, op, event), data)
    if op == "subscribe":
        patterns = data.get("patterns", [])
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            problem = f'"patterns" must be a list of event-id globs, got {patterns!r}'
            raise ProtocolError(ErrorCode.BAD_REQUEST, problem)
        return Request(request_id, op, patterns=tuple(patterns))
    if op == "emit_many":
        events = data.get("events")
        if not isinstance(events, list):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f'"events" must be a list, got {events!r}')
        return Request(request_id, op, tuple(_event(item, n) for n, item in enumerate(events)))
    if op == "list":
        state, limit = data.get("state"), data.get("limit")
        if state is not None and state not in LIST_STATES:
            problem = f'"state" must be one of {", ".join(LIST_STATES)}, got {state!r}'
            raise ProtocolError(ErrorCode.BAD_REQUEST, problem)
        if limit is not None and (want := number_problem(limit, whole=True, minimum=1)):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f'"limit" must be {want}, got {limit!r}')
        return Request(request_id, op, state=state, limit=limit)
    if op == "show":
        return Request(request_id, op, deliveries=(_delivery_id(data.get("delivery"), "delivery"),))
    if op == "retry":
        every, ids = data.get("all", False), data.get("deliveries")
        if every is not True and every is not False:
            problem = f'"all" must be true or false, got {every!r}'
            raise ProtocolError(ErrorCode.BAD_REQUEST, problem)
        if every == (ids is not None) or (ids is not None and not isinstance(ids, list)):
            problem = 'give "deliveries" (a list of ids) or "all": true, not both'
            raise ProtocolError(ErrorCode.BAD_REQUEST, problem)
        if ids is None:
            return Request(request_id, op)
        return Request(request_id, op, deliveries=tuple(_delivery_id(n, "deliveries") for n in ids))
    if op == "purge":
        state = data.get("state")
        if state not in PURGE_STATES:
            problem = f'"state" must be one of {", ".join(PURGE_STATES)}, got {state!r}'
            raise ProtocolError(ErrorCode.BAD_REQUEST, problem)
        return Request(request_id, op, state=state)
    return Request(request_id, op)


def _emit_options(request: Request, data: dict[str, Any]) -> Request:
    wait, timeout, require = data.get("wait", False), data.get("timeout"), data.get(
        "require_listener", False)
    for name, value in (("wait", wait), ("require_listener", require)):
        if not isinstance(value, bool):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f'"{name}" must be true or false, got '
                                f"{value!r}")
    if timeout is not None and (want := number_problem(timeout, whole=False, minimum=0,
                                                       above=True, maximum=MAX_WAIT)):
        problem = f'"timeout" must be {want} (seconds), got {timeout!r}'
        raise ProtocolError(ErrorCode.BAD_REQUEST, problem)
    if timeout is not None and not wait:
        raise ProtocolError(ErrorCode.BAD_REQUEST, '"timeout" goes with "wait": true')
    seconds = float(timeout if timeout is not None else DEFAULT_WAIT) if wait else None
    return request._replace(wait=seconds, require_listener=require)


def _delivery_id(value: object, name: str) -> int:
    if is_whole(value) and value >= 1:
        return value
    problem = f'"{name}" must hold delivery ids (whole numbers >= 1), got {value!r}'
    raise ProtocolError(ErrorCode.BAD_REQUEST, problem)


def _event(data: object, index: int | None) -> EventMessage:
    """Check one event object: the emit request itself (index None), or item ``index`` of an
    emit_many batch or an events file (-1), where unknown fields are refused too."""
    if (type(data) is dict and type(event := data.get("event")) is str
            and type(args := data.get("args", [])) is list
            and type(kwargs := data.get("kwargs", {})) is dict
            and (index is None or _EVENT_FIELDS.issuperset(data))):
        try:
            validate_event_id(event)
        except InvalidEventIdError as exc:
            raise ProtocolError(ErrorCode.INVALID_EVENT, f"{_where(index)}{exc}") from None
        # Bounded, so that whatever is accepted can be written out again (a reply, the
        # journal, a tail record) without running out of recursion.
        if not (_shallow(args, MAX_DEPTH) and _shallow(kwargs.values(), MAX_DEPTH)):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"{_where(index)}{_TOO_DEEP}")
        return EventMessage(event, args, kwargs)
    raise ProtocolError(ErrorCode.BAD_REQUEST, _event_problem(data, _where(index)))


def _where(index: int | None) -> str:
    return "" if index is None or index < 0 else f"events[{index}]: "


def _event_problem(data: object, where: str) -> str:
    if not isinstance(data, dict):
        return f"{where}an event must be an object, got {data!r}"
    for name, kind, wanted in (("event", str, "a string"), ("args", list, "a list"),
                               ("kwargs", dict, "an object")):
        if (name in data or name == "event") and not isinstance(data.get(name), kind):
            return f'{where}"{name}" must be {wanted}, got {data.get(name)!r}'
    extra = sorted(set(data) - _EVENT_FIELDS)[0]
    return f"{where}unknown field {extra!r}; an event takes event, args, kwargs"


def decode_event(line: bytes | str) -> EventMessage:
    """Parse one event object (a line of an ``emit --file`` file), checked as emit_many would."""
    return _event(_loads(line), -1)


def encode_result(request_id: object, result: Any) -> bytes:
    """The reply line for a request that succeeded."""
    return _utf8(_ENCODER.encode({"id": request_id, "ok": True, "result": result}))


def encode_error(request_id: object, code: str, message: str, **details: Any) -> bytes:
    """The reply line for a request that failed; ``details`` go into the error object."""
    error = {"code": code, "message": message, **details}
    return _utf8(_ENCODER.encode({"id": request_id, "ok": False, "error": error}))


def encode_request(request_id: int | str, op: str, **fields: Any) -> bytes:
    """A request line, as a client sends it."""
    return _utf8(_ENCODER.encode({"id": request_id, "op": op, **fields}))


def encode_line(document: Any) -> bytes:
    """``document`` as one JSON line (a stream record, say)."""
    return _utf8(_ENCODER.encode(document))


def _utf8(text: str) -> bytes:
    # JSON may carry lone surrogates ("\ud800"), which UTF-8 cannot: write them as the
    # same JSON escape, so the line stays valid and decodes back to what was sent.
    return (text + "\n").encode("utf-8", "backslashreplace")


def decode_reply(line: bytes) -> Reply:
    """Parse a reply line; raise :class:`ProtocolError` if it is not one."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        problem = f"the daemon sent a line that is not JSON: {exc}"
        raise ProtocolError(ErrorCode.BAD_JSON, problem) from None
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise ProtocolError(ErrorCode.BAD_JSON, f"the daemon sent something not a reply: {data!r}")
    if data["ok"]:
        return Reply(data.get("id"), True, data.get("result"))
    error = data.get("error")
    if not isinstance(error, dict):
        error = {}
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    return Reply(data.get("id"), False, None, str(error.get("code", ErrorCode.INTERNAL)),
                 str(error.get("message", "the daemon gave no message")), details)
