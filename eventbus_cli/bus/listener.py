"""``@listener``: declare which events a function handles, with its delivery options.

"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable
from fnmatch import fnmatchcase
from typing import Any, Protocol

from ..checks import number_problem, rate_per_second
from ..config import CHECKS, DeliveryOptions
from ..errors import InvalidEventIdError, ListenerError
from ..names import LISTENER_MODULES, is_pattern, validate_pattern

__all__ = (
    "DeliveryOptions",
    "EventListener",
    "ListenerLike",
    "as_listener",
    "find_name_clash",
    "listener",
)


def _check_options(target: str, retries: object, backoff: object, timeout: object,
                   check: object = None, rate: object = None) -> None:
    for key, value, whole, above in (("retries", retries, True, False),
                                     ("backoff", backoff, False, False),
                                     ("timeout", timeout, False, True)):
        if value is not None and (want := number_problem(
                value, whole=whole, minimum=0, above=above)) is not None:
            raise ListenerError(target, f"{key} must be {want}, not {value!r}")
    if check is not None and check not in CHECKS:
        raise ListenerError(target, f"check must be one of {', '.join(map(repr, CHECKS))}, "
                            f"not {check!r}")
    if rate is not None:
        try:
            rate_per_second(rate)
        except ValueError as exc:
            raise ListenerError(target, f"rate must be {exc}") from None


class EventListener:
    """A function registered for one or more event ids, made by :func:`listener`.

    ``func`` is the function as written (sync or async), and ``fn`` the same as Litestar's
    own emitter calls a listener (see :attr:`fn`); ``event_ids`` the ids and patterns it
    handles; ``options`` its :class:`DeliveryOptions`, where options it did not set show the
    built-in defaults and yield to an emitter's defaults (see :meth:`options_with`).

    ``name`` is its identity in listings, the failed list and the journal: the ``name=`` it
    was given, else ``module:qualname`` (``welcome:send_email``; a listener file's module is
    its file stem; a function nested in ``outer`` is ``module:outer.inner``), the same across
    reloads and restarts.
    """

    __slots__ = ("_explicit", "_for_litestar", "event_ids", "func", "is_async", "module", "name",
                 "options")

    def __init__(
        self,
        fn: Callable[..., Any],
        event_ids: Iterable[str],
        *,
        retries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        name: str | None = None,
        check: str | None = None,
        rate: str | None = None,
    ) -> None:
        target = getattr(fn, "__qualname__", None) or repr(fn)
        if not callable(fn):
            raise ListenerError(target, "decorate a function (sync or async), not this object")
        if isinstance(fn, EventListener):
            raise ListenerError(
                fn.name, "@listener is stacked; name every event id in one @listener('a', 'b')"
            )
        ids = _checked_ids(target, event_ids)
        _check_options(target, retries, backoff, timeout, check, rate)
        if name is not None and (not isinstance(name, str) or not name):
            raise ListenerError(target, f"name must be a non-empty string, not {name!r}")
        given = {"retries": retries, "backoff": backoff, "timeout": timeout, "check": check,
                 "rate": rate}
        self._explicit: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        self.func = fn
        self._for_litestar: Callable[..., Awaitable[None]] | None = None
        self.event_ids = frozenset(ids)
        self.options = DeliveryOptions()._replace(**self._explicit)
        self.module: str = getattr(fn, "__module__", None) or "?"
        qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        qualname = qualname.replace(".<locals>", "")  # outer.inner: shorter, as unique
        self.name: str = name or f"{self.module.removeprefix(LISTENER_MODULES)}:{qualname}"
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
            fnmatchcase(event_id, pattern) if is_pattern(pattern) else event_id == pattern
            for pattern in self.event_ids
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly, as if it were not decorated."""
        return self.func(*args, **kwargs)

    @property
    def fn(self) -> Callable[..., Awaitable[None]]:
        """The listener as Litestar's ``SimpleEventEmitter`` calls it, so that swapping the
        import of ``listener`` keeps a Litestar app working: an async function that runs a
        sync one in a worker thread, and logs what the listener raises rather than raising
        it (Litestar's emitter would end its task group on it). eventbus's emitters call
        :attr:`func`, and retry or keep the failure."""
        if self._for_litestar is None:
            self._for_litestar = _for_litestar(self)
        return self._for_litestar

    def __repr__(self) -> str:
        ids = ", ".join(sorted(self.event_ids))
        return f"<EventListener {self.name} on {ids}>"

    @property
    def where(self) -> str:
        """The file and line its function was defined at, or its module if not known."""
        code = getattr(inspect.unwrap(self.func), "__code__", None)
        return f"{code.co_filename}:{code.co_firstlineno}" if code is not None else self.module


