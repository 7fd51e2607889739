"""The dashboard's pages: each asks the daemon for one view and renders it."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Request, Response, get

from ..client.aio import AsyncClient
from ..names import validate_pattern
from ..protocol.ops import LIST_STATES
from ..protocol.results import EventInfo
from .board import Board
from .render import page

__all__ = ("PAGES", "PAGE_SIZE", "AnyRequest", "board_of", "catalog")

PAGE_SIZE = 50
"""Deliveries a list page shows; older ones are a link away."""

AnyRequest = Request[Any, Any, Any]


def board_of(request: AnyRequest) -> Board:
    """The board of the dashboard this request reached."""
    board: Board = request.route_handler.opt["eventbus_board"]
    return board


@get("/", name="eventbus:overview")
async def overview(request: AnyRequest) -> Response[str]:
    board = board_of(request)
    async with board.client() as client:
        status = await client.status()
    board.record(status.queue)
    history = [[sample.at, sample.waiting, sample.running] for sample in board.history]
    return page(request, board, "overview.html", status=status, history=history)


def _whole(value: str | None) -> int | None:
    """A page's ``before`` id, or None."""
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"before={value!r}: a page starts before a delivery id, a whole "
                         "number >= 1")
    return int(value)


def _filters(listener: str | None, event: str | None, text: str | None) -> dict[str, str]:
    found = {"listener": listener, "event": event, "text": text}
    chosen = {name: value.strip() for name, value in found.items() if value and value.strip()}
    if "event" in chosen:
        validate_pattern(chosen["event"])
    return chosen


@get("/failed", name="eventbus:failed")
async def failed(request: AnyRequest) -> Response[str]:
    board = board_of(request)
    query = request.query_params
    filters = _filters(query.get("listener"), query.get("event"), query.get("text"))
    before = _whole(query.get("before"))
    async with board.client() as client:
        rows = await client.deliveries("failed", PAGE_SIZE + 1, before=before, **filters)
        counts, listeners = await client.queue(), await client.listeners()
    board.record(counts)
    more = len(rows) > PAGE_SIZE
    return page(request, board, "failed.html", rows=rows[:PAGE_SIZE], more=more,
                filters=filters, before=before, total=counts.failed_list,
                listeners=[info.name for info in listeners])


@get("/deliveries", name="eventbus:deliveries")
async def deliveries(request: AnyRequest) -> Response[str]:
    board = board_of(request)
    state = request.query_params.get("state", "pending")
    state = state if state in LIST_STATES else "pending"
    before = _whole(request.query_params.get("before"))
    async with board.client() as client:
        rows = await client.deliveries(state, PAGE_SIZE + 1, before=before)
        counts = await client.queue()
    return page(request, board, "deliveries.html", rows=rows[:PAGE_SIZE],
                more=len(rows) > PAGE_SIZE, state=state, states=LIST_STATES, counts=counts,
                before=before)


@get("/deliveries/{delivery_id:int}", name="eventbus:delivery")
async def delivery(request: AnyRequest) -> Response[str]:
    delivery_id: int = request.path_params["delivery_id"]
    board = board_of(request)
    async with board.client() as client:
        shown = await client.delivery(delivery_id)
    return page(request, board, "delivery.html", delivery=shown)


@get("/schedules", name="eventbus:schedules")
async def schedules(request: AnyRequest) -> Response[str]:
    board = board_of(request)
    async with board.client() as client:
        found = await client.schedules()
    return page(request, board, "schedules.html", schedules=found)


@get("/listeners", name="eventbus:listeners")
async def listeners(request: AnyRequest) -> Response[str]:
    board = board_of(request)
    async with board.client() as client:
        found, counts = await client.listeners(), await client.queue()
    return page(request, board, "listeners.html", listeners=found, counts=counts)


async def catalog(client: AsyncClient) -> tuple[list[EventInfo], dict[str, Any]]:
    """The event catalog, and the JSON Schema of each event id in it (patterns have none)."""
    found = await client.events()
    schemas: dict[str, Any] = {}

    async def read_schema(event: str) -> None:
        schemas[event] = await client.schema(event)

    async with anyio.create_task_group() as tasks:
        for entry in found:
            if not entry.pattern:
                tasks.start_soon(read_schema, entry.event)
    return found, schemas


@get("/events", name="eventbus:events")
async def events(request: AnyRequest) -> Response[str]:
    board = board_of(request)
    async with board.client() as client:
        found, schemas = await catalog(client)
    return page(request, board, "events.html", catalog=found, schemas=schemas, form={},
                outcome=None)


@get("/tail", name="eventbus:tail")
async def tail(request: AnyRequest) -> Response[str]:
    pattern = request.query_params.get("pattern")
    board = board_of(request)
    if pattern:
        validate_pattern(pattern.strip())
    return page(request, board, "tail.html", pattern=(pattern or "").strip())


PAGES = (overview, failed, deliveries, delivery, schedules, listeners, events, tail)
