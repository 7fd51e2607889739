"""``Broker``: the contract of the one owner of every unfinished delivery, its state and
every counter; ``Journal``: what a durable store does for a broker that writes through.

An emitter routes an event to its listeners and hands the broker one delivery per listener.
Every broker composes :class:`~.lanes.LocalLanes`, what this process holds: workers take
from ``broker.lanes`` and report a success to it, a failure to the broker (retry, or the
failed list). Inspection, retry, purge and reload ask the broker. Nothing else changes a
delivery's state.

The contract is shaped for brokers that keep deliveries elsewhere, too (SQLite, Redis
Streams): what runs on the hot path (:meth:`Broker.put`, the lanes' ``take`` and
``succeeded``, :meth:`Broker.failed`) records locally and returns, and :meth:`Broker.settled`
is the one place that waits for the store — the daemon calls it before it acknowledges an
emit. What a broker is and how healthy it is, it says itself (:meth:`Broker.describe`,
:meth:`Broker.status`, :meth:`Broker.problems`), so nothing outside it asks which it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import DeliveryError, QueueFullError
from .delivery import Delivery, DeliveryObserver, DeliveryState, EmitterStats

if TYPE_CHECKING:
    from ..protocol.event import Placing
    from ..protocol.results import BackendStatus, JournalStatus
    from .lanes import LocalLanes
    from .routing import Slot
    from .timings import Histogram

__all__ = ("Broker", "Journal")


class Broker(ABC):
    """Where deliveries live between an emit and their last attempt."""

    lanes: LocalLanes
    """What this process holds: the lanes workers take from."""
    durable = False
    """Whether an accepted delivery outlives this process (a journal, Redis)."""
    store = "memory"
    """Where the deliveries are kept, as a log line names it."""
    rerun = "on the next start"
    """When a durable broker's deliveries left unfinished at shutdown run again."""
    name: str | None = None
    """This daemon's name on a shared bus (``[backend] name``); None for a daemon alone."""
    keys_shared = False
    """Whether other daemons take dedupe keys in the same store: then a key is known to be
    this emit's only once it is stored (:meth:`claimed_elsewhere`)."""

    @property
    def size(self) -> int:
        """How many deliveries may wait (pending, or waiting for their time) at once."""
        return self.lanes.size

    @property
    def max_bytes(self) -> int | None:
        """How many bytes of encoded events those may carry at once; None: no such bound."""
        return self.lanes.max_bytes

    @property
    def max_scheduled(self) -> int:
        """How many deliveries may wait for a due time at once."""
        return self.lanes.max_scheduled

    # -- what it is ------------------------------------------------------------------------

    def describe(self) -> str:
        """Where deliveries are kept, for the daemon's banner."""
        return "memory (a restart loses what waits)"

    def status(self) -> tuple[JournalStatus | None, BackendStatus | None]:
        """Its part of the ``status`` document: its journal and its shared backend, each
        None where it has none."""
        return None, None

    def problems(self) -> list[str]:
        """What keeps it from taking emits now (for health); empty when healthy."""
        return []

    commit_times: Histogram | None = None
    """How long each write to its store took, where it writes one (for metrics)."""

    def link_state(self) -> tuple[int, bool] | None:
        """For a store reached over a network: how many calls to it failed, and whether it
        answers now (for metrics); None for the others."""
        return None

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

    def has_room(self, needed: int, size: int = 0, *, later: bool = False) -> bool:
        """Whether ``needed`` more deliveries, each carrying ``size`` bytes, fit now; with
        ``later``, whether that many more may be scheduled (``max_scheduled``)."""
        return self.lanes.has_room(needed, size, later=later)

    def answer_for(self, key: str) -> dict[str, Any] | None:
        """The answer an emit with dedupe ``key`` got, if one was accepted lately."""
        return None

    def remember(self, key: str, answer: dict[str, Any]) -> None:  # noqa: B027 - optional
        """Keep that an emit with dedupe ``key`` was accepted, with its ``answer``."""

    def claimed_elsewhere(self, key: str) -> dict[str, Any] | None:
        """Where :attr:`keys_shared`, after :meth:`settled`: the answer another daemon gave
        an emit with ``key`` that the store had already, if the one put here with it found
        it so (and so queued nothing); None: the key was this emit's."""
        return None

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

    async def wait_for_room(self) -> None:
        """Return once room may have been made (drained to half full), or on :meth:`wake_all`."""
        await self.lanes.wait_for_room()

    def wake_all(self) -> None:
        """Wake every task waiting for room, to check again (the emitter is closing)."""
        self.lanes.wake_all()

    @abstractmethod
    def put(self, event_id: str, slots: Sequence[Slot], args: tuple[Any, ...],
            kwargs: dict[str, Any], size: int = 0, due_at: float | None = None,
            key: str | None = None, ordering: Placing | None = None) -> Sequence[Delivery]:
        """Queue one delivery of the event per slot, all of them; the caller checked room.
        ``size`` is the encoded event's bytes, where known; with ``due_at`` (a time.time())
        the deliveries are scheduled for then; ``ordering`` gives them a priority and an
        order key. With no slots the event is counted as unrouted. A broker shared by several
        daemons routes to the listeners of all of them and drops an event whose dedupe
        ``key`` another daemon took lately."""

    def targets(self, event_id: str, slots: Sequence[Slot]) -> int:
        """How many deliveries an emit of ``event_id`` makes, given this emitter's ``slots``
        for it (a shared broker counts the listeners other daemons load, too)."""
        return len(slots)

    def follow(self, deliveries: Sequence[Delivery]) -> None:  # noqa: B027 - optional
        """Someone here waits for these deliveries' outcomes (``emit --wait``): a shared
        broker then tells this daemon of them wherever they run."""

    # -- outcomes ----------------------------------------------------------------------------

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

    def find(self, delivery_id: int) -> Delivery:
        """The delivery with this id, among :meth:`deliveries`; :class:`DeliveryError`
        (missing) if none is held."""
        for delivery in self.deliveries():
            if delivery.id == delivery_id:
                return delivery
        raise DeliveryError(delivery_id, "no such delivery: it succeeded, was purged, or never "
                            "existed (`eventbus queue list` shows the current ones)", missing=True)

    async def refresh(self, *, listing: bool = False) -> None:  # noqa: B027 - optional
        """Bring what :meth:`stats` (and with ``listing``, :meth:`deliveries`, :meth:`find`,
        :attr:`failed_list`) answer up to date, where another process changes it too."""

    # -- the failed list ---------------------------------------------------------------------

    @property
    @abstractmethod
    def failed_list(self) -> list[Delivery]:
        """The kept failed deliveries, oldest first."""

    @abstractmethod
    async def retry(self, delivery_ids: Iterable[int] | None) -> list[Delivery]:
        """Queue failed deliveries again (all for None), attempts counted afresh, or raise
        and change nothing if one is not failed, its listener is not served or room lacks.
        Async, as the failed list may live in a shared store."""

    @abstractmethod
    async def purge(self, state: DeliveryState) -> int:
        """Drop every FAILED delivery, every waiting (PENDING and RETRYING) one, or every
        SCHEDULED one; return how many."""

    async def pause(self, name: str, until: float | None = None) -> None:
        """Pause the listener ``name`` bus-wide: its deliveries wait, nothing fails, what runs
        finishes; until :meth:`resume`, or ``until`` (a time.time()). A durable store keeps
        it across restarts. The caller checked that the bus knows the name."""
        self.lanes.pause(name, until)

    async def resume(self, name: str) -> None:
        """Let the paused listener ``name`` run its deliveries again, bus-wide."""
        self.lanes.resume(name)

    def paused(self) -> dict[str, float | None]:
        """The paused listeners of the bus, each with when it resumes (None: when told)."""
        return dict(self.lanes.pauses)

    def known_listeners(self) -> set[str]:
        """The listener names the bus knows: this daemon's, and on a shared store every
        daemon's."""
        return set(self.lanes.by_name)

    def acknowledge(self) -> list[str]:
        """An operator saw the problems that keep the broker unhealthy until someone does
        (a shared store that lost data): clear them, and return them."""
        return []

    # -- life --------------------------------------------------------------------------------

    async def open(self) -> None:  # noqa: B027 - optional
        """Connect to the store, where there is one; before :meth:`run`."""

    def stop_taking(self) -> None:  # noqa: B027 - optional
        """The emitter is closing: take no more work from a shared store, and give back
        what was taken but not started, for another daemon to run."""

    def add_observer(self, observer: DeliveryObserver) -> None:
        """Tell ``observer`` of every change from now on."""
        self.lanes.add_observer(observer)

    def remove_observer(self, observer: DeliveryObserver) -> None:
        """Stop telling ``observer``."""
        self.lanes.remove_observer(observer)

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


