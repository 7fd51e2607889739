"""``Broker``: the one owner of every unfinished delivery, its state and every counter.

An emitter routes an event to its listeners and hands the broker one delivery per listener;
workers take deliveries from the broker and report each attempt's outcome to it; inspection,
retry, purge and reload ask it. Nothing else changes a delivery's state.

The contract is shaped for brokers that keep deliveries elsewhere, too (SQLite, Redis
Streams): what runs on the hot path (:meth:`put`, :meth:`take`, :meth:`succeeded`,
:meth:`failed`) records locally and returns, and :meth:`settled` is the one place that waits
for the store — the daemon calls it before it acknowledges an emit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import QueueFullError
from .delivery import Delivery, DeliveryObserver, DeliveryState, EmitterStats

if TYPE_CHECKING:
    from .routing import Slot

__all__ = ("Broker",)


class Broker(ABC):
    """Where deliveries live between an emit and their last attempt."""

    size: int
    """How many deliveries may wait (pending, or waiting for their time) at once."""
    max_bytes: int | None = None
    """How many bytes of encoded events those may carry at once; None: no such bound."""
    durable = False
    """Whether an accepted delivery outlives this process (a journal, Redis)."""
    store = "the journal"
    """Where a durable broker keeps deliveries, as a log line names it."""
    rerun = "on the next start"
    """When a durable broker's deliveries left unfinished at shutdown run again."""

    # -- listeners ---------------------------------------------------------------------------

    @abstractmethod
    def serve(self, slots: Sequence[Slot], *, reason: str) -> int:
        """Hand out deliveries to these listeners from now on, by name.

        Waiting deliveries of a name that is no longer served fail with ``reason``; returns
        how many did. Calls already running finish on the slot they started with.
        """

    @abstractmethod
    def serves(self, name: str) -> bool:
        """Whether a listener of this name is served (so a failure may be retried)."""

    # -- emitting ----------------------------------------------------------------------------

    @abstractmethod
    def has_room(self, needed: int, size: int = 0, *, later: bool = False) -> bool:
        """Whether ``needed`` more deliveries, each carrying ``size`` bytes, fit now; with
        ``later``, whether that many more may be scheduled (``max_scheduled``)."""

    max_scheduled: int = 0
    """How many deliveries may wait for a due time at once."""

    def answer_for(self, key: str) -> dict[str, Any] | None:
        """The answer an emit with dedupe ``key`` got, if one was accepted lately."""
        return None

    def remember(self, key: str, answer: dict[str, Any]) -> None:  # noqa: B027 - optional
        """Keep that an emit with dedupe ``key`` was accepted, with its ``answer``."""

    def fires(self) -> dict[str, float]:
        """When each schedule, by name, last fired, as far as this broker keeps it (the
        memory broker keeps nothing across a restart)."""
        return {}

    def note_fire(self, name: str, when: float) -> None:  # noqa: B027 - optional to keep
        """Keep that the schedule ``name`` fired at ``when`` (a time.time() value)."""

    def full(self, event_id: str, needed: int, size: int = 0, *,
             later: bool = False) -> QueueFullError:
        """The error for an event of ``needed`` deliveries of ``size`` bytes that does not
        fit, naming the bound it is over."""
        if later:
            return QueueFullError(event_id, needed, self.max_scheduled, unit="scheduled")
        if self.max_bytes is not None and (needed * size > self.max_bytes or (
                needed <= self.size and self.has_room(needed, 0))):
            return QueueFullError(event_id, needed * size, self.max_bytes, unit="bytes")
        return QueueFullError(event_id, needed, self.size)

    @abstractmethod
    async def wait_for_room(self) -> None:
        """Return once room may have been made (drained to half full), or on :meth:`wake_all`."""

    @abstractmethod
    def wake_all(self) -> None:
        """Wake every task waiting for room, to check again (the emitter is closing)."""

    @abstractmethod
    def put(self, event_id: str, slots: Sequence[Slot], args: tuple[Any, ...],
            kwargs: dict[str, Any], size: int = 0, due_at: float | None = None,
            key: str | None = None) -> Sequence[Delivery]:
        """Queue one delivery of the event per slot, all of them; the caller checked room.
        ``size`` is the encoded event's bytes, where known; with ``due_at`` (a time.time())
        the deliveries are scheduled for then. With no slots the event is counted as
        unrouted. A broker shared by several daemons routes to the listeners of all of them
        and drops an event whose dedupe ``key`` another daemon took lately."""

    def targets(self, event_id: str, slots: Sequence[Slot]) -> int:
        """How many deliveries an emit of ``event_id`` makes, given this emitter's ``slots``
        for it (a shared broker counts the listeners other daemons load, too)."""
        return len(slots)

    def follow(self, deliveries: Sequence[Delivery]) -> None:  # noqa: B027 - optional
        """Someone here waits for these deliveries' outcomes (``emit --wait``): a shared
        broker then tells this daemon of them wherever they run."""

    # -- workers -----------------------------------------------------------------------------

    @abstractmethod
    async def take(self) -> tuple[Delivery, Slot]:
        """Wait for the next delivery due to run, across listeners, fairly; it is running
        from now on, as its ``attempts``-th attempt, on the returned slot."""

    @abstractmethod
    def take_nowait(self) -> tuple[Delivery, Slot] | None:
        """As :meth:`take`, but None at once where no delivery is due."""

    @abstractmethod
    def succeeded(self, delivery: Delivery) -> None:
        """The attempt succeeded: the delivery is done."""

    @abstractmethod
    def failed(self, delivery: Delivery, error: str, traceback: str | None, *,
               retry_in: float | None) -> None:
        """The attempt failed: try again in ``retry_in`` seconds, or (None) keep it in the
        failed list."""

    # -- inspection --------------------------------------------------------------------------

    @abstractmethod
    def stats(self) -> EmitterStats:
        """Counters in total and per served listener, as a snapshot."""

    @abstractmethod
    def deliveries(self, state: DeliveryState | None = None) -> Iterator[Delivery]:
        """Unfinished and failed deliveries, of one state or all: pending, running,
        retrying, then failed."""

    @abstractmethod
    def find(self, delivery_id: int) -> Delivery:
        """The delivery with this id; :class:`DeliveryError` (missing) if none is held."""

    async def refresh(self, *, listing: bool = False) -> None:  # noqa: B027 - optional
        """Bring what :meth:`stats` (and with ``listing``, :meth:`deliveries`, :meth:`find`,
        :attr:`failed_list`) answer up to date, where another process changes it too."""

    # -- the failed list ---------------------------------------------------------------------

    @property
    @abstractmethod
    def failed_list(self) -> list[Delivery]:
        """The kept failed deliveries, oldest first."""

    @abstractmethod
    def retry(self, delivery_ids: Iterable[int] | None) -> list[Delivery]:
        """Queue failed deliveries again (all for None), attempts counted afresh, or raise
        and change nothing if one is not failed, its listener is not served or room lacks."""

    @abstractmethod
    def purge(self, state: DeliveryState) -> int:
        """Drop every FAILED delivery, or every waiting (PENDING and RETRYING) one."""

    async def aretry(self, delivery_ids: Iterable[int] | None) -> list[Delivery]:
        """:meth:`retry`, for brokers whose failed list lives elsewhere."""
        return self.retry(delivery_ids)

    async def apurge(self, state: DeliveryState) -> int:
        """:meth:`purge`, for brokers whose deliveries live elsewhere."""
        return self.purge(state)

    # -- life --------------------------------------------------------------------------------

    async def open(self) -> None:  # noqa: B027 - optional
        """Connect to the store, where there is one; before :meth:`run`."""

    def stop_taking(self) -> None:  # noqa: B027 - optional
        """The emitter is closing: take no more work from a shared store, and give back
        what was taken but not started, for another daemon to run."""

    @abstractmethod
    def add_observer(self, observer: DeliveryObserver) -> None:
        """Tell ``observer`` of every change from now on."""

    @abstractmethod
    def remove_observer(self, observer: DeliveryObserver) -> None:
        """Stop telling ``observer``."""

    @abstractmethod
    async def run(self) -> None:
        """The broker's own work (moving due deliveries back; writing to its store), until
        cancelled. The emitter runs it while it is open."""

    @abstractmethod
    async def settled(self) -> None:
        """Return once every change so far is as durable as this broker makes it."""

    @abstractmethod
    async def join(self) -> None:
        """Return once no delivery is pending, running or waiting for its time."""

    @abstractmethod
    def close(self) -> None:
        """Release what the broker holds (a file, a connection)."""
