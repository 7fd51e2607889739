"""What a daemon on Redis does when Redis loses the bus, holds foreign data or may evict:
in-process daemons on the session's real redis-server (the contract suite's fixtures)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from eventbus_cli import AsyncClient
from eventbus_cli.daemon.server import serve
from eventbus_cli.errors import BackendError, RemoteError
from eventbus_cli.protocol.results import EmitResult
from tests.stores import probe
from tests.stores.conftest import Daemons, Store

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60), pytest.mark.stores("redis")]


async def _until(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Ask ``condition`` again until it holds; fail after ``seconds``."""
    with anyio.fail_after(seconds):
        while not await condition():  # noqa: ASYNC110 - the daemon's state, asked again
            await anyio.sleep(0.02)


def _redis(store: Store):  # type: ignore[no-untyped-def]
    import redis.asyncio

    assert store.server is not None
    return redis.asyncio.Redis(unix_socket_path=str(store.server.socket))


async def test_a_bus_redis_lost_is_an_error_and_unhealthy_until_acknowledged(
    daemons: Daemons, store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    async with daemons.run("a") as first:
        before = {run.delivery for run in probe.runs}
        for _ in range(3):
            await first.submit("work", delay=600)
        assert (await first.queue()).scheduled == 3
        async with _redis(store) as server:
            await server.flushall()

        async def unhealthy() -> bool:
            return not (await first.status()).health.healthy

        await _until(unhealthy)
        problems = (await first.status()).health.problems
        async with daemons.run("b") as second:  # started after: ids above the lost ones
            for client in (first, second):
                for _ in range(5):
                    await client.emit("work")
            assert await first.join(30)
        acknowledged = await first.acknowledge()
        healthy = (await first.status()).health.healthy
    assert any("deliveries may have been lost" in p and "3 scheduled" in p for p in problems)
    assert acknowledged == [p for p in problems if "lost" in p]
    assert healthy
    after = [run.delivery for run in probe.runs]
    assert len(after) == len(set(after)) == 10
    assert min(after) > max(before, default=0)
    assert any(record.levelno == logging.ERROR and "may have been lost" in record.getMessage()
               for record in caplog.records)


async def test_foreign_data_under_the_prefix_refuses_what_it_touches_with_a_clear_error(
    daemons: Daemons, store: Store,
) -> None:
    refused: list[RemoteError] = []
    async with daemons.run("a") as client:
        async with _redis(store) as server:
            stream = daemons.prefix + ":l:contract:fan_b"
            await server.delete(stream)
            await server.set(stream, "not a stream")
            async with AsyncClient(client.socket_path) as other:
                for sender in (client, other, client):
                    try:
                        await sender.emit("fan")
                    except RemoteError as exc:
                        refused.append(exc)
            try:
                await client.queue()
            except RemoteError as exc:
                refused.append(exc)
            health = (await client.status()).health
            await server.delete(stream)
        await client.emit("work")
        assert await client.join(30)
    assert len(refused) == 4
    assert {exc.code for exc in refused} == {"backend_unavailable"}
    assert all("foreign data" in str(exc) and "contract:fan_b" in str(exc) for exc in refused)
    assert [run.listener for run in probe.runs] == ["work"]  # nothing of the refused ran
    assert not health.healthy  # status answers all the same, with the counts last read
    assert any("Redis refuses this daemon's commands" in p for p in health.problems)


async def test_a_redis_that_may_evict_keys_is_refused_at_start(
    daemons: Daemons, store: Store,
) -> None:
    async with _redis(store) as server:
        await server.config_set("maxmemory-policy", "allkeys-lru")
        try:
            with pytest.raises(BackendError, match="maxmemory-policy allkeys-lru") as refused:
                await serve(daemons.config("a", {}, {}))
        finally:
            await server.config_set("maxmemory-policy", "noeviction")
    assert "noeviction" in str(refused.value)


async def test_a_fire_redis_did_not_take_is_reported_refused_never_emitted(
    daemons: Daemons, store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    assert store.server is not None
    caplog.set_level(logging.INFO, "eventbus.schedule")
    daemons.extra = {"schedule": [{"name": "tick", "event": "work", "every": "1s"}]}
    async with daemons.run("a") as client:
        await probe.wait_runs(1, "work")
        store.server.kill()
        try:
            async def refused() -> bool:
                return ((await client.schedules())[0].outcome or "").startswith("refused")

            await _until(refused)
            outcome = (await client.schedules())[0].outcome
        finally:
            store.server.start()
    assert outcome is not None
    assert "is lost" in outcome  # every 1s: the next fire comes before a retry would
    refusals = [r for r in caplog.records if r.name == "eventbus.schedule"
                and r.levelno == logging.ERROR]
    assert "could not emit 'work'" in refusals[-1].getMessage()


async def test_a_stalled_redis_refuses_an_emit_within_command_timeout(
    daemons: Daemons, store: Store,
) -> None:
    server = store.server
    assert server is not None
    assert server.process is not None
    daemons.store.tables = _with_command_timeout(daemons.store.tables, 1.0)
    async with daemons.run("a") as client:
        await client.emit("work")
        server.process.send_signal(signal.SIGSTOP)
        try:
            with anyio.fail_after(4), pytest.raises(RemoteError) as refused:
                await client.emit("work")  # redis-py's own timeout would take 10 s
        finally:
            server.process.send_signal(signal.SIGCONT)
    assert refused.value.code == "backend_unavailable"


def _with_command_timeout(tables: Callable[[Path, str], dict[str, Any]],
                          seconds: float) -> Callable[[Path, str], dict[str, Any]]:
    def made(root: Path, name: str) -> dict[str, Any]:
        found = tables(root, name)
        return {**found, "backend": {**found["backend"], "command_timeout": seconds}}

    return made


async def test_a_key_that_holds_no_answer_we_can_read_is_still_a_duplicate(
    daemons: Daemons, store: Store,
) -> None:
    async with daemons.run("a") as client:
        async with _redis(store) as server:  # as an older eventbus kept it, or a stranger
            await server.set(daemons.prefix + ":key:old", "1", px=60_000)
            await server.set(daemons.prefix + ":key:odd", '{"deliveries": "x"}', px=60_000)
        old = await client.submit("work", key="old")
        odd = await client.submit("work", key="odd")
        assert await client.join(30)
    assert old == EmitResult("work", 0, duplicate=True)
    assert odd == EmitResult("work", 0, duplicate=True)
    assert probe.runs == []
