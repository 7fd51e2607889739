"""``Outbound``: what a Redis daemon recorded on its hot path and has not sent yet.

``put``, the workers' outcomes and reloads only record here; the broker's writer takes it all
in one :class:`Round` per round trip, and gives it back when Redis did not take it. Emits go
in numbered batches so that a client's reply can wait for the batches its emits went out in
(:meth:`Outbound.settled`), and hear of one that failed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from contextvars import ContextVar

import anyio

from ...bus.delivery import Delivery
from ...errors import BackendError

__all__ = ("Outbound", "Round")

Emit = tuple[str | None, Sequence[Delivery], int | None]
"""(dedupe key, the deliveries made, due time in ms or None)."""


class _Batch:
    """Emits sent in one round trip, numbered in the order they go."""

    __slots__ = ("done", "emits", "error", "number")

    def __init__(self, number: int) -> None:
        self.number = number
        self.emits: list[Emit] = []
        self.done = anyio.Event()
        self.error: BackendError | None = None


_UNSETTLED: ContextVar[tuple[int, int]] = ContextVar("eventbus_redis_unsettled",
                                                     default=(0, 0))
"""The first and the last batch the current task (one client connection) put into since it
last waited for :meth:`Outbound.settled`; (0, 0) for none."""


class Round:
    """What one round trip of the writer sends."""

    __slots__ = ("acks", "batch", "fails", "fired", "followed", "handbacks", "joins", "leaves",
                 "parks")

    def __init__(self, out: Outbound, batch: _Batch | None) -> None:
        self.batch = batch
        self.acks, self.parks, self.fails = out.acks, out.parks, out.fails
        self.handbacks, self.joins, self.leaves = out.handbacks, out.joins, out.leaves
        self.fired, self.followed = out.fired, out.followed

    @property
    def emits(self) -> list[Emit]:
        return self.batch.emits if self.batch is not None else []


class Outbound:
    """Emits, outcomes, hand-backs, route changes and schedule fires waiting to be sent."""

    def __init__(self) -> None:
        self.acks: list[tuple[str, bytes, Delivery, str]] = []  # listener, entry, reply_to
        self.parks: list[tuple[str, bytes, Delivery, float]] = []  # ... retry in seconds
        self.fails: list[tuple[str, bytes, Delivery, str]] = []
        self.handbacks: list[tuple[str, bytes]] = []  # read here, not started: for others
        self.joins: set[str] = set()  # listeners this daemon starts to serve
        self.leaves: set[str] = set()  # and stops serving
        self.fired: dict[str, float] = {}  # schedule name -> when it fired here
        self.followed: set[int] = set()  # delivery ids an `emit --wait` follows
        self.unsent = 0
        """Deliveries emitted here that Redis does not have yet."""
        self._batch: _Batch | None = None  # the emits not sent yet
        self._batches = 0  # batches made so far
        self._sending: _Batch | None = None  # the emits in flight
        self._failures: deque[tuple[int, BackendError]] = deque(maxlen=1000)  # lately failed

    @property
    def outcomes(self) -> bool:
        """Whether outcomes or hand-backs wait to be sent."""
        return bool(self.acks or self.parks or self.fails or self.handbacks)

    def emit(self, key: str | None, made: Sequence[Delivery], due_ms: int | None) -> None:
        """Record the deliveries of one emit, in the current batch."""
        batch = self._batch
        if batch is None:
            self._batches += 1
            batch = self._batch = _Batch(self._batches)
        first, last = _UNSETTLED.get()
        if last != batch.number:
            _UNSETTLED.set((first or batch.number, batch.number))
        batch.emits.append((key, made, due_ms))
        self.unsent += len(made)

    def take(self) -> Round:
        """Everything recorded so far, for one round trip; recording starts afresh."""
        batch, self._batch = self._batch, None
        self._sending = batch
        taken = Round(self, batch)
        self.acks, self.parks, self.fails, self.handbacks = [], [], [], []
        self.joins, self.leaves, self.fired, self.followed = set(), set(), {}, set()
        return taken

    def give_back(self, taken: Round, error: BackendError) -> None:
        """Redis did not take ``taken``: its outcomes and changes go out with the next round
        (before what came since); its emits fail with ``error``, unacknowledged."""
        self.acks[:0], self.parks[:0], self.fails[:0] = taken.acks, taken.parks, taken.fails
        self.handbacks[:0] = taken.handbacks
        self.joins |= taken.joins
        self.leaves |= taken.leaves
        self.fired = {**taken.fired, **self.fired}
        if taken.batch is not None:
            taken.batch.error = error
            self._failures.append((taken.batch.number, error))

    def finish(self, taken: Round) -> None:
        """The round trip of ``taken`` is over, taken or not: its emits' replies may go."""
        if taken.batch is not None:
            self.unsent -= sum(len(made) for _, made, _ in taken.batch.emits)
            taken.batch.done.set()
        self._sending = None

    async def settled(self) -> None:
        """Return once every emit this task recorded is sent; raise the error of a batch
        that held one of them and failed (it was not acknowledged)."""
        first, last = _UNSETTLED.get()
        if not first:
            return
        _UNSETTLED.set((0, 0))
        batch = self._batch if self._batch is not None and self._batch.emits else self._sending
        if batch is not None and batch.number >= first:  # in order: it done, all are done
            await batch.done.wait()
        for number, error in self._failures:
            if first <= number <= last:
                raise error
