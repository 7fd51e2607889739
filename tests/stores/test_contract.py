"""The promises eventbus makes about deliveries, each tested once, against every store.

Every test here runs once per store of :data:`tests.stores.conftest.STORES` (a test marked
``stores(...)`` only for those: durable ones for what outlives a daemon, shared ones for what
several daemons share). A store is done when this suite passes on it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
import pytest

from eventbus_cli import AsyncClient
from eventbus_cli.errors import RemoteError
from eventbus_cli.protocol.results import EmitResult
from tests.stores import probe
from tests.stores.conftest import Daemons, Store

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]



async def _drained(client: AsyncClient) -> None:
    assert await client.join(30), "the deliveries did not finish"


def _n(run: probe.Run) -> int:
    n = run.kwargs["n"]
    assert isinstance(n, int)
    return n


# -- appending ------------------------------------------------------------------------------


async def test_an_emit_that_does_not_fit_queues_none_of_its_deliveries(daemons: Daemons) -> None:
    async with daemons.run(queue_size=1) as client:
        with pytest.raises(RemoteError) as refused:
            await client.emit("fan")  # two listeners: two deliveries, room for one
        assert refused.value.code == "queue_full"
        assert await client.emit("work", n=1) == 1
        await _drained(client)
        counts = await client.queue()
    assert [run.listener for run in probe.runs] == ["work"]
    assert (counts.succeeded, counts.pending, counts.failed) == (1, 0, 0)


async def test_each_listener_gets_one_delivery_of_an_event_and_runs_it_once(
    daemons: Daemons,
) -> None:
    async with daemons.run() as client:
        for n in range(20):
            assert await client.emit("fan", n=n) == 2
        await _drained(client)
    for name in ("fan_a", "fan_b"):
        assert sorted(_n(run) for run in probe.of(name)) == list(range(20))
    ids = [run.delivery for run in probe.runs]
    assert len(ids) == len(set(ids)) == 40


# -- dedupe keys ----------------------------------------------------------------------------


async def test_a_repeated_key_queues_nothing_and_gets_the_first_answer(daemons: Daemons) -> None:
    async with daemons.run() as client:
        first = await client.submit("fan", key="order-1")
        again = await client.submit("fan", key="order-1")
        many = await client.emit_many([{"event": "fan", "key": "order-1"},
                                       {"event": "fan", "key": "order-2"}])
        twice = await client.emit_many([{"event": "work", "key": "order-3", "kwargs": {"n": 1}},
                                        {"event": "work", "key": "order-3", "kwargs": {"n": 2}}])
        await _drained(client)
        counts = await client.queue()
    assert first == EmitResult("fan", 2)
    assert again == EmitResult("fan", 2, duplicate=True)
    assert (many.accepted, many.duplicates, many.deliveries) == (2, 1, 2)
    assert (twice.accepted, twice.duplicates, twice.deliveries) == (2, 1, 1)
    assert [run.kwargs for run in probe.of("work")] == [{"n": 1}]  # the first of a batch wins
    assert len(probe.runs) == 5
    assert counts.duplicates == 3


async def _ten_send_one_key(client: AsyncClient, answers: list[EmitResult],
                            when_waiting: Callable[[], None] = lambda: None) -> None:
    """Ten clients of their own emit ``work`` with one key at once; ``when_waiting`` runs
    once all of them wait for their answers (the daemon is in-process)."""
    async def send() -> None:
        async with AsyncClient(client.socket_path) as own:
            answers.append(await own.submit("work", key="same"))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(send)
        await anyio.wait_all_tasks_blocked()
        when_waiting()


async def test_one_key_sent_by_many_clients_at_once_runs_once(daemons: Daemons) -> None:
    answers: list[EmitResult] = []
    async with daemons.run() as client:
        await _ten_send_one_key(client, answers)
        await _drained(client)
    assert sum(not answer.duplicate for answer in answers) == 1
    assert len(probe.of("work")) == 1


async def test_one_key_sent_by_many_clients_into_a_full_queue_runs_once(
    daemons: Daemons,
) -> None:
    answers: list[EmitResult] = []
    async with daemons.run(queue_size=1, concurrency=1) as client:
        await client.emit("held")
        await probe.wait_runs(1, "held")  # it runs and holds the only worker
        await client.emit("held")  # and this one fills the queue
        await _ten_send_one_key(client, answers, probe.open_gate)  # room comes as they wait
        await _drained(client)
    assert sum(not answer.duplicate for answer in answers) == 1
    assert len(probe.of("work")) == 1


async def test_a_repeat_while_the_first_emit_still_waits_is_a_duplicate(
    daemons: Daemons,
) -> None:
    first: list[EmitResult] = []
    async with daemons.run() as client, anyio.create_task_group() as group:

        async def wait_for_outcome() -> None:
            first.append(await client.submit("held", key="k", wait=30))

        group.start_soon(wait_for_outcome)
        await probe.wait_runs(1, "held")  # the first runs, and its sender waits on it
        async with AsyncClient(client.socket_path) as resend:  # as after a lost connection
            again = await resend.submit("held", key="k")
        probe.open_gate()
    assert again == EmitResult("held", 1, duplicate=True)
    assert (first[0].deliveries, first[0].duplicate) == (1, False)
    assert len(probe.of("held")) == 1


async def test_a_refused_emit_gives_its_key_back(daemons: Daemons) -> None:
    async with daemons.run(queue_size=1) as client:
        with pytest.raises(RemoteError) as refused:
            await client.submit("fan", key="k")  # never fits: refused
        assert refused.value.code == "queue_full"
        assert await client.submit("work", key="k") == EmitResult("work", 1)
        await _drained(client)
    assert len(probe.of("work")) == 1


async def test_a_key_pushed_out_by_max_dedupe_keys_is_new_again(
    daemons: Daemons, store: Store,
) -> None:
    async with daemons.run(max_dedupe_keys=2) as client:
        for key in ("a", "b", "c"):
            await client.submit("work", key=key)
        again = await client.submit("work", key="a")  # the oldest went
        kept = await client.submit("work", key="c")
        await _drained(client)
        held = await _dedupe_keys_held(store, daemons)
    assert (again.duplicate, kept.duplicate) == (False, True)
    assert len(probe.of("work")) == 4
    assert held is None or held <= 2


async def _dedupe_keys_held(store: Store, daemons: Daemons) -> int | None:
    """How many dedupe keys this test's bus holds in a shared store; None elsewhere."""
    if store.postgres is not None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(store.postgres.url()) as conn:
            cur = await conn.execute(f"SELECT count(*) FROM {daemons.schema}.dedupe")
            row = await cur.fetchone()
            return None if row is None else int(row[0])
    if store.server is None:
        return None
    import redis.asyncio

    prefix = daemons.prefix
    async with redis.asyncio.Redis(unix_socket_path=str(store.server.socket)) as server:
        return len([key async for key in server.scan_iter(match=prefix + ":key:*")])


