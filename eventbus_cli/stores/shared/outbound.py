"""``Outbound``: what a daemon on a shared store recorded on its hot path and has not sent yet.

``put``, the workers' outcomes and reloads only record here; the broker's writer takes it all
in one :class:`Round` per round trip, and gives it back when the store did not take it. Rounds
are the stores' one write-behind (:class:`~..writer.WriteBehind`): a client's reply waits
for the rounds its emits went out in (:meth:`Outbound.settled`), and hears of one that
failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...bus.delivery import Delivery
from ...errors import BackendError
from ..writer import WriteBehind

__all__ = ("Outbound", "Round", "scheduled")

Emit = tuple[str | None, Sequence[Delivery], int | None, dict[str, Any] | None]
"""(dedupe key, the deliveries made, due time in ms or None, the answer kept under the key)."""


class Round:
    """What one round trip of the writer sends."""

    __slots__ = ("acks", "duplicates", "emits", "error", "fails", "fired", "followed",
                 "handbacks", "joins", "leaves", "number", "parks")

    def __init__(self, out: Outbound, number: int) -> None:
        self.number = number
        self.error: BackendError | None = None
        self.emits = out.emits
        self.acks, self.parks, self.fails = out.acks, out.parks, out.fails
        self.handbacks, self.joins, self.leaves = out.handbacks, out.joins, out.leaves
        self.fired, self.followed = out.fired, out.followed
        self.duplicates = out.duplicates

    @property
    def carries(self) -> bool:
        """Whether the round has anything to send (an empty one proves nothing)."""
        return bool(self.emits or self.acks or self.parks or self.fails or self.handbacks
                    or self.joins or self.leaves or self.fired or self.duplicates)


class Outbound:
    """Emits, outcomes, hand-backs, route changes and schedule fires waiting to be sent."""

    def __init__(self) -> None:
        self.emits: list[Emit] = []
        self.acks: list[tuple[str, bytes, Delivery, str]] = []  # listener, entry, reply_to
        self.parks: list[tuple[str, bytes, Delivery, float, str]] = []  # retry in, reply_to
        self.fails: list[tuple[str, bytes, Delivery, str]] = []
        self.handbacks: list[tuple[str, bytes]] = []  # read here, not started: for others
        self.joins: set[str] = set()  # listeners this daemon starts to serve
        self.leaves: set[str] = set()  # and stops serving
        self.fired: dict[str, float] = {}  # schedule name -> when it fired here
        self.followed: set[int] = set()  # delivery ids an `emit --wait` follows
        self.duplicates = 0  # emits answered here as duplicates, for the bus's counter
        self.unsent = 0
        """Deliveries emitted here that the store does not have yet."""
        self.scheduled_unsent = 0
        """Of those, the ones emitted for later (they count against ``max_scheduled``)."""
        self._rounds = WriteBehind()

    @property
    def outcomes(self) -> bool:
        """Whether outcomes or hand-backs wait to be sent."""
        return bool(self.acks or self.parks or self.fails or self.handbacks)

    def emit(self, key: str | None, made: Sequence[Delivery], due_ms: int | None,
             answer: dict[str, Any] | None = None) -> None:
        """Record the deliveries of one emit, in the open round (with a dedupe key, the
        ``answer`` a repeat of it gets)."""
        self.emits.append((key, made, due_ms, answer))
        self.unsent += len(made)
        if due_ms is not None:
            self.scheduled_unsent += len(made)
        self._rounds.noted()

    def duplicate(self) -> None:
        """Count an emit answered as a duplicate here, in the open round: the bus's counter
        has it before the answer goes."""
        self.duplicates += 1
        self._rounds.noted()

    def take(self) -> Round:
        """Everything recorded so far, for one round trip; recording starts afresh."""
        taken = Round(self, self._rounds.begin())
        self.emits, self.acks, self.parks, self.fails, self.handbacks = [], [], [], [], []
        self.joins, self.leaves, self.fired, self.followed = set(), set(), {}, set()
        self.duplicates = 0
        return taken

    def give_back(self, taken: Round, error: BackendError) -> None:
        """The store did not take ``taken``: its outcomes and changes go out with the next round
        (before what came since); its emits fail with ``error``, unacknowledged."""
        self.acks[:0], self.parks[:0], self.fails[:0] = taken.acks, taken.parks, taken.fails
        self.handbacks[:0] = taken.handbacks
        self.joins |= taken.joins
        self.leaves |= taken.leaves
        self.fired = {**taken.fired, **self.fired}
        self.duplicates += taken.duplicates
        taken.error = error

    def finish(self, taken: Round) -> None:
        """The round trip of ``taken`` is over, taken or not: its emits' replies may go."""
        self.unsent -= sum(len(made) for _, made, _, _ in taken.emits)
        self.scheduled_unsent -= scheduled(taken)
        self._rounds.end(taken.number, taken.error)

    async def settled(self) -> None:
        """Return once every emit this task recorded is sent; raise the error of a round
        that held one of them and failed (it was not acknowledged)."""
        await self._rounds.settled()


def scheduled(taken: Round) -> int:
    """How many of the deliveries ``taken`` sends are emitted for later."""
    return sum(len(made) for _, made, due, _ in taken.emits if due is not None)
