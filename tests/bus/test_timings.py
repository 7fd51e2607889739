"""Delivery timings, which the daemon's metrics read: counting one by one and in bulk, and
what the worker observes for attempts that succeed, fail, follow one another or follow an
idle spell."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import anyio
import pytest

from eventbus_cli import SimpleEventEmitter, listener
from eventbus_cli.bus.timings import BOUNDS, FOLD_AT, Histogram, bucket
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio


def test_a_histogram_counts_by_bucket_and_sums() -> None:
    histogram = Histogram()
    for seconds in (0.000001, 0.003, 0.003, 400.0):
        histogram.observe(seconds)
    assert histogram.count == 4
    assert histogram.counts[0] == 1
    assert histogram.counts[bucket(0.003)] == 2
    assert histogram.counts[-1] == 1
    assert histogram.sum == pytest.approx(400.006001)


def test_counting_in_bulk_is_counting_one_by_one() -> None:
    cases = [[0.003] * 5, [*BOUNDS, *BOUNDS], [math.nextafter(bound, 0.0) for bound in BOUNDS]]
    draw = random.Random(17)  # the same values every run
    cases += [[draw.lognormvariate(-9, 3) for _ in range(size)] for size in (1, 2, 100, 999)]
    for values in cases:
        one_by_one, in_bulk = Histogram(), Histogram()
        for value in values:
            one_by_one.observe(value)
        in_bulk.observe_all(list(values))
        assert in_bulk.counts == one_by_one.counts, values
        assert in_bulk.sum == pytest.approx(one_by_one.sum)


async def test_samples_are_counted_as_the_workers_go_so_they_stay_few() -> None:
    most = 0

    @listener("ran", name="quick")
    async def quick(number: int) -> None:
        nonlocal most
        assert emitter.timings is not None
        most = max(most, len(emitter.timings.of("quick").samples))

    async with SimpleEventEmitter([quick], timings=True, concurrency=4) as emitter:
        for number in range(5_000):
            await emitter.aemit("ran", number)
    assert emitter.timings is not None
    assert emitter.timings["quick"].ran.count == 5_000
    assert emitter.timings["quick"].waited.count == 5_000
    # two figures an attempt, counted once FOLD_AT have gathered by the next worker to reach
    # its hundredth delivery, which is at most 4 x 100 deliveries later
    assert 0 < most < FOLD_AT + 2 * 4 * 100


def slowest_bucket(histogram: Histogram) -> int:
    return max(index for index, count in enumerate(histogram.counts) if count)


def fastest_bucket(histogram: Histogram) -> int:
    return min(index for index, count in enumerate(histogram.counts) if count)


async def test_each_attempt_is_timed_once_whatever_its_outcome() -> None:
    @listener("ran", name="quick")
    async def quick(number: int) -> None: ...

    @listener("ran", name="threaded")
    def threaded(number: int) -> None: ...

    @listener("ran", name="slow")
    async def slow(number: int) -> None:
        await anyio.sleep(0.03)

    @listener("ran", name="broken", retries=1, backoff=0)
    async def broken(number: int) -> None:
        raise ValueError(number)

    async with SimpleEventEmitter([quick, threaded, slow, broken], timings=True) as emitter:
        for number in range(20):
            emitter.emit("ran", number)
    timings = emitter.timings
    assert timings is not None
    attempts = {name: (times.ran.count, times.waited.count) for name, times in timings.items()}
    assert attempts == {"quick": (20, 20), "threaded": (20, 20), "slow": (20, 20),
                        "broken": (40, 40)}
    assert fastest_bucket(timings["slow"].ran) >= bucket(0.03)  # slept 30 ms at the least
    assert timings["slow"].ran.sum >= 20 * 0.03
    assert slowest_bucket(timings["quick"].ran) < bucket(0.03)


async def test_an_idle_spell_before_an_attempt_is_not_its_run_time() -> None:
    handled: list[int] = []

    @listener("ran", name="quick")
    async def quick(number: int) -> None:
        handled.append(number)

    async with SimpleEventEmitter([quick], timings=True, concurrency=1) as emitter:
        emitter.emit("ran", 1)
        await wait_until(lambda: handled == [1])
        await anyio.sleep(0.3)  # the worker waits idle for the next delivery meanwhile
        emitter.emit("ran", 2)
        await wait_until(lambda: handled == [1, 2])
    assert emitter.timings is not None
    ran = emitter.timings["quick"].ran
    assert ran.count == 2
    assert slowest_bucket(ran) < bucket(0.3)
    assert ran.sum < 0.3


async def test_reads_between_deliveries_count_each_attempt_once_and_list_it_once() -> None:
    """A scrape folds what the workers have not yet counted; the listener's timings then
    stay listed once for the workers, however often it is read."""
    handled: list[int] = []

    @listener("ran", name="quick")
    async def quick(number: int) -> None:
        handled.append(number)

    def handled_at_least(count: int) -> Callable[[], bool]:
        return lambda: len(handled) >= count

    async with SimpleEventEmitter([quick], timings=True) as emitter:
        timings = emitter.timings
        assert timings is not None
        for number in range(1, 51):
            emitter.emit("ran", number)
            await wait_until(handled_at_least(number))
            assert timings["quick"].ran.count == number  # read as a scrape would
            assert len(timings.unfolded) <= 1
    assert timings["quick"].waited.count == 50
