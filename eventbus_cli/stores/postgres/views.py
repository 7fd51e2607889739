"""``Views``: what crosses daemons on PostgreSQL's LISTEN/NOTIFY, on one connection of its
own: wake-ups for the readers (a daemon emitted, retried or requeued), notices that the
routes changed or that a daemon wants records, and the records of the live views (``tail``,
``emit --wait``), published while a daemon elsewhere listens.

One channel per bus. A notification is one letter and its text: ``w`` wake, ``r`` routes,
``t`` a tail began, ``R`` a record (chunked under NOTIFY's 8,000 bytes). Like Pub/Sub,
NOTIFY is at most once, as ``tail`` promises; a reader also looks again within a second.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ..shared.views import Publisher, Served

__all__ = ("Views", "channel_of")

_TOLD_FOR = 5.0  # seconds a NOTIFY that a tail began outweighs the beats' count of watchers


def channel_of(schema: str) -> str:
    """The NOTIFY channel of the bus in ``schema``."""
    return f"eventbus.{schema}"


class Views(Publisher):
    """Listens on the bus's channel; publishes this daemon's records while asked."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], schema: str, name: str,
                 errors: tuple[type[BaseException], ...],
                 watchers: Callable[[], int]) -> None:
        super().__init__(name)
        self._connect = connect
        self.channel = channel_of(schema)
        self.errors = errors
        self._watchers = watchers  # how many other live daemons want records (beat)
        self.watching = False
        """Whether a live view here wants the others' records (kept in the beat)."""
        self._ready = anyio.Event()  # set while listening
        self._told_until = 0.0  # time.monotonic() until which a "t" keeps this publishing
        self.woken = anyio.Event()
        """Set when a daemon says there is new work: the reader looks at once."""

    async def listen(self, broker: Served,
                     routes: Callable[[], Awaitable[dict[str, tuple[str, ...]]]],
                     wake: Callable[[], None]) -> None:
        self._wake = wake
        while True:
            try:
                conn = await self._connect()
            except self.errors:
                await anyio.sleep(0.5)
                continue
            try:
                await conn.execute(f'LISTEN "{self.channel}"')
                self._ready.set()
                self.woken.set()  # what came while not listening: look once
                await self._follow(conn, broker, routes)
            except self.errors:
                await anyio.sleep(0.5)
            finally:
                self._ready = anyio.Event()
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await conn.close()

    async def _follow(self, conn: Any, broker: Served,
                      routes: Callable[[], Awaitable[dict[str, tuple[str, ...]]]]) -> None:
        checked = 0.0
        while True:
            wanted = broker.wants_records()
            if wanted and not self.watching:
                await conn.execute("SELECT pg_notify(%s, 't')", (self.channel,))
            self.watching = wanted
            if time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                # A tail said with a NOTIFY counts until the beats have had time to show it.
                told = checked < self._told_until
                self.set_publishing(broker, told or self._watchers() > 0)
            # A short timeout: a view opened here is told to the others within 0.1 s.
            async for note in conn.notifies(timeout=0.1, stop_after=64):
                kind, text = note.payload[:1], note.payload[1:]
                if kind == "w":
                    self.woken.set()
                elif kind == "r":
                    broker.routes_changed(await routes())
                elif kind == "t":
                    self._told_until = time.monotonic() + _TOLD_FOR
                    self.set_publishing(broker, True)
                elif kind == "R" and broker.wants_records():
                    self.relay(broker, text.encode())

    async def tail_ready(self) -> None:
        with anyio.move_on_after(1):
            await self._ready.wait()
