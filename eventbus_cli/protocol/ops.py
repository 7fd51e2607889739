"""The wire protocol's ops, each defined once in :data:`OPS`: its fields with their types and
limits, the Struct it is checked into (:mod:`.requests`) and its result (:mod:`.results`).
Decoding requests, the daemon's dispatch and the reference page of ops all follow from it. No I/O.

A request is one JSON object on one line, ``{"id": 1, "op": "emit", ...}``; each gets one reply
line with the same ``id``: ``{"id": 1, "ok": true, "result": ...}`` or
``{"id": 1, "ok": false, "error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ..checks import is_whole, number_problem
from ..errors import ErrorCode, InvalidEventIdError, ProtocolError
from ..names import validate_event_id, validate_pattern
from .codec import DEFAULT_WAIT, MAX_DELAY, loads
from .event import EVENT_FIELDS, EventMessage, check_event
from .requests import (
    EmitManyRequest,
    EmitRequest,
    FireRequest,
    JoinRequest,
    ListRequest,
    Matching,
    PauseRequest,
    PurgeRequest,
    Request,
    ResumeRequest,
    RetryRequest,
    SchemaRequest,
    ShowRequest,
    StopRequest,
    SubscribeRequest,
)

__all__ = (
    "LIST_STATES",
    "OPS",
    "PROTOCOL_VERSION",
    "PURGE_STATES",
    "Field",
    "Op",
    "decode_request",
)

PROTOCOL_VERSION = 1
MAX_WAIT = 86_400
MAX_PATTERNS = 64
"""How many event-id globs one subscription may give."""
LIST_STATES = ("pending", "running", "retrying", "scheduled", "failed")
PURGE_STATES = ("pending", "scheduled", "failed")


class _Bad(Exception):
    """A field's value is not what the field takes; ``want`` says what it takes."""

    def __init__(self, want: str) -> None:
        self.want = want


class Field(NamedTuple):
    """One field of a request: its wire name, how its value is read (``read`` returns it, or
    raises with what it must be), and what it holds, for the docs."""

    name: str
    read: Callable[[Any], Any]
    doc: str
    required: bool = False


class Op(NamedTuple):
    """One op: its fields, how their values make its request Struct, and its result."""

    request: type[Request]
    fields: tuple[Field, ...]
    returns: str
    """The type of its result, of :mod:`.results` (its handler returns it, checked by a test)."""
    result: str
    build: Callable[[dict[str, Any]], dict[str, Any]] = dict
    """Turns the values of the fields given into the fields of :attr:`request`."""
    writes: bool = False
    """Whether it changes what the broker holds, so that its reply waits for the store."""


def _bool(value: object) -> bool:
    if value is True or value is False:
        return value
    raise _Bad("true or false")


def _one_of(choices: tuple[str, ...]) -> Callable[[object], str]:
    def read(value: object) -> str:
        if isinstance(value, str) and value in choices:
            return value
        raise _Bad("one of " + ", ".join(choices))
    return read


def _whole_from_1(value: object) -> int:
    if is_whole(value) and value >= 1:
        return value
    raise _Bad("a whole number >= 1")


def _delivery_ids(value: object) -> tuple[int, ...]:
    if isinstance(value, list) and all(is_whole(item) and item >= 1 for item in value):
        return tuple(value)
    raise _Bad("a list of delivery ids (whole numbers >= 1)")


def _delivery_id(value: object) -> int:
    if is_whole(value) and value >= 1:
        return value
    raise _Bad("a delivery id (a whole number >= 1)")


def _patterns(value: object) -> tuple[str, ...]:
    want = (f"a list of at most {MAX_PATTERNS} event-id globs, each 1 to 200 letters, digits "
            "and _ . : - * ? [ ] !")
    if not isinstance(value, list) or len(value) > MAX_PATTERNS:
        raise _Bad(want)
    for item in value:
        try:
            validate_pattern(item)
        except InvalidEventIdError:
            raise _Bad(want) from None
    return tuple(value)


def _delay(value: object) -> float:
    want = number_problem(value, whole=False, minimum=0, maximum=MAX_DELAY)
    if want is not None:
        raise _Bad(f"{want} (seconds)")
    return float(value)  # type: ignore[arg-type]  # a number, just checked


