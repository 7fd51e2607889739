"""The records an emitter keeps: one :class:`Delivery` per (event, listener), and counters."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from .listener import DeliveryOptions, EventListener

__all__ = ("Delivery", "DeliveryObserver", "DeliveryState", "EmitterStats", "ListenerStats")


class DeliveryState(StrEnum):
    """Where a delivery is in its life."""

    PENDING = "pending"  # queued, waiting for a worker
    RUNNING = "running"  # a worker is calling the listener
    RETRYING = "retrying"  # failed, waiting out its backoff before the next attempt
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed its last attempt; kept in the failed list


@dataclass(slots=True)
class ListenerStats:
    """Counters of one listener; ``pending``, ``running`` and ``retrying`` are current."""

    pending: int = 0
    running: int = 0
    retrying: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0  # attempts after the first, over the emitter's life


@dataclass(frozen=True, slots=True)
class EmitterStats:
    """A snapshot of an emitter's counters, in total and per listener name."""

    pending: int
    running: int
    retrying: int
    succeeded: int
    failed: int
    unrouted: int
    listeners: dict[str, ListenerStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``queue --json`` document."""
        return asdict(self)


class Slot:
    """One listener as an emitter runs it: options, counters, and its queue of deliveries.

    ``limit`` is how many of its calls may run at once; ``ready`` says whether the slot
    stands in the queue's round of listeners with work to hand out. A reload retires the
    slot: ``successor`` is then the slot of the listener of the same name in the new set
    (calls still running finish on this one), or None where the reload removed it.
    """

    __slots__ = ("fn", "is_async", "limit", "listener", "options", "queue", "ready", "retired",
                 "stats", "successor")

    def __init__(self, listener: EventListener, options: DeliveryOptions, limit: int,
                 stats: ListenerStats | None = None) -> None:
        self.listener = listener
        self.fn = listener.fn
        self.is_async = listener.is_async
        self.options = options
        self.limit = limit
        # Live counters, shared with the slot's predecessors; pending stays 0, see snapshot().
        self.stats = stats or ListenerStats()
        self.queue: deque[Delivery] = deque()
        self.ready = False
        self.retired = False
        self.successor: Slot | None = None

    def live(self) -> Slot | None:
        """The slot that now runs this listener: itself, a successor, or None if removed."""
        slot: Slot | None = self
        while slot is not None and slot.retired:
            slot = slot.successor
        return slot

    def snapshot(self) -> ListenerStats:
        """A copy of the counters, with ``pending`` counted from the queue."""
        stats = self.stats
        return ListenerStats(
            len(self.queue), stats.running, stats.retrying, stats.succeeded, stats.failed,
            stats.retried,
        )


class Delivery:
    """One event on its way to one listener."""

    __slots__ = ("args", "attempts", "error", "event", "id", "kwargs", "queued_at", "slot", "state",
                 "traceback")

    def __init__(
        self, id: int, event: str, args: tuple[Any, ...], kwargs: dict[str, Any], slot: Slot,
        queued_at: float = 0.0,
    ) -> None:
        self.id = id
        self.queued_at = queued_at  # time.monotonic() when queued; 0.0 where nobody asked
        self.event = event
        self.args = args
        self.kwargs = kwargs
        self.slot = slot
        self.state = DeliveryState.PENDING
        self.attempts = 0
        self.error: str | None = None  # "ExceptionType: message" of the last failed attempt
        self.traceback: str | None = None

    @property
    def listener(self) -> EventListener:
        return self.slot.listener

    def to_dict(self) -> dict[str, Any]:
        """The ``queue list --json`` item; ``args`` and ``kwargs`` as given to emit."""
        return {
            "id": self.id,
            "event": self.event,
            "listener": self.slot.listener.name,
            "state": self.state.value,
            "attempts": self.attempts,
            "error": self.error,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
        }

    def __repr__(self) -> str:
        return (
            f"<Delivery {self.id} {self.event!r} -> {self.slot.listener.name} "
            f"{self.state.value} attempts={self.attempts}>"
        )


class DeliveryObserver(Protocol):
    """Told of every change to the emitter's deliveries (the journal is one), on the loop.

    Methods must return quickly and must not raise.
    """

    def emitted(self, event_id: str, deliveries: Sequence[Delivery]) -> None:
        """An event was accepted, with the deliveries it queued (none: it was unrouted)."""

    def requeued(self, deliveries: Sequence[Delivery]) -> None:
        """Failed deliveries queued again by a retry."""

    def started(self, delivery: Delivery) -> None:
        """A worker began an attempt."""

    def finished(self, delivery: Delivery) -> None:
        """An attempt ended; ``delivery.state`` is SUCCEEDED, RETRYING or FAILED."""

    def removed(self, deliveries: Sequence[Delivery]) -> None:
        """Deliveries the emitter dropped: purged, or pushed out of the failed list."""