async def _fired_before(store: Store, daemons: Daemons, name: str, when: float) -> None:
    """Keep in the shared store, before any daemon starts, that ``name`` fired at ``when``."""
    if store.server is not None:
        import redis.asyncio

        async with redis.asyncio.Redis(unix_socket_path=str(store.server.socket)) as server:
            await server.hset(f"{daemons.prefix}:fires", name, repr(when))
        return
    from eventbus_cli.stores.postgres import open_link

    backend = daemons.config("setup", {}, {}).backend
    assert backend is not None
    link = await open_link(backend, "setup")  # makes the bus's tables, as a daemon would
    try:
        await link.send([], set(), [], [], [], {name: when}, "0", 0)
    finally:
        await link.close()


# -- delivery ids ---------------------------------------------------------------------------


async def _five_runs(daemons: Daemons) -> set[int]:
    """Start a daemon, run five deliveries on it, stop it; the ids of those five."""
    before = {run.delivery for run in probe.runs}
    async with daemons.run() as client:
        for _ in range(5):
            await client.emit("work")
        await _drained(client)
    return {run.delivery for run in probe.runs} - before


@pytest.mark.stores("sqlite", "redis", "postgres")
async def test_ids_are_never_handed_out_again_after_a_restart(daemons: Daemons) -> None:
    first = await _five_runs(daemons)
    second = await _five_runs(daemons)
    assert len(second) == 5
    assert min(second) > max(first)


# -- the failed list ------------------------------------------------------------------------


async def test_a_failure_is_kept_shown_retried_and_purged(daemons: Daemons) -> None:
    async with daemons.run() as client:
        await client.emit("broken", n=1)
        await _drained(client)
        [failed] = await client.deliveries("failed")
        assert (failed.event, failed.listener) == ("broken", "contract:broken")
        assert "broken on purpose" in (failed.error or "")
        shown = await client.delivery(failed.id)
        assert "ValueError: broken on purpose" in (shown.traceback or "")
        assert shown.kwargs == {"n": 1}
        probe.fixed = True
        assert await client.retry([failed.id]) == [failed.id]
        await _drained(client)
        assert await client.deliveries("failed") == []
        probe.fixed = False
        await client.emit("broken", n=2)
        await client.emit("broken", n=3)
        await _drained(client)
        assert (await client.queue()).failed_list == 2
        assert await client.purge("failed") == 2
        assert await client.deliveries("failed") == []
        with pytest.raises(RemoteError) as missing:
            await client.retry([failed.id])
        assert missing.value.code == "not_found"
    assert [run.kwargs["n"] for run in probe.of("broken")] == [1, 1, 2, 3]


