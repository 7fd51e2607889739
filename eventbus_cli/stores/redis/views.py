"""``Views``: the live views (``tail``, ``emit --wait``) across daemons, on Redis Pub/Sub.

This daemon's changes are published on ``P:tail`` while a daemon elsewhere listens (a notice
on ``P:ctl`` turns that on at once, a check of the listeners each second off), so an
unwatched bus pays nothing; the other daemons' records are relayed to the broker's views
while one here listens. Pub/Sub is at most once, as ``tail`` promises. The outcome of a
delivery that an ``emit --wait`` follows is published wherever it runs (by the link).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import anyio

from ...bus.delivery import Delivery, DeliveryObserver
from ..shared.codec import decode_record, encode_record

__all__ = ("Served", "Views")


class Served(Protocol):
    """What the views need of the broker they serve (a SharedBroker)."""

    def wants_records(self) -> bool: ...
    def routes_changed(self, routes: dict[str, tuple[str, ...]]) -> None: ...
    def on_record(self, change: str, event: str | None,
                  deliveries: list[Delivery]) -> None: ...
    def add_observer(self, observer: DeliveryObserver) -> None: ...
    def remove_observer(self, observer: DeliveryObserver) -> None: ...


class Views:
    """Publishes this daemon's records (as an observer of the broker) and relays others'."""

    def __init__(self, client: Any, prefix: str, name: str,
                 errors: tuple[type[BaseException], ...]) -> None:
        self._redis = client
        self.p = prefix
        self.name = name
        self.errors = errors
        self.records: list[bytes] = []
        """Records not sent yet: the link's next pipeline publishes them."""
        self.publishing = False
        """Whether a daemon elsewhere listens, so this one publishes every change."""
        self._tail_on = False
        self._tail_event = anyio.Event()  # set while subscribed to the other daemons' records
        self._wake: Callable[[], None] | None = None

    async def listen(self, broker: Served,
                     routes: Callable[[], Awaitable[dict[str, tuple[str, ...]]]],
                     wake: Callable[[], None]) -> None:
        """Relay other daemons' records to ``broker`` while a live view here wants them, and
        publish this daemon's while one elsewhere does (``wake`` tells the writer there are
        records to send); hand the broker the bus's ``routes()`` when a daemon says they
        changed; until cancelled."""
        self._wake = wake
        pubsub = self._redis.pubsub()
        subscribed = False
        checked = 0.0
        try:
            while True:
                try:
                    if not subscribed:
                        await pubsub.subscribe(f"{self.p}:ctl")
                        subscribed = True
                    wanted = broker.wants_records()
                    if wanted != self._tail_on:
                        if wanted:
                            await pubsub.subscribe(f"{self.p}:tail")
                            await self._redis.publish(f"{self.p}:ctl", b"tail")
                        else:
                            await pubsub.unsubscribe(f"{self.p}:tail")
                        self._tail_on = wanted
                        if wanted:
                            self._tail_event.set()
                        else:
                            self._tail_event = anyio.Event()
                    if time.monotonic() - checked > 1.0:
                        checked = time.monotonic()
                        await self._check_listeners(broker, wanted)
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=0.1)
                except self.errors:
                    subscribed = self._tail_on = False
                    self._tail_event = anyio.Event()
                    with contextlib.suppress(*self.errors):
                        await pubsub.aclose()
                    pubsub = self._redis.pubsub()
                    await anyio.sleep(0.5)
                    continue
                if message is None:
                    continue
                if message["data"] == b"routes":  # a daemon joined or left: route anew
                    try:
                        broker.routes_changed(await routes())
                    except self.errors:
                        continue
                else:
                    self._on_message(broker, message["channel"], message["data"])
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await pubsub.aclose()

    async def tail_ready(self) -> None:
        """Return once this daemon hears the other daemons' records (at most 1 s)."""
        with anyio.move_on_after(1):
            await self._tail_event.wait()

    async def _check_listeners(self, broker: Served, wanted: bool) -> None:
        [(_, count)] = await self._redis.pubsub_numsub(f"{self.p}:tail")
        self._set_publishing(broker, count - wanted > 0)

    def _set_publishing(self, broker: Served, on: bool) -> None:
        if on and not self.publishing:
            broker.add_observer(self)
        elif not on and self.publishing:
            broker.remove_observer(self)
        self.publishing = on

    def _on_message(self, broker: Served, channel: bytes, data: bytes) -> None:
        if channel.endswith(b":ctl"):
            if data == b"tail":
                self._set_publishing(broker, True)
            return
        daemon, change, event, deliveries = decode_record(data)
        if daemon != self.name:
            broker.on_record(change, event, deliveries)

    def _publish(self, change: str, event: str | None, deliveries: Sequence[Delivery]) -> None:
        self.records.append(encode_record(self.name, change, event, deliveries))
        if self._wake is not None:
            self._wake()

    # DeliveryObserver: this daemon's changes, for the other daemons' views.
    def emitted(self, event_id: str, deliveries: Sequence[Delivery]) -> None:
        self._publish("emitted", event_id, deliveries)

    def requeued(self, deliveries: Sequence[Delivery]) -> None:
        self._publish("requeued", None, deliveries)

    def due(self, delivery: Delivery) -> None:
        self._publish("due", None, [delivery])

    def started(self, delivery: Delivery) -> None:
        self._publish("started", None, [delivery])

    def finished(self, delivery: Delivery) -> None:
        self._publish("finished", None, [delivery])

    def removed(self, deliveries: Sequence[Delivery]) -> None:
        self._publish("removed", None, deliveries)