def _time(value: object) -> float:
    """An ISO 8601 time (local time when it has no offset) as a time.time() value."""
    want = "an ISO 8601 time such as 2026-12-02T09:00:00+01:00 (local time without an offset)"
    if not isinstance(value, str):
        raise _Bad(want)
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(want) from None
    try:
        due = moment.timestamp()  # a naive time is taken as local time
    except (ValueError, OverflowError, OSError):  # the calendar's edge, in no time zone
        raise _Bad(f"{want}, within a year from now") from None
    if due > time.time() + MAX_DELAY:
        raise _Bad(f"{want}, at most a year ahead")
    return due


def _seconds(value: object) -> float:
    want = number_problem(value, whole=False, minimum=0, above=True, maximum=MAX_WAIT)
    if want is not None:
        raise _Bad(f"{want} (seconds)")
    return float(value)  # type: ignore[arg-type]  # a number, just checked


def _event_list(value: object) -> tuple[EventMessage, ...]:
    if not isinstance(value, list):
        raise _Bad("a list")
    return tuple(check_event(item, index) for index, item in enumerate(value))


def _any(value: object) -> object:
    return value


def _build_emit(values: dict[str, Any]) -> dict[str, Any]:
    data = {key: values[key] for key in EVENT_FIELDS if key in values}
    fields: dict[str, Any] = {"event": check_event(data, None)}
    wait, timeout = values.get("wait", False), values.get("timeout")
    if timeout is not None and not wait:
        raise ProtocolError(ErrorCode.BAD_REQUEST, '"timeout" goes with "wait": true')
    if wait:
        fields["wait"] = timeout or DEFAULT_WAIT
    for flag in ("require_listener", "dry_run"):
        if values.get(flag):
            fields[flag] = True
    if values.get("check") is False:
        fields["check"] = False
    if fields.get("dry_run") and wait:
        raise ProtocolError(ErrorCode.BAD_REQUEST, '"dry_run" emits nothing to "wait" for')
    if "delay" in values and "at" in values:
        raise ProtocolError(ErrorCode.BAD_REQUEST, 'give "delay" or "at", not both')
    if "delay" in values or "at" in values:
        if wait:
            raise ProtocolError(ErrorCode.BAD_REQUEST, '"wait" goes with an emit that runs '
                                'now, not with "delay" or "at"')
        fields["due_at"] = (time.time() + values["delay"] if "delay" in values
                            else values["at"])
    return fields


def _build_join(values: dict[str, Any]) -> dict[str, Any]:
    return {"wait": values.get("timeout", DEFAULT_WAIT)}


