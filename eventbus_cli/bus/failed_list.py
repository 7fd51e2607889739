"""``FailedList``: the deliveries that failed their last attempt, the newest ``keep``."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from ..errors import DeliveryError
from .delivery import Delivery, DeliveryState

__all__ = ("FailedList",)


class FailedList:
    """Failed deliveries, oldest first; past ``keep`` the oldest drop out."""

    __slots__ = ("_deliveries", "keep")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._deliveries: deque[Delivery] = deque()

    def __len__(self) -> int:
        return len(self._deliveries)

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self._deliveries)

    def add(self, delivery: Delivery) -> list[Delivery]:
        """Keep ``delivery``; return those pushed out to stay within ``keep``."""
        kept = self._deliveries
        kept.append(delivery)
        return [kept.popleft() for _ in range(len(kept) - self.keep)]

    def restore(self, delivery: Delivery) -> None:
        """Take back one kept elsewhere (a journal), as it was kept: nothing drops out."""
        self._deliveries.append(delivery)

    def select(self, delivery_ids: Iterable[int] | None,
               state_of: Callable[[int], DeliveryState | None]) -> list[Delivery]:
        """The failed deliveries of these ids (all with None), in the order asked; an id not
        here raises DeliveryError, saying what it is instead (``state_of``)."""
        if delivery_ids is None:
            return list(self._deliveries)
        failed = {delivery.id: delivery for delivery in self._deliveries}
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

    def remove(self, chosen: Iterable[Delivery]) -> None:
        """Drop these (retried) from the list."""
        gone = {id(delivery) for delivery in chosen}
        self._deliveries = deque(d for d in self._deliveries if id(d) not in gone)

    def clear(self) -> list[Delivery]:
        """Drop and return every one."""
        dropped = list(self._deliveries)
        self._deliveries.clear()
        return dropped