def _for_litestar(listener: EventListener) -> Callable[..., Awaitable[None]]:
    func, name, is_async = listener.func, listener.name, listener.is_async

    async def run(*args: Any, **kwargs: Any) -> None:
        try:
            if is_async:
                await func(*args, **kwargs)
            else:
                import anyio.to_thread

                await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))
        except Exception:
            logging.getLogger("eventbus.listener").exception(
                "listener %s failed (run by Litestar's emitter, which neither retries nor "
                "keeps the failure: eventbus's emitter does)", name)

    return run


def _checked_ids(target: str, event_ids: Iterable[object]) -> list[str]:
    ids = list(event_ids)
    if not ids:
        raise ListenerError(target, "name at least one event id, e.g. @listener('user_created')")
    for event_id in ids:
        try:
            validate_pattern(event_id)
        except InvalidEventIdError as exc:
            raise ListenerError(target, str(exc)) from None
    return ids  # type: ignore[return-value]  # every item was checked to be a str


def listener(
    *event_ids: str,
    retries: int | None = None,
    backoff: float | None = None,
    timeout: float | None = None,
    name: str | None = None,
    check: str | None = None,
    rate: str | None = None,
) -> Callable[[Callable[..., Any]], EventListener]:
    """Register the decorated function for ``event_ids`` (exact ids or glob patterns).

    Options left as ``None`` take the emitter's defaults (the ``[delivery]`` table of the
    config): ``retries`` further attempts after a failure, ``backoff`` seconds before the first
    retry (doubling each time), ``timeout`` seconds per call; ``check`` says what an emit
    whose arguments this function cannot take gets (``"reject"``: refused, ``"warn"``: a
    warning, ``"off"``: nothing). ``name`` replaces the function's name in stats and
    listings. ``rate`` (``"10/s"``, ``"100/min"``, ``"500/h"``) spaces its calls' starts
    evenly, at most that many per interval: bus-wide when daemons share a store. Mistakes are
    raised here, when the module is imported.
    """
    target = "listener(" + ", ".join(repr(event_id) for event_id in event_ids) + ")"
    _checked_ids(target, event_ids)
    _check_options(target, retries, backoff, timeout, check, rate)

    def decorate(fn: Callable[..., Any]) -> EventListener:
        return EventListener(
            fn, event_ids, retries=retries, backoff=backoff, timeout=timeout, name=name,
            check=check, rate=rate,
        )

    return decorate


class ListenerLike(Protocol):
    """What emitters take as a listener: ours, or one made by Litestar's ``@listener``."""

    @property
    def event_ids(self) -> frozenset[str]: ...

    @property
    def fn(self) -> Callable[..., Any]: ...


def as_listener(value: object) -> EventListener | None:
    """``value`` as an :class:`EventListener`: itself, or one made from a listener of
    Litestar's ``@listener`` (with the same function and event ids); None for anything else.

    Litestar is not imported here: an object can only be Litestar's if Litestar is loaded.
    """
    if isinstance(value, EventListener):
        return value
    litestar = sys.modules.get("litestar.events.listener")
    if litestar is not None and isinstance(value, litestar.EventListener):
        return EventListener(_litestar_function(value), value.event_ids)
    return None


def _litestar_function(item: Any) -> Any:
    """The function a Litestar listener was made from.

    Litestar wraps it in a handler that logs and swallows every exception; we want the
    exception (to retry and keep the failure), so we take the function back out of it.
    """
    wrapper = item.fn
    for cell in getattr(wrapper, "__closure__", None) or ():
        inner = cell.cell_contents
        if callable(inner):
            return getattr(inner, "__wrapped__", inner)
    return wrapper


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