def _build_fire(values: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(name := values["name"], str) or not name:
        raise ProtocolError(ErrorCode.BAD_REQUEST, '"name" must be a schedule\'s name')
    return {"name": name}


def _build_schema(values: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"event": validate_event_id(values["event"])}
    except InvalidEventIdError as exc:
        raise ProtocolError(ErrorCode.INVALID_EVENT, str(exc)) from None


def _text(value: object) -> str:
    if isinstance(value, str) and 1 <= len(value) <= 200:
        return value
    raise _Bad("a text of 1 to 200 characters")


def _listener_name(value: object) -> str:
    if isinstance(value, str) and 1 <= len(value) <= 200:
        return value
    raise _Bad("a listener's name, as `listeners list` shows it")


def _pattern(value: object) -> str:
    try:
        return validate_pattern(value)
    except InvalidEventIdError as exc:
        raise _Bad(f"an event id or glob ({exc})") from None


_MATCHING = (
    Field("listener", _listener_name, "only deliveries of this listener"),
    Field("event", _pattern, "only deliveries of events matching this id or glob"),
    Field("text", _text, "only deliveries whose error holds this text (any case)"),
)


def _matching(values: dict[str, Any]) -> Matching:
    return Matching(**{field.name: values.pop(field.name) for field in _MATCHING
                       if field.name in values})


def _build_list(values: dict[str, Any]) -> dict[str, Any]:
    matching = _matching(values)
    return values | {"matching": matching} if matching else values


def _build_retry(values: dict[str, Any]) -> dict[str, Any]:
    matching = _matching(values)
    if values.get("all", False) == ("deliveries" in values):
        raise ProtocolError(ErrorCode.BAD_REQUEST,
                            'give "deliveries" (a list of ids) or "all": true, not both')
    if matching and "deliveries" in values:
        raise ProtocolError(ErrorCode.BAD_REQUEST, '"listener", "event" and "text" go with '
                            '"all": true (every failed delivery they match), not with ids')
    return {"deliveries": values.get("deliveries"), "matching": matching}


def _build_pause(values: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"listener": values["listener"]}
    if "for" in values:
        fields["until"] = time.time() + values["for"]
    return fields


OPS: dict[str, Op] = {
    "hello": Op(Request, (), "Hello", '`{"protocol": 1, "version", "pid", "max_message_bytes"}`'),
    "emit": Op(EmitRequest, (
        Field("event", _any, "the event id", required=True),
        Field("args", _any, "a list (optional)"),
        Field("kwargs", _any, "an object (optional)"),
        Field("wait", _bool, "true: reply once every delivery has finished"),
        Field("timeout", _seconds, "seconds to wait, with `wait` (default 60)"),
        Field("require_listener", _bool, "true: refuse an event no listener matches"),
        Field("check", _bool, "false: skip the argument check (default true)"),
        Field("key", _any, "a dedupe key (1 to 200 characters): a repeat within "
              "`dedupe_window` is answered as the first was, with `duplicate`, and queues "
              "nothing"),
        Field("dry_run", _bool, "true: queue nothing; say which listeners would get it and "
              "whether each takes its arguments"),
        Field("delay", _delay, "seconds to wait before the deliveries run (at most a year)"),
        Field("at", _time, "when the deliveries run: an ISO 8601 time (local without an "
              "offset; one past runs now)"),
        Field("priority", _any, "`high`, `normal` (the default) or `low`: within each "
              "listener's lane, higher runs first, in emit order within one priority"),
        Field("order_key", _any, "an order key (1 to 200 printable characters, e.g. "
              "`user:42`): per listener, the deliveries of one key run one at a time, in emit "
              "order"),
        Field("traceparent", _any, "the caller's W3C trace context (optional): each "
              "delivery's span is its child"),
        Field("tracestate", _any, "W3C tracestate, with `traceparent` (optional)"),
    ), "EmitResult", '`{"event_id", "deliveries"}`; with `wait`, `results` too; with `delay` '
       'or `at`, `due` too; with `dry_run`, `{"event_id", "deliveries": 0, "listeners": '
       '[{"listener", "signature", "takes", "check", "problem"}]}`',
       _build_emit, writes=True),
    "emit_many": Op(EmitManyRequest, (Field("events", _event_list,
                           'a list of `{"event", "args", "kwargs", "key", "priority", '
                           '"order_key", "traceparent", "tracestate"}` (all but `event` '
                           'optional)',
                           required=True),
                     Field("check", _bool, "false: skip the argument check (default true)"),
                     Field("require_listener", _bool,
                           "true: refuse an event no listener takes (`unrouted`, with its "
                           "`index`); the events before it stand")),
                    "EmitManyResult",
                    '`{"accepted", "deliveries", "unrouted", "duplicates"}`', writes=True),
    "events": Op(Request, (), "list[EventInfo]", "as `events --json`"),
    "join": Op(JoinRequest,
               (Field("timeout", _seconds, "give up after this many seconds (default 60)"),),
               "Idle",
               '`{"idle": true}` once nothing is pending, running or retrying (scheduled '
               'deliveries aside); `{"idle": false}` if the timeout came first', _build_join),
    "schedules": Op(Request, (), "list[ScheduleInfo]", "as `schedule list --json`"),
    "fire": Op(FireRequest, (Field("name", _any, "a schedule's name", required=True),),
               "ScheduleInfo", "the schedule, as `schedule list --json` shows it, after firing",
               _build_fire, writes=True),
    "schema": Op(SchemaRequest, (Field("event", _any, "an event id", required=True),),
                 "dict[str, Any]", "as `events schema EVENT`", _build_schema),
    "listeners": Op(Request, (), "list[ListenerInfo]", "as `listeners list --json`"),
    "queue": Op(Request, (), "QueueCounts", "as `queue --json`"),
    "list": Op(ListRequest,
               (Field("state", _one_of(LIST_STATES), "a state (optional)"),
                Field("limit", _whole_from_1, "at most this many (optional, >= 1)"),
                Field("before", _delivery_id, "only ids below this one: the next page "
                      "after a page ending at it (optional)"),
                *_MATCHING),
               "list[DeliveryInfo]",
               "as `queue list --json`: the newest first, at most about 16 MiB",
               _build_list),
    "show": Op(ShowRequest, (Field("delivery", _delivery_id, "a delivery id", required=True),),
               "DeliveryDetail", "as `queue show --json`"),
    "retry": Op(RetryRequest,
                (Field("deliveries", _delivery_ids, "a list of delivery ids"),
                 Field("all", _bool, "true: every failed delivery (instead of `deliveries`), "
                       "or every one `listener`, `event` and `text` match"),
                 *_MATCHING),
                "Retried", '`{"retried": [ids]}`', _build_retry, writes=True),
    "purge": Op(PurgeRequest,
                (Field("state", _one_of(PURGE_STATES), "`failed`, `pending` or `scheduled`",
                       required=True),),
                "Purged", '`{"purged": N, "state"}`', writes=True),
    "reload": Op(Request, (), "ReloadResult", "as `listeners reload --json`", writes=True),
    "pause": Op(PauseRequest,
                (Field("listener", _listener_name, "a listener's name", required=True),
                 Field("for", _delay, "seconds until it resumes by itself (optional)")),
                "PauseState", '`{"listener", "paused": true, "until"}`: its deliveries wait, '
                "nothing fails, bus-wide; kept across restarts by a durable store",
                _build_pause, writes=True),
    "resume": Op(ResumeRequest,
                 (Field("listener", _listener_name, "a listener's name", required=True),),
                 "PauseState", '`{"listener", "paused": false, "until": null}`', writes=True),
    "subscribe": Op(SubscribeRequest,
                    (Field("patterns", _patterns, "event-id globs (optional)"),), "Subscribed",
                    '`{"subscribed": true}`, then one record a line (as `tail --json`) until '
                    "the client closes"),
    "status": Op(Request, (), "Status", "as `status --json`"),
    "acknowledge": Op(Request, (), "Acknowledged",
                      '`{"acknowledged": [problems]}`: the problems that keep the daemon '
                      "unhealthy until an operator has seen them (data a shared store lost), "
                      "now cleared"),
    "stop": Op(StopRequest,
               (Field("drain", _bool, "false: stop at once, cutting short what runs (default "
                      "true: refuse new emits, finish what was accepted within "
                      "`shutdown_timeout`)"),),
               "Stopping",
               '`{"stopping": true, "drain", "pid"}`; the daemon then closes this connection, '
               "shuts down and closes the others"),
}
_SIZED = frozenset(op for op, spec in OPS.items() if "size" in spec.request.__struct_fields__)
"""The ops whose request carries its line's size (for ``max_queue_bytes``)."""
_NAMES = {op: frozenset(field.name for field in spec.fields) | {"id", "op"}
          for op, spec in OPS.items()}


def decode_request(line: bytes | str) -> Request:
    """Parse and check one request line; raise :class:`ProtocolError` naming the problem."""
    data = loads(line)
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ProtocolError(ErrorCode.BAD_JSON, f"a request is a JSON object, not a {kind}")
    request_id = data.get("id")
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        problem = f'"id" must be a number or a string, got {request_id!r}'
        raise ProtocolError(ErrorCode.BAD_REQUEST, problem)
    op = data.get("op")
    if not isinstance(op, str) or (spec := OPS.get(op)) is None:
        raise ProtocolError(ErrorCode.UNKNOWN_OP, f"unknown op {op!r}; the ops are "
                            f"{', '.join(OPS)}", request_id=request_id)
    try:
        fields = spec.build(_values(op, spec, data))
        if op in _SIZED:
            fields["size"] = len(line)
        return spec.request(id=request_id, op=op, **fields)
    except ProtocolError as exc:
        raise ProtocolError(exc.code, exc.problem, request_id=request_id) from None


def _values(op: str, spec: Op, data: dict[str, Any]) -> dict[str, Any]:
    if not _NAMES[op].issuperset(data):
        unknown = sorted(set(data) - _NAMES[op])[0]
        takes = sorted(field.name for field in spec.fields) or "none"
        raise ProtocolError(ErrorCode.BAD_REQUEST,
                            f"op {op!r} takes no field {unknown!r}; it takes {takes}")
    values: dict[str, Any] = {}
    for field in spec.fields:
        if field.name not in data and not field.required:
            continue
        value = data.get(field.name)
        try:
            values[field.name] = field.read(value)
        except _Bad as bad:
            raise ProtocolError(ErrorCode.BAD_REQUEST,
                                f'"{field.name}" must be {bad.want}, got {value!r}') from None
    return values
