"""``@listener``: declare which events a function handles, with its delivery options.

Also home of the event-id rules and of :class:`Router`, which finds the listeners of an
event id: exact ids by one dict lookup, glob patterns (``user_*``, ``*``) by ``fnmatch`` rules,
with the answer for each id cached.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from typing import Any, Generic, NamedTuple, TypeVar

from ..errors import InvalidEventIdError, ListenerError

__all__ = (
    "DeliveryOptions",
    "EventListener",
    "Router",
    "find_name_clash",
    "listener",
    "validate_event_id",
)

T = TypeVar("T")
_EVENT_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")
_PATTERN = re.compile(r"[A-Za-z0-9_.:\-*?\[\]!]{1,200}")
_GLOB_CHARS = frozenset("*?[")
_ROUTE_CACHE_SIZE = 4096


def validate_event_id(event_id: object) -> str:
    """Return ``event_id`` if it is a valid event id, else raise :class:`InvalidEventIdError`."""
    if isinstance(event_id, str) and _EVENT_ID.fullmatch(event_id):
        return event_id
    raise InvalidEventIdError(event_id)


def _is_pattern(event_id: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(event_id)


class DeliveryOptions(NamedTuple):
    """How a listener's deliveries are attempted.

    ``retries`` further attempts after the first failure, waiting ``backoff`` seconds before
    the first retry and twice as long before each next one; each call may take ``timeout``
    seconds (``math.inf`` for no limit).
    """

    retries: int = 0
    backoff: float = 0.5
    timeout: float = 60.0

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2 for the first retry)."""
        return self.backoff * 2.0 ** (attempt - 2)


def _check_options(target: str, retries: object, backoff: object, timeout: object) -> None:
    if retries is not None and (
        not isinstance(retries, int) or isinstance(retries, bool) or retries < 0
    ):
        raise ListenerError(target, f"retries must be a whole number >= 0, not {retries!r}")
    for key, value in (("backoff", backoff), ("timeout", timeout)):
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            raise ListenerError(target, f"{key} must be a number of seconds, not {value!r}")
        if value < 0 or (key == "timeout" and value == 0):
            raise ListenerError(target, f"{key} must be {'>' if key == 'timeout' else '>='} 0")


class EventListener:
    """A function registered for one or more event ids, made by :func:`listener`.

    ``fn`` is the function as written (sync or async); ``event_ids`` the ids and patterns it
    handles; ``options`` its :class:`DeliveryOptions`, where options it did not set show the
    built-in defaults and yield to an emitter's defaults (see :meth:`options_with`).
    """

    __slots__ = ("_explicit", "event_ids", "fn", "is_async", "module", "name", "options")

    def __init__(
        self,
        fn: Callable[..., Any],
        event_ids: Iterable[str],
        *,
        retries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        name: str | None = None,
    ) -> None:
        target = getattr(fn, "__qualname__", None) or repr(fn)
        if not callable(fn):
            raise ListenerError(target, "decorate a function (sync or async), not this object")
        if isinstance(fn, EventListener):
            raise ListenerError(
                fn.name, "@listener is stacked; name every event id in one @listener('a', 'b')"
            )
        ids = _checked_ids(target, event_ids)
        _check_options(target, retries, backoff, timeout)
        if name is not None and (not isinstance(name, str) or not name):
            raise ListenerError(target, f"name must be a non-empty string, not {name!r}")
        given = {"retries": retries, "backoff": backoff, "timeout": timeout}
        self._explicit: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        self.fn = fn
        self.event_ids = frozenset(ids)
        self.options = DeliveryOptions()._replace(**self._explicit)
        self.name: str = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.module: str = getattr(fn, "__module__", None) or "?"
        call = type(fn).__call__ if not inspect.isroutine(fn) else fn  # async callable objects
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)

    @property
    def retries(self) -> int:
        return self.options.retries

    @property
    def backoff(self) -> float:
        return self.options.backoff

    @property
    def timeout(self) -> float:
        return self.options.timeout

    def options_with(self, defaults: DeliveryOptions) -> DeliveryOptions:
        """This listener's options, taking ``defaults`` for every option it did not set."""
        return defaults._replace(**self._explicit)

    def matches(self, event_id: str) -> bool:
        """Whether an event named ``event_id`` is delivered to this listener."""
        return any(
            fnmatchcase(event_id, pattern) if _is_pattern(pattern) else event_id == pattern
            for pattern in self.event_ids
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly, as if it were not decorated."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        ids = ", ".join(sorted(self.event_ids))
        return f"<EventListener {self.module}.{self.name} on {ids}>"


def _checked_ids(target: str, event_ids: Iterable[object]) -> list[str]:
    ids = list(event_ids)
    if not ids:
        raise ListenerError(target, "name at least one event id, e.g. @listener('user_created')")
    for event_id in ids:
        if not isinstance(event_id, str) or not _PATTERN.fullmatch(event_id):
            raise ListenerError(target, str(InvalidEventIdError(event_id, pattern=True)))
    return ids  # type: ignore[return-value]  # every item was checked to be a str


def listener(
    *event_ids: str,
    retries: int | None = None,
    backoff: float | None = None,
    timeout: float | None = None,
    name: str | None = None,
) -> Callable[[Callable[..., Any]], EventListener]:
    """Register the decorated function for ``event_ids`` (exact ids or glob patterns).

    Options left as ``None`` take the emitter's defaults (the ``[delivery]`` table of the
    config): ``retries`` further attempts after a failure, ``backoff`` seconds before the first
    retry (doubling each time), ``timeout`` seconds per call. ``name`` replaces the function's
    name in stats and listings. Mistakes are raised here, when the module is imported.
    """
    target = "listener(" + ", ".join(repr(event_id) for event_id in event_ids) + ")"
    _checked_ids(target, event_ids)
    _check_options(target, retries, backoff, timeout)

    def decorate(fn: Callable[..., Any]) -> EventListener:
        return EventListener(
            fn, event_ids, retries=retries, backoff=backoff, timeout=timeout, name=name
        )

    return decorate


def find_name_clash(
    listeners: Iterable[EventListener],
) -> tuple[EventListener, EventListener] | None:
    """The first two distinct listeners that share a name, if any."""
    seen: dict[str, EventListener] = {}
    for item in listeners:
        other = seen.setdefault(item.name, item)
        if other is not item:
            return other, item
    return None


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
                if _is_pattern(event_id):
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