async def test_the_failed_list_pages_filters_and_retries_what_matches(
        daemons: Daemons) -> None:
    async with daemons.run() as client:
        for n in range(5):
            await client.emit("broken", n=n)
        await _drained(client)
        newest = await client.deliveries("failed", limit=2)
        assert [d.kwargs["n"] for d in newest] == [4, 3]
        rest = await client.deliveries("failed", before=newest[-1].id)
        assert [d.kwargs["n"] for d in rest] == [2, 1, 0]
        assert len(await client.deliveries("failed", listener="contract:broken")) == 5
        assert await client.deliveries("failed", listener="contract:work") == []
        assert len(await client.deliveries("failed", event="bro*", text="ON PURPOSE")) == 5
        assert await client.deliveries("failed", text="no such error") == []
        assert await client.retry(text="no such error") == []
        probe.fixed = True
        retried = await client.retry(listener="contract:broken", event="broken")
        assert sorted(retried) == sorted(d.id for d in newest + rest)
        await _drained(client)
        assert await client.deliveries("failed") == []
        with pytest.raises(RemoteError, match="go with"):
            await client.retry([1], text="x")
    assert sorted(_n(run) for run in probe.of("broken")) == sorted([*range(5)] * 2)


# -- due work -------------------------------------------------------------------------------


async def test_a_retry_waits_out_its_backoff(daemons: Daemons) -> None:
    async with daemons.run() as client:
        await client.emit("flaky")
        await probe.wait_runs(2, "flaky")
        await _drained(client)
        counts = await client.queue()
    first, second = probe.of("flaky")
    assert (first.delivery, first.attempt, second.attempt) == (second.delivery, 1, 2)
    assert second.at - first.at >= 0.3 - 0.02  # the listener's backoff (clock granularity)
    assert (counts.succeeded, counts.failed) == (1, 0)


async def test_a_delayed_emit_runs_when_due_and_not_before(daemons: Daemons) -> None:
    async with daemons.run() as client:
        answer = await client.submit("work", delay=0.5)
        sent = anyio.current_time()
        assert answer.deliveries == 1
        assert answer.due is not None
        counts = await client.queue()
        assert counts.scheduled == 1
        await probe.wait_runs(1, "work")
        waited = anyio.current_time() - sent
    assert waited >= 0.5 - 0.1  # the answer came after the due time was set
    assert len(probe.runs) == 1


async def test_scheduled_deliveries_are_bounded_by_max_scheduled(daemons: Daemons) -> None:
    # What the daemon answered is checked once it stopped: a test that fails inside the
    # daemon's task group leaves asyncio a task whose error nobody retrieves.
    refused: RemoteError | None = None
    async with daemons.run(max_scheduled=2) as client:
        for _ in range(2):
            await client.submit("work", delay=60)
        try:
            await client.submit("work", delay=60)
        except RemoteError as exc:
            refused = exc
        scheduled = (await client.queue()).scheduled
        purged = await client.purge("scheduled")
        left = (await client.queue()).scheduled
    assert refused is not None
    assert refused.code == "queue_full"
    assert (scheduled, purged, left) == (2, 2, 0)


# -- counters -------------------------------------------------------------------------------


async def test_the_counters_count_each_outcome_once(daemons: Daemons) -> None:
    async with daemons.run() as client:
        for n in range(3):
            await client.emit("work", n=n)
        await client.emit("broken")
        await client.emit("nobody.listens")
        await client.submit("work", key="k")
        await client.submit("work", key="k")
        await _drained(client)
        counts = await client.queue()
    names = ("succeeded", "failed", "unrouted", "duplicates", "pending", "running", "retrying",
             "failed_list")
    assert {name: getattr(counts, name) for name in names} == {
        "succeeded": 4, "failed": 1, "unrouted": 1, "duplicates": 1, "pending": 0, "running": 0,
        "retrying": 0, "failed_list": 1}
    assert counts.listeners["contract:work"].succeeded == 4


# -- several daemons on one store -----------------------------------------------------------


@pytest.mark.stores("redis", "postgres")
async def test_a_schedule_fires_once_per_due_time_across_daemons(daemons: Daemons) -> None:
    tick = {"schedule": [{"name": "tick", "event": "work", "every": "1s",
                          "kwargs": {"tick": True}}]}
    daemons.extra = tick
    async with daemons.run("a") as first, daemons.run("b"):
        await probe.wait_runs(3, "work")
        await _drained(first)
    times = sorted(run.at for run in probe.of("work"))
    assert all(later - earlier > 0.5 for earlier, later in itertools.pairwise(times))


