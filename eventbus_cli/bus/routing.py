"""``ListenerSet``: the listeners an emitter runs, as slots and a router; one per reload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ..errors import ListenerError
from .delivery import Delivery, Slot
from .listener import DeliveryOptions, EventListener, Router, find_name_clash
from .memory import DeliveryQueue

__all__ = ("ListenerChanges", "ListenerSet", "unique_listeners")


class ListenerChanges(NamedTuple):
    """What a reload changed, by listener name."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    kept: tuple[str, ...]
    failed: int = 0  # waiting deliveries of removed listeners, moved to the failed list


def unique_listeners(listeners: Sequence[EventListener]) -> tuple[EventListener, ...]:
    """``listeners`` without repeats; raise :class:`ListenerError` for anything else."""
    unique = tuple({id(item): item for item in listeners}.values())
    for item in unique:
        if not isinstance(item, EventListener):
            raise ListenerError(repr(item), "not made by @listener; pass EventListener objects")
    clash = find_name_clash(unique)
    if clash is not None:
        raise ListenerError(
            clash[1].name,
            f"two listeners have this name ({clash[0].module} and {clash[1].module});"
            " rename one or pass listener(..., name=...)",
        )
    return unique


class ListenerSet:
    """One slot per listener, in order, with the router from event ids to slots.

    With more than one listener, none may take more than ``max_per_listener`` workers at
    once: by default as many as leaves every other listener a worker of its own.
    """

    def __init__(
        self,
        listeners: Sequence[EventListener],
        *,
        defaults: DeliveryOptions,
        concurrency: int,
        max_per_listener: int | None,
        previous: ListenerSet | None = None,
    ) -> None:
        self.listeners = unique_listeners(listeners)
        others = len(self.listeners) - 1
        limit = max_per_listener or (max(1, (concurrency - 1) // others) if others else concurrency)
        before: dict[str, Slot] = previous.by_name if previous is not None else {}
        # A listener that keeps its name keeps its counters across a reload.
        self.slots = [
            Slot(item, item.options_with(defaults), limit,
                 before[item.name].stats if item.name in before else None)
            for item in self.listeners
        ]
        self.by_name: dict[str, Slot] = {slot.listener.name: slot for slot in self.slots}
        self.router = Router((slot.listener.event_ids, slot) for slot in self.slots)

    def take_over(self, previous: ListenerSet,
                  queue: DeliveryQueue) -> tuple[ListenerChanges, list[Delivery]]:
        """Retire the slots of ``previous`` and move their waiting deliveries (pending, or
        in a retry backoff) to the slot of the same name here. Returns what changed, and the
        waiting deliveries whose listener this set lacks: taken out of the queue, for the
        caller to fail. Calls still running stay with their retired slot."""
        orphans: list[Delivery] = []
        for slot in previous.slots:
            slot.retired = True
            slot.successor = self.by_name.get(slot.listener.name)
            waiting = queue.take_pending(slot)
            if slot.successor is None:
                orphans += waiting
                continue
            for delivery in waiting:
                delivery.slot = slot.successor
            queue.requeue(waiting)
        orphans += queue.take_retrying({s for s in previous.slots if s.successor is None})
        for delivery in queue.retrying_deliveries():
            delivery.slot = delivery.slot.live() or delivery.slot
        old, new = previous.by_name, self.by_name
        changes = ListenerChanges(
            added=tuple(name for name in new if name not in old),
            removed=tuple(name for name in old if name not in new),
            kept=tuple(name for name in new if name in old),
            failed=len(orphans),
        )
        return changes, orphans
