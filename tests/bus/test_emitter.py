"""SimpleEventEmitter: Litestar's own event tests on this API, then what Litestar lacks."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from typing import Any

import anyio
import pytest

from eventbus_cli import (
    BaseEventEmitterBackend,
    DeliveryState,
    EmitterNotRunningError,
    EventListener,
    InvalidEventIdError,
    ListenerError,
    QueueFullError,
    SimpleEventEmitter,
    listener,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio
Calls = list[tuple[str, tuple[Any, ...], dict[str, Any]]]


# -- Litestar's event tests, re-expressed ----------------------------------------------------


async def test_args_and_kwargs_arrive_exactly_async_and_sync() -> None:
    calls: Calls = []

    @listener("test_event")
    async def async_listener(*args: Any, **kwargs: Any) -> None:
        calls.append(("async", args, kwargs))

    @listener("test_event")
    def sync_listener(*args: Any, **kwargs: Any) -> None:
        calls.append(("sync", args, kwargs))

    async with SimpleEventEmitter([async_listener, sync_listener]) as emitter:
        assert emitter.emit("test_event", "positional", 2, {"x": [1]}, key="value", n=None) == 2
    expected = (("positional", 2, {"x": [1]}), {"key": "value", "n": None})
    assert sorted(calls) == [("async", *expected), ("sync", *expected)]


async def test_all_of_100_emits_are_handled_when_the_context_exits() -> None:
    handled: list[int] = []

    @listener("test_event")
    async def slowish(number: int) -> None:
        await anyio.sleep(0.001)
        handled.append(number)

    async with SimpleEventEmitter([slowish]) as emitter:
        for number in range(100):
            emitter.emit("test_event", number)
    assert sorted(handled) == list(range(100))


async def test_two_listeners_on_one_id_both_run() -> None:
    seen: list[str] = []

    @listener("test_event")
    async def first(value: str) -> None:
        seen.append("first:" + value)

    @listener("test_event")
    async def second(value: str) -> None:
        seen.append("second:" + value)

    async with SimpleEventEmitter([first, second]) as emitter:
        emitter.emit("test_event", "x")
    assert sorted(seen) == ["first:x", "second:x"]


async def test_one_listener_on_two_ids_runs_for_each() -> None:
    seen: list[str] = []

    @listener("test_event_1", "test_event_2")
    async def both(value: str) -> None:
        seen.append(value)

    async with SimpleEventEmitter([both]) as emitter:
        emitter.emit("test_event_1", "one")
        emitter.emit("test_event_2", "two")
    assert sorted(seen) == ["one", "two"]


async def test_emit_before_start_and_after_exit_is_refused() -> None:
    @listener("test_event")
    async def noop() -> None:
        pass

    emitter = SimpleEventEmitter([noop])
    with pytest.raises(EmitterNotRunningError, match="not started"):
        emitter.emit("test_event")
    async with emitter:
        emitter.emit("test_event")
    with pytest.raises(EmitterNotRunningError, match="closed"):
        emitter.emit("test_event")
    with pytest.raises(EmitterNotRunningError, match="closed"):
        await emitter.aemit("test_event")


@pytest.mark.parametrize("sync", [False, True])
async def test_a_raising_listener_leaves_others_and_later_events_working(sync: bool) -> None:
    seen: list[int] = []

    def explode(number: int) -> None:
        raise RuntimeError(f"boom {number}")

    async def explode_async(number: int) -> None:
        explode(number)

    raising = listener("test_event")(explode if sync else explode_async)

    @listener("test_event")
    async def healthy(number: int) -> None:
        seen.append(number)

    async with SimpleEventEmitter([raising, healthy]) as emitter:
        for number in range(5):
            emitter.emit("test_event", number)
    assert sorted(seen) == [0, 1, 2, 3, 4]
    stats = emitter.stats()
    assert (stats.succeeded, stats.failed) == (5, 5)
    assert stats.listeners[raising.name].failed == 5
    assert sorted(d.error or "" for d in emitter.failed)[0] == "RuntimeError: boom 0"


# -- beyond Litestar ---------------------------------------------------------------------------


async def test_base_backend_is_abstract_and_a_custom_backend_can_build_on_it() -> None:
    with pytest.raises(TypeError):
        BaseEventEmitterBackend([])  # type: ignore[abstract]
    assert issubclass(SimpleEventEmitter, BaseEventEmitterBackend)

    class RecordingBackend(BaseEventEmitterBackend):
        def __init__(self, listeners: list[EventListener]) -> None:
            super().__init__(listeners)
            self.sent: list[tuple[str, str]] = []

        async def __aexit__(self, *exc_info: object) -> None:
            return None

        def emit(self, event_id: str, *args: Any, **kwargs: Any) -> int:
            targets = self.listeners_for(event_id)
            self.sent += [(event_id, target.name.rpartition(".")[2]) for target in targets]
            return len(targets)

    @listener("user_*")
    async def users() -> None:
        pass

    @listener("user_created")
    async def welcome() -> None:
        pass

    async with RecordingBackend([users, welcome, users]) as backend:
        assert backend.listeners == (users, welcome)
        assert backend.emit("user_created") == 2
        assert backend.emit("user_deleted") == 1
        with pytest.raises(InvalidEventIdError):
            backend.emit("not valid")
    assert backend.sent == [
        ("user_created", "users"), ("user_created", "welcome"), ("user_deleted", "users")
    ]


async def test_unrouted_events_are_accepted_and_counted() -> None:
    @listener("user_created")
    async def noop(**kwargs: Any) -> None:
        pass

    async with SimpleEventEmitter([noop]) as emitter:
        assert emitter.emit("user_renamed", email="x") == 0
        assert await emitter.aemit("user_renamed") == 0
        assert emitter.stats().unrouted == 2


async def test_bad_event_ids_are_refused_at_emit() -> None:
    async with SimpleEventEmitter([]) as emitter:
        with pytest.raises(InvalidEventIdError):
            emitter.emit("user created")
        with pytest.raises(InvalidEventIdError):
            emitter.emit("user_*")


async def test_glob_listeners_receive_matching_events() -> None:
    seen: list[tuple[str, str]] = []

    @listener("user_*")
    async def users(event: str) -> None:
        seen.append(("users", event))

    @listener("*")
    async def audit(event: str) -> None:
        seen.append(("audit", event))

    async with SimpleEventEmitter([users, audit]) as emitter:
        assert emitter.emit("user_created", "user_created") == 2
        assert emitter.emit("order.paid", "order.paid") == 1
        assert emitter.listeners_for("user_deleted") == (users, audit)
    assert sorted(seen) == [
        ("audit", "order.paid"), ("audit", "user_created"), ("users", "user_created")
    ]


async def test_with_the_check_off_a_kwargs_mismatch_fails_only_that_listener_unretried(
) -> None:
    """The seed's scenario, with check="off": every listener of user_deleted receives every
    keyword, and the one that cannot take them fails when it runs."""
    farewells: list[str] = []
    support: list[str] = []

    @listener("user_deleted")
    async def send_farewell_email_handler(email: str, **kwargs: Any) -> None:
        farewells.append(email)

    @listener("user_deleted")
    async def notify_customer_support(reason: str, **kwargs: Any) -> None:
        support.append(reason)

    @listener("user_deleted", retries=3, backoff=0, check="off")
    async def strict_farewell(email: str) -> None:  # no **kwargs: `reason` does not fit
        farewells.append("never")

    listeners = [send_farewell_email_handler, notify_customer_support, strict_farewell]
    async with SimpleEventEmitter(listeners) as emitter:
        emitter.emit("user_deleted", email="ada@example.com", reason="moved away")
    assert farewells == ["ada@example.com"]
    assert support == ["moved away"]
    [failed] = emitter.failed
    assert failed.listener == strict_farewell.name
    assert failed.attempts == 1  # the same arguments would fail the same way
    assert failed.error is not None
    assert "does not accept the arguments of event 'user_deleted'" in failed.error
    assert "unexpected keyword argument 'reason'" in failed.error
    shown = failed.to_dict()
    times = {key: shown.pop(key) for key in ("created", "last_attempt", "failed")}
    assert shown.pop("due") is None
    assert shown == {
        "id": failed.id,
        "event": "user_deleted",
        "listener": strict_farewell.name,
        "state": "failed",
        "attempts": 1,
        "error": failed.error,
        "args": [],
        "kwargs": {"email": "ada@example.com", "reason": "moved away"},
        "priority": "normal",
        "order_key": None,
    }
    # ISO 8601 in UTC, in the order they happened
    assert all(value.endswith("Z") for value in times.values())
    assert times["created"] <= times["last_attempt"] <= times["failed"]


async def test_failures_are_logged_with_listener_module_event_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @listener("invoice.paid")
    def book(amount: int) -> None:
        raise ValueError(f"cannot book {amount}")

    with caplog.at_level(logging.ERROR, logger="eventbus"):
        async with SimpleEventEmitter([book]) as emitter:
            emitter.emit("invoice.paid", 12)
    text = caplog.text
    assert f"listener {book.name} on event 'invoice.paid'" in text
    assert book.name == (f"{__name__}:"
                         "test_failures_are_logged_with_listener_module_event_and_traceback.book")
    assert "ValueError: cannot book 12" in text
    assert "Traceback (most recent call last)" in text
    assert 'raise ValueError(f"cannot book {amount}")' in text
    [failed] = emitter.failed
    assert failed.traceback is not None
    assert "test_emitter.py" in failed.traceback
    assert "anyio" not in failed.traceback  # our own frames and anyio's are left out


async def test_sync_listeners_run_in_worker_threads() -> None:
    threads: list[int] = []

    @listener("e")
    def blocking() -> None:
        threads.append(threading.get_ident())

    async with SimpleEventEmitter([blocking]) as emitter:
        emitter.emit("e")
    assert threads
    assert threads[0] != threading.get_ident()


async def test_system_exit_in_a_listener_does_not_stop_the_emitter() -> None:
    seen: list[int] = []

    @listener("e")
    def leave(number: int) -> None:
        raise SystemExit(3)

    @listener("e")
    async def stay(number: int) -> None:
        seen.append(number)

    async with SimpleEventEmitter([leave, stay]) as emitter:
        emitter.emit("e", 1)
        emitter.emit("e", 2)
    assert seen == [1, 2]
    assert emitter.stats().failed == 2


class Custom(BaseException):
    """A BaseException of a listener's own."""


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize("raised", [asyncio.CancelledError, KeyboardInterrupt, GeneratorExit,
                                    Custom, SystemExit])
