"""Every op a client offers, written once: what it sends and how its result is read, with no
I/O. :class:`~.sync.Client` and :class:`~.aio.AsyncClient` are transports over these: each
names an op once (``emit = sync_op(ops.emit)``), and the descriptor runs it over the
transport's ``call``, with this module's signature, docstring and result type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    NamedTuple,
    ParamSpec,
    Protocol,
    Self,
    TypeVar,
    overload,
)

from .calls import emit_fields, list_fields, retry_fields

if TYPE_CHECKING:  # types only: `eventbus emit` starts without building them
    from datetime import datetime

    from ..protocol.results import (
        DeliveryDetail,
        DeliveryInfo,
        EmitResult,
        EventInfo,
        Hello,
        ListenerInfo,
        PauseState,
        QueueCounts,
        ReloadResult,
        ScheduleInfo,
        Status,
    )

__all__ = ("Call", "async_op", "sync_op")

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Call(NamedTuple, Generic[T_co]):
    """One request to send: its op and fields, and how its result becomes what the method
    returns."""

    op: str
    fields: dict[str, Any]
    read: Callable[[Any], T_co]


def _as_is(result: Any) -> Any:
    return result


def _decoded(name: str, *, many: bool = False) -> Callable[[Any], Any]:
    """A reader that decodes a result into the Struct ``name`` of
    :mod:`~eventbus_cli.protocol.results` (a list of them with ``many``). msgspec loads on
    the first such result: `eventbus emit` never needs it."""
    def read(result: Any) -> Any:
        from msgspec import convert

        from ..protocol import results

        kind = getattr(results, name)
        return convert(result, list[kind] if many else kind)  # type: ignore[valid-type]

    return read


class _SyncTransport(Protocol):
    def call(self, op: str, /, **fields: Any) -> Any: ...


class _AsyncTransport(Protocol):
    def call(self, op: str, /, **fields: Any) -> Awaitable[Any]: ...


class sync_op(Generic[P, T]):
    """An op of this module as a method of a blocking client."""

    def __init__(self, make: Callable[P, Call[T]]) -> None:
        self.make = make
        self.__doc__ = make.__doc__

    @overload
    def __get__(self, client: None, owner: type) -> Self: ...
    @overload
    def __get__(self, client: _SyncTransport, owner: type | None = None) -> Callable[P, T]: ...

    def __get__(self, client: _SyncTransport | None,
                owner: type | None = None) -> Self | Callable[P, T]:
        if client is None:
            return self
        make = self.make

        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            call = make(*args, **kwargs)
            return call.read(client.call(call.op, **call.fields))

        run.__doc__, run.__name__ = make.__doc__, make.__name__
        return run


class async_op(Generic[P, T]):
    """An op of this module as a method of an async client."""

    def __init__(self, make: Callable[P, Call[T]]) -> None:
        self.make = make
        self.__doc__ = make.__doc__

    @overload
    def __get__(self, client: None, owner: type) -> Self: ...
    @overload
    def __get__(self, client: _AsyncTransport,
                owner: type | None = None) -> Callable[P, Awaitable[T]]: ...

    def __get__(self, client: _AsyncTransport | None,
                owner: type | None = None) -> Self | Callable[P, Awaitable[T]]:
        if client is None:
            return self
        make = self.make

        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            call = make(*args, **kwargs)
            return call.read(await client.call(call.op, **call.fields))

        run.__doc__, run.__name__ = make.__doc__, make.__name__
        return run


def _deliveries(result: Any) -> int:
    return int(result["deliveries"])


# -- emitting -------------------------------------------------------------------------------


def submit(event_id: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
           *, wait: float | None = None, require_listener: bool = False, check: bool = True,
           dry_run: bool = False, delay: float | None = None, at: datetime | None = None,
           key: str | None = None, priority: str | None = None,
           order_key: str | None = None) -> Call[EmitResult]:
    """Emit one event and return the daemon's whole answer: ``{"event_id",
    "deliveries"}``, and with ``wait`` (seconds) the ``results`` of its deliveries.
    ``check=False`` skips the argument check; ``dry_run`` queues nothing and answers which
    listeners would get the event and whether each takes its arguments; ``delay`` (seconds)
    or ``at`` schedule the deliveries for later. With a dedupe ``key``, a repeat within the
    daemon's ``dedupe_window`` is answered as the first was, with ``"duplicate": true``, and
    queues nothing. ``priority`` (``"high"``, ``"normal"``, ``"low"``) and ``order_key``
    place the deliveries in their listeners' lanes (see :meth:`emit`); ``kwargs`` may hold
    any names, those two included."""
    return Call("emit", emit_fields(event_id, args, kwargs, wait=wait,
                                    require_listener=require_listener, check=check,
                                    dry_run=dry_run, delay=delay, at=at, key=key,
                                    priority=priority, order_key=order_key),
                _decoded("EmitResult"))


def emit(event_id: str, /, *args: Any, priority: str | None = None,
         order_key: str | None = None, **kwargs: Any) -> Call[int]:
    """Emit one event; return how many deliveries the daemon queued (0: unrouted).

    ``priority`` (``"high"``, ``"normal"``, ``"low"``) and ``order_key`` are ours, not the
    listeners' (:meth:`submit` sends kwargs of those names): within each listener's lane
    higher priority runs first, and the deliveries of one order key run one at a time, in
    emit order."""
    return Call("emit", emit_fields(event_id, args, kwargs, priority=priority,
                                    order_key=order_key), _deliveries)


def emit_in(seconds: float, event_id: str, /, *args: Any, priority: str | None = None,
            order_key: str | None = None, **kwargs: Any) -> Call[int]:
    """Emit one event whose deliveries run in ``seconds``; return how many."""
    return Call("emit", emit_fields(event_id, args, kwargs, delay=seconds, priority=priority,
                                    order_key=order_key), _deliveries)


def emit_at(when: datetime, event_id: str, /, *args: Any, priority: str | None = None,
            order_key: str | None = None, **kwargs: Any) -> Call[int]:
    """Emit one event whose deliveries run at ``when`` (naive: local time)."""
    return Call("emit", emit_fields(event_id, args, kwargs, at=when, priority=priority,
                                    order_key=order_key), _deliveries)


def wait(seconds: float, event_id: str, /, *args: Any, priority: str | None = None,
         order_key: str | None = None, **kwargs: Any) -> Call[EmitResult]:
    """Emit one event and wait up to ``seconds`` for its deliveries to finish; the answer's
    ``results`` say how each ended (``ok`` None: not finished in time)."""
    return Call("emit", emit_fields(event_id, args, kwargs, wait=seconds, priority=priority,
                                    order_key=order_key), _decoded("EmitResult"))


def join(seconds: float = 60.0) -> Call[bool]:
    """Wait until nothing is pending, running or retrying in the daemon (scheduled
    deliveries aside); return False if ``seconds`` passed first."""
    return Call("join", {"timeout": seconds}, lambda result: bool(result["idle"]))


# -- reading --------------------------------------------------------------------------------


def hello() -> Call[Hello]:
    """The daemon's protocol version, version, pid and ``max_message_bytes``."""
    return Call("hello", {}, _decoded("Hello"))


