"""Emitter throughput and peak memory: eventbus's SimpleEventEmitter against Litestar's.

Run: .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/emitter.py [EVENTS]

Each case emits EVENTS events (default 100,000) carrying one positional and one keyword
argument into 1 and into 3 no-op async listeners, and counts the time until the emitter's
context has exited, that is until every delivery has run; each figure is the median of five
runs, taken in turns (theirs, ours, theirs, ...) so that a noisy moment falls on both. Ours
uses `await aemit(...)` with the default queue_size, so it never holds more than 10,000
deliveries; Litestar's queue is unbounded. Peak memory is measured in a further pass
under tracemalloc, which slows both alike.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from eventbus_cli import SimpleEventEmitter
from eventbus_cli import listener as eventbus_listener

Run = Callable[[int, int], Awaitable[int]]


async def run_eventbus(events: int, listeners: int, timings: bool = False) -> int:
    handled = 0

    def make(index: int) -> Any:
        @eventbus_listener("user_created", name=f"noop_{index}")
        async def noop(*args: Any, **kwargs: Any) -> None:
            nonlocal handled
            handled += 1

        return noop

    async with SimpleEventEmitter([make(i) for i in range(listeners)],
                                  timings=timings) as emitter:
        for number in range(events):
            await emitter.aemit("user_created", number, email="x@example.com")
    return handled


async def run_timed(events: int, listeners: int) -> int:
    """:func:`run_eventbus` keeping each attempt's times, as the daemon does for metrics."""
    return await run_eventbus(events, listeners, timings=True)


def metrics_cost(events: int, rounds: int = 9) -> tuple[float, float, float]:
    """Median events/s into 1 listener with the delivery timings that metrics need kept and
    without, in turns, and the median of the pairs' ratios (with / without).
    bench/instructions.py counts the same cost in instructions, which do not wander."""
    rate(run_timed, events, 1)  # warm both paths first
    rate(run_eventbus, events, 1)
    timed: list[float] = []
    plain: list[float] = []
    sides: list[tuple[Run, list[float]]] = [(run_timed, timed), (run_eventbus, plain)]
    for _ in range(rounds):
        for run, into in sides:
            into.append(rate(run, events, 1))
        sides.reverse()  # the other side first in the next pair: no order favours either
    ratio = statistics.median(a / b for a, b in zip(timed, plain, strict=True))
    return statistics.median(timed), statistics.median(plain), ratio


async def run_checked(events: int, check: str) -> int:
    """Like :func:`run_eventbus` with one listener, whose signature is typed, so that the
    argument check has work to do on every emit (``check`` "reject") or none ("off")."""
    handled = 0

    @eventbus_listener("user_created", check=check)
    async def typed(number: int, email: str) -> None:
        nonlocal handled
        handled += 1

    async with SimpleEventEmitter([typed]) as emitter:
        for number in range(events):
            await emitter.aemit("user_created", number, email="x@example.com")
    return handled


def check_cost(events: int, rounds: int = 9) -> tuple[float, float, float]:
    """Median events/s with the argument check on and off, run in turns, and the median of
    the pairs' ratios (on / off): pairing keeps a noisy moment from falling on one side."""
    on: list[float] = []
    off: list[float] = []
    for _ in range(rounds):
        for check, into in (("reject", on), ("off", off)):
            gc.collect()
            started = time.perf_counter()
            handled = anyio.run(run_checked, events, check)
            into.append(events / (time.perf_counter() - started))
            assert handled == events
    ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
    return statistics.median(on), statistics.median(off), ratio


async def run_litestar(events: int, listeners: int) -> int:
    from litestar.events import SimpleEventEmitter as LitestarEmitter
    from litestar.events import listener as litestar_listener

    handled = 0

    def make() -> Any:
        @litestar_listener("user_created")
        async def noop(*args: Any, **kwargs: Any) -> None:
            nonlocal handled
            handled += 1

        return noop

    async with LitestarEmitter([make() for _ in range(listeners)]) as emitter:
        for number in range(events):
            emitter.emit("user_created", number, email="x@example.com")
    return handled


def rate(run: Run, events: int, listeners: int) -> float:
    """Events per second of one run of ``run``."""
    gc.collect()
    started = time.perf_counter()
    handled = anyio.run(run, events, listeners)
    elapsed = time.perf_counter() - started
    assert handled == events * listeners, f"{handled} deliveries, not {events * listeners}"
    return events / elapsed


def peak_mib(run: Run, events: int, listeners: int) -> float:
    """Peak MiB allocated during one run of ``run``, under tracemalloc."""
    gc.collect()
    tracemalloc.start()
    anyio.run(run, events, listeners)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def paired(events: int, listeners: int, rounds: int = 5) -> tuple[float, float]:
    """Median events/s of Litestar's emitter and ours, run in turns so that a noisy moment
    of the machine falls on both alike."""
    theirs, ours = [], []
    for _ in range(rounds):
        theirs.append(rate(run_litestar, events, listeners))
        ours.append(rate(run_eventbus, events, listeners))
    return statistics.median(theirs), statistics.median(ours)


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    try:
        import litestar  # noqa: F401
    except ImportError:
        sys.exit("litestar is not installed: pip install -e '.[bench]'")
    print(f"{events:,} events, each with 1 arg and 1 kwarg, into no-op async listeners")
    print(f"{'listeners':>9}  {'emitter':<22} {'events/s':>10} {'peak MiB':>9}  ratio")
    for listeners in (1, 3):
        theirs, ours = paired(events, listeners)
        their_peak = peak_mib(run_litestar, events, listeners)
        our_peak = peak_mib(run_eventbus, events, listeners)
        print(f"{listeners:>9}  {'litestar 2.25 Simple':<22} {theirs:>10,.0f} {their_peak:>9.1f}")
        print(f"{listeners:>9}  {'eventbus Simple':<22} {ours:>10,.0f} {our_peak:>9.1f}"
              f"  {ours / theirs:.1f}x")
    on, off, ratio = check_cost(events)
    print(f"argument check, 1 listener (number: int, email: str): on {on:,.0f}/s, off "
          f"{off:,.0f}/s; paired, on is {100 * (ratio - 1):+.1f}%")
    timed, plain, ratio = metrics_cost(events)
    print(f"metrics (delivery timings kept), 1 listener: on {timed:,.0f}/s, off "
          f"{plain:,.0f}/s; paired, on is {100 * (ratio - 1):+.1f}%")
    double_peak = peak_mib(run_eventbus, 2 * events, 1)
    print(f"eventbus peak with {2 * events:,} events into 1 listener: {double_peak:.1f} MiB"
          " (bounded by queue_size, not by the number of events)")


if __name__ == "__main__":
    main()