async def test_whatever_a_listener_raises_fails_that_delivery_only(
    raised: type[BaseException], sync: bool
) -> None:
    seen: list[int] = []
    calls: list[int] = []

    def raise_it(number: int) -> None:
        calls.append(number)
        raise raised("from the listener")

    async def raise_it_async(number: int) -> None:
        raise_it(number)

    bad = listener("e", retries=1, backoff=0, name="bad")(raise_it if sync else raise_it_async)

    @listener("e")
    async def good(number: int) -> None:
        seen.append(number)

    async with SimpleEventEmitter([bad, good]) as emitter:
        for number in range(5):
            emitter.emit("e", number)
    assert sorted(seen) == list(range(5))
    assert sorted(calls) == sorted(list(range(5)) * 2)  # retried once, as its options say
    assert len(emitter.failed) == 5
    assert all(raised.__name__ in str(d.error) for d in emitter.failed)
    assert emitter.unfinished == []


async def test_retries_with_exponential_backoff_then_success() -> None:
    attempts: list[float] = []

    @listener("e", retries=3, backoff=0.05)
    async def flaky() -> None:
        attempts.append(anyio.current_time())
        if len(attempts) < 3:
            raise ConnectionError("try again")

    async with SimpleEventEmitter([flaky]) as emitter:
        emitter.emit("e")
    assert len(attempts) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.1  # doubled
    stats = emitter.stats().listeners[flaky.name]
    assert (stats.succeeded, stats.failed, stats.retried) == (1, 0, 2)
    assert emitter.failed == []


