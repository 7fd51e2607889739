"""Scheduling costs: a burst of due deliveries, and the idle cost of many schedules.

Run: .venv/bin/python bench/schedules.py

1. 100,000 deliveries scheduled for the same second (emit_at) into one no-op listener: how
   long after their due time the last one starts, and how many ready events a producer
   emits in that time compared with the same producer when nothing else is due (seven runs
   each, in turns; the median of the pairs' ratios, and the latest start of all of them).
   And the CPU the burst alone takes from its due time to its last start: the share of the
   second that a producer keeping the same event loop busy must lose, the floor of the
   figure above.
2. The same burst in a real daemon: 100,000 `due` events emitted for one second (pipelined
   on an AsyncClient), and a client that emits `ready` events one at a time, each waiting
   for its reply as an application's request would, during that second; against the same
   client when nothing is due (seven paired runs, in turns; the median ratio), and the
   longest any one of those emits took.
3. 1,000 cron schedules (none due) served by the daemon's Scheduler for 5 s: the CPU the
   process spends meanwhile, as a share of one core.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from daemon import start_daemon  # bench/daemon.py: this script's folder is on sys.path

from eventbus_cli import SimpleEventEmitter, cron, listener
from eventbus_cli.client import Client
from eventbus_cli.client.aio import AsyncClient
from eventbus_cli.daemon.scheduler import Scheduler

BURST = 100_000
ROUNDS = 7
DAEMON_ROUNDS = 7  # each emits the 100,000 first, for a dozen seconds


async def burst(scheduled: int) -> tuple[float, int]:
    """(seconds from the due time until the last scheduled delivery started, ready events
    emitted during the second after the due time)."""
    starts: list[float] = []
    all_started = anyio.Event()

    @listener("due")
    async def on_due(**kwargs: Any) -> None:
        starts.append(time.time())
        if len(starts) == scheduled:
            all_started.set()

    @listener("ready")
    async def on_ready(**kwargs: Any) -> None: ...

    async with SimpleEventEmitter([on_due, on_ready]) as emitter:
        due = time.time() + 2.0
        for _ in range(scheduled):
            emitter.emit_at(due, "due")
        await anyio.sleep(max(0.0, due - time.time()))
        ready, until = 0, due + 1.0
        while time.time() < until:
            await emitter.aemit("ready")
            ready += 1
        if scheduled:
            await all_started.wait()
    return (max(starts) - due if starts else 0.0), ready


async def burst_alone(scheduled: int) -> float:
    """CPU seconds the process spends from the due time of ``scheduled`` deliveries into one
    no-op listener until the last has started, with nothing else to do: what any work
    sharing the event loop in that second must give up to them."""
    started = 0
    all_started = anyio.Event()

    @listener("due")
    async def on_due(**kwargs: Any) -> None:
        nonlocal started
        started += 1
        if started == scheduled:
            all_started.set()

    async with SimpleEventEmitter([on_due]) as emitter:
        due = time.time() + 2.0
        for _ in range(scheduled):
            emitter.emit_at(due, "due")
        await anyio.sleep(max(0.0, due - time.time()))
        before = time.process_time()
        await all_started.wait()
        return time.process_time() - before


DAEMON_LISTENERS = '''
from eventbus_cli import listener

@listener("due")
async def on_due(**kwargs):
    pass

@listener("ready")
async def on_ready(**kwargs):
    pass
'''


async def schedule_burst(sock: Path, count: int, due: float) -> None:
    """``count`` emits of ``due`` for the time ``due``, pipelined by 50 tasks."""
    when = datetime.fromtimestamp(due)
    async with AsyncClient(sock) as client:
        async def some(share: int) -> None:
            for _ in range(share):
                await client.emit_at(when, "due")

        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(some, count // 50)


def daemon_burst(sock: Path, scheduled: int) -> tuple[int, float]:
    """(ready events one client emits, one at a time, in the second after ``scheduled``
    deliveries fall due in the daemon; the longest one of those emits took, in seconds)."""
    due = time.time() + 1.0 + scheduled / 8_000  # time enough to emit them first
    if scheduled:
        anyio.run(schedule_burst, sock, scheduled, due)
    with Client(sock) as client:
        time.sleep(max(0.0, due - time.time()))
        ready, longest, until = 0, 0.0, due + 1.0
        while (began := time.time()) < until:
            client.emit("ready")
            longest = max(longest, time.time() - began)
            ready += 1
        if not client.join(60):
            raise SystemExit("the daemon did not run the burst within a minute")
    return ready, longest


def daemon_cost() -> tuple[float, float, float]:
    """The median of the paired ratios (ready emits with the burst / without), and the
    median of the longest single emit with the burst and without."""
    with tempfile.TemporaryDirectory(dir="/tmp") as root:
        process, sock = start_daemon(Path(root), DAEMON_LISTENERS)
        try:
            ratios, busy_longest, quiet_longest = [], [], []
            for _ in range(DAEMON_ROUNDS):
                busy, longest = daemon_burst(sock, BURST)
                busy_longest.append(longest)
                quiet, longest = daemon_burst(sock, 0)
                quiet_longest.append(longest)
                ratios.append(busy / quiet)
            return (statistics.median(ratios), statistics.median(busy_longest),
                    statistics.median(quiet_longest))
        finally:
            process.terminate()
            process.wait(30)


async def idle_schedules(count: int, seconds: float) -> float:
    """CPU seconds per second spent while ``count`` schedules wait."""
    @listener("report")
    def report(**kwargs: Any) -> None: ...

    async with SimpleEventEmitter([report]) as emitter:
        scheduler = Scheduler(emitter)
        scheduler.replace([cron("0 3 1 1 *", "report", name=f"s{i}") for i in range(count)])
        async with anyio.create_task_group() as group:
            group.start_soon(scheduler.run)
            await anyio.sleep(0.5)
            before = resource.getrusage(resource.RUSAGE_SELF)
            await anyio.sleep(seconds)
            after = resource.getrusage(resource.RUSAGE_SELF)
            group.cancel_scope.cancel()
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used / seconds


def main() -> None:
    busy, quiet, lates = [], [], []
    for _ in range(ROUNDS):  # in turns, so that a noisy moment falls on both
        late, ready = anyio.run(burst, BURST)
        lates.append(late)
        busy.append(ready)
        quiet.append(anyio.run(burst, 0)[1])
    late, ready_busy, ready_quiet = max(lates), statistics.median(busy), statistics.median(quiet)
    ratio = statistics.median(b / q for b, q in zip(busy, quiet, strict=True))
    print(f"{BURST:,} deliveries due in the same second: the last started {late:.3f} s after "
          f"its due time (the latest of {ROUNDS} runs)")
    print(f"ready events emitted in that second: {ready_busy:,.0f} (with nothing due: "
          f"{ready_quiet:,.0f}); paired, {100 * (ratio - 1):+.1f}%")
    alone = statistics.median(anyio.run(burst_alone, BURST) for _ in range(ROUNDS))
    print(f"the burst alone takes {alone:.3f} s of CPU ({1e6 * alone / BURST:.2f} us a delivery, "
          f"median of {ROUNDS}): a producer that keeps the one event loop busy loses that share "
          f"of the second, {100 * alone:.0f}%, however the burst is sliced")
    ratio, busy_longest, quiet_longest = daemon_cost()
    print(f"in a daemon, ready emits one at a time (Client.emit) in the second the burst falls "
          f"due: paired, {100 * (ratio - 1):+.1f}% against nothing due; the longest single "
          f"emit took {1000 * busy_longest:.1f} ms (with nothing due: "
          f"{1000 * quiet_longest:.1f} ms; medians of the runs)")
    share = anyio.run(idle_schedules, 1000, 5.0)
    print(f"1,000 idle cron schedules: {100 * share:.2f}% of a core")


if __name__ == "__main__":
    main()
