"""The live parts, as server-sent events: the counters once a second, and the tail.

The counters are a ``status`` read once a second, whatever the load, rather than every
delivery's record: that costs the daemon the same at 10 events a second as at 100,000. The
tail follows the daemon's ``subscribe``, only while a tail page is open.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from litestar import get
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from ..errors import EventbusError
from ..names import validate_pattern
from ..protocol.results import Status
from .board import Board
from .pages import AnyRequest, board_of

__all__ = ("LIVE",)

COUNTS_EVERY = 1.0
"""Seconds between two counter updates."""
_RECONNECT_MS = 2000


def counts_document(status: Status) -> dict[str, Any]:
    """What the overview's live parts show, from one ``status``."""
    queue = status.queue
    return {
        "healthy": status.health.healthy, "problems": status.health.problems,
        "pending": queue.pending, "running": queue.running, "retrying": queue.retrying,
        "scheduled": queue.scheduled, "failed_list": queue.failed_list,
        "succeeded": queue.succeeded, "failed": queue.failed, "unrouted": queue.unrouted,
        "listeners": {name: {"pending": counts.pending, "running": counts.running,
                             "retrying": counts.retrying, "succeeded": counts.succeeded,
                             "failed": counts.failed, "scheduled": counts.scheduled}
                      for name, counts in queue.listeners.items()},
    }


async def _counts(board: Board) -> AsyncIterator[ServerSentEventMessage]:
    while True:
        try:
            async with board.client() as client:
                while True:
                    status = await client.status()
                    board.record(status.queue)
                    document = counts_document(status) | {"history": [
                        [sample.at, sample.waiting, sample.running]
                        for sample in list(board.history)[-2:]]}
                    yield ServerSentEventMessage(json.dumps(document), event="counts")
                    await anyio.sleep(COUNTS_EVERY)
        except EventbusError as exc:
            yield ServerSentEventMessage(json.dumps({"problem": str(exc)}), event="down")
            await anyio.sleep(_RECONNECT_MS / 1000)


@get("/live/counts", name="eventbus:live-counts")
async def live_counts(request: AnyRequest) -> ServerSentEvent:
    board = board_of(request)
    return ServerSentEvent(_counts(board), retry_duration=_RECONNECT_MS,
                           headers={"cache-control": "no-store"})


async def _records(board: Board, patterns: list[str]) -> AsyncIterator[ServerSentEventMessage]:
    try:
        async with board.client() as client:
            records = await client.subscribe(patterns)
            yield ServerSentEventMessage(json.dumps({"following": patterns}), event="ready")
            async for record in records:
                yield ServerSentEventMessage(json.dumps(record), event="record")
    except EventbusError as exc:
        yield ServerSentEventMessage(json.dumps({"problem": str(exc)}), event="down")


@get("/live/tail", name="eventbus:live-tail")
async def live_tail(request: AnyRequest) -> ServerSentEvent:
    pattern = request.query_params.get("pattern")
    board = board_of(request)
    patterns = [validate_pattern(pattern.strip())] if pattern and pattern.strip() else []
    return ServerSentEvent(_records(board, patterns), retry_duration=_RECONNECT_MS,
                           headers={"cache-control": "no-store"})


LIVE = (live_counts, live_tail)