class Journal(Protocol):
    """A durable store that a :class:`~.memory.MemoryBroker` writes every change through
    to (SQLite: ``stores/sqlite.py``). Each method but :meth:`run`, :meth:`settled` and
    :meth:`close` runs on the hot path: it records and returns."""

    def kept(self, deliveries: Sequence[Delivery]) -> None:
        """These deliveries were queued, or changed state but stay held."""

    def forgotten(self, deliveries: Sequence[Delivery]) -> None:
        """These deliveries are no longer held: done, purged, or pushed out of the list."""

    def remember(self, key: str, expires: float, answer: dict[str, Any],
                 dropped: Sequence[str]) -> None:
        """Keep dedupe ``key`` with its ``answer`` until ``expires``; forget ``dropped``."""

    def dedupe_keys(self) -> Iterable[tuple[str, float, dict[str, Any]]]:
        """The dedupe keys kept at the last stop: key, expiry, answer."""

    def note_fire(self, name: str, when: float) -> None:
        """Keep that the schedule ``name`` fired at ``when``."""

    def fires(self) -> dict[str, float]:
        """When each schedule last fired."""

    def pauses(self) -> dict[str, float | None]:
        """The listeners paused at the last stop, each with when it resumes (None: when
        told)."""

    async def keep_pause(self, name: str, paused: bool, until: float | None = None) -> None:
        """Keep that ``name`` is paused (until ``until``) or not, before returning."""

    def take_loaded(self, served: Sequence[str],
                    ) -> tuple[list[Delivery], int, str] | None:
        """Once, at the first serve: the deliveries the store held at its last stop (renamed
        for ``served``), the next id to give out, and why those of a listener no longer
        loaded fail; None after that."""

    commit_times: Histogram
    """How long each write took (for metrics)."""

    def describe(self) -> str:
        """Where it keeps the deliveries, for the daemon's banner."""

    def status(self) -> tuple[JournalStatus | None, BackendStatus | None]:
        """Its part of the ``status`` document (see :meth:`Broker.status`)."""

    def problems(self) -> list[str]:
        """What keeps it from taking emits now (for health)."""

    async def run(self) -> None:
        """Write what was recorded, until cancelled."""

    async def settled(self) -> None:
        """Return once everything recorded so far is written."""

    def close(self) -> None:
        """Write what is left and close."""
