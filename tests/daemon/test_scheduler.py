"""The scheduler with an injected clock: catch-up at start, reload, firing by hand."""

from __future__ import annotations

from typing import Any

import pytest

from eventbus_cli import SimpleEventEmitter, every, listener
from eventbus_cli.bus.memory import MemoryBroker
from eventbus_cli.daemon.scheduler import Scheduler, UnknownScheduleError


class _KeepsFires(MemoryBroker):
    """A broker that remembers fires, as the journal does across a restart."""

    def __init__(self, fired: dict[str, float]) -> None:
        super().__init__()
        self.fired = dict(fired)

    def fires(self) -> dict[str, float]:
        return dict(self.fired)

    def note_fire(self, name: str, when: float) -> None:
        self.fired[name] = when


@listener("tick")
def tick(**kwargs: Any) -> None: ...


pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("catch_up", "due_now"), [("once", True), ("skip", False)])
async def test_a_fire_missed_while_down_is_caught_up_once_or_skipped(catch_up: str,
                                                                      due_now: bool) -> None:
    hourly = every("1h", "tick", name="hourly", catch_up=catch_up)
    emitter = SimpleEventEmitter([tick], broker=_KeepsFires({"hourly": 3600.0}))
    scheduler = Scheduler(emitter, clock=lambda: 3 * 3600 + 60)  # missed 7200 and 10800
    scheduler.replace([hourly])
    [listed] = scheduler.listing()
    assert (listed["next"] == "1970-01-01T03:01:00.000Z") is due_now
    if not due_now:
        assert listed["next"] == "1970-01-01T04:00:00.000Z"


async def test_a_new_schedule_waits_for_its_first_time_and_a_reload_keeps_the_last_fire(
) -> None:
    broker = _KeepsFires({})
    async with SimpleEventEmitter([tick], broker=broker) as emitter:
        scheduler = Scheduler(emitter, clock=lambda: 100.0)
        scheduler.replace([every("1m", "tick", name="minutely")])
        assert scheduler.listing()[0]["next"] == "1970-01-01T00:02:00.000Z"
        fired = scheduler.run_now("minutely")
        assert fired["outcome"] == "emitted: 1 delivery queued"
        assert broker.fired == {"minutely": 100.0}
        scheduler.replace([every("1m", "tick", name="minutely", kwargs={"n": 2})])
        assert scheduler.listing()[0]["last"] == "1970-01-01T00:01:40.000Z"
        with pytest.raises(UnknownScheduleError, match="the schedules: minutely"):
            scheduler.run_now("nightly")


async def test_a_refused_fire_is_kept_as_its_outcome() -> None:
    @listener("strict")
    def strict(n: int) -> None: ...

    async with SimpleEventEmitter([strict], broker=_KeepsFires({})) as emitter:
        scheduler = Scheduler(emitter, clock=lambda: 10.0)
        scheduler.replace([every("1m", "strict", name="bad", kwargs={"n": "x"})])
        outcome = scheduler.run_now("bad")["outcome"]
    assert outcome.startswith(f"refused: strict: {strict.name}(n: int):")
