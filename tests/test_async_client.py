"""AsyncClient on a real daemon: many tasks share one connection, replies find their callers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from eventbus_cli import AsyncClient, EventbusError
from eventbus_cli.errors import (
    RemoteBadArgumentsError,
    RemoteInvalidEventError,
    RemoteNotFoundError,
)
from eventbus_cli.testing import RunningDaemon

LISTENERS = '''
import anyio
from eventbus_cli import listener

OPEN: list[anyio.Event] = []  # made on the daemon's event loop, by the first to need it

def _opened() -> anyio.Event:
    if not OPEN:
        OPEN.append(anyio.Event())
    return OPEN[0]

@listener("gate")
async def gate() -> None:
    await _opened().wait()

@listener("open")
async def opener() -> None:
    _opened().set()

@listener("count")
async def count(n: int) -> None:
    pass
'''

pytestmark = pytest.mark.anyio
Start = Callable[..., RunningDaemon]


@pytest.fixture
def bus(tmp_path: Path, eventbus_daemon: Start) -> RunningDaemon:
    folder = tmp_path / "listeners.d"
    folder.mkdir()
    (folder / "gates.py").write_text(LISTENERS)
    return eventbus_daemon(folder)


async def test_replies_find_their_callers_among_many_tasks(bus: RunningDaemon) -> None:
    async with AsyncClient(bus.socket) as client, anyio.create_task_group() as tasks:
        async def ask(n: int) -> None:
            kind = n % 4
            if kind == 0:
                assert (await client.hello()).protocol == 1
            elif kind == 1:
                listed = await client.listeners()
                assert [item.name for item in listed] == ["gates:gate", "gates:opener",
                                                           "gates:count"]
                assert all(item.is_async for item in listed)  # the wire's "async" key
            elif kind == 2:
                dry_run = await client.submit("count", kwargs={"n": n}, dry_run=True)
                assert [item.listener for item in dry_run.listeners or ()] == ["gates:count"]
            else:
                schema = await client.schema("count")
                assert schema["allOf"][0]["properties"]["kwargs"]["required"] == ["n"]

        for n in range(200):
            tasks.start_soon(ask, n)


async def test_fifty_tasks_share_one_client(bus: RunningDaemon) -> None:
    counts: list[int] = []
    async with AsyncClient(bus.socket) as client:
        async with anyio.create_task_group() as tasks:
            async def emit_twenty(task: int) -> None:
                for n in range(20):
                    counts.append(await client.emit("count", n=task * 100 + n))

            for task in range(50):
                tasks.start_soon(emit_twenty, task)
        assert await client.join(30)
        queue = await client.queue()
    assert counts == [1] * 1000
    assert queue.listeners["gates:count"].succeeded == 1000


async def test_each_error_code_raises_its_own_class(bus: RunningDaemon) -> None:
    async with AsyncClient(bus.socket) as client:
        with pytest.raises(RemoteInvalidEventError, match="invalid event id 'bad id'"):
            await client.emit("bad id")
        with pytest.raises(RemoteBadArgumentsError) as refused:
            await client.emit("count", "x", "y")
        assert refused.value.code == "bad_arguments"
        assert refused.value.details["event"] == "count"
        with pytest.raises(RemoteNotFoundError):
            await client.delivery(999)
        assert await client.emit("count", n=1) == 1  # the connection goes on after errors


async def test_subscribe_yields_records_as_they_come(bus: RunningDaemon) -> None:
    async with AsyncClient(bus.socket) as watcher, AsyncClient(bus.socket) as sender:
        records = await watcher.subscribe(["count"])
        assert await sender.emit("count", n=7) == 1
        with anyio.fail_after(10):
            seen = [await anext(records) for _ in range(3)]
    assert [(r["type"], r.get("listener")) for r in seen] == [
        ("emitted", None), ("started", "gates:count"), ("ok", "gates:count")]


async def test_a_daemon_gone_fails_the_calls_that_wait_and_those_after(
    bus: RunningDaemon,
) -> None:
    async with AsyncClient(bus.socket) as client:
        assert await client.emit("count", n=1) == 1
        bus.process.kill()
        bus.process.wait(10)
        with pytest.raises(EventbusError, match=str(bus.socket)):
            await client.hello()
        with pytest.raises(EventbusError, match=str(bus.socket)):
            await client.hello()


async def test_closing_the_client_fails_the_calls_still_waiting_at_once(
    bus: RunningDaemon,
) -> None:
    errors: list[BaseException] = []
    with anyio.fail_after(10):  # not the client's 30 s timeout
        async with anyio.create_task_group() as tasks, AsyncClient(bus.socket) as client:
            async def waits() -> None:
                try:
                    await client.wait(20, "gate")
                except EventbusError as exc:
                    errors.append(exc)

            tasks.start_soon(waits)
            await anyio.wait_all_tasks_blocked()
    assert "was closed" in str(errors[0])
    async with AsyncClient(bus.socket) as opener:
        assert await opener.emit("open") == 1


async def test_without_a_path_the_clients_find_the_socket_as_the_cli_does(
        bus: RunningDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventbus_cli import Client

    monkeypatch.setenv("EVENTBUS_SOCKET", str(bus.socket))
    async with AsyncClient() as client:
        assert client.socket_path == bus.socket
        assert (await client.hello()).protocol == 1
    with Client() as sync:
        assert sync.socket_path == bus.socket
        assert sync.hello().protocol == 1
