"""``Link``: what the shared broker asks of a store that N daemons share (Redis, PostgreSQL).

The broker (``broker.py``) holds the policy: what a daemon reads, holds, renews, hands back
and reports, and when. A link holds none: it is the commands of one store, each batched,
each raising one of :attr:`Link.errors` when the store does not take it. A delivery is
known to a link by its *entry*: the queue it waits in (a ``stream``: a listener's queue of
one priority) and the store's id for it there (``entry_id``), with its payload
(``codec.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from ...bus.delivery import Delivery, DeliveryObserver, EmitterStats
from ...config import BackendConfig
from .outbound import Emit

__all__ = ("Connect", "Link", "Views", "masked")

Entry = tuple[str, bytes]
"""A delivery as the store knows it: (stream, entry id)."""


def masked(url: str) -> str:
    """``url`` with its password left out, to show and log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


class Views(DeliveryObserver, Protocol):
    """The live views (``tail``, ``emit --wait``) across daemons: this daemon's records go
    out with the writer's next round while a daemon elsewhere listens; the others' come in
    to the broker while a view here listens."""

    records: list[bytes]
    """Records not sent yet: the link's next :meth:`Link.send` sends them."""
    publishing: bool
    """Whether a daemon elsewhere listens, so this one publishes every change."""

    async def listen(self, broker: Any,
                     routes: Callable[[], Awaitable[dict[str, tuple[str, ...]]]],
                     wake: Callable[[], None]) -> None:
        """Relay other daemons' records to ``broker`` (its ``on_record``), publish this
        daemon's, and hand it the bus's routes when a daemon says they changed."""

    async def tail_ready(self) -> None:
        """Return once this daemon hears the other daemons' records (at most 1 s)."""


