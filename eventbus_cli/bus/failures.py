"""``FailedList``: the failed deliveries an emitter keeps for inspection and retry."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from ..errors import DeliveryError
from .delivery import Delivery, DeliveryState

__all__ = ("FailedList",)


class FailedList:
    """The newest ``keep`` failed deliveries, oldest first.

    ``forget`` is told of the deliveries that newer failures push out.
    """

    def __init__(self, keep: int, forget: Callable[[list[Delivery]], None]) -> None:
        self._kept: deque[Delivery] = deque()
        self._keep = keep
        self._forget = forget

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self._kept)

    def __len__(self) -> int:
        return len(self._kept)

    def add(self, delivery: Delivery) -> None:
        self._kept.append(delivery)
        if len(self._kept) > self._keep:
            forgotten = [self._kept.popleft() for _ in range(len(self._kept) - self._keep)]
            self._forget(forgotten)

    def select(self, delivery_ids: Iterable[int] | None,
               state_of: Callable[[int], DeliveryState | None]) -> list[Delivery]:
        """The failed deliveries with these ids, or every one for None; raise
        :class:`DeliveryError` for an id that is not in the list (``state_of`` tells what
        it is instead, if anything)."""
        if delivery_ids is None:
            return list(self._kept)
        failed = {delivery.id: delivery for delivery in self._kept}
        chosen = []
        for delivery_id in delivery_ids:
            if delivery_id not in failed:
                state = state_of(delivery_id)
                if state is None:
                    raise DeliveryError(delivery_id, "no such delivery; `eventbus queue list "
                                        "--state failed` lists the failed ones", missing=True)
                raise DeliveryError(delivery_id, f"is {state}, not failed; only failed "
                                    "deliveries can be retried")
            chosen.append(failed[delivery_id])
        return chosen

    def remove(self, deliveries: Iterable[Delivery]) -> None:
        gone = {id(delivery) for delivery in deliveries}
        self._kept = deque(delivery for delivery in self._kept if id(delivery) not in gone)

    def clear(self) -> list[Delivery]:
        """Empty the list; return what it held."""
        dropped = list(self._kept)
        self._kept.clear()
        return dropped
