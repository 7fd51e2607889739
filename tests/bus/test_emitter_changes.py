"""The emitter's failed list, retry, purge and listener swap, in-process on both backends."""

from __future__ import annotations

import gc
import weakref

import anyio
import pytest

from eventbus_cli import EventListener, SimpleEventEmitter, listener
from eventbus_cli.bus.delivery import DeliveryState
from eventbus_cli.errors import DeliveryError, ListenerError, QueueFullError
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio


def _recording(name: str, seen: list[tuple[str, int]], *, pause: float = 0.0,
               fail: bool = False) -> EventListener:
    async def call(n: int) -> None:
        await anyio.sleep(pause)
        if fail:
            raise RuntimeError(f"{name} fails")
        seen.append((name, n))

    return listener("job", name="job")(call) if name.startswith("job") else listener(
        name, name=name)(call)


async def test_retry_requeues_failed_deliveries_on_the_listener_of_that_name_now() -> None:
    seen: list[tuple[str, int]] = []
    async with SimpleEventEmitter([_recording("job-v1", seen, fail=True)]) as emitter:
        emitter.emit("job", 1)
        emitter.emit("job", 2)
        await wait_until(lambda: len(emitter.failed) == 2)
        with pytest.raises(DeliveryError, match="no such delivery"):
            await emitter.retry([99])
        emitter.replace_listeners([_recording("job-v2", seen)])
        one = next(d for d in emitter.failed if d.args == (1,))  # trio runs tasks in any order
        [first] = await emitter.retry([one.id])
        assert (first.attempts, first.state) == (0, DeliveryState.PENDING)
        await wait_until(lambda: seen == [("job-v2", 1)])
        assert len(await emitter.retry()) == 1
        await wait_until(lambda: sorted(seen) == [("job-v2", 1), ("job-v2", 2)])
        assert emitter.failed == []
        assert emitter.stats().listeners["job"].failed == 2  # counters survive the swap


async def test_retry_refuses_what_is_not_failed_and_a_full_queue_and_changes_nothing() -> None:
    seen: list[tuple[str, int]] = []
    emitter = SimpleEventEmitter([_recording("bad", seen, fail=True),
                                  _recording("slow", seen, pause=30)], queue_size=2,
                                 shutdown_timeout=0)
    async with emitter:
        for n in range(1, 4):
            emitter.emit("bad", n)
            await wait_until(lambda: len(emitter.failed) == n)  # noqa: B023 - awaited at once
        emitter.emit("slow", 9)
        await wait_until(lambda: emitter.stats().running == 1)
        running = next(emitter.deliveries(DeliveryState.RUNNING))
        with pytest.raises(DeliveryError, match="is running, not failed"):
            await emitter.retry([emitter.failed[0].id, running.id])
        with pytest.raises(QueueFullError):
            await emitter.retry()
        assert len(emitter.failed) == 3
        assert await emitter.purge(DeliveryState.FAILED) == 3
        assert emitter.failed == []


async def test_purge_pending_drops_what_waits_and_the_drain_does_not_wait_for_it() -> None:
    seen: list[tuple[str, int]] = []
    emitter = SimpleEventEmitter([_recording("slow", seen, pause=0.2)], concurrency=1)
    async with emitter:
        for n in range(5):
            emitter.emit("slow", n)
        await wait_until(lambda: emitter.stats().running == 1)
        assert await emitter.purge(DeliveryState.PENDING) == 4
        assert emitter.stats().pending == 0
    assert seen == [("slow", 0)]
    assert emitter.unfinished == []


async def test_a_swap_moves_waiting_deliveries_to_the_new_code_and_fails_a_removed_ones() -> None:
    seen: list[tuple[str, int]] = []
    emitter = SimpleEventEmitter([_recording("job-v1", seen, pause=0.1),
                                  _recording("other", seen)], concurrency=1)
    async with emitter:
        emitter.emit("job", 1)
        await wait_until(lambda: emitter.stats().running == 1)
        emitter.emit("job", 2)
        emitter.emit("other", 3)
        changes = emitter.replace_listeners([_recording("job-v2", seen)])
        assert (changes.added, changes.removed, changes.kept, changes.failed) == (
            (), ("other",), ("job",), 1)
        await wait_until(lambda: len(seen) == 2)
        assert seen == [("job-v1", 1), ("job-v2", 2)]  # the running call kept its code
        [failed] = emitter.failed
        assert failed.error is not None
        assert "listener other was removed by a reload" in failed.error
        assert emitter.listeners_for("other") == ()


async def test_a_swap_that_fails_changes_nothing() -> None:
    seen: list[tuple[str, int]] = []
    emitter = SimpleEventEmitter([_recording("job-v1", seen)])
    async with emitter:
        before = emitter.listeners
        with pytest.raises(ListenerError, match="two listeners have this name"):
            emitter.replace_listeners([_recording("job-a", seen), _recording("job-b", seen)])
        assert emitter.listeners == before
        emitter.emit("job", 1)
        await wait_until(lambda: seen == [("job-v1", 1)])


async def test_an_idle_worker_keeps_no_listener_of_a_set_replaced_by_a_reload() -> None:
    class Module:
        """Stands for a listener module's state, which a reload should let go."""

    def make(state: Module) -> EventListener:
        async def job(n: int) -> None:
            assert state is not None

        return listener("job", name="job")(job)

    state = Module()
    kept = weakref.ref(state)
    async with SimpleEventEmitter([make(state)], concurrency=4) as emitter:
        emitter.emit("job", 1)
        await emitter.join()
        emitter.replace_listeners([make(Module())])
        del state
        gc.collect()
        assert kept() is None  # no worker holds the old listener
        emitter.emit("job", 2)
        await emitter.join()
    assert emitter.stats().listeners["job"].succeeded == 2
