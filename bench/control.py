"""Delivery control: what a priority or an order key costs in-process, and how well a rate
holds across two daemons on Redis.

Run: .venv/bin/pip install -e '.[test,bench]' && .venv/bin/python bench/control.py [EVENTS]

- in-process: EVENTS events (default 100,000) into one no-op listener, emitted plain, with
  ``priority="high"``, with an ``order_key`` of its own, and with one among 1,000 (each
  then waits behind others of its key: the order is kept, at a price); deliveries per second, the
  median of five runs taken in turns, each against the plain run of its round.
- rate: two daemons on one redis-server, a listener limited to ``rate="10/s"`` on both, 400
  events emitted; the starts counted over the 30 s after the first (the target: 300,
  within 10%), and the shortest gap between two starts (smooth: no burst).
"""

from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from daemon import start_daemon  # bench/daemon.py: this script's folder is on sys.path
from redis_bus import start_redis

from eventbus_cli import SimpleEventEmitter, listener
from eventbus_cli.client import Client

Emit = Callable[[SimpleEventEmitter, int], Awaitable[int]]


async def plain(emitter: SimpleEventEmitter, n: int) -> int:
    return await emitter.aemit("e", n)


async def high(emitter: SimpleEventEmitter, n: int) -> int:
    return await emitter.aemit("e", n, priority="high")


KEYS = [f"user:{n}" for n in range(100_000)]


async def keyed(emitter: SimpleEventEmitter, n: int) -> int:
    """A key each emit: no delivery ever waits behind another of its key."""
    return await emitter.aemit("e", n, order_key=KEYS[n % len(KEYS)])


async def contended(emitter: SimpleEventEmitter, n: int) -> int:
    """Keys among 1,000: with 10,000 deliveries queued, each waits behind others of its key."""
    return await emitter.aemit("e", n, order_key=KEYS[n % 1000])


async def run(emit: Emit, events: int) -> float:
    @listener("e")
    async def noop(*args: Any, **kwargs: Any) -> None:
        pass

    began = time.perf_counter()
    async with SimpleEventEmitter([noop]) as emitter:
        for n in range(events):
            await emit(emitter, n)
    return events / (time.perf_counter() - began)


def in_process(events: int, rounds: int = 5) -> None:
    ratios: dict[str, list[float]] = {"priority": [], "order key": [],
                                      "contended order key": []}
    rates: list[float] = []
    for _ in range(rounds):
        base = anyio.run(run, plain, events)
        rates.append(base)
        ratios["priority"].append(anyio.run(run, high, events) / base)
        ratios["order key"].append(anyio.run(run, keyed, events) / base)
        ratios["contended order key"].append(anyio.run(run, contended, events) / base)
    print(f"in-process, {events:,} events into 1 listener: plain {statistics.median(rates):,.0f}"
          " deliveries/s")
    for name, values in ratios.items():
        cost = (1 / statistics.median(values) - 1) * 100
        print(f"  with a {name}: {statistics.median(values):.3f}x the plain rate "
              f"(+{cost:.1f}% per delivery; target < 10%)")


RATED = '''
import os, time
from eventbus_cli import listener

@listener("limited", rate="10/s")
async def limited(n):
    with open(os.environ["EVENTBUS_BENCH_OUT"], "a") as out:
        out.write(f"{time.time()}\\n")
'''


def rate_across_daemons(seconds: float = 30.0) -> None:
    import os

    with tempfile.TemporaryDirectory(dir="/tmp") as root_name:
        root = Path(root_name)
        redis, path = start_redis(root)
        out = root / "starts.txt"
        os.environ["EVENTBUS_BENCH_OUT"] = str(out)
        config = f'[backend]\nurl = "unix://{path}"\nprefix = "bench"\nname = "{{}}"\n'
        daemons = []
        try:
            for name in ("a", "b"):
                (root / name).mkdir()
                daemons.append(start_daemon(root / name, RATED, config.format(name)))
            with Client(daemons[0][1]) as client:
                client.emit_many({"event": "limited", "kwargs": {"n": n}} for n in range(400))
            deadline = time.monotonic() + seconds + 5
            while time.monotonic() < deadline:
                starts = sorted(float(line) for line in out.read_text().split()) \
                    if out.exists() else []
                if starts and starts[-1] - starts[0] >= seconds:
                    break
                time.sleep(0.5)
            window = [at for at in starts if at - starts[0] < seconds]
            gaps = [after - before for before, after in itertools.pairwise(window)]
            print(f"rate 10/s on two daemons sharing Redis: {len(window)} starts in "
                  f"{seconds:g} s (target 300, within 10%), shortest gap "
                  f"{min(gaps) * 1000:.0f} ms, median gap {statistics.median(gaps) * 1000:.0f} ms")
        finally:
            for process, _ in daemons:
                process.terminate()
                process.wait(30)
            redis.terminate()
            redis.wait(10)


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    in_process(events)
    rate_across_daemons()


if __name__ == "__main__":
    main()
