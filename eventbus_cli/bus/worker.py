"""A worker: one of the emitter's fixed pool of tasks that take deliveries and call listeners."""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
import traceback
from pathlib import Path

import anyio
import anyio.lowlevel

from ..plural import counted
from .broker import Broker
from .current import CURRENT
from .delivery import Delivery
from .routing import Slot
from .threads import Threads
from .timings import Timings, fold_full
from .tracing import Tracing

__all__ = ("Worker", "describe_failure")

logger = logging.getLogger("eventbus.emitter")

_NO_DEADLINE = math.inf
_IGNORED_AFTER = 1.0  # seconds a cancelled call may go on before the log says it ignores it
_YIELD_EVERY = 100  # deliveries a worker runs back to back before letting other tasks in
_OWN_DIRS = tuple(str(Path(module).parent) + os.sep for module in (anyio.__file__, __file__))


class Worker:
    """Takes deliveries from the broker one at a time, calls their listener, and reports how
    each attempt ended; the emitter's watchdog cancels a call that runs past its deadline.

    A cancel scope around every call costs more than the call itself, so a worker keeps one
    scope open across many deliveries and the watchdog cancels it only when the current call
    outlives its timeout; the worker then fails that delivery and opens a fresh scope.
    """

    def __init__(self, broker: Broker, threads: Threads, tracing: Tracing | None = None,
                 timings: Timings | None = None) -> None:
        self._broker = broker
        self._unfolded = timings.unfolded if timings is not None else []
        self._threads = threads
        self._tracing = tracing
        self._scope: anyio.CancelScope | None = None
        self._late = False  # the watchdog cancelled the scope: the current call ran late
        self._told = False  # the log says the current call ignores its cancellation
        self._current: tuple[Delivery, Slot] | None = None
        self.deadline = math.inf
        """When the call running now must end (``time.monotonic()``); inf when idle."""

    async def run(self) -> None:
        while True:
            with anyio.CancelScope() as scope:
                self._scope, self._late, self._told = scope, False, False
                await self._run_deliveries()
            late, self._current, self.deadline = self._current, None, math.inf
            if late is not None:
                delivery, slot = late
                self.report(delivery, slot, TimeoutError(
                    f"listener {slot.listener.name} did not finish within "
                    f"{slot.options.timeout:g}s (raise its timeout= option, or make it faster)"
                ))

    def cancel_if_late(self, now: float) -> None:
        if now < self.deadline:
            return
        if not self._late:
            assert self._scope is not None
            self._late = True
            self._scope.cancel()
        elif not self._told and now >= self.deadline + _IGNORED_AFTER and self._current:
            self._told = True  # once per call: it may go on for as long as it likes
            delivery, slot = self._current
            logger.error(
                "listener %s caught the cancellation of its call for delivery %d (past its "
                "%gs timeout) and goes on: its worker runs nothing else until it returns, "
                "and the cancellation is delivered again at each of its awaits, which costs "
                "CPU; let CancelledError through (re-raise it) in the listener",
                slot.listener.name, delivery.id, slot.options.timeout,
                extra={"listener": slot.listener.name, "delivery": delivery.id})

    async def _run_deliveries(self) -> None:
        lanes, burst, monotonic = self._broker.lanes, 0, time.monotonic
        take_nowait, tracing, set_current = lanes.take_nowait, self._tracing, CURRENT.set
        unfolded = self._unfolded
        finished = monotonic()  # when the last attempt ended: back to back, the next began
        while not self._late:  # a listener that swallowed its cancellation ends here
            if (taken := take_nowait()) is None:
                taken = await lanes.take()
                finished = monotonic()
            start = finished
            delivery, slot = self._current = taken
            set_current(delivery)
            self.deadline = start + slot.timeout
            try:
                if tracing is not None:
                    with tracing.attempt(delivery, slot.name):
                        await self._call(slot, delivery)
                elif slot.is_async:
                    await slot.fn(*delivery.args, **delivery.kwargs)
                else:
                    await self._run_sync(slot, delivery)
            except BaseException as exc:  # whatever a listener raises fails that delivery only
                if _ours(exc):
                    raise  # the watchdog's timeout or the emitter's shutdown: see run()
                self._current, self.deadline = None, _NO_DEADLINE
                self.report(delivery, slot, exc)
            else:
                self._current, self.deadline = None, _NO_DEADLINE
                lanes.succeeded(delivery)
            finished = monotonic()
            if (timings := slot.timings) is not None:  # kept for metrics, counted later
                samples = timings.samples
                if not samples and not timings.listed:
                    timings.listed = True
                    unfolded.append(timings)
                samples.append(finished - start)
                started = delivery.started_at  # from the emit (or due time) to this start
                samples.append(started - (delivery.due_at or delivery.created_at or started))
            # Hold nothing of this call while waiting for the next: an idle worker must not
            # keep the listener (and its module, after a reload) alive.
            del taken, delivery, slot
            burst += 1
            if burst == _YIELD_EVERY:
                burst = 0
                if unfolded:
                    fold_full(unfolded)
                await anyio.lowlevel.checkpoint()
                finished = monotonic()  # other tasks ran meanwhile

    async def _call(self, slot: Slot, delivery: Delivery) -> None:
        if slot.is_async:
            await slot.fn(*delivery.args, **delivery.kwargs)
        else:
            await self._run_sync(slot, delivery)

    async def _run_sync(self, slot: Slot, delivery: Delivery) -> None:
        result = await self._threads.run(slot.fn, delivery.args, delivery.kwargs)
        if inspect.isawaitable(result):  # a sync wrapper around a coroutine
            await result

    def report(self, delivery: Delivery, slot: Slot, exc: BaseException) -> None:
        """Log a failed attempt and tell the broker: retry later, or keep it as failed."""
        error, text, retryable = describe_failure(delivery, slot, exc)
        listener = slot.listener
        where = f"listener {listener.name} on event {delivery.event!r}"
        options = slot.options
        facts = {"event": delivery.event, "listener": listener.name, "delivery": delivery.id,
                 "attempt": delivery.attempts}  # fields of their own in JSON logs
        if (retryable and delivery.attempts <= options.retries
                and self._broker.serves(listener.name)):
            delay = options.delay_before(delivery.attempts + 1)
            logger.warning("%s failed attempt %d, retrying in %.3gs: %s", where,
                           delivery.attempts, delay, error, extra=facts)
            self._broker.failed(delivery, error, text, retry_in=delay)
        else:
            logger.error("%s failed after %s: %s\n%s", where,
                         counted(delivery.attempts, "attempt"), error, text, extra=facts)
            self._broker.failed(delivery, error, text, retry_in=None)


def _ours(exc: BaseException) -> bool:
    """Whether ``exc`` is a cancellation by one of our scopes, rather than something the
    listener raised itself (even a CancelledError): a scope around this task is cancelled."""
    return (isinstance(exc, anyio.get_cancelled_exc_class())
            and anyio.current_effective_deadline() == -math.inf)


def describe_failure(delivery: Delivery, slot: Slot, exc: BaseException) -> tuple[str, str, bool]:
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
        mismatch = _signature_mismatch(delivery, slot)
        if mismatch is not None:
            listener = slot.listener
            error = (
                f"TypeError: listener {listener.name} does not accept the arguments of event "
                f"{delivery.event!r}: {mismatch} (add a matching parameter or **kwargs)"
            )
            return error, text, False
    return "".join(traceback.format_exception_only(exc)).strip(), text, True


def _signature_mismatch(delivery: Delivery, slot: Slot) -> str | None:
    try:
        inspect.signature(slot.fn).bind(*delivery.args, **delivery.kwargs)
    except TypeError as exc:
        return str(exc)
    except ValueError:  # no signature to be had (some builtins)
        return None
    return None