class Link(Protocol):
    """One daemon's connection to a shared store."""

    store: str
    """The store's name, as messages say it ("Redis", "PostgreSQL")."""
    version: str
    """The server's version."""
    errors: tuple[type[BaseException], ...]
    """What a lost or refusing server raises."""
    lost_errors: tuple[type[BaseException], ...]
    """What a lost server raises (the others: a command it refused)."""
    @property
    def views(self) -> Views:
        """Records of the live views between this daemon and the others."""

    daemons: list[dict[str, Any]]
    """The live daemons of the bus, as the last :meth:`stats` read them."""
    pauses: dict[str, float | None]
    """The paused listeners of the bus, as the last :meth:`beat` read them."""
    regrouped: bool
    """Set when a read found a listener's queue gone (and made it again)."""

    def stream_of(self, listener: str, priority: int) -> str:
        """The queue that holds ``listener``'s deliveries of ``priority``."""

    def listener_of(self, stream: str) -> str:
        """The listener whose deliveries ``stream`` holds."""

    def foreign(self, exc: BaseException) -> str | None:
        """What foreign data under the bus's name a refusal names, if that is its cause."""

    # start and stop
    async def mark(self) -> None:
        """Mark the bus as known to this daemon: the mark gone later means the store lost it."""

    async def close(self) -> None:
        """Say this daemon left, and disconnect."""

    async def fires(self) -> dict[str, float]:
        """When each schedule last fired, on any daemon."""

    async def reserve_ids(self, count: int) -> range:
        """``count`` delivery ids of the bus's own, never handed out again."""

    # listeners
    async def join(self, local: dict[str, tuple[str, ...]], joins: set[str], leaves: set[str],
                   handbacks: Sequence[Entry] = (), *, keep: int = 0,
                   reason: str = "") -> dict[str, tuple[str, ...]]:
        """Register ``joins`` as served here (with their patterns in ``local``), ``leaves``
        as no longer; hand back entries read but not run; fail with ``reason`` what waits
        for listeners no daemon serves any more. Returns the bus's routes."""

    async def routes(self) -> dict[str, tuple[str, ...]]:
        """Every listener of the bus, with the event patterns it takes."""

    async def hosted_here(self, names: set[str]) -> set[str]:
        """Which of these listeners name this daemon among their hosts."""

    async def own_pending(self, name: str) -> list[tuple[str, bytes, bytes]]:
        """The entries of ``name`` this daemon read and did not finish before it stopped."""

    # the hot path's records
    async def send(self, emits: Sequence[Emit], followed: set[int],
                   acks: Sequence[tuple[str, bytes, Delivery, str]],
                   parks: Sequence[tuple[str, bytes, Delivery, float, str]],
                   fails: Sequence[tuple[str, bytes, Delivery, str]], fired: dict[str, float],
                   window_ms: str, keep: int, duplicates: int = 0, max_keys: int = 0,
                   ) -> dict[int, bytes]:
        """One round: the emits (each all or none), the outcomes, the schedule fires, the
        duplicates answered here, and the views' records. Returns, by index in ``emits``,
        the first answer of each emit whose dedupe key another emit had taken."""

    async def read(self, names: Sequence[str], count: int, *,
                   block: bool = True) -> list[tuple[str, bytes, bytes]]:
        """New entries of these listeners, highest priority first, each now held by this
        daemon (``block``: waiting a moment for some)."""

    async def move_due(self) -> None:
        """Make what waited for its time readable once due; until cancelled."""

    # keeping up
    async def beat(self, running: dict[str, int], held: int,
                   ) -> tuple[dict[str, tuple[str, ...]], dict[str, float], bool]:
        """Say this daemon lives and what it runs; returns the bus's routes, its schedule
        fires, and whether the bus's mark is still there."""

    async def pace(self, name: str, gap: float) -> float:
        """Have the bus grant the next start of ``name``, ``gap`` seconds at least after the
        one granted before; returns how many seconds from now it is."""

    async def read_pauses(self) -> dict[str, float | None]:
        """The paused listeners of the bus, now."""

    async def set_pause(self, name: str, paused: bool, until: float | None = None) -> None:
        """Pause ``name`` bus-wide (until ``until``, a time.time()), or resume it."""

    async def renew(self, held: Sequence[Entry]) -> set[bytes]:
        """Renew the claim on what this daemon holds; returns the entries it lost."""

    async def take_over(self, names: Sequence[str], claim_after: float,
                        ) -> dict[str, list[tuple[bytes, bytes]]]:
        """Entries of these listeners whose daemon has not renewed them for
        ``claim_after`` seconds, now held here, by stream."""

    async def heads(self, keys: Sequence[tuple[str, str]]) -> list[int | None]:
        """The delivery that may run now of each (listener, order key); None: no record of
        the key (the oldest held goes first)."""

    # inspection and the failed list
    async def stats(self, names: Sequence[str], unsent: int) -> EmitterStats | None:
        """The bus's counters; None when the bus's mark is gone."""

    async def listing(self, names: Sequence[str], most: int) -> list[Delivery]:
        """Up to ``most`` deliveries of each kind: failed, waiting for a time, pending."""

    async def failed_records(self, ids: Iterable[int] | None,
                             ) -> list[tuple[int, bytes | None]]:
        """The failed list's records of these ids (all for None); None where not failed."""

    async def requeue(self, items: Sequence[tuple[int, str, bytes, str, str]],
                      ) -> tuple[str, int] | None:
        """Move failed deliveries (id, listener, payload, order key, stream) back to their
        queues, all or none; else ("missing" or "unrouted", the id that stopped it)."""

    async def purge_failed(self) -> int:
        """Empty the failed list; how many it held."""

    async def purge_waiting(self, state: str, names: Sequence[str],
                            mine: Sequence[Entry]) -> int:
        """Drop what waits in ``state`` ("pending": also what this daemon read and did not
        start, ``mine``); how many."""


Connect = Callable[[BackendConfig, str], Awaitable[Link]]
"""Opens a :class:`Link` for the daemon named by the second argument, or raises a
:class:`~eventbus_cli.errors.BackendError` naming the URL and what to do."""

