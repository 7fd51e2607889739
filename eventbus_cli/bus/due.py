"""``DueHeap``: deliveries waiting for a time, earliest first.

The memory broker keeps two: retries waiting out their backoff (by ``time.monotonic()``) and
scheduled emits waiting for their due time (by ``time.time()``, since a due time is a date).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from itertools import chain
from typing import TYPE_CHECKING

from .delivery import Delivery

if TYPE_CHECKING:
    from .lane import Lane

__all__ = ("HANDED_OUT", "DueHeap")

Entry = tuple[float, int, Delivery, "Lane"]
"""(due time, delivery id, delivery, its lane): ordered by time, then by id."""

_POPPED = 32
"""Due entries taken pop by pop before the rest are cut out at once: a burst of 100,000 due
in the same second moves in one linear pass rather than 100,000 pops."""

HANDED_OUT = 10_000
"""Most due entries one :meth:`DueHeap.pop_due` hands out: the broker moves a burst into the
lanes a slice at a time, letting the event loop in between, so that no emit waits behind the
whole burst. Smaller slices cost more than they save: at 1,000 the last of a burst of
100,000 started 1.1 s after its due time instead of 0.7 s, and ready emits meanwhile slowed
by 31% instead of 8% (bench/schedules.py, paired in one process)."""


class DueHeap:
    """Deliveries, each with its lane, by the time they are due."""

    __slots__ = ("_entries", "_staged")

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._staged: list[Entry] = []  # cut out as due, not handed out yet; in order

    def __len__(self) -> int:
        return len(self._entries) + len(self._staged)

    def __bool__(self) -> bool:
        return bool(self._entries or self._staged)

    def __iter__(self) -> Iterator[Delivery]:
        """The deliveries, earliest first."""
        return (entry[2] for entry in sorted(chain(self._staged, self._entries)))

    @property
    def next_due(self) -> float | None:
        """When the earliest is due; None when empty."""
        if self._staged:
            return self._staged[0][0]
        return self._entries[0][0] if self._entries else None

    def push(self, due: float, delivery: Delivery, lane: Lane) -> bool:
        """Add ``delivery``; whether it is now the earliest (a sleeper must wake sooner)."""
        entry = (due, delivery.id, delivery, lane)
        heapq.heappush(self._entries, entry)
        return self._entries[0] is entry and not self._staged

    def pop_due(self, now: float) -> list[Entry]:
        """Remove and return the entries due by ``now``, earliest first, at most
        :data:`HANDED_OUT`: ask again while :attr:`next_due` says more are due."""
        entries, staged = self._entries, self._staged
        if not staged:
            due: list[Entry] = []
            while entries and entries[0][0] <= now:
                if len(due) == _POPPED:
                    staged.extend(due)
                    staged.extend(self._cut(lambda entry: entry[0] <= now))
                    break
                due.append(heapq.heappop(entries))
            else:
                return due
        handed = staged[:HANDED_OUT]
        del staged[:HANDED_OUT]
        return handed

    def take_lane(self, lane: Lane) -> list[Delivery]:
        """Remove and return the deliveries of ``lane``, earliest first."""
        staged = [entry for entry in self._staged if entry[3] is lane]
        if staged:
            self._staged = [entry for entry in self._staged if entry[3] is not lane]
        return [entry[2] for entry in sorted(staged + self._cut(lambda entry: entry[3] is lane))]

    def clear(self) -> list[Delivery]:
        """Remove and return every delivery, earliest first."""
        staged, self._staged = self._staged, []
        return [entry[2] for entry in sorted(staged + self._cut(lambda entry: True))]

    def _cut(self, chosen: Callable[[Entry], bool]) -> list[Entry]:
        entries = self._entries
        taken = [entry for entry in entries if chosen(entry)]
        if len(taken) == len(entries):
            entries.clear()
        elif taken:
            entries[:] = [entry for entry in entries if not chosen(entry)]
            heapq.heapify(entries)
        taken.sort()  # (time, id) decide: no two entries are equal
        return taken
