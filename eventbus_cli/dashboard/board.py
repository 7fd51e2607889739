"""``Board``: what one dashboard knows: the daemon's socket, who may act, and the queue depth
it has seen over the last minutes. Each request opens its own client, so a daemon that
restarts between two pages is simply found again."""

from __future__ import annotations

import contextlib
import hmac
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from ..client.aio import AsyncClient
from ..errors import EventbusError
from ..protocol.results import QueueCounts

__all__ = ("HISTORY_SECONDS", "Board", "Sample")

HISTORY_SECONDS = 600.0
"""How far back the overview's queue-depth chart reaches."""
_SAMPLE_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class Sample:
    """The queue's depth at one moment (``time.time()``)."""

    at: float
    waiting: int
    """Pending and retrying: what waits for a worker."""
    running: int
    failed_list: int


@dataclass
class Board:
    """One dashboard's settings and its memory of the queue's depth.

    ``token``: what an action needs (None: the host app's guards decide, when ``guarded``,
    else nothing may be changed). ``local_uids``: who may read it over loopback without the
    token, as the daemon's socket would let them in (None: a mounted dashboard, where the
    host app decides who reads).
    """

    socket_path: Path
    trusted_uids: tuple[int, ...] = ()
    token: str | None = None
    guarded: bool = False
    read_only: bool = False
    local_uids: frozenset[int] | None = None
    timeout: float = 10.0
    history: deque[Sample] = field(default_factory=deque)

    # Litestar copies a router's opt into each route it registers: every route must still
    # share this one board (its settings, its history), so copying gives the board itself.
    def __copy__(self) -> Board:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Board:
        return self

    @property
    def actions(self) -> bool:
        """Whether this dashboard lets anyone change anything."""
        return not self.read_only and (self.token is not None or self.guarded)

    def token_matches(self, given: str | None) -> bool:
        """Whether ``given`` is this dashboard's token (in constant time)."""
        return (self.token is not None and given is not None
                and hmac.compare_digest(given.encode(), self.token.encode()))

    @asynccontextmanager
    async def client(self) -> AsyncIterator[AsyncClient]:
        """A client of the daemon, for one request."""
        async with AsyncClient(self.socket_path, timeout=self.timeout,
                               trusted_uids=self.trusted_uids) as client:
            yield client

    async def sample(self, every: float = 2.0) -> None:
        """Record the queue's depth every ``every`` seconds, forever (a standalone dashboard
        runs it, so its chart covers the minutes before a page was opened too)."""
        while True:
            with contextlib.suppress(EventbusError):
                async with self.client() as client:
                    while True:
                        self.record(await client.queue())
                        await anyio.sleep(every)
            await anyio.sleep(every)

    def record(self, counts: QueueCounts) -> None:
        """Keep the depth ``counts`` show (at most one sample a second), forgetting what is
        older than :data:`HISTORY_SECONDS`."""
        now = time.time()
        if self.history and now - self.history[-1].at < _SAMPLE_EVERY:
            return
        self.history.append(Sample(now, counts.pending + counts.retrying, counts.running,
                                   counts.failed_list))
        while self.history and now - self.history[0].at > HISTORY_SECONDS:
            self.history.popleft()
