"""The scheduler with an injected clock: catch-up at start, reload, firing by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eventbus_cli import SimpleEventEmitter, every, listener
from eventbus_cli.bus.memory import MemoryBroker
from eventbus_cli.daemon.scheduler import Scheduler, UnknownScheduleError
from eventbus_cli.stores.sqlite import SqliteJournal
from tests.harness import started


def _keeps_fires(root: Path, fired: dict[str, float]) -> MemoryBroker:
    """The daemon's broker with a journal, which keeps fires across a restart: these
    ``fired`` as if from the last run."""
    journal = SqliteJournal(root / "journal.db")
    for name, when in fired.items():
        journal.note_fire(name, when)
    return MemoryBroker(journal=journal)


@listener("tick")
def tick(**kwargs: Any) -> None: ...


pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("catch_up", "due_now"), [("once", True), ("skip", False)])
async def test_a_fire_missed_while_down_is_caught_up_once_or_skipped(
    catch_up: str, due_now: bool, tmp_path: Path,
) -> None:
    hourly = every("1h", "tick", name="hourly", catch_up=catch_up)
    emitter = SimpleEventEmitter([tick], broker=_keeps_fires(tmp_path, {"hourly": 3600.0}))
    scheduler = Scheduler(emitter, clock=lambda: 3 * 3600 + 60)  # missed 7200 and 10800
    scheduler.replace([hourly])
    [listed] = scheduler.listing()
    assert (listed.next == "1970-01-01T03:01:00.000Z") is due_now
    if not due_now:
        assert listed.next == "1970-01-01T04:00:00.000Z"


async def test_a_new_schedule_waits_for_its_first_time_and_a_reload_keeps_the_last_fire(
    tmp_path: Path,
) -> None:
    broker = _keeps_fires(tmp_path, {})
    async with SimpleEventEmitter([tick], broker=broker) as emitter:
        scheduler = Scheduler(emitter, clock=lambda: 100.0)
        scheduler.replace([every("1m", "tick", name="minutely")])
        assert scheduler.listing()[0].next == "1970-01-01T00:02:00.000Z"
        fired = await scheduler.run_now("minutely")
        assert fired.outcome == "emitted: 1 delivery queued"
        assert broker.fires() == {"minutely": 100.0}
        scheduler.replace([every("1m", "tick", name="minutely", kwargs={"n": 2})])
        assert scheduler.listing()[0].last == "1970-01-01T00:01:40.000Z"
        with pytest.raises(UnknownScheduleError, match="the schedules: minutely"):
            await scheduler.run_now("nightly")


async def test_a_refused_fire_is_kept_as_its_outcome(tmp_path: Path) -> None:
    @listener("strict")
    def strict(n: int) -> None: ...

    async with SimpleEventEmitter([strict], broker=_keeps_fires(tmp_path, {})) as emitter:
        scheduler = Scheduler(emitter, clock=lambda: 10.0)
        scheduler.replace([every("1m", "strict", name="bad", kwargs={"n": "x"})])
        outcome = (await scheduler.run_now("bad")).outcome
    assert (outcome or "").startswith(f"refused: strict: {strict.name}(n: int):")


def test_the_banner_lists_the_schedules_and_warns_of_one_no_listener_takes(
        short_dir: Path) -> None:
    config = ('[[schedule]]\nname = "tick"\nevent = "user_created"\nevery = "1h"\n'
              '[[schedule]]\nname = "typo"\nevent = "user_creatd"\nevery = "1h"\n')
    for daemon in started(short_dir, config=config):
        logs = daemon.logs()
        assert "2 schedules:" in logs
        assert "  tick: user_created every 1h" in logs
        assert "schedule typo emits 'user_creatd', which no listener takes" in logs
        assert "schedule tick emits" not in logs
