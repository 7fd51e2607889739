"""eventbus_cli.litestar: a Litestar app emits to a real daemon; our emitters as Litestar's."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from litestar import Litestar, Request, get
from litestar.events import listener as litestar_listener
from litestar.events.listener import EventListener as LitestarListener
from litestar.exceptions import ImproperlyConfiguredException
from litestar.params import FromPath
from litestar.testing import TestClient

import eventbus_cli
from eventbus_cli import QueueFullError
from eventbus_cli.litestar import EventbusPlugin, SimpleEventEmitter
from tests.harness import Daemon, wait_for

LISTENERS = '''
import json, os
from eventbus_cli import listener

@listener("user_created")
def welcome(email: str) -> None:
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps(email) + "\\n")
'''


@get("/signup/{name:str}", sync_to_thread=False)
def signup(request: Request[Any, Any, Any], name: FromPath[str]) -> str:
    request.app.emit("user_created", email=f"{name}@example.com")
    return "welcome"


def _mails(daemon: Daemon) -> list[str]:
    return daemon.written()


def test_a_route_that_emits_reaches_a_listener_in_the_daemon(short_dir: Path) -> None:
    daemon = Daemon(short_dir, listeners=LISTENERS).start()
    try:
        app = Litestar(route_handlers=[signup], plugins=[EventbusPlugin(daemon.socket)])
        with TestClient(app) as client:
            for name in ("ada", "bob"):
                assert client.get(f"/signup/{name}").text == "welcome"
        wait_for(lambda: sorted(_mails(daemon)) == ["ada@example.com", "bob@example.com"])
    finally:
        daemon.dispose()


def test_a_daemon_restarted_amid_5000_emits_of_an_app_runs_each_exactly_once(
    short_dir: Path,
) -> None:
    @get("/batch/{start:int}", sync_to_thread=False)
    def batch(request: Request[Any, Any, Any], start: FromPath[int]) -> None:
        for n in range(start, start + 50):
            request.app.emit("user_created", email=f"{n}@example.com")

    daemon = Daemon(short_dir, listeners=LISTENERS, config="[journal]\n").start()
    try:
        app = Litestar(route_handlers=[batch], plugins=[EventbusPlugin(daemon.socket,
                                                                        flush_timeout=30)])
        with TestClient(app) as client:
            for start in range(0, 2500, 50):
                client.get(f"/batch/{start}")
            assert daemon.stop() == 0
            for start in range(2500, 5000, 50):
                client.get(f"/batch/{start}")  # the app serves on while no daemon runs
            daemon.start()
        wait_for(lambda: len(_mails(daemon)) >= 5000, seconds=60)
        assert sorted(_mails(daemon)) == sorted(f"{n}@example.com" for n in range(5000))
    finally:
        daemon.dispose()


def test_no_daemon_at_start_then_one_starts_and_gets_every_event(short_dir: Path) -> None:
    daemon = Daemon(short_dir, listeners=LISTENERS)
    try:
        app = Litestar(route_handlers=[signup], plugins=[EventbusPlugin(daemon.socket)])
        with TestClient(app) as client:
            for name in ("ada", "bob", "eve"):
                assert client.get(f"/signup/{name}").text == "welcome"
            daemon.start()
        wait_for(lambda: len(_mails(daemon)) == 3)
        assert sorted(_mails(daemon)) == [f"{n}@example.com" for n in ("ada", "bob", "eve")]
    finally:
        daemon.dispose()


def test_without_a_daemon_the_app_serves_and_a_full_buffer_raises(
    short_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    @get("/burst", sync_to_thread=False)
    def burst(request: Request[Any, Any, Any]) -> str:
        for n in range(5):
            try:
                request.app.emit("user_created", email=f"{n}@example.com")
            except QueueFullError:
                return f"full after {n}"
        return "all buffered"

    plugin = EventbusPlugin(short_dir / "none.sock", buffer_size=3, flush_timeout=0.1)
    # logging_config=None: Litestar's own would take the root logger from caplog.
    app = Litestar(route_handlers=[burst], plugins=[plugin], logging_config=None)
    with caplog.at_level(logging.WARNING, logger="eventbus"), TestClient(app) as client:
        assert client.get("/burst").text == "full after 3"
    assert "3 events not sent to the daemon" in caplog.text


def test_listeners_given_to_the_app_with_the_plugin_are_refused(short_dir: Path) -> None:
    @litestar_listener("user_created")
    async def in_the_app(email: str) -> None: ...

    with pytest.raises(ImproperlyConfiguredException, match=r"move .*in_the_app to a file of"):
        Litestar(listeners=[in_the_app], plugins=[EventbusPlugin(short_dir / "s.sock")])


# -- our SimpleEventEmitter as a Litestar app's backend, with Litestar-made listeners ---------


@pytest.fixture
def mock() -> MagicMock:
    return MagicMock()


@pytest.fixture
def sync_listener(mock: MagicMock) -> LitestarListener:
    @litestar_listener("test_event")
    def listener_fn(*args: Any, **kwargs: Any) -> None:
        mock(*args, **kwargs)

    return listener_fn


@pytest.fixture
def async_listener(mock: MagicMock) -> LitestarListener:
    @litestar_listener("test_event")
    async def listener_fn(*args: Any, **kwargs: Any) -> None:
        mock(*args, **kwargs)

    return listener_fn


@get("/", sync_to_thread=False)
def emits(request: Request[Any, Any, Any]) -> None:
    request.app.emit("test_event", "positional", keyword="keyword-value")


# Both the typed wrapper and the plain class, which Litestar takes as well at run time.
BACKENDS = [SimpleEventEmitter, eventbus_cli.SimpleEventEmitter]


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_listener_functions_of_one_name_both_run(
    backend: Any, sync_listener: LitestarListener, async_listener: LitestarListener,
    mock: MagicMock,
) -> None:
    app = Litestar(route_handlers=[emits], listeners=[sync_listener, async_listener],
                   event_emitter_backend=backend)
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
    assert mock.call_count == 2
    mock.assert_called_with("positional", keyword="keyword-value")


def test_the_names_say_where_each_listener_was_made(
    sync_listener: LitestarListener, async_listener: LitestarListener,
) -> None:
    emitter = eventbus_cli.SimpleEventEmitter([sync_listener, async_listener])
    assert [item.name for item in emitter.listeners] == [
        f"{__name__}:sync_listener.listener_fn", f"{__name__}:async_listener.listener_fn"]


@pytest.mark.anyio
async def test_leaving_the_emitter_runs_what_was_emitted(
    async_listener: LitestarListener, mock: MagicMock,
) -> None:
    async with SimpleEventEmitter([async_listener]) as emitter:
        for _ in range(100):
            emitter.emit("test_event")
    assert mock.call_count == 100


def test_a_listener_that_raises_fails_alone_and_is_kept(
    async_listener: LitestarListener, mock: MagicMock, caplog: pytest.LogCaptureFixture,
) -> None:
    @litestar_listener("error_event")
    async def raises(*args: Any, **kwargs: Any) -> None:
        raise ValueError("test")

    @get("/error", sync_to_thread=False)
    def error_route(request: Request[Any, Any, Any]) -> None:
        request.app.emit("error_event")
        request.app.emit("test_event")

    app = Litestar(route_handlers=[error_route], listeners=[async_listener, raises],
                   event_emitter_backend=SimpleEventEmitter, logging_config=None)
    with caplog.at_level(logging.ERROR, logger="eventbus"), TestClient(app) as client:
        assert client.get("/error").status_code == 200
        backend = app.event_emitter
    mock.assert_called_once_with()
    assert isinstance(backend, SimpleEventEmitter)
    [failed] = backend.emitter.failed
    assert (failed.listener, failed.error) == (
        f"{__name__}:test_a_listener_that_raises_fails_alone_and_is_kept.raises",
        "ValueError: test")


def test_an_emit_before_the_app_starts_is_a_runtime_error() -> None:
    app = Litestar([], event_emitter_backend=SimpleEventEmitter)
    with pytest.raises(RuntimeError, match="emit only inside"):
        app.emit("x")


def test_an_event_no_listener_takes_is_accepted_and_counted(
    async_listener: LitestarListener,
) -> None:
    # Litestar's own emitter raises ImproperlyConfiguredException here (its issue #4263).
    app = Litestar(listeners=[async_listener], event_emitter_backend=SimpleEventEmitter)
    with TestClient(app):
        app.emit("nobody_listens")
        backend = app.event_emitter
        assert isinstance(backend, SimpleEventEmitter)
        assert backend.emitter.stats().unrouted == 1
