"""The records a broker keeps: one :class:`Delivery` per (event, listener), and counters.

A delivery names its listener by name, not by object: the listener that runs it is whichever
one of that name is loaded when a worker takes it, so it can outlive a reload, a restart (the
journal) or the host that emitted it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from ..protocol.event import NORMAL, PRIORITIES

__all__ = ("Delivery", "DeliveryObserver", "DeliveryState", "EmitterStats", "ListenerStats",
           "iso_time")


class DeliveryState(StrEnum):
    """Where a delivery is in its life."""

    PENDING = "pending"  # queued, waiting for a worker
    SCHEDULED = "scheduled"  # emitted for later: waits for its due time (``due_at``)
    RUNNING = "running"  # a worker is calling the listener
    RETRYING = "retrying"  # failed, waiting out its backoff before the next attempt
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed its last attempt; kept in the failed list


_PENDING = DeliveryState.PENDING  # a module global: quicker than the class attribute


@dataclass(slots=True)
class ListenerStats:
    """Counters of one listener; ``pending``, ``running`` and ``retrying`` are current."""

    pending: int = 0
    running: int = 0
    retrying: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0  # attempts after the first, over the emitter's life
    scheduled: int = 0
    paused: bool = False  # an operator paused it: its deliveries wait


@dataclass(frozen=True, slots=True)
class EmitterStats:
    """A snapshot of a broker's counters, in total and per listener name."""

    pending: int
    running: int
    retrying: int
    succeeded: int
    failed: int
    unrouted: int
    listeners: dict[str, ListenerStats] = field(default_factory=dict)
    failed_list: int = 0
    """How many failed deliveries the failed list holds now (``failed`` counts since start)."""
    scheduled: int = 0
    """Deliveries emitted for later, waiting for their due time (not counted in pending)."""
    next_due: float | None = None
    """time.time() the earliest scheduled delivery is due, if any."""
    duplicates: int = 0
    """Emits answered as duplicates of one accepted lately with their dedupe key."""
    queued_bytes: int = 0
    """Bytes of the encoded events that the pending and retrying deliveries carry, where
    their size was measured (the daemon's emits)."""

    def to_dict(self) -> dict[str, Any]:
        """The ``queue --json`` document."""
        return asdict(self)


class Delivery:
    """One event on its way to one listener, known by the listener's ``name``.

    Only the broker that holds a delivery changes its ``state`` and ``attempts``.
    """

    host: str | None
    """The daemon that ran it, on a record from another daemon of a shared bus; unset on
    this daemon's own deliveries (read it with ``getattr(delivery, "host", None)``)."""

    __slots__ = (
        "args",
        "attempts",
        "created_at",
        "due_at",
        "error",
        "event",
        "failed_at",
        "host",
        "id",
        "kwargs",
        "listener",
        "order_key",
        "priority",
        "queued_at",
        "size",
        "started_at",
        "state",
        "trace",
        "traceback",
    )

    def __init__(
        self, id: int, event: str, args: tuple[Any, ...], kwargs: dict[str, Any], listener: str,
        queued_at: float = 0.0, size: int = 0, created_at: float | None = None,
    ) -> None:
        self.id = id
        self.event = event
        self.args = args
        self.kwargs = kwargs
        self.listener = listener
        self.queued_at = queued_at  # time.monotonic() when queued; 0.0 where nobody asked
        self.size = size  # bytes of the encoded event it carries; 0 where nobody measured
        self.state = _PENDING
        self.attempts = 0
        self.error: str | None = None  # "ExceptionType: message" of the last failed attempt
        self.traceback: str | None = None
        self.created_at = created_at  # time.time() of the emit
        self.due_at: float | None = None  # time.time() a scheduled delivery is due
        self.started_at = 0.0  # time.time() its last attempt began; 0.0 before the first
        self.failed_at: float | None = None  # time.time() it last failed its final attempt
        self.trace: dict[str, str] | None = None  # the emit's W3C trace context, if it had one
        self.priority = NORMAL  # an index of PRIORITIES: higher runs first in its lane
        self.order_key: str | None = None  # deliveries of one key run one at a time, in order

    def to_dict(self) -> dict[str, Any]:
        """The ``queue list --json`` item; ``args`` and ``kwargs`` as given to emit."""
        return {
            "id": self.id,
            "event": self.event,
            "listener": self.listener,
            "state": self.state.value,
            "attempts": self.attempts,
            "error": self.error,
            "created": iso_time(self.created_at),
            "last_attempt": iso_time(self.started_at or None),
            "failed": iso_time(self.failed_at),
            "due": iso_time(self.due_at),
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "priority": PRIORITIES[self.priority],
            "order_key": self.order_key,
        }

    def __repr__(self) -> str:
        return (f"<Delivery {self.id} {self.event!r} -> {self.listener} {self.state.value} "
                f"attempts={self.attempts}>")


def iso_time(when: float | None) -> str | None:
    """A time.time() value as ISO 8601 in UTC, to the millisecond."""
    if when is None:
        return None
    moment = datetime.fromtimestamp(when, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DeliveryObserver(Protocol):
    """Told of every change to a broker's deliveries, on the loop: the live views (``tail``,
    ``emit --wait``) are one. Methods must return quickly and must not raise."""

    def emitted(self, event_id: str, deliveries: Sequence[Delivery]) -> None:
        """An event was accepted, with the deliveries it queued (none: it was unrouted)."""

    def requeued(self, deliveries: Sequence[Delivery]) -> None:
        """Failed deliveries queued again by a retry."""

    def due(self, delivery: Delivery) -> None:
        """A scheduled delivery's time came: it waits for a worker from now on."""

    def started(self, delivery: Delivery) -> None:
        """A worker began an attempt."""

    def finished(self, delivery: Delivery) -> None:
        """An attempt ended; ``delivery.state`` is SUCCEEDED, RETRYING or FAILED."""

    def removed(self, deliveries: Sequence[Delivery]) -> None:
        """Deliveries the broker dropped: purged, or pushed out of the failed list."""
