"""``WriteBehind``: the one write-behind of the durable stores (SQLite, Redis).

The hot path records a change in the store's own buffer and calls :meth:`WriteBehind.noted`:
that marks the round open now as one the current task (a client's connection) waits for,
and wakes the store's one writer task. The writer takes the open round (:meth:`begin`, at
the moment it swaps the buffer out), writes it, and ends it (:meth:`end`, with the error if
the store did not take it). :meth:`settled` is the one place that waits: it returns once
every round the current task noted a change into has ended, and raises the error of one
that failed, so the daemon acknowledges a request only once what it changed is stored.
Rounds end in order, one writer at a time.
"""

from __future__ import annotations

from collections import deque
from contextvars import ContextVar

import anyio

__all__ = ("WriteBehind",)

_NOTED: ContextVar[tuple[object, int, int]] = ContextVar("eventbus_noted", default=(None, 0, 0))
"""(write-behind, first round, last round) the current task noted changes into since it last
called :meth:`WriteBehind.settled`."""


class WriteBehind:
    """Numbered rounds of changes: noted on the hot path, written by one task, waited on by
    :meth:`settled`."""

    def __init__(self) -> None:
        self.pending = False
        """Whether the open round holds a change."""
        self._open = 1  # the round changes are noted into now
        self._ended = 0  # every round up to this one has ended
        self._failures: deque[tuple[int, Exception]] = deque(maxlen=1000)  # lately failed
        self._work: anyio.Event | None = None  # the writer waits on it for a change
        self._ends: anyio.Event | None = None  # settled() waits on it for a round's end

    def noted(self) -> None:
        """A change was recorded, by the current task, into the open round."""
        number = self._open
        owner, first, last = _NOTED.get()
        if owner is not self:
            _NOTED.set((self, number, number))
        elif last != number:
            _NOTED.set((self, first, number))
        if not self.pending:
            self.pending = True
            if self._work is not None:
                self._work.set()

    async def wait_for_work(self) -> None:
        """Return once the open round holds a change."""
        while not self.pending:
            self._work = anyio.Event()
            await self._work.wait()

    def begin(self) -> int:
        """The writer takes the open round (what was noted so far); returns its number.
        Changes noted from now on go into the next."""
        number = self._open
        self._open += 1
        self.pending = False
        return number

    def again(self) -> None:
        """What the last round held goes into the open one (the store did not take it): it
        is to be written even if nothing new is noted."""
        self.pending = True

    def end(self, number: int, error: Exception | None = None) -> None:
        """Round ``number`` is written, or (``error``) the store did not take it."""
        if error is not None:
            self._failures.append((number, error))
        self._ended = number
        if self._ends is not None:
            self._ends.set()
            self._ends = None

    async def settled(self) -> None:
        """Return once every round the current task noted into has ended; raise the error
        of one that failed (what it held was not stored)."""
        owner, first, last = _NOTED.get()
        if owner is not self:
            return
        _NOTED.set((None, 0, 0))
        while self._ended < last:
            if self._ends is None:
                self._ends = anyio.Event()
            await self._ends.wait()
        for number, error in self._failures:
            if first <= number <= last:
                raise error
