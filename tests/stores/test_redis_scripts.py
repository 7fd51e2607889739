"""The Redis broker's scripts and start-up checks, against a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis.exceptions import ResponseError

from eventbus_cli.config import BackendConfig, Config, DaemonConfig
from eventbus_cli.daemon.server import serve
from eventbus_cli.errors import BackendError
from eventbus_cli.stores.redis import scripts as lua
from eventbus_cli.stores.shared.link import masked
from tests.redis_server import RedisServer, new_prefix


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[Any]:
    from redis.client import Redis

    made = Redis(unix_socket_path=str(redis_server.socket))
    yield made
    made.close()


def test_a_retry_parked_twice_waits_once_and_moves_back_when_due(client: Any) -> None:
    p = "{" + new_prefix() + "}"
    stream = f"{p}:l:work"
    client.xgroup_create(stream, "eventbus", "0", mkstream=True)
    entry = client.xadd(stream, {"d": b"[7]"})
    client.xreadgroup("eventbus", "a", {stream: ">"})
    park = client.register_script(lua.PARK)
    park(args=[p, "work", entry, 7, 0, b"[7]"])
    park(args=[p, "work", entry, 7, 0, b"[7]"])  # a second daemon after a takeover: no-op
    assert client.zcard(f"{p}:due") == 1
    assert client.hget(f"{p}:waiting", "work:retrying") == b"1"
    moved, _, _ = client.register_script(lua.MOVE_DUE)(args=[p, 100])
    assert moved == 1
    assert client.xlen(stream) == 1  # back in the stream, for any daemon to read
    assert client.hget(f"{p}:stats", "work:retried") == b"1"
    assert client.hget(f"{p}:waiting", "work:retrying") == b"0"


def test_a_scheduled_emit_waits_for_its_time(client: Any) -> None:
    p = "{" + new_prefix() + "}"
    later = int(time.time() * 1000) + 60_000
    emit = client.register_script(lua.EMIT)
    emit(args=[p, 1000, 10, f"1|{later}|\nwork\t[9]".encode(), "swork"])
    assert client.zscore(f"{p}:due", "9") == later
    moved, first, _ = client.register_script(lua.MOVE_DUE)(args=[p, 100])
    assert (moved, int(first)) == (0, later)
    assert client.xlen(f"{p}:l:work") == 0


def test_an_emit_with_a_dedupe_key_is_taken_once_bus_wide(client: Any) -> None:
    p = "{" + new_prefix() + "}"
    emit = client.register_script(lua.EMIT)
    assert emit(args=[p, 60_000, 10, b'1||{"n":1}\tk1\nwork\t[1]', "swork\nkk1"]) == [0]
    assert emit(args=[p, 60_000, 10, b'1||{"n":2}\tk1\nwork\t[2]\n1||\nwork\t[3]',
                      "swork\nkk1"]) == [
        b'{"n":1}', 0]  # the first answer, and nothing queued
    assert client.xlen(f"{p}:l:work") == 2
    assert client.hget(f"{p}:stats", "duplicates") == b"1"


def test_dedupe_keys_past_the_most_kept_go_oldest_first(client: Any) -> None:
    p = "{" + new_prefix() + "}"
    emit = client.register_script(lua.EMIT)
    for n in range(5):
        emit(args=[p, 60_000, 3, f"0||{{}}\tk{n}".encode(), f"kk{n}"])
    assert sorted(client.keys(f"{p}:key:*")) == [f"{p}:key:k{n}".encode() for n in (2, 3, 4)]
    assert client.zcard(f"{p}:keys") == 3


def test_foreign_data_under_the_prefix_fails_an_emit_before_it_writes(client: Any) -> None:
    p = "{" + new_prefix() + "}"
    client.set(f"{p}:l:other", "not a stream")
    emit = client.register_script(lua.EMIT)
    with pytest.raises(ResponseError, match=r"FOREIGN .*:l:other is a string"):
        emit(args=[p, 60_000, 10, b"1||\nwork\t[1]\n1||\nother\t[2]", "swork\nsother"])
    assert client.exists(f"{p}:l:work", f"{p}:stats") == 0


def test_requeue_checks_every_delivery_before_changing_any(client: Any) -> None:
    p = "{" + new_prefix() + "}"
    client.hset(f"{p}:failed", mapping={"1": b"{}", "2": b"{}"})
    client.sadd(f"{p}:hosts:work", "a")
    requeue = client.register_script(lua.REQUEUE)
    assert requeue(args=[p, 1, "work", b"[1]", "", "work", 2, "gone", b"[2]", "", "gone"]
                   ) == [b"gone", b"2"]
    assert requeue(args=[p, 1, "work", b"[1]", "", "work", 3, "work", b"[3]", "", "work"]
                   ) == [b"missing", b"3"]
    assert client.hlen(f"{p}:failed") == 2  # nothing changed
    assert requeue(args=[p, 1, "work", b"[1]", "user:1", "work"]) == [b"ok"]
    assert client.hlen(f"{p}:failed") == 1
    assert client.xlen(f"{p}:l:work") == 1
    assert client.lrange(f"{p}:o:work:user:1", 0, -1) == [b"1"]  # last in its key's order


def test_renewing_never_takes_back_what_another_daemon_took_over(client: Any) -> None:
    p = "{" + new_prefix() + "}"
    stream = f"{p}:l:work"
    client.xgroup_create(stream, "eventbus", "0", mkstream=True)
    entry = client.xadd(stream, {"d": b"[1]"})
    client.xreadgroup("eventbus", "a", {stream: ">"})
    client.xautoclaim(stream, "eventbus", "b", 0, "0-0")  # b takes it over
    lost = client.register_script(lua.REFRESH)(args=[p, "a", "work", entry])
    assert lost == [entry]
    [pending] = client.xpending_range(stream, "eventbus", "-", "+", 10)
    assert pending["consumer"] == b"b"


def test_a_password_is_left_out_of_the_url_shown() -> None:
    assert masked("redis://:s3cret@db:6379/0") == "redis://:***@db:6379/0"
    assert masked("redis://user:s3cret@db/0") == "redis://user:***@db/0"
    assert masked("unix:///run/redis.sock") == "unix:///run/redis.sock"


@pytest.mark.anyio
async def test_serve_on_trio_with_redis_is_a_clear_error(
        short_dir: Path, redis_server: RedisServer, anyio_backend: str) -> None:
    (short_dir / "listeners.d").mkdir()
    daemon = DaemonConfig(socket=short_dir / "eb.sock", listeners_dir=short_dir / "listeners.d")
    config = Config(daemon=daemon, backend=BackendConfig(url=redis_server.url,
                                                          prefix=new_prefix()))
    if anyio_backend == "asyncio":
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            await group.start(lambda task_status: serve(
                config, shutdown_trigger=stop.wait, task_status=task_status))
            stop.set()
        return
    with pytest.raises(BackendError, match="asyncio"):
        await serve(config)