async def test_retries_exhausted_keep_the_delivery_in_the_failed_list() -> None:
    @listener("e", retries=2, backoff=0)
    async def always_fails(value: int, key: str) -> None:
        raise RuntimeError("down")

    async with SimpleEventEmitter([always_fails]) as emitter:
        emitter.emit("e", 7, key="k")
    [failed] = emitter.failed
    assert (failed.attempts, failed.state, failed.args, failed.kwargs) == (
        3, DeliveryState.FAILED, (7,), {"key": "k"}
    )
    assert failed.error == "RuntimeError: down"


async def test_emitter_defaults_apply_to_listeners_that_set_no_options() -> None:
    from eventbus_cli import DeliveryOptions

    calls: list[str] = []

    @listener("e")
    async def uses_defaults() -> None:
        calls.append("default")
        raise RuntimeError("x")

    @listener("e", retries=0)
    async def says_no_retries() -> None:
        calls.append("explicit")
        raise RuntimeError("x")

    defaults = DeliveryOptions(retries=2, backoff=0, timeout=5)
    async with SimpleEventEmitter([uses_defaults, says_no_retries], defaults=defaults) as emitter:
        emitter.emit("e")
    assert calls.count("default") == 3
    assert calls.count("explicit") == 1


async def test_a_waiting_retry_does_not_hold_a_worker() -> None:
    handled: list[str] = []

    @listener("flaky", retries=1, backoff=30)
    async def flaky() -> None:
        raise RuntimeError("later")

    @listener("other")
    async def other() -> None:
        handled.append("other")

    async with SimpleEventEmitter([flaky, other], concurrency=1, shutdown_timeout=0) as emitter:
        emitter.emit("flaky")
        await wait_until(lambda: emitter.stats().retrying == 1)
        emitter.emit("other")
        await wait_until(lambda: bool(handled))
        [waiting] = emitter.deliveries(DeliveryState.RETRYING)
        assert waiting.listener == flaky.name
    assert [d.listener for d in emitter.unfinished] == [flaky.name]


