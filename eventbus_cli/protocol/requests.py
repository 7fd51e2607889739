"""What each op asks, checked: one msgspec Struct per op request, as :func:`~.ops.decode_request`
makes it from a request line and the daemon's handler for the op takes it. An op without
fields (``hello``, ``status``, ...) is a plain :class:`Request`.

These are the checked forms, not the wire's: ``delay`` and ``at`` arrive as ``due_at``, and
``wait`` with its ``timeout`` as ``wait`` in seconds. Each field is documented, with its
limits, in :data:`~.ops.OPS`.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from msgspec import Struct

from .event import EventMessage

__all__ = (
    "EmitManyRequest",
    "EmitRequest",
    "FireRequest",
    "JoinRequest",
    "ListRequest",
    "Matching",
    "PauseRequest",
    "PurgeRequest",
    "Request",
    "ResumeRequest",
    "RetryRequest",
    "SchemaRequest",
    "ShowRequest",
    "StopRequest",
    "SubscribeRequest",
)


class Request(Struct, frozen=True, kw_only=True):
    """A checked request: its ``id`` (the reply carries it back) and its ``op``."""

    id: int | str
    op: str


class EmitRequest(Request, frozen=True, kw_only=True):
    """One event to queue now, or at ``due_at`` (time.time()); ``wait``: seconds to wait for
    its deliveries to finish; ``size``: bytes of the request line, for max_queue_bytes."""

    event: EventMessage
    wait: float | None = None
    require_listener: bool = False
    check: bool = True
    dry_run: bool = False
    due_at: float | None = None
    size: int = 0


class EmitManyRequest(Request, frozen=True, kw_only=True):
    """Events to queue in order; ``size`` is shared out among them."""

    events: tuple[EventMessage, ...]
    check: bool = True
    require_listener: bool = False
    size: int = 0


class JoinRequest(Request, frozen=True, kw_only=True):
    """Wait up to ``wait`` seconds for nothing to be pending, running or retrying."""

    wait: float


class FireRequest(Request, frozen=True, kw_only=True):
    """Fire the schedule ``name`` now."""

    name: str


class SchemaRequest(Request, frozen=True, kw_only=True):
    """The JSON Schema of what the listeners of ``event`` take."""

    event: str


class Matching(Struct, frozen=True, kw_only=True):
    """Which deliveries a ``list`` or ``retry`` means: of one ``listener``, of events that
    match the glob ``event``, whose error holds ``text`` (any case); None admits any."""

    listener: str | None = None
    event: str | None = None
    text: str | None = None

    def __bool__(self) -> bool:
        return any(value is not None for value in (self.listener, self.event, self.text))

    def admits(self, listener: str, event: str, error: str | None) -> bool:
        """Whether a delivery of ``listener`` for ``event`` that failed with ``error``
        matches."""
        return ((self.listener is None or listener == self.listener)
                and (self.event is None or fnmatchcase(event, self.event))
                and (self.text is None or self.text.casefold() in (error or "").casefold()))


class ListRequest(Request, frozen=True, kw_only=True):
    """The deliveries held, of ``state`` (all for None) that ``matching`` admits, with ids
    below ``before`` (a page's end), the newest ``limit`` of them."""

    state: str | None = None
    limit: int | None = None
    before: int | None = None
    matching: Matching = Matching()


class ShowRequest(Request, frozen=True, kw_only=True):
    """One delivery, with its traceback."""

    delivery: int


class RetryRequest(Request, frozen=True, kw_only=True):
    """Queue failed deliveries again: these, or (None) every one ``matching`` admits."""

    deliveries: tuple[int, ...] | None
    matching: Matching = Matching()


class PurgeRequest(Request, frozen=True, kw_only=True):
    """Drop the deliveries of ``state``: failed, pending or scheduled."""

    state: str


class SubscribeRequest(Request, frozen=True, kw_only=True):
    """Stream a record of each change whose event matches one of ``patterns`` (any if
    none)."""

    patterns: tuple[str, ...] = ()


class StopRequest(Request, frozen=True, kw_only=True):
    """Stop the daemon, draining first if ``drain``."""

    drain: bool = True


class PauseRequest(Request, frozen=True, kw_only=True):
    """Pause the listener ``listener`` bus-wide, until ``until`` (a time.time()) or
    resumed."""

    listener: str
    until: float | None = None


class ResumeRequest(Request, frozen=True, kw_only=True):
    """Resume the paused listener ``listener``."""

    listener: str
