"""The daemon over its socket: bulk throughput, CLI start-up, and emit-to-listener latency.

Run: .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/daemon.py [EVENTS]

Three figures, each set against its peer measured in the same run:

- bulk: ``eventbus emit --file`` of EVENTS events (default 100,000) into a real daemon with
  one no-op listener, timed from the command's start until the listener has run the last
  delivery; against Litestar's SimpleEventEmitter moving as many events in-process.
- start: ``eventbus emit`` of one event as a whole process, against ``python -c "import
  typer"``; median of 40 runs each, interleaved.
- check: the bulk again into a listener with a typed signature, with the argument check on
  and with ``--no-check``, in turns.
- tails: the bulk figure again with a subscriber to every record attached: one that never
  reads (stalled), then `eventbus tail --json` reading them all; against the bulk without.
- latency: on one kept connection, the time from just before a client sends an emit until
  the listener starts, over 5,000 emits sent one at a time; p50 and p99. Its peer is the
  floor: the same lines sent to a bare asyncio server that only parses them.
"""

from __future__ import annotations

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
from collections.abc import Callable
from pathlib import Path

import anyio
from emitter import run_litestar  # bench/emitter.py: this script's folder is on sys.path

from eventbus_cli.client import Client

EVENTBUS = str(Path(sys.executable).parent / "eventbus")
LISTENERS = '''
import os, time
from eventbus_cli import listener

LATENCIES = []

@listener("bulk")
async def noop(*args, **kwargs):
    pass

@listener("typed")
async def typed(n: int, email: str):
    pass

@listener("latency")
async def measure(sent):
    LATENCIES.append(time.monotonic_ns() - sent)

@listener("latency.dump")
def dump(path):
    with open(path, "w") as out:
        out.write("\\n".join(map(str, LATENCIES)))
'''


