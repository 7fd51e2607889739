"""Delayed emits in-process: emit_in and emit_at on SimpleEventEmitter."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import anyio
import pytest

from eventbus_cli import SimpleEventEmitter, listener
from eventbus_cli.bus.delivery import DeliveryState
from eventbus_cli.errors import BadArgumentsError, QueueFullError
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio


async def test_emit_in_waits_then_runs_and_emit_at_a_past_time_runs_now() -> None:
    ran: list[tuple[str, float]] = []
    done = anyio.Event()

    @listener("reminder")
    async def remind(text: str) -> None:
        ran.append((text, time.time()))
        if len(ran) == 2:
            done.set()

    async with SimpleEventEmitter([remind]) as emitter:
        start = time.time()
        assert emitter.emit_in(0.2, "reminder", text="later") == 1
        assert emitter.emit_at(datetime.now() - timedelta(seconds=5), "reminder",
                               text="now") == 1
        [scheduled] = list(emitter.broker.deliveries(DeliveryState.SCHEDULED))
        assert scheduled.due_at is not None
        assert emitter.stats().scheduled == 1
        with anyio.fail_after(10):
            await done.wait()
    assert [text for text, _ in ran] == ["now", "later"]
    assert ran[1][1] >= start + 0.2


async def test_scheduling_checks_arguments_and_bounds_at_emit() -> None:
    @listener("reminder")
    async def remind(text: str) -> None: ...

    async with SimpleEventEmitter([remind]) as emitter:
        with pytest.raises(BadArgumentsError):
            emitter.emit_in(60, "reminder", nope=1)
        with pytest.raises(ValueError, match="seconds must be"):
            emitter.emit_in(-1, "reminder", text="x")
        emitter.broker.lanes.max_scheduled = 1
        emitter.emit_in(60, "reminder", text="x")
        with pytest.raises(QueueFullError, match="max_scheduled"):
            emitter.emit_in(60, "reminder", text="y")
        assert await emitter.broker.purge(DeliveryState.SCHEDULED) == 1


async def test_a_burst_come_due_does_not_take_the_room_of_ready_emits() -> None:
    """Scheduled deliveries that come due wait beside queue_size, not inside it: 50 due at
    once for a listener that is stuck leave a queue of 10 free for ready work."""
    gate, started, ready = anyio.Event(), anyio.Event(), anyio.Event()
    ran = 0

    @listener("due")
    async def slow() -> None:
        nonlocal ran
        started.set()
        await gate.wait()
        ran += 1

    @listener("ready")
    async def quick() -> None:
        ready.set()

    async with SimpleEventEmitter([slow, quick], queue_size=10, concurrency=3) as emitter:
        at = time.time() + 0.05  # one due time for all: on a loaded machine a loop of
        for _ in range(50):      # emit_in calls would spread theirs over several releases
            emitter.emit_at(at, "due")
        with anyio.fail_after(10):
            await started.wait()
        assert emitter.stats().pending >= 40  # all came due; at most two are running
        for _ in range(10):
            emitter.emit("ready")  # would raise QueueFullError if the due ones took the room
        with anyio.fail_after(10):
            await ready.wait()
        emitter.broker.lanes.max_scheduled = 40  # yet the 48 not started still count against it
        with pytest.raises(QueueFullError, match="max_scheduled"):
            emitter.emit_in(60, "due")
        gate.set()
    assert ran == 50


async def test_purging_deliveries_that_came_due_gives_back_their_room() -> None:
    """Deliveries that came due and were purged before they started no longer count against
    max_scheduled, nor stand apart from queue_size: the bounds are as if they never were."""
    gate, started = anyio.Event(), anyio.Event()

    @listener("due")
    async def stuck() -> None:
        started.set()
        await gate.wait()

    async with SimpleEventEmitter([stuck], queue_size=10, concurrency=1,
                                  shutdown_timeout=1) as emitter:
        for _ in range(20):
            emitter.emit_in(0.05, "due")
        with anyio.fail_after(10):
            await started.wait()
        await wait_until(lambda: emitter.stats().scheduled == 0)  # all 20 came due
        emitter.broker.lanes.max_scheduled = 19
        with pytest.raises(QueueFullError, match="max_scheduled"):
            emitter.emit_in(60, "due")  # the 19 not started still hold all of it
        assert await emitter.broker.purge(DeliveryState.PENDING) == 19
        for _ in range(19):
            emitter.emit_in(60, "due")  # room again for 19
        with pytest.raises(QueueFullError, match="max_scheduled"):
            emitter.emit_in(60, "due")
        assert await emitter.broker.purge(DeliveryState.SCHEDULED) == 19
        for _ in range(10):
            emitter.emit("due")  # the ready bound is whole again: the purged took none of it
        with pytest.raises(QueueFullError, match="queue_size"):
            emitter.emit("due")
        gate.set()
