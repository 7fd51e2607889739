"""``DueHeap``: deliveries waiting for a time, earliest first.

The memory broker keeps two: retries waiting out their backoff (by ``time.monotonic()``) and
scheduled emits waiting for their due time (by ``time.time()``, since a due time is a date).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from .delivery import Delivery
from .lanes import Lane

__all__ = ("DueHeap",)

Entry = tuple[float, int, Delivery, Lane]
"""(due time, delivery id, delivery, its lane): ordered by time, then by id."""

_POPPED = 32
"""Due entries taken pop by pop before the rest are cut out at once: a burst of 100,000 due
in the same second moves in one linear pass rather than 100,000 pops."""


class DueHeap:
    """Deliveries, each with its lane, by the time they are due."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[Entry] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __iter__(self) -> Iterator[Delivery]:
        """The deliveries, earliest first."""
        return (entry[2] for entry in sorted(self._entries))

    @property
    def next_due(self) -> float | None:
        """When the earliest is due; None when empty."""
        return self._entries[0][0] if self._entries else None

    def push(self, due: float, delivery: Delivery, lane: Lane) -> bool:
        """Add ``delivery``; whether it is now the earliest (a sleeper must wake sooner)."""
        entry = (due, delivery.id, delivery, lane)
        heapq.heappush(self._entries, entry)
        return self._entries[0] is entry

    def pop_due(self, now: float) -> list[Entry]:
        """Remove and return the entries due by ``now``, earliest first."""
        entries = self._entries
        due: list[Entry] = []
        while entries and entries[0][0] <= now:
            if len(due) == _POPPED:
                return due + self._cut(lambda entry: entry[0] <= now)
            due.append(heapq.heappop(entries))
        return due

    def take_lane(self, lane: Lane) -> list[Delivery]:
        """Remove and return the deliveries of ``lane``, earliest first."""
        return [entry[2] for entry in self._cut(lambda entry: entry[3] is lane)]

    def clear(self) -> list[Delivery]:
        """Remove and return every delivery, earliest first."""
        return [entry[2] for entry in self._cut(lambda entry: True)]

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