@pytest.mark.stores("redis", "postgres")
async def test_a_fire_missed_while_every_daemon_was_down_is_caught_up_once(
    daemons: Daemons, store: Store,
) -> None:
    daemons.extra = {"schedule": [{"name": "hourly", "event": "work", "every": "1h"}]}
    await _fired_before(store, daemons, "hourly", time.time() - 3 * 3600)
    async with daemons.run("a") as first, daemons.run("b") as second:
        await probe.wait_runs(1, "work")

        async def outcome_of(client: AsyncClient) -> str | None:
            """Its outcome once it fired, or None once its next fire is to come: the regular
            one, past the missed one (it may be due within the minute, near the hour)."""
            with anyio.fail_after(10):
                while True:
                    [info] = await client.schedules()
                    regular = datetime.fromisoformat(info.next or "") > datetime.now(UTC)
                    if info.outcome is not None or regular:
                        return info.outcome
                    await anyio.sleep(0.02)

        outcomes = {await outcome_of(first), await outcome_of(second)}
        await _drained(first)
    assert len(probe.of("work")) == 1
    assert outcomes in ({"emitted: 1 delivery queued", "fired by another daemon"},
                        {"emitted: 1 delivery queued", None})  # b saw a's fire, or lost the race


@pytest.mark.stores("redis", "postgres")
async def test_each_delivery_runs_once_on_a_bus_of_two_daemons(daemons: Daemons) -> None:
    async with daemons.run("a") as first, daemons.run("b") as second:
        for n in range(50):
            await (first if n % 2 else second).emit("fan", n=n)
        await _drained(first)
    ids = [run.delivery for run in probe.runs]
    assert len(ids) == len(set(ids)) == 100


@pytest.mark.stores("redis", "postgres")
async def test_a_key_taken_on_one_daemon_is_a_duplicate_on_another(daemons: Daemons) -> None:
    async with daemons.run("a") as first, daemons.run("b") as second:
        answer = await first.submit("fan", key="k")
        again = await second.submit("fan", key="k", wait=10)
        many = await second.emit_many([{"event": "fan", "key": "k"},
                                       {"event": "fan", "key": "j"}])
        later = await first.submit("work", key="w", delay=0.2)
        later_again = await second.submit("work", key="w", delay=0.2)
        await probe.wait_runs(5)
        await _drained(first)
        counts = await first.queue()
    assert answer == EmitResult("fan", 2)
    assert again == EmitResult("fan", 2, duplicate=True)
    assert (many.accepted, many.duplicates, many.deliveries) == (2, 1, 2)
    assert later_again == EmitResult("work", 1, due=later.due, duplicate=True)
    assert len(probe.runs) == 5
    assert counts.duplicates == 3


@pytest.mark.stores("redis")
async def test_ids_are_never_handed_out_again_after_the_store_comes_back_empty(
    daemons: Daemons, store: Store,
) -> None:
    import redis.asyncio

    first = await _five_runs(daemons)
    assert store.server is not None
    async with redis.asyncio.Redis(unix_socket_path=str(store.server.socket)) as server:
        await server.flushall()
    second = await _five_runs(daemons)
    assert len(second) == 5
    assert min(second) > max(first)


async def _publish_on_the_bus_channel(store: Store, daemons: Daemons, text: str) -> None:
    """Send ``text`` where the daemons of a shared store hear each other's records, as any
    other client of the server can."""
    if store.server is not None:
        import redis.asyncio

        async with redis.asyncio.Redis(unix_socket_path=str(store.server.socket)) as server:
            await server.publish(f"{daemons.prefix}:tail", text.encode())
        return
    import psycopg

    assert store.postgres is not None
    async with await psycopg.AsyncConnection.connect(store.postgres.url(),
                                                     autocommit=True) as conn:
        await conn.execute("SELECT pg_notify(%s, %s)", (f"eventbus.{daemons.schema}",
                                                        "R" + text))


@pytest.mark.stores("redis", "postgres")
async def test_a_foreign_record_on_the_bus_channel_is_dropped_and_views_go_on(
    daemons: Daemons, store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    async with daemons.run("a") as first, daemons.run("b") as second, \
            AsyncClient(daemons.root / "b.sock") as watcher:
        records = await watcher.subscribe()
        relayed = None
        with anyio.fail_after(20):
            while relayed is None:  # until b hears a's records (it asks for them at once)
                await _publish_on_the_bus_channel(store, daemons, "not a record")
                await first.emit("fan")
                with anyio.move_on_after(0.5):
                    async for record in records:
                        if record.get("daemon") == "a":
                            relayed = record
                            break
        assert (await second.status()).health.healthy
    assert "dropped a record on the bus's channel that is not eventbus's" in caplog.text
