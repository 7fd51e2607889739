"""A worker: one of the emitter's fixed pool of tasks that take deliveries and call listeners."""

from __future__ import annotations

import inspect
import os
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Protocol

import anyio
import anyio.lowlevel

from .delivery import Delivery, DeliveryState
from .memory import DeliveryQueue

__all__ = ("Outcomes", "Worker", "describe_failure")

_YIELD_EVERY = 100  # deliveries a worker runs back to back before letting other tasks in
_OWN_DIRS = tuple(str(Path(module).parent) + os.sep for module in (anyio.__file__, __file__))


class Outcomes(Protocol):
    """Where a worker reports how each attempt ended (the emitter)."""

    observed: bool

    def delivery_done(self, delivery: Delivery, exc: BaseException | None) -> None: ...

    def delivery_started(self, delivery: Delivery) -> None: ...


class Worker:
    """Runs deliveries one at a time; the emitter's watchdog cancels a call that runs late.

    A cancel scope around every call costs more than the call itself, so a worker keeps one
    scope open across many deliveries and the watchdog cancels it only when the current call
    outlives its timeout; the worker then fails that delivery and opens a fresh scope.
    """

    def __init__(
        self, queue: DeliveryQueue, outcomes: Outcomes, limiter: anyio.CapacityLimiter
    ) -> None:
        self._queue = queue
        self._outcomes = outcomes
        self._limiter = limiter
        self._scope: anyio.CancelScope | None = None
        self.current: Delivery | None = None
        self.started = 0.0

    async def run(self) -> None:
        while True:
            with anyio.CancelScope() as scope:
                self._scope = scope
                await self._run_deliveries(scope)
            late, self.current = self.current, None
            if late is not None:
                seconds = late.slot.options.timeout
                self._outcomes.delivery_done(late, TimeoutError(
                    f"listener {late.slot.listener.name} did not finish within {seconds:g}s"
                    " (raise its timeout= option, or make it faster)"
                ))

    def cancel_if_late(self, now: float) -> None:
        delivery = self.current
        if delivery is not None and now - self.started >= delivery.slot.options.timeout:
            assert self._scope is not None
            self._scope.cancel()

    async def _run_deliveries(self, scope: anyio.CancelScope) -> None:
        queue, outcomes, burst = self._queue, self._outcomes, 0
        while not scope.cancel_called:  # a listener that swallowed its cancellation ends here
            delivery = await queue.take()
            slot = delivery.slot
            delivery.state = DeliveryState.RUNNING
            delivery.attempts += 1
            self.started = time.monotonic()
            self.current = delivery
            if outcomes.observed:
                outcomes.delivery_started(delivery)
            try:
                if slot.is_async:
                    await slot.fn(*delivery.args, **delivery.kwargs)
                else:
                    call = partial(slot.fn, *delivery.args, **delivery.kwargs)
                    result = await anyio.to_thread.run_sync(
                        call, limiter=self._limiter, abandon_on_cancel=True
                    )
                    if inspect.isawaitable(result):  # a sync wrapper around a coroutine
                        await result
            except (Exception, SystemExit) as exc:  # SystemExit: a listener must not stop us
                self.current = None
                outcomes.delivery_done(delivery, exc)
            else:
                self.current = None
                outcomes.delivery_done(delivery, None)
            burst += 1
            if burst == _YIELD_EVERY:
                burst = 0
                await anyio.lowlevel.checkpoint()


def describe_failure(delivery: Delivery, exc: BaseException) -> tuple[str, str, bool]:
    """``(error, traceback, retryable)`` for a failed attempt.

    A ``TypeError`` raised because the listener's signature does not take the event's
    arguments is not retryable: it fails the same way every time.
    """
    frames = [
        frame for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(_OWN_DIRS)
    ]
    text = "".join(
        ["Traceback (most recent call last):\n", *traceback.format_list(frames)] if frames else []
    ) + "".join(traceback.format_exception_only(exc))
    if isinstance(exc, TypeError) and not frames:
        mismatch = _signature_mismatch(delivery)
        if mismatch is not None:
            listener = delivery.slot.listener
            error = (
                f"TypeError: listener {listener.name} does not accept the arguments of event "
                f"{delivery.event!r}: {mismatch} (add a matching parameter or **kwargs)"
            )
            return error, text, False
    return "".join(traceback.format_exception_only(exc)).strip(), text, True


def _signature_mismatch(delivery: Delivery) -> str | None:
    try:
        inspect.signature(delivery.slot.fn).bind(*delivery.args, **delivery.kwargs)
    except TypeError as exc:
        return str(exc)
    except ValueError:  # no signature to be had (some builtins)
        return None
    return None