def start_daemon(root: Path, listeners: str = LISTENERS,
                 config: str | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """An `eventbus serve` in ``root`` with ``listeners`` (and ``config``), once it answers."""
    (root / "listeners.d").mkdir(parents=True)
    (root / "listeners.d" / "bench.py").write_text(listeners)
    sock = root / "run" / "eb.sock"
    env = {**os.environ, "EVENTBUS_SOCKET": str(sock)}
    command = [EVENTBUS, "serve", "--listeners-dir", str(root / "listeners.d"),
               "--log-level", "warning"]
    if config is not None:
        (root / "eventbus.toml").write_text(config)
        command[1:1] = ["--config", str(root / "eventbus.toml")]
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with Client(sock) as client:
                client.hello()  # ready once it answers, not once its socket takes a connection
            return process, sock
        except Exception:
            time.sleep(0.05)
    raise SystemExit("the daemon did not start")


def bulk(sock: Path, root: Path, events: int, event: str = "bulk",
         options: tuple[str, ...] = (), poll: float = 0.001) -> float:
    """Events per second from the start of ``eventbus emit --file`` (with ``options``) until
    the listener has run the last of ``events`` deliveries; the daemon is asked every
    ``poll`` seconds."""
    lines = (json.dumps({"event": event, "args": [n], "kwargs": {"email": "x@example.com"}})
             for n in range(events))
    (root / "events.jsonl").write_text("\n".join(lines) + "\n")
    with Client(sock) as client:
        before = client.call("queue")["succeeded"]
        started = time.perf_counter()
        subprocess.run([EVENTBUS, "--socket", str(sock), "emit", "--file",
                        str(root / "events.jsonl"), *options], check=True,
                       stdout=subprocess.DEVNULL)
        while client.call("queue")["succeeded"] < before + events:
            time.sleep(poll)
        return events / (time.perf_counter() - started)


def with_tail(sock: Path, reading: bool, measure: Callable[[], float]) -> float:
    """``measure()`` while a tail subscribes to every record: `eventbus tail --json` reading
    them all, or a raw subscriber that reads none (stalled)."""
    if reading:
        tail = subprocess.Popen([EVENTBUS, "--socket", str(sock), "tail", "--json"],
                                stdout=subprocess.DEVNULL)
    else:
        stalled = socket.socket(socket.AF_UNIX)
        stalled.connect(str(sock))
        stalled.sendall(b'{"id": 1, "op": "subscribe"}\n')
    time.sleep(0.5)  # let the tail subscribe
    try:
        return measure()
    finally:
        if reading:
            tail.terminate()
            tail.wait(timeout=10)
        else:
            stalled.close()


def litestar_rate(events: int) -> float:
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        anyio.run(run_litestar, events, 1)
        rates.append(events / (time.perf_counter() - started))
    return statistics.median(rates)


def start_times(first: list[str], second: list[str], runs: int = 40) -> tuple[float, float]:
    """Median wall time of each command as a whole process; runs interleaved, so that
    the machine's background noise falls on both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for command, found in zip((first, second), times, strict=True):
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            found.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def latency(sock: Path, root: Path, count: int = 5000,
            gap: float = 0.0005) -> tuple[float, float]:
    """p50 and p99 microseconds from an emit's send to its listener's start, ``count`` emits
    ``gap`` seconds apart (long enough that none queues behind the one before)."""
    with Client(sock) as client:
        for _ in range(count):
            client.call("emit", event="latency", kwargs={"sent": time.monotonic_ns()})
            time.sleep(gap)
        client.emit("latency.dump", path=str(root / "latencies.txt"))
        while not (root / "latencies.txt").exists():
            time.sleep(0.01)
    time.sleep(0.1)
    values = sorted(int(v) / 1000 for v in (root / "latencies.txt").read_text().split())
    assert len(values) == count, len(values)
    return values[len(values) // 2], values[int(len(values) * 0.99)]


FLOOR_SERVER = """
import asyncio, json, os, sys, time
path, count = sys.argv[1], int(sys.argv[2])
latencies = []

class Receiver(asyncio.Protocol):
    def data_received(self, data):
        now = time.monotonic_ns()
        for line in data.splitlines():
            latencies.append(now - json.loads(line)["kwargs"]["sent"])
        if len(latencies) >= count:
            print(" ".join(map(str, latencies)), flush=True)

async def main():
    await asyncio.get_running_loop().create_unix_server(Receiver, path)
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def latency_floor(root: Path, count: int = 5000) -> tuple[float, float]:
    """The same emits into a bare asyncio server that only parses each line: the floor that
    the machine, the kernel and Python set before any of our code runs."""
    path = root / "floor.sock"
    server = subprocess.Popen([sys.executable, "-c", FLOOR_SERVER, str(path), str(count)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            for _ in range(count):
                sent = time.monotonic_ns()
                sock.sendall(b'{"id":1,"op":"emit","event":"latency","kwargs":{"sent":%d}}\n'
                             % sent)
                time.sleep(0.0005)
            values = sorted(int(v) / 1000 for v in server.stdout.readline().split())
    finally:
        server.kill()
        server.wait()
    return values[len(values) // 2], values[int(len(values) * 0.99)]


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    root = Path(tempfile.mkdtemp(prefix="eb-bench-", dir="/tmp"))
    process, sock = start_daemon(root)
    try:
        ours = statistics.median(bulk(sock, root, events) for _ in range(3))
        theirs = litestar_rate(events)
        print(f"bulk {events:,} events: eventbus emit --file {ours:,.0f}/s, Litestar in-process "
              f"{theirs:,.0f}/s: {ours / theirs:.2f}x (target >= 3x)")
        checked, unchecked = [], []
        for _ in range(3):  # in turns
            checked.append(bulk(sock, root, events, "typed"))
            unchecked.append(bulk(sock, root, events, "typed", ("--no-check",)))
        on, off = statistics.median(checked), statistics.median(unchecked)
        print(f"bulk into a typed listener (n: int, email: str): check on {on:,.0f}/s, "
              f"--no-check {off:,.0f}/s: {100 * (on / off - 1):+.1f}%")
        for reading in (False, True):
            watched = with_tail(sock, reading, lambda: statistics.median(
                bulk(sock, root, events) for _ in range(3)))
            print(f"bulk with a {'reading' if reading else 'stalled'} tail of every record: "
                  f"{watched:,.0f}/s: {watched / ours:.2f}x of the bulk without one")
        emit, typer = start_times([EVENTBUS, "--socket", str(sock), "emit", "bulk"],
                                  [sys.executable, "-c", "import typer"])
        print(f"start: eventbus emit {emit * 1000:.1f} ms, python -c 'import typer' "
              f"{typer * 1000:.1f} ms: {emit / typer:.2f}x (target <= 1.2x)")
        p50, p99 = latency(sock, root)
        floor50, floor99 = latency_floor(root)
        print(f"latency emit -> listener start: p50 {p50:.0f} us, p99 {p99:.0f} us "
              "(targets 100 us, 1000 us)")
        print(f"  floor, a bare asyncio server parsing the same lines: p50 {floor50:.0f} us, "
              f"p99 {floor99:.0f} us")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
