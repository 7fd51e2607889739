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
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ..shared.views import Publisher, Served

__all__ = ("Views",)


class Views(Publisher):
    """Publishes this daemon's records (as an observer of the broker) and relays others'."""

    def __init__(self, client: Any, prefix: str, name: str,
                 errors: tuple[type[BaseException], ...]) -> None:
        super().__init__(name)
        self._redis = client
        self.p = prefix
        self.errors = errors
        self._tail_on = False
        self._tail_event = anyio.Event()  # set while subscribed to the other daemons' records

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
        self.set_publishing(broker, count - wanted > 0)

    def _on_message(self, broker: Served, channel: bytes, data: bytes) -> None:
        if channel.endswith(b":ctl"):
            if data == b"tail":
                self.set_publishing(broker, True)
            return
        self.relay(broker, data)
