"""Routing: :class:`Router` finds the targets of an event id, and :class:`ListenerSet` is the
listeners an emitter runs, as slots and a router (one per reload).

Exact ids are found by one dict lookup, glob patterns (``user_*``, ``*``) by ``fnmatch`` rules,
and the answer for each id is cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any, Generic, NamedTuple, TypeVar

from ..checks import rate_per_second
from ..config import DeliveryOptions
from ..errors import ListenerError
from ..names import is_pattern, validate_event_id
from .arguments import arguments_of
from .listener import EventListener, ListenerLike, as_listener, find_name_clash
from .timings import DeliveryTimings

__all__ = ("ListenerChanges", "ListenerSet", "Router", "Slot", "unique_listeners")

T = TypeVar("T")
_ROUTE_CACHE_SIZE = 4096


class ListenerChanges(NamedTuple):
    """What a reload changed, by listener name."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    kept: tuple[str, ...]
    failed: int = 0  # waiting deliveries of removed listeners, moved to the failed list


def unique_listeners(listeners: Sequence[ListenerLike]) -> tuple[EventListener, ...]:
    """``listeners`` without repeats, Litestar's listener objects taken as ours; raise
    :class:`ListenerError` for anything else, and for two listeners of one name."""
    unique: dict[int, EventListener] = {}
    for item in listeners:
        converted = as_listener(item)
        if converted is None:
            raise ListenerError(repr(item), "not a listener: pass functions decorated with "
                                "@listener (eventbus_cli's or Litestar's)")
        unique.setdefault(id(item), converted)
    clash = find_name_clash(unique.values())
    if clash is not None:
        raise ListenerError(
            clash[1].name,
            f"two listeners have this name ({clash[0].where} and {clash[1].where});"
            " rename one or pass listener(..., name=...)",
        )
    return tuple(unique.values())


class Slot:
    """One listener as an emitter runs it: the listener, the options it runs with, and how
    many of its calls may run at once (``limit``)."""

    __slots__ = ("arguments", "checked", "fn", "is_async", "limit", "listener", "name",
                 "options", "rate", "timeout", "timings")

    def __init__(self, listener: EventListener, options: DeliveryOptions, limit: int) -> None:
        self.listener = listener
        self.name = listener.name
        self.fn = listener.func
        self.is_async = listener.is_async
        self.options = options
        self.timeout = options.timeout  # read for every call, so kept at hand
        self.limit = limit
        self.rate = rate_per_second(options.rate) if options.rate is not None else None
        """Calls it may start per second, if limited."""
        self.timings: DeliveryTimings | None = None
        """Where its attempts' times go, when the emitter keeps them (for metrics)."""
        self.arguments = arguments_of(listener.name, listener.func)
        """What its function takes (None if its signature cannot be read)."""
        self.checked = (self.arguments if self.arguments is not None
                        and not self.arguments.trivial and options.check != "off" else None)
        """The check an emit must pass for it, if any: read for every emit."""

    def __repr__(self) -> str:
        return f"<Slot {self.listener.name} limit={self.limit}>"


class ListenerSet:
    """One slot per listener, in order, with the router from event ids to slots.

    With more than one listener, none may take more than ``max_per_listener`` workers at
    once: by default as many as leaves every other listener a worker of its own.
    ``overrides`` (the config's ``[listeners."NAME"]`` tables) win over a listener's own
    options, by its name.
    """

    def __init__(
        self,
        listeners: Sequence[ListenerLike],
        *,
        defaults: DeliveryOptions,
        concurrency: int,
        max_per_listener: int | None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.listeners = unique_listeners(listeners)
        others = len(self.listeners) - 1
        limit = max_per_listener or (max(1, (concurrency - 1) // others) if others else concurrency)
        overrides = overrides or {}
        self.slots = [Slot(item, item.options_with(defaults)._replace(
            **overrides.get(item.name, {})), limit) for item in self.listeners]
        self.by_name: dict[str, Slot] = {slot.listener.name: slot for slot in self.slots}
        self.router = Router((slot.listener.event_ids, slot) for slot in self.slots)

    def changes_from(self, previous: ListenerSet, failed: int) -> ListenerChanges:
        """What changed, by name, from ``previous`` to this set."""
        old, new = previous.by_name, self.by_name
        return ListenerChanges(
            added=tuple(name for name in new if name not in old),
            removed=tuple(name for name in old if name not in new),
            kept=tuple(name for name in new if name in old),
            failed=failed,
        )


class Router(Generic[T]):
    """Maps an event id to the targets registered for it, in registration order.

    Each target appears at most once per event even when several of its ids match.
    """

    def __init__(self, entries: Iterable[tuple[Iterable[str], T]]) -> None:
        self._exact: dict[str, list[T]] = {}
        self._patterns: list[tuple[str, T]] = []
        self._order: dict[int, int] = {}
        for position, (event_ids, target) in enumerate(entries):
            self._order[id(target)] = position
            for event_id in event_ids:
                if is_pattern(event_id):
                    self._patterns.append((event_id, target))
                else:
                    self._exact.setdefault(event_id, []).append(target)
        self._cache: dict[str, tuple[T, ...]] = {}

    def get(self, event_id: str) -> tuple[T, ...]:
        """The targets of ``event_id``; raises :class:`InvalidEventIdError` for a bad id."""
        try:
            return self._cache[event_id]
        except (KeyError, TypeError):
            pass
        validate_event_id(event_id)
        found = list(self._exact.get(event_id, ()))
        found += [target for pattern, target in self._patterns if fnmatchcase(event_id, pattern)]
        unique = {id(target): target for target in found}
        targets = tuple(sorted(unique.values(), key=lambda target: self._order[id(target)]))
        if len(self._cache) >= _ROUTE_CACHE_SIZE:
            self._cache.clear()
        self._cache[event_id] = targets
        return targets
