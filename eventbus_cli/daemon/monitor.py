"""``Monitor``: live records of the bus for ``tail`` subscribers, and waits for ``emit --wait``.

The monitor observes the emitter only while someone subscribes or waits, so an unwatched bus
pays nothing for it. Each subscriber has a bounded buffer: when a reader stalls, records past
the bound are dropped and counted, and the reader gets one ``skipped`` record saying how many,
so a slow tail never slows the bus.
"""

from __future__ import annotations

import fnmatch
import math
import re
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio

from ..bus.delivery import Delivery, DeliveryState, iso_time
from ..bus.emitter import SimpleEventEmitter
from ..protocol.codec import encode_line
from ..protocol.event import NORMAL, PRIORITIES
from ..protocol.results import DeliveryOutcome

__all__ = ("BUFFER_RECORDS", "Monitor", "Subscription", "Watch")

BUFFER_RECORDS = 10_000
"""Records a subscriber may have waiting; more are dropped and counted as skipped."""

_OUTCOMES = {DeliveryState.SUCCEEDED: "ok", DeliveryState.FAILED: "failed",
             DeliveryState.RETRYING: "retrying"}


class Subscription:
    """One subscriber's filter and buffer of encoded record lines."""

    def __init__(self, patterns: Sequence[str], request_id: object = None,
                 limit: int = BUFFER_RECORDS) -> None:
        self.patterns = tuple(patterns)
        # Compiled here, not through fnmatch's module-wide cache: what a client sends must not
        # outlive its subscription.
        self._matchers = [re.compile(fnmatch.translate(p)).match for p in self.patterns]
        self.request_id = request_id  # of the subscribe request, for its reply
        self.limit = limit
        self.skipped = 0
        self.lines: deque[bytes] = deque()
        self._ready = anyio.Event()

    def wants(self, event: str) -> bool:
        return not self._matchers or any(match(event) for match in self._matchers)

    def put(self, line: bytes) -> None:
        """Buffer ``line``; the caller has checked for room (where there is none, it counts
        a skip instead)."""
        if self.skipped:  # the gap comes first, where it happened
            self.lines.append(_skipped(self.skipped))
            self.skipped = 0
        self.lines.append(line)
        self._ready.set()

    async def next_lines(self) -> bytes:
        """Wait for records; return every line waiting (and a ``skipped`` record if due)."""
        while not self.lines and not self.skipped:
            self._ready = anyio.Event()
            await self._ready.wait()
        lines = b"".join(self.lines)
        self.lines.clear()
        if self.skipped:
            lines += _skipped(self.skipped)
            self.skipped = 0
        return lines


class Watch:
    """Deliveries an ``emit --wait`` follows, and how each ended."""

    def __init__(self, deliveries: Sequence[Delivery]) -> None:
        self.deliveries = list(deliveries)
        self.open = {delivery.id for delivery in deliveries}
        self.errors: dict[int, str | None] = {}
        self.done = anyio.Event()