def listeners() -> Call[list[ListenerInfo]]:
    """The listeners the daemon runs, as ``listeners list --json`` shows them."""
    return Call("listeners", {}, _decoded("ListenerInfo", many=True))


def queue() -> Call[QueueCounts]:
    """The counters, as ``queue --json`` shows them."""
    return Call("queue", {}, _decoded("QueueCounts"))


def deliveries(state: str | None = None, limit: int | None = None, *,
               before: int | None = None, listener: str | None = None,
               event: str | None = None, text: str | None = None) -> Call[list[DeliveryInfo]]:
    """The deliveries held (of one state), newest first, as ``queue list --json``; only ids
    below ``before`` (the next page), of ``listener``, of events matching the glob
    ``event``, whose error holds ``text`` (any case), where given."""
    fields = list_fields(state=state, limit=limit, before=before, listener=listener,
                         event=event, text=text)
    return Call("list", fields, _decoded("DeliveryInfo", many=True))


def delivery(delivery_id: int) -> Call[DeliveryDetail]:
    """One delivery with its traceback, as ``queue show --json`` shows it."""
    return Call("show", {"delivery": delivery_id}, _decoded("DeliveryDetail"))


def status() -> Call[Status]:
    """The daemon's status, as ``status --json`` shows it."""
    return Call("status", {}, _decoded("Status"))


def acknowledge() -> Call[list[str]]:
    """Clear the problems that keep the daemon unhealthy until an operator has seen them
    (data a shared store lost); return them."""
    return Call("acknowledge", {}, lambda result: list(result["acknowledged"]))


def schedules() -> Call[list[ScheduleInfo]]:
    """The daemon's schedules, as ``schedule list --json`` shows them."""
    return Call("schedules", {}, _decoded("ScheduleInfo", many=True))


def events() -> Call[list[EventInfo]]:
    """The event catalog, as ``events --json`` shows it."""
    return Call("events", {}, _decoded("EventInfo", many=True))


def schema(event_id: str) -> Call[dict[str, Any]]:
    """The JSON Schema of what every listener of ``event_id`` takes together."""
    return Call("schema", {"event": event_id}, _as_is)


# -- changing -------------------------------------------------------------------------------


def fire(name: str) -> Call[ScheduleInfo]:
    """Fire the schedule ``name`` now; return it as ``schedule list`` shows it."""
    return Call("fire", {"name": name}, _decoded("ScheduleInfo"))


def retry(delivery_ids: Sequence[int] | None = None, *, listener: str | None = None,
          event: str | None = None, text: str | None = None) -> Call[list[int]]:
    """Queue failed deliveries again: these, or (None) every one, or every one of
    ``listener``, of events matching ``event``, whose error holds ``text``; return their
    ids."""
    fields = retry_fields(delivery_ids, listener=listener, event=event, text=text)
    return Call("retry", fields, lambda result: list(result["retried"]))


def purge(state: str) -> Call[int]:
    """Drop the ``failed``, ``pending`` or ``scheduled`` deliveries; return how many."""
    return Call("purge", {"state": state}, lambda result: int(result["purged"]))


def pause(listener: str, seconds: float | None = None) -> Call[PauseState]:
    """Pause ``listener`` bus-wide (its deliveries wait, nothing fails), for ``seconds`` or
    until :meth:`resume`; a durable store keeps it across restarts."""
    fields: dict[str, Any] = {"listener": listener}
    if seconds is not None:
        fields["for"] = seconds
    return Call("pause", fields, _decoded("PauseState"))


def resume(listener: str) -> Call[PauseState]:
    """Resume the paused ``listener``."""
    return Call("resume", {"listener": listener}, _decoded("PauseState"))


def reload() -> Call[ReloadResult]:
    """Import the listeners afresh; what changed, as ``listeners reload --json``."""
    return Call("reload", {}, _decoded("ReloadResult"))


def stop(*, drain: bool = True) -> Call[int]:
    """Ask the daemon to stop (``drain``: after finishing what it accepted, within its
    ``shutdown_timeout``; else at once); return its pid, to wait for its exit."""
    return Call("stop", {"drain": drain}, lambda result: int(result["pid"]))
