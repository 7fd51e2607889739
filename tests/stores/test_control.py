"""Delivery control, against every store: priorities, order keys, rates, pause and resume.

Part of the store contract suite (see ``test_contract.py``): each promise is written once
and kept by every store, or marked as a known defect of the store that does not keep it yet.
"""

from __future__ import annotations

import itertools
import random

import pytest

from eventbus_cli import AsyncClient
from eventbus_cli.errors import RemoteError
from tests.stores import probe
from tests.stores.conftest import Daemons, Store

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def _drained(client: AsyncClient) -> None:
    assert await client.join(30), "the deliveries did not finish"


def _n(run: probe.Run) -> object:
    return run.kwargs.get("n")


def _numbers(runs: list[probe.Run]) -> list[int]:
    return sorted(int(str(run.kwargs["n"])) for run in runs)


# -- priorities -----------------------------------------------------------------------------


async def test_a_high_priority_delivery_overtakes_the_backlog_of_its_lane(
        daemons: Daemons, store: Store) -> None:
    async with daemons.run(max_per_listener=1) as client:
        await client.emit("line", block=True, n="first")
        await probe.wait_runs(1, "line")
        for n in range(300):
            await client.emit("line", n=n)
        await client.emit("line", n="low", priority="low")
        await client.emit("line", n="high", priority="high")
        probe.open_gate()
        await _drained(client)
    order = [_n(run) for run in probe.of("line")]
    assert order[0] == "first"
    normal = [n for n in order if isinstance(n, int)]
    assert normal == list(range(300))  # first in, first out within a priority
    if store.shared:  # one read behind at most: what a daemon had read ahead
        assert order.index("high") <= 1 + 2 * 1 + 1, order[:8]
        return  # (a low one read with them may run before normal ones still in the store)
    assert order[1] == "high"
    assert order[-1] == "low"


async def test_priorities_are_listed_and_refused_when_unknown(daemons: Daemons) -> None:
    async with daemons.run(max_per_listener=1) as client:
        await client.emit("line", block=True, n=0)
        await probe.wait_runs(1, "line")
        await client.emit("line", n=1, priority="low", order_key="user:1")
        [waiting] = await client.deliveries("pending")
        assert (waiting.priority, waiting.order_key) == ("low", "user:1")
        with pytest.raises(RemoteError, match='"priority" must be one of high, normal, low'):
            await client.emit("line", priority="urgent")
        with pytest.raises(RemoteError, match='"order_key" must be a string of 1 to 200'):
            await client.emit("line", order_key="k" * 201)
        with pytest.raises(RemoteError, match="no tab, no newline"):
            await client.emit("line", order_key="user:1\nuser:2")
        probe.open_gate()
        await _drained(client)


# -- order keys -----------------------------------------------------------------------------


def _each_key_in_emit_order_one_at_a_time(keys: list[str], emitted: int) -> None:
    """The ``line`` runs of event ``n`` (keyed ``keys[n % 3]``): per key, in emit order, and
    never two at once."""
    for key in keys:
        starts = [run for run in probe.of("line") if run.kwargs["key"] == key]
        ends = [run for run in probe.ends if run.kwargs["key"] == key]
        assert [_n(run) for run in starts] == [n for n in range(emitted)
                                               if keys[n % 3] == key]
        for before, after in itertools.pairwise(zip(starts, ends, strict=True)):
            assert before[1].at <= after[0].at, f"two deliveries of {key} ran at once"


async def test_deliveries_of_one_order_key_run_one_at_a_time_in_emit_order(
        daemons: Daemons) -> None:
    rng = random.Random(7)
    keys = ["user:1", "user:2", "user:3"]
    async with daemons.run(max_per_listener=16, concurrency=17) as client:
        for n in range(60):
            key = keys[n % 3]
            await client.emit("line", n=n, key=key, work=rng.choice([0, 0.001, 0.005]),
                              order_key=key)
        await _drained(client)
    _each_key_in_emit_order_one_at_a_time(keys, 60)
    assert len({run.kwargs["key"] for run in probe.of("line")[:3]}) == 3  # keys in parallel


@pytest.mark.stores("redis", "postgres")
async def test_an_order_key_holds_across_the_daemons_of_a_bus(daemons: Daemons) -> None:
    rng = random.Random(11)
    keys = ["user:1", "user:2", "user:3"]
    async with daemons.run("a", max_per_listener=16, concurrency=17) as first, \
            daemons.run("b", max_per_listener=16, concurrency=17) as second:
        for n in range(90):
            key = keys[n % 3]
            await (first, second)[n % 2].emit("line", n=n, key=key, order_key=key,
                                              work=rng.choice([0, 0.002, 0.01]))
        await _drained(first)
        await _drained(second)
    _each_key_in_emit_order_one_at_a_time(keys, 90)


async def test_a_retrying_delivery_holds_its_key_until_it_succeeds(daemons: Daemons) -> None:
    async with daemons.run(max_per_listener=8) as client:
        await client.emit("line", n=1, fail=True, order_key="order:9")
        await client.emit("line", n=2, order_key="order:9")
        await client.emit("line", n=3, order_key="other")
        await _drained(client)
    attempts = [(_n(run), run.attempt) for run in probe.of("line")]
    key_runs = [attempt for attempt in attempts if attempt[0] in (1, 2)]
    assert key_runs == [(1, 1), (1, 2), (2, 1)]  # the retry first, then the next of the key


