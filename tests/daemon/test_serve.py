"""`serve()` embedded in a program, driven by both clients."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from eventbus_cli import AsyncClient, Client, Config
from eventbus_cli.config import DaemonConfig
from eventbus_cli.daemon.server import Ready, serve
from eventbus_cli.errors import NoDaemonError, RemoteError
from tests.waiting import wait_until

LISTENER = '''
from eventbus_cli import listener

SEEN = []

@listener("order.*")
async def remember(*args, **kwargs):
    SEEN.append((args, kwargs))
'''


@pytest.mark.anyio
async def test_serve_reports_ready_and_stops_on_its_trigger(short_dir: Path) -> None:
    (short_dir / "listeners.d").mkdir()
    (short_dir / "listeners.d" / "orders.py").write_text(LISTENER)
    socket_path = short_dir / "run" / "eb.sock"
    daemon = DaemonConfig(socket=socket_path, listeners_dir=short_dir / "listeners.d")
    config = Config(daemon=daemon)
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        ready: Ready = await group.start(lambda task_status: serve(
            config, shutdown_trigger=stop.wait, task_status=task_status))
        assert (ready.socket, ready.listeners) == (socket_path, 1)
        assert (await ready.reload()).kept == ["orders:remember"]
        import sys

        seen = sys.modules["eventbus_listeners.orders"].SEEN
        async with AsyncClient(socket_path) as client:
            assert await client.emit("order.paid", 10, currency="EUR") == 1
            assert await client.emit("user.none") == 0
            with pytest.raises(RemoteError) as caught:
                await client.call("emit", event="bad id")
            assert caught.value.code == "invalid_event"
        with Client(socket_path) as sync_client:
            result = await anyio.to_thread.run_sync(
                sync_client.emit_many, [{"event": "order.shipped", "args": [n]} for n in range(3)]
            )
        assert (result.total, result.accepted, result.deliveries, result.error) == (3, 3, 3, None)
        await wait_until(lambda: len(seen) == 4)
        assert seen[0] == ((10,), {"currency": "EUR"})
        stop.set()
    assert not socket_path.exists()


@pytest.mark.anyio
async def test_async_client_without_a_daemon(short_dir: Path) -> None:
    with pytest.raises(NoDaemonError, match="eventbus serve"):
        async with AsyncClient(short_dir / "none.sock"):
            pass


HUNG = '''
import anyio
from eventbus_cli import listener

STARTED = anyio.Event()

@listener("hang")
async def hang():
    STARTED.set()
    await anyio.sleep_forever()
'''


@pytest.mark.anyio
@pytest.mark.parametrize("drain", [True, False])
async def test_the_stop_op_ends_serve_with_or_without_draining(short_dir: Path,
                                                               drain: bool) -> None:
    (short_dir / "listeners.d").mkdir()
    (short_dir / "listeners.d" / "hung.py").write_text(HUNG)
    socket_path = short_dir / "eb.sock"
    # With drain, the hung call holds the daemon for shutdown_timeout; without, not at all.
    daemon = DaemonConfig(socket=socket_path, listeners_dir=short_dir / "listeners.d",
                          shutdown_timeout=0.5 if drain else 3600)
    async with anyio.create_task_group() as group:
        await group.start(lambda task_status: serve(Config(daemon=daemon),
                                                    task_status=task_status))
        import sys

        started = sys.modules["eventbus_listeners.hung"].STARTED
        async with AsyncClient(socket_path) as client:
            assert await client.emit("hang") == 1
            await started.wait()
            assert await client.stop(drain=drain) == os.getpid()
    assert not socket_path.exists()  # serve() returned: the task group ended
