"""The event object of the wire protocol, as an emit, an emit_many batch and an ``emit --file``
line carry it: its fields, their limits, and the check that makes an :class:`EventMessage`.
No I/O; on the emit path, so it imports little."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from ..errors import ErrorCode, InvalidEventIdError, ProtocolError
from ..names import validate_event_id
from .codec import MAX_DEPTH, TOO_DEEP, loads

__all__ = ("EVENT_FIELDS", "MAX_KEY", "NORMAL", "PRIORITIES", "EventMessage", "Ordering",
           "Placing", "check_event", "decode_event", "ordering_of")

PRIORITIES = ("high", "normal", "low")
"""The priorities an emit may ask for, highest first; a delivery holds its index."""
NORMAL = 1


class Ordering(NamedTuple):
    """Where an emit's deliveries stand in their listeners' lanes: ``priority`` (an index of
    :data:`PRIORITIES`; higher runs first, FIFO within one) and ``order_key`` (deliveries of
    one key run one at a time, in emit order, per listener)."""

    priority: int = NORMAL
    order_key: str | None = None


Placing = tuple[int, str | None]
"""What the lanes read of an :class:`Ordering`: a priority's index and an order key. The
in-process emitter passes a plain tuple, cheaper to make for every keyed emit."""


def ordering_of(priority: object, order_key: object, where: str = "") -> Ordering | None:
    """The :class:`Ordering` of an emit's ``priority`` (a name of :data:`PRIORITIES`) and
    ``order_key`` (1 to 200 characters), None for the defaults; a :class:`ProtocolError`
    naming the value otherwise."""
    if priority is None and order_key is None:
        return None
    level = NORMAL
    if priority is not None:
        if priority not in PRIORITIES:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f'{where}"priority" must be one of '
                                f"{', '.join(PRIORITIES)}, not {priority!r}")
        level = PRIORITIES.index(priority)  # one of them, checked
    if order_key is not None and not (type(order_key) is str and 0 < len(order_key) <= MAX_KEY
                                      and order_key.isprintable()):
        shown = (f"one of {len(order_key)} characters" if isinstance(order_key, str)
                 and len(order_key) > MAX_KEY else repr(order_key))
        raise ProtocolError(ErrorCode.BAD_REQUEST, f'{where}"order_key" must be a string of 1 '
                            f"to {MAX_KEY} printable characters (no tab, no newline), not "
                            f"{shown}")
    return Ordering(level, order_key)  # a str or None, checked


# A NamedTuple rather than a dataclass: made at import, on a path where start-up shows.
class EventMessage(NamedTuple):
    """One event to emit: its id and the values the listeners receive."""

    event: str
    args: list[Any]
    kwargs: dict[str, Any]
    key: str | None = None  # a dedupe key: a repeat within dedupe_window queues nothing
    trace: dict[str, str] | None = None  # the emitter's W3C trace context: traceparent, ...
    ordering: Ordering | None = None  # a priority, an order key; None: normal, no key


EVENT_FIELDS = frozenset({"event", "args", "kwargs", "key", "traceparent", "tracestate",
                          "priority", "order_key"})
_MAX_TRACE = 1024  # characters of a traceparent or tracestate (W3C: 55, and 512 members)
_VALID_IDS: set[str] = set()  # event ids seen valid lately: most emits repeat a few ids
_VALID_IDS_KEPT = 4096
MAX_KEY = 200
"""The longest dedupe key, in characters."""


def check_event(data: object, index: int | None) -> EventMessage:
    """Check one event object: the emit request's own fields (index None), or item ``index``
    of an emit_many batch or an events file (-1), where unknown fields are refused too."""
    if (type(data) is dict and type(event := data.get("event")) is str
            and type(args := data.get("args", [])) is list
            and type(kwargs := data.get("kwargs", {})) is dict
            and (index is None or EVENT_FIELDS.issuperset(data))):
        if event not in _VALID_IDS:
            try:
                validate_event_id(event)
            except InvalidEventIdError as exc:
                raise ProtocolError(ErrorCode.INVALID_EVENT, f"{_where(index)}{exc}") from None
            if len(_VALID_IDS) >= _VALID_IDS_KEPT:
                _VALID_IDS.clear()
            _VALID_IDS.add(event)
        # Bounded, so that whatever is accepted can be written out again (a reply, the
        # journal, a tail record) without running out of recursion.
        if not (_shallow(args, MAX_DEPTH) and _shallow(kwargs.values(), MAX_DEPTH)):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"{_where(index)}{TOO_DEEP}")
        key = data.get("key")
        if key is not None and not (type(key) is str and 0 < len(key) <= MAX_KEY):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f'{_where(index)}"key" must be a string '
                                f"of 1 to {MAX_KEY} characters, not {key!r}")
        ordering = None
        if "priority" in data or "order_key" in data:
            ordering = ordering_of(data.get("priority"), data.get("order_key"), _where(index))
            if ordering is not None and ordering.priority == NORMAL and not ordering.order_key:
                ordering = None
        if "traceparent" not in data and ordering is None:
            return EventMessage(event, args, kwargs, key)
        trace = _trace(data, index) if "traceparent" in data else None
        return EventMessage(event, args, kwargs, key, trace, ordering)
    raise ProtocolError(ErrorCode.BAD_REQUEST, _event_problem(data, _where(index)))


def _trace(data: dict[str, Any], index: int | None) -> dict[str, str]:
    trace: dict[str, str] = {name: data[name] for name in ("traceparent", "tracestate")
                             if name in data}
    for name, value in trace.items():
        if not (type(value) is str and 0 < len(value) <= _MAX_TRACE):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f'{_where(index)}"{name}" must be a '
                                f"string of 1 to {_MAX_TRACE} characters, not {value!r}")
    return trace


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


def _where(index: int | None) -> str:
    return "" if index is None or index < 0 else f"events[{index}]: "


def _event_problem(data: object, where: str) -> str:
    if not isinstance(data, dict):
        return f"{where}an event must be an object, got {data!r}"
    for name, kind, wanted in (("event", str, "a string"), ("args", list, "a list"),
                               ("kwargs", dict, "an object")):
        if (name in data or name == "event") and not isinstance(data.get(name), kind):
            return f'{where}"{name}" must be {wanted}, got {data.get(name)!r}'
    extra = sorted(set(data) - EVENT_FIELDS)[0]
    return (f"{where}unknown field {extra!r}; an event takes event, args, kwargs, key, "
            "priority, order_key, traceparent and tracestate")


def decode_event(line: bytes | str) -> EventMessage:
    """Parse one event object (a line of an ``emit --file`` file), checked as emit_many would."""
    return check_event(loads(line), -1)