async def test_purging_the_pending_drops_those_waiting_behind_their_key(
        daemons: Daemons) -> None:
    async with daemons.run(max_per_listener=4) as client:
        await client.emit("line", n=0, block=True, order_key="user:1")
        await probe.wait_runs(1, "line")
        for n in range(1, 4):
            await client.emit("line", n=n, order_key="user:1")
        assert len(await client.deliveries("pending")) == 3
        assert await client.purge("pending") == 3
        probe.open_gate()
        await _drained(client)
        await client.emit("line", n=9, order_key="user:1")  # the key is free again
        await _drained(client)
    assert [_n(run) for run in probe.of("line")] == [0, 9]


# -- rates ----------------------------------------------------------------------------------


async def test_a_rate_spaces_a_listeners_starts_evenly(daemons: Daemons) -> None:
    async with daemons.run() as client:
        for n in range(21):
            await client.emit("paced", n=n)
        await _drained(client)
    starts = sorted(run.at for run in probe.of("paced"))
    gaps = [after - before for before, after in itertools.pairwise(starts)]
    assert 20 / 20 * 0.9 <= starts[-1] - starts[0] <= 20 / 20 * 1.5, gaps
    # Smooth: no burst at the start of a second. (Half a gap: a start the loop took late
    # may stand closer to the next one, which comes on time.)
    assert min(gaps) >= 0.05 * 0.5, gaps


@pytest.mark.stores("redis", "postgres")
async def test_a_rate_holds_bus_wide_on_a_shared_store(daemons: Daemons) -> None:
    async with daemons.run("a") as first, daemons.run("b") as second:
        for n in range(21):
            await (first if n % 2 else second).emit("paced", n=n)
        await _drained(first)
        await _drained(second)
    starts = sorted(run.at for run in probe.of("paced"))
    assert len(starts) == 21
    # Two daemons at 20/s each would be done in half a second; the bus holds them to 20/s
    # (each daemon's first start is its own: at most one more, at once).
    assert starts[-1] - starts[0] >= 19 / 20 * 0.9, starts


# -- pause and resume -----------------------------------------------------------------------


async def test_a_paused_listener_keeps_its_deliveries_waiting_until_resumed(
        daemons: Daemons) -> None:
    async with daemons.run() as client:
        state = await client.pause("contract:work")
        assert (state.paused, state.until) == (True, None)
        for n in range(3):
            await client.emit("work", n=n)
        await client.emit("fan", n=0)  # another listener runs meanwhile
        await probe.wait_runs(2)
        queue = await client.queue()
        assert queue.paused == {"contract:work": None}
        assert queue.listeners["contract:work"].paused
        assert queue.listeners["contract:work"].pending == 3
        assert probe.of("work") == []
        with pytest.raises(RemoteError, match="no listener is named 'contract:nope'") as error:
            await client.pause("contract:nope")
        assert "contract:work" in str(error.value.details["known"])
        await client.resume("contract:work")
        await _drained(client)
        assert (await client.queue()).paused == {}
    assert _numbers(probe.of("work")) == [0, 1, 2]


@pytest.mark.stores("sqlite", "redis", "postgres")
async def test_a_pause_outlives_a_restart(daemons: Daemons) -> None:
    async with daemons.run() as client:
        await client.pause("contract:work")
        await client.emit("work", n=1)
    async with daemons.run() as client:
        assert (await client.queue()).paused == {"contract:work": None}
        await client.emit("fan", n=0)
        await probe.wait_runs(2)
        assert probe.of("work") == []
        await client.resume("contract:work")
        await _drained(client)
    assert [_n(run) for run in probe.of("work")] == [1]


@pytest.mark.stores("sqlite", "redis", "postgres")
async def test_priorities_and_order_keys_outlive_a_restart(daemons: Daemons,
                                                           store: Store) -> None:
    async with daemons.run(max_per_listener=1) as client:
        await client.pause("contract:line")
        for n in range(3):
            await client.emit("line", n=n, order_key="user:1")
        await client.emit("line", n="low", priority="low")
        await client.emit("line", n="high", priority="high")
    async with daemons.run(max_per_listener=1) as client:
        kept = {d.kwargs["n"]: (d.priority, d.order_key)
                for d in await client.deliveries("pending")}
        assert kept == {0: ("normal", "user:1"), 1: ("normal", "user:1"),
                        2: ("normal", "user:1"), "low": ("low", None), "high": ("high", None)}
        await client.resume("contract:line")
        await _drained(client)
    order = [_n(run) for run in probe.of("line")]
    assert [n for n in order if isinstance(n, int)] == [0, 1, 2]
    if not store.shared:  # a shared store orders by priority what a daemon read ahead only
        assert (order[0], order[-1]) == ("high", "low")


@pytest.mark.stores("redis", "postgres")
async def test_a_pause_holds_on_every_daemon_of_the_bus(daemons: Daemons) -> None:
    async with daemons.run("a") as first, daemons.run("b") as second:
        await first.pause("contract:work")
        assert (await second.queue()).paused == {"contract:work": None}
        for n in range(4):
            await second.emit("work", n=n)
        await second.emit("fan", n=0)
        await probe.wait_runs(2)
        assert probe.of("work") == []
        await second.resume("contract:work")
        await _drained(first)
        await _drained(second)
    assert _numbers(probe.of("work")) == [0, 1, 2, 3]
