"""Our ``@listener`` objects in Litestar's own ``SimpleEventEmitter``: an app that swaps only
the import of ``listener`` keeps working, sync and raising listeners included."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from litestar import Request, get
from litestar.events.emitter import SimpleEventEmitter as LitestarEmitter
from litestar.params import FromPath
from litestar.testing import create_test_client

from eventbus_cli import listener

pytestmark = pytest.mark.anyio


def _calls() -> tuple[list[tuple[Any, ...]], Any, Any]:
    """A list of calls, and a sync and an async listener on ``test_event`` that record there."""
    calls: list[tuple[Any, ...]] = []

    @listener("test_event")
    def sync_one(*args: Any, **kwargs: Any) -> None:
        calls.append(("sync", args, kwargs))

    @listener("test_event")
    async def async_one(*args: Any, **kwargs: Any) -> None:
        calls.append(("async", args, kwargs))

    return calls, sync_one, async_one


def test_sync_and_async_listeners_run_in_a_litestar_app() -> None:
    calls, sync_one, async_one = _calls()

    @get("/", sync_to_thread=False)
    def handler(request: Request[Any, Any, Any]) -> None:
        request.app.emit("test_event", "positional", keyword="value")

    listeners: list[Any] = [sync_one, async_one]  # Litestar's type names its own listener
    with create_test_client(route_handlers=[handler], listeners=listeners) as client:
        assert client.get("/").status_code == 200
    assert sorted(calls) == [("async", ("positional",), {"keyword": "value"}),
                             ("sync", ("positional",), {"keyword": "value"})]


def test_one_listener_on_two_ids_runs_for_each() -> None:
    seen: list[int] = []

    @listener("test_event_1", "test_event_2")
    def either() -> None:
        seen.append(1)

    @get("/{number:int}", sync_to_thread=False)
    def handler(request: Request[Any, Any, Any], number: FromPath[int]) -> None:
        request.app.emit(f"test_event_{number}")

    listeners: list[Any] = [either]
    with create_test_client(route_handlers=[handler], listeners=listeners) as client:
        assert client.get("/1").status_code == 200
        assert client.get("/2").status_code == 200
    assert seen == [1, 1]


def test_a_raising_listener_is_logged_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls, sync_one, async_one = _calls()

    @listener("error_event")
    async def async_raising() -> None:
        raise ValueError("async, on purpose")

    @listener("error_event")
    def sync_raising() -> None:
        raise ValueError("sync, on purpose")

    @get("/{event:str}", sync_to_thread=False)
    def handler(request: Request[Any, Any, Any], event: FromPath[str]) -> None:
        request.app.emit(event)

    listeners: list[Any] = [sync_one, async_one, async_raising, sync_raising]
    with caplog.at_level(logging.ERROR, "eventbus.listener"), create_test_client(
            route_handlers=[handler], listeners=listeners, logging_config=None) as client:
        assert client.get("/error_event").status_code == 200
        assert client.get("/test_event").status_code == 200
    assert len(calls) == 2
    assert "async, on purpose" in caplog.text
    assert "sync, on purpose" in caplog.text


async def test_litestar_emitter_runs_every_pending_call_before_it_exits() -> None:
    calls, _, async_one = _calls()
    async with LitestarEmitter([async_one]) as emitter:
        for _ in range(100):
            emitter.emit("test_event")
    assert len(calls) == 100


def test_our_listener_called_directly_is_the_plain_function() -> None:
    @listener("test_event")
    def plain(n: int) -> int:
        return n + 1

    assert plain(1) == 2
    assert plain.func(2) == 3
