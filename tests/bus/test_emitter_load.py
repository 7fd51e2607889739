"""Emitter invariants under mixed load: every accepted delivery ends exactly once."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import anyio
import pytest

from eventbus_cli import EventListener, SimpleEventEmitter, listener
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("seed", range(8))
async def test_random_load_accounts_for_every_delivery(seed: int) -> None:
    rng = random.Random(seed)
    attempts: Counter[tuple[str, int]] = Counter()
    outcomes: dict[tuple[str, int], list[str]] = {}

    def make(index: int) -> EventListener:
        fails = rng.random() < 0.5
        retries = rng.choice([0, 1, 2])
        pattern = rng.choice(["e.a", "e.b", "e.*", "*"])
        sync = rng.random() < 0.3

        def handle(number: int, plan: list[str]) -> None:
            key = (f"l{index}", number)
            attempts[key] += 1
            outcome = plan[(index + attempts[key]) % len(plan)] if fails else "ok"
            outcomes.setdefault(key, []).append(outcome)
            if outcome == "raise":
                raise RuntimeError(f"planned failure of {key}")

        async def handle_async(number: int, plan: list[str]) -> None:
            await anyio.sleep(rng.choice([0, 0, 0.001]))
            handle(number, plan)

        fn = handle if sync else handle_async
        return listener(pattern, retries=retries, backoff=0.001, name=f"l{index}")(fn)

    listeners = [make(index) for index in range(rng.randint(1, 5))]
    expected: Counter[str] = Counter()
    async with SimpleEventEmitter(
        listeners, queue_size=rng.choice([5, 50, 1000]), concurrency=rng.choice([1, 3, 16])
    ) as emitter:
        for number in range(300):
            event = rng.choice(["e.a", "e.b", "other"])
            plan = [rng.choice(["ok", "raise"]) for _ in range(3)]
            queued = await emitter.aemit(event, number, plan=plan)
            for item in emitter.listeners_for(event):
                expected[item.name] += 1
            assert queued == len(emitter.listeners_for(event))
    stats = emitter.stats()
    assert emitter.unfinished == []
    assert (stats.pending, stats.running, stats.retrying) == (0, 0, 0)
    for item in listeners:
        counts = stats.listeners[item.name]
        assert counts.succeeded + counts.failed == expected[item.name], item.name
        assert counts.retried == sum(
            n - 1 for (name, _), n in attempts.items() if name == item.name
        )
    for (_, _), seen in outcomes.items():
        assert seen.count("ok") <= 1  # a delivery never runs again once it succeeded
    assert stats.failed == len(emitter.failed)
    by_name = {item.name: item for item in listeners}
    for failed in emitter.failed:
        assert failed.attempts == by_name[failed.listener].retries + 1
        assert outcomes[(failed.listener, failed.args[0])][-1] == "raise"


async def test_no_listener_runs_more_than_its_share_of_workers() -> None:
    running = Counter[str]()
    most = Counter[str]()
    release = anyio.Event()

    def make(name: str) -> EventListener:
        async def slow(**kwargs: Any) -> None:
            running[name] += 1
            most[name] = max(most[name], running[name])
            await release.wait()
            running[name] -= 1

        return listener("e", name=name)(slow)

    listeners = [make("a"), make("b"), make("c")]
    async with SimpleEventEmitter(listeners, concurrency=7) as emitter:
        for _ in range(20):
            emitter.emit("e")
        await wait_until(lambda: sum(running.values()) == 7)
        assert max(running.values()) <= 3  # (7 - 1) // (3 - 1)
        release.set()
    assert max(most.values()) == 3
    assert emitter.stats().succeeded == 60


async def test_max_per_listener_caps_a_single_listener_too() -> None:
    running = 0
    most = 0

    @listener("e")
    async def slow() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await anyio.sleep(0.005)
        running -= 1

    async with SimpleEventEmitter([slow], concurrency=10, max_per_listener=2) as emitter:
        for _ in range(10):
            emitter.emit("e")
    assert most == 2


async def test_a_listener_that_swallows_its_timeout_does_not_fail_the_next_delivery() -> None:
    after: list[str] = []

    @listener("stubborn", timeout=0.02)
    async def stubborn() -> None:
        try:
            await anyio.sleep(5)
        except anyio.get_cancelled_exc_class():
            pass  # a badly behaved listener: it ignores the cancellation and returns

    @listener("next")
    async def next_one() -> None:
        await anyio.sleep(0.01)
        after.append("done")

    async with SimpleEventEmitter([stubborn, next_one], concurrency=1) as emitter:
        emitter.emit("stubborn")
        emitter.emit("next")
    assert after == ["done"]
    assert emitter.stats().listeners[next_one.name].failed == 0


async def test_a_listener_that_goes_on_after_its_cancellation_is_named_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    told = anyio.Event()
    swallowed = 0

    @listener("stubborn", timeout=0.05)
    async def stubborn() -> None:
        nonlocal swallowed
        while not told.is_set():  # it goes on until the log has named it
            try:
                await anyio.sleep(1)
            except anyio.get_cancelled_exc_class():
                swallowed += 1
                if any("caught the cancellation" in r.getMessage() for r in caplog.records):
                    told.set()

    async with SimpleEventEmitter([stubborn]) as emitter:
        emitter.emit("stubborn")
        with anyio.fail_after(10):
            await told.wait()
    [record] = [r for r in caplog.records if "caught the cancellation" in r.getMessage()]
    assert record.levelname == "ERROR"
    assert stubborn.name in record.getMessage()
    assert swallowed > 0
