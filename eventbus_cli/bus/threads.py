"""``Threads``: where sync listeners run, at most ``max_threads`` of them at once.

A sync call cannot be interrupted. When its timeout cancels the worker waiting for it, the
thread is abandoned but goes on, and it keeps its place among the ``max_threads`` until it
returns: hung calls cannot pile up threads without bound. They are counted as ``stuck`` for
health, and new sync calls wait for a place.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio

__all__ = ("Threads",)


class _Call:
    """One sync call's hold on a place: released by the waiting task when the call returns
    in time, else by :meth:`Threads.sweep` once the abandoned thread is done."""

    __slots__ = ("abandoned", "done", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.done = False


class _Raised:
    """What a sync listener raised in its thread, carried back as a value: an exception
    would reach the waiting task through ``coroutine.throw``, where a GeneratorExit cannot
    be caught and go on."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Threads:
    """At most ``max_threads`` sync calls at once, stuck ones included."""

    def __init__(self, max_threads: int) -> None:
        self.max_threads = max_threads
        self._places = anyio.CapacityLimiter(max_threads)
        self._unbounded = anyio.CapacityLimiter(math.inf)  # the bound is ours, above
        self._abandoned: set[_Call] = set()

    @property
    def busy(self) -> int:
        """Places taken now: calls running in threads, stuck ones included."""
        return int(self._places.borrowed_tokens)

    @property
    def stuck(self) -> int:
        """Calls abandoned past their timeout whose threads have not returned (as of the
        last :meth:`sweep`)."""
        return len(self._abandoned)

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
        """Call ``fn(*args, **kwargs)`` in a thread and return its result, or raise what it
        raised; a cancellation abandons the thread, which keeps its place until it returns."""
        call = _Call()
        await self._places.acquire_on_behalf_of(call)
        try:
            result = await anyio.to_thread.run_sync(
                partial(_in_thread, call, fn, args, kwargs), limiter=self._unbounded,
                abandon_on_cancel=True)
        except BaseException:
            with call.lock:
                call.abandoned = not call.done
            if call.abandoned:
                self._abandoned.add(call)
            else:
                self._places.release_on_behalf_of(call)
            raise
        self._places.release_on_behalf_of(call)
        if isinstance(result, _Raised):
            raise result.exc
        return result

    def sweep(self) -> None:
        """Give back the places of abandoned calls whose threads have returned since; the
        emitter's watchdog calls this on every tick, on the loop's thread."""
        for call in [call for call in self._abandoned if call.done]:
            self._abandoned.discard(call)
            self._places.release_on_behalf_of(call)


def _in_thread(call: _Call, fn: Callable[..., Any], args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        return _Raised(exc)
    finally:
        with call.lock:
            call.done = True