@pytest.mark.parametrize("sync", [False, True])
async def test_timeouts_fail_the_call_and_the_worker_goes_on(sync: bool) -> None:
    release = threading.Event()
    done: list[int] = []

    def hang_sync(number: int) -> None:
        release.wait(10)

    async def hang_async(number: int) -> None:
        await anyio.sleep(10)

    hang = listener("slow", timeout=0.05, retries=1, backoff=0)(hang_sync if sync else hang_async)

    @listener("fast")
    async def fast(number: int) -> None:
        done.append(number)

    try:
        async with SimpleEventEmitter([hang, fast], concurrency=1) as emitter:
            emitter.emit("slow", 1)
            emitter.emit("fast", 2)
    finally:
        release.set()
    assert done == [2]
    [failed] = emitter.failed
    assert failed.attempts == 2
    assert failed.error is not None
    assert failed.error.startswith("TimeoutError: listener")
    assert "did not finish within 0.05s" in failed.error


async def test_a_slow_listener_does_not_hold_back_a_fast_one() -> None:
    fast_done = anyio.Event()
    fast_count = 0

    @listener("e")
    async def slow(number: int) -> None:
        await fast_done.wait()  # finishes only once the fast one has handled every event

    @listener("e")
    async def fast(number: int) -> None:
        nonlocal fast_count
        fast_count += 1
        if fast_count == 50:
            fast_done.set()

    with anyio.fail_after(10):
        async with SimpleEventEmitter([slow, fast], concurrency=4) as emitter:
            for number in range(50):
                emitter.emit("e", number)
    assert emitter.stats().succeeded == 100


async def test_emit_raises_queue_full_and_queues_nothing_of_that_event() -> None:
    release = anyio.Event()

    @listener("e")
    async def blocked(number: int) -> None:
        await release.wait()

    @listener("pair")
    async def pair_one() -> None:
        pass

    @listener("pair")
    async def pair_two() -> None:
        pass

    async with SimpleEventEmitter([blocked, pair_one, pair_two], queue_size=2) as emitter:
        emitter.emit("e", 1)
        emitter.emit("e", 2)
        with pytest.raises(QueueFullError, match="queue full: event 'e' needs 1 delivery"):
            emitter.emit("e", 3)
        assert emitter.stats().pending == 2
        release.set()
    assert emitter.stats().succeeded == 2


