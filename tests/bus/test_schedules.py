"""When cron and every schedules fire: DST, seconds fields, a grid that never drifts."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from eventbus_cli import ScheduleError, cron, every

OSLO = ZoneInfo("Europe/Oslo")


def _at(*parts: int) -> float:
    return datetime(*parts, tzinfo=OSLO).timestamp()  # type: ignore[arg-type, misc]


def _local(instant: float) -> str:
    return datetime.fromtimestamp(instant, OSLO).isoformat()


def test_a_local_time_that_dst_skips_fires_once_at_the_first_valid_instant() -> None:
    nightly = cron("30 2 * * *", "x", tz="Europe/Oslo")  # 2026-03-29: 02:00 -> 03:00
    fires = [nightly.next_after(_at(2026, 3, 28, 12))]
    for _ in range(2):
        fires.append(nightly.next_after(fires[-1]))
    assert [_local(f) for f in fires] == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]


def test_a_local_time_that_dst_repeats_fires_once_the_first_time() -> None:
    nightly = cron("30 2 * * *", "x", tz="Europe/Oslo")  # 2026-10-25: 03:00 -> 02:00
    first = nightly.next_after(_at(2026, 10, 24, 12))
    second = nightly.next_after(first)
    assert _local(first) == "2026-10-25T02:30:00+02:00"
    assert _local(second) == "2026-10-26T02:30:00+01:00"
    # asked again from inside the repeated hour, it does not fire a second time that night
    assert nightly.next_after(first + 3600) == second


def test_six_fields_put_seconds_first_and_weekdays_work() -> None:
    often = cron("*/15 * * * * *", "x")
    assert often.next_after(0.0) == 15.0
    assert often.next_after(15.0) == 30.0
    weekdays = cron("0 9 * * 1-5", "x", tz="Europe/Oslo")
    friday = weekdays.next_after(_at(2026, 12, 4, 9, 0))  # a Friday at 09:00 -> Monday
    assert _local(friday) == "2026-12-07T09:00:00+01:00"


def test_every_lands_on_its_grid_for_a_thousand_fires() -> None:
    tick = every("90s", "x")
    fire = tick.next_after(1_000_000.3)
    for _ in range(1000):
        assert fire % 90 == 0
        fire = tick.next_after(fire)
    assert fire == (1_000_000 // 90 + 1001) * 90


@pytest.mark.parametrize(("make", "words"), [
    (lambda: cron("61 * * * *", "x"), "'61 * * * *' is not a cron spec"),
    (lambda: cron("* * *", "x"), "give 5 fields"),
    (lambda: cron("0 0 30 2 *", "x"), "'0 0 30 2 *' never fires: no date matches it"),
    (lambda: cron("0 0 0 31 4 *", "x"), "never fires"),
    (lambda: cron("0 9 * * *", "x", tz="Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
    (lambda: every(0.5, "x"), "an interval is 1 s to a year"),
    (lambda: every("400d", "x"), "not '400d'"),
    (lambda: every("10", "x"), "not '10'"),
    (lambda: every("1m", "bad id!"), "invalid event id 'bad id!'"),
    (lambda: every("1m", "x", catch_up="always"), "catch_up must be one of 'once', 'skip'"),
])
def test_bad_schedules_name_the_value_and_what_is_accepted(make: object, words: str) -> None:
    with pytest.raises(ScheduleError, match=None) as caught:
        make()  # type: ignore[operator]
    assert words in str(caught.value)