class Monitor:
    """Publishes records to subscriptions and ends waits; attached to the emitter on demand."""

    def __init__(self, emitter: SimpleEventEmitter) -> None:
        self._emitter = emitter
        self._name = emitter.broker.name  # this daemon's, on a shared bus
        self._subscriptions: list[Subscription] = []
        self._waiters: dict[int, Watch] = {}
        self._starts: dict[int, float] = {}
        self._attached = False
        self._cut: str | None = None  # why every wait ends now (the daemon shuts down)

    def subscribe(self, patterns: Sequence[str], request_id: object = None) -> Subscription:
        subscription = Subscription(patterns, request_id)
        self._subscriptions.append(subscription)
        self._attach()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.remove(subscription)
        self._detach_if_idle()

    def watch(self, deliveries: Sequence[Delivery]) -> Watch:
        """Follow ``deliveries`` from now on, for :meth:`wait`; :meth:`unwatch` ends it."""
        watch = Watch(deliveries)
        for delivery in deliveries:
            self._waiters[delivery.id] = watch
        self._attach()
        return watch

    def unwatch(self, watch: Watch) -> None:
        for delivery_id in watch.open:
            self._waiters.pop(delivery_id, None)
        self._detach_if_idle()

    async def wait(self, watch: Watch, seconds: float) -> list[DeliveryOutcome]:
        """Wait until every delivery of ``watch`` has succeeded or failed for good, or
        ``seconds`` pass, or the daemon shuts down (:meth:`cut_short`); one result per
        delivery (``ok`` None: not finished, and ``error`` says why)."""
        with anyio.move_on_after(seconds):
            if watch.open and self._cut is None:
                await watch.done.wait()
        unfinished = self._cut or (
            f"not finished within {seconds:g}s (it goes on: `eventbus queue show ID` shows it "
            "until it ends, and `eventbus tail` shows how it ends)")
        return [
            DeliveryOutcome(
                listener=d.listener, delivery=d.id,
                ok=None if d.id in watch.open else watch.errors[d.id] is None,
                error=unfinished.replace("ID", str(d.id)) if d.id in watch.open
                else watch.errors[d.id])
            for d in watch.deliveries
        ]

    def cut_short(self, why: str) -> None:
        """End every wait now, each answering what it knows and ``why`` for the rest."""
        self._cut = why
        for watch in set(self._waiters.values()):
            watch.done.set()

    def _attach(self) -> None:
        if not self._attached:
            self._emitter.add_observer(self)
            self._attached = True

    def _detach_if_idle(self) -> None:
        if self._attached and not self._subscriptions and not self._waiters:
            self._emitter.remove_observer(self)
            self._attached = False
            self._starts.clear()

    # -- DeliveryObserver ------------------------------------------------------------------

    def emitted(self, event_id: str, deliveries: Sequence[Delivery]) -> None:
        if self._subscriptions and (targets := self._targets(event_id)):
            later = deliveries and deliveries[0].state is DeliveryState.SCHEDULED
            record: dict[str, Any] = {"type": "scheduled" if later else "emitted",
                                      "event": event_id, "deliveries": len(deliveries)}
            if later:
                record["due"] = iso_time(deliveries[0].due_at)
            _publish(targets, record)

    def due(self, delivery: Delivery) -> None:
        if self._subscriptions and (targets := self._targets(delivery.event)):
            _publish(targets, self._about(delivery, "due"))

    def fired(self, schedule: str, event_id: str, outcome: str) -> None:
        """A schedule fired (not a delivery change: the scheduler tells it)."""
        if self._subscriptions and (targets := self._targets(event_id)):
            _publish(targets, {"type": "fired", "schedule": schedule, "event": event_id,
                               "outcome": outcome})

    def requeued(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            if self._subscriptions and (targets := self._targets(delivery.event)):
                _publish(targets, self._about(delivery, "requeued"))

    def started(self, delivery: Delivery) -> None:
        if self._subscriptions and (targets := self._targets(delivery.event)):
            now = time.monotonic()
            self._starts[delivery.id] = now
            waited = now - delivery.queued_at if delivery.queued_at else math.nan
            _publish(targets, self._about(delivery, "started", waited))

    def finished(self, delivery: Delivery) -> None:
        if self._subscriptions:
            began = self._starts.pop(delivery.id, math.nan)
            if targets := self._targets(delivery.event):
                record = self._about(delivery, _OUTCOMES[delivery.state],
                                     time.monotonic() - began)
                record["error"] = None if delivery.state is DeliveryState.SUCCEEDED \
                    else delivery.error
                _publish(targets, record)
        if delivery.state is not DeliveryState.RETRYING:
            error = None if delivery.state is DeliveryState.SUCCEEDED else delivery.error
            self._end_wait(delivery, error)

    def removed(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self._end_wait(delivery, "purged before it could finish")

    def _end_wait(self, delivery: Delivery, error: str | None) -> None:
        waiter = self._waiters.pop(delivery.id, None)
        if waiter is not None:
            waiter.errors[delivery.id] = error
            waiter.open.discard(delivery.id)
            if not waiter.open:
                waiter.done.set()

    def _about(self, delivery: Delivery, kind: str,
               latency: float = math.nan) -> dict[str, Any]:
        """The record of a change to ``delivery``, naming the daemon that ran it."""
        record = {"type": kind, "event": delivery.event, "delivery": delivery.id,
                  "listener": delivery.listener, "attempt": delivery.attempts,
                  "latency": None if math.isnan(latency) else round(latency, 6),
                  "daemon": getattr(delivery, "host", None) or self._name}
        if delivery.priority != NORMAL:
            record["priority"] = PRIORITIES[delivery.priority]
        if delivery.order_key is not None:
            record["order_key"] = delivery.order_key
        return record

    def _targets(self, event: str) -> list[Subscription]:
        """The subscriptions that want ``event`` and have room for it; the full ones among
        those that want it count a skip instead, so a stalled reader costs next to nothing."""
        targets = []
        for subscription in self._subscriptions:
            if subscription.patterns and not subscription.wants(event):
                continue
            if len(subscription.lines) >= subscription.limit:
                subscription.skipped += 1
            else:
                targets.append(subscription)
        return targets


def _publish(targets: list[Subscription], record: dict[str, Any]) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    line = encode_line({"timestamp": stamp, **record})
    for subscription in targets:
        subscription.put(line)


def _skipped(count: int) -> bytes:
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    record = {"timestamp": stamp, "type": "skipped", "count": count,
              "message": f"{count} records dropped: this reader fell behind"}
    return encode_line(record)