async def test_unrouted_events_are_accepted_even_when_the_queue_is_over_full() -> None:
    """Failing deliveries may push pending + retrying past queue_size; an unrouted event
    needs no room, so it is still accepted at once."""
    gate = anyio.Event()

    @listener("a", retries=1, backoff=30)
    async def fails_later(number: int) -> None:
        await gate.wait()
        raise RuntimeError("down")

    async with SimpleEventEmitter(
        [fails_later], queue_size=1, concurrency=1, shutdown_timeout=0
    ) as emitter:
        emitter.emit("a", 1)
        await wait_until(lambda: emitter.stats().running == 1)
        emitter.emit("a", 2)
        gate.set()
        await wait_until(lambda: emitter.stats().retrying == 2)
        with pytest.raises(QueueFullError):
            emitter.emit("a", 3)
        assert emitter.emit("nobody_listens") == 0
        with anyio.fail_after(1):
            assert await emitter.aemit("nobody_listens") == 0
        assert emitter.stats().unrouted == 2


async def test_an_event_with_more_listeners_than_queue_size_never_fits() -> None:
    made = [listener("e", name=f"l{i}")(lambda: None) for i in range(3)]
    async with SimpleEventEmitter(made, queue_size=2) as emitter:
        with pytest.raises(QueueFullError, match="raise queue_size"):
            emitter.emit("e")
        with pytest.raises(QueueFullError, match="raise queue_size"):
            await emitter.aemit("e")


async def test_aemit_waits_for_room_instead_of_raising() -> None:
    release = anyio.Event()
    handled: list[int] = []

    @listener("e")
    async def gated(number: int) -> None:
        await release.wait()
        handled.append(number)

    async with SimpleEventEmitter([gated], queue_size=4, concurrency=1) as emitter:
        for number in range(4):
            await emitter.aemit("e", number)
        await wait_until(lambda: emitter.stats().running == 1)
        await emitter.aemit("e", 4)  # one running, four pending: full
        with pytest.raises(QueueFullError):
            emitter.emit("e", 99)
        accepted = anyio.Event()

        async def producer() -> None:
            await emitter.aemit("e", 5)
            accepted.set()

        async with anyio.create_task_group() as group:
            group.start_soon(producer)
            await anyio.wait_all_tasks_blocked()
            assert not accepted.is_set()  # every task is blocked: the producer waits for room
            release.set()
            with anyio.fail_after(5):
                await accepted.wait()
    assert sorted(handled) == list(range(6))


async def test_memory_stays_bounded_by_queue_size_under_backpressure() -> None:
    most_pending = 0

    @listener("e")
    async def noop(number: int) -> None:
        nonlocal most_pending
        most_pending = max(most_pending, emitter.stats().pending)

    async with SimpleEventEmitter([noop], queue_size=100, concurrency=4) as emitter:
        for number in range(5000):
            await emitter.aemit("e", number)
    assert emitter.stats().succeeded == 5000
    assert most_pending <= 100


async def test_exit_drains_within_shutdown_timeout_and_reports_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @listener("stuck")
    async def stuck(number: int) -> None:
        await anyio.sleep(60)

    with caplog.at_level(logging.WARNING, logger="eventbus"), anyio.fail_after(10):
        async with SimpleEventEmitter([stuck], concurrency=1, shutdown_timeout=0.1) as emitter:
            emitter.emit("stuck", 1)
            emitter.emit("stuck", 2)
    states = sorted((d.args[0], d.state.value) for d in emitter.unfinished)
    assert states == [(1, "running"), (2, "pending")]
    assert "2 deliveries unfinished at shutdown" in caplog.text
    assert f"(stuck -> {stuck.name})" in caplog.text


async def test_stats_and_deliveries_by_state() -> None:
    release = anyio.Event()

    @listener("a")
    async def waits() -> None:
        await release.wait()

    @listener("b")
    async def fails() -> None:
        raise RuntimeError("no")

    async with SimpleEventEmitter([waits, fails], concurrency=1) as emitter:
        emitter.emit("b")
        emitter.emit("a")
        emitter.emit("a")
        await wait_until(lambda: emitter.stats().running == 1)
        stats = emitter.stats()
        assert (stats.pending, stats.running, stats.failed) == (1, 1, 1)
        assert stats.listeners[waits.name].pending == 1
        assert [d.state.value for d in emitter.deliveries()] == ["pending", "running", "failed"]
        assert [d.listener for d in emitter.deliveries(DeliveryState.FAILED)] == [fails.name]
        release.set()
    document = emitter.stats().to_dict()
    assert document["succeeded"] == 2
    assert document["listeners"][fails.name]["failed"] == 1


async def test_failed_list_is_bounded_by_keep_failed() -> None:
    @listener("e")
    async def fails(number: int) -> None:
        raise RuntimeError(str(number))

    async with SimpleEventEmitter([fails], keep_failed=3) as emitter:
        for number in range(10):
            emitter.emit("e", number)
    assert [d.args[0] for d in emitter.failed] == [7, 8, 9]
    assert emitter.stats().failed == 10


async def test_duplicate_listener_names_are_refused() -> None:
    first = listener("a")(lambda: None)
    second = listener("b")(lambda: None)
    with pytest.raises(ListenerError, match="two listeners have this name"):
        SimpleEventEmitter([first, second])
    SimpleEventEmitter([first, first])  # the same listener twice counts once


async def test_non_listeners_are_refused() -> None:
    with pytest.raises(ListenerError, match="not a listener: pass functions decorated with"):
        SimpleEventEmitter([print])  # type: ignore[list-item]


async def test_an_emitter_runs_once() -> None:
    emitter = SimpleEventEmitter([])
    async with emitter:
        pass
    with pytest.raises(EmitterNotRunningError, match="cannot be started again"):
        async with emitter:
            pass


def test_an_emitter_may_be_made_outside_the_event_loop() -> None:
    """As Litestar apps do: build the emitter at start-up, enter it inside the loop."""
    seen: list[str] = []

    @listener("e")
    async def record(value: str) -> None:
        seen.append(value)

    emitter = SimpleEventEmitter([record])

    async def run() -> None:
        async with emitter:
            emitter.emit("e", "x")

    anyio.run(run)
    assert seen == ["x"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("queue_size", 0), ("concurrency", 1.5), ("max_threads", True), ("keep_failed", -1),
        ("shutdown_timeout", -1), ("shutdown_timeout", "30"), ("max_per_listener", 0),
    ],
)
def test_bad_emitter_settings_are_refused(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{key} must be"):
        SimpleEventEmitter([], **{key: value})  # type: ignore[arg-type]


async def test_a_listener_reads_its_own_delivery_async_sync_and_on_retry() -> None:
    from eventbus_cli import current_delivery

    seen: list[tuple[str, int, int, str]] = []

    @listener("order.paid", retries=1, backoff=0)
    async def charge(**kwargs: Any) -> None:
        delivery = current_delivery()
        assert delivery is not None
        seen.append(("async", delivery.id, delivery.attempts, delivery.event))
        if delivery.attempts == 1:
            raise RuntimeError("first attempt fails")

    @listener("order.paid")
    def receipt(**kwargs: Any) -> None:  # runs in a thread: the context goes with it
        delivery = current_delivery()
        assert delivery is not None
        seen.append(("sync", delivery.id, delivery.attempts, delivery.event))

    assert current_delivery() is None
    async with SimpleEventEmitter([charge, receipt]) as emitter:
        made = emitter.submit("order.paid", amount=3)
    charge_id, receipt_id = (d.id for d in sorted(made, key=lambda d: d.listener))
    assert sorted(seen) == [("async", charge_id, 1, "order.paid"),
                            ("async", charge_id, 2, "order.paid"),
                            ("sync", receipt_id, 1, "order.paid")]
