"""cron and every schedules through the real daemon: fire, list, run, reload, restart."""

from __future__ import annotations

from pathlib import Path

from tests.harness import RECORDER, Daemon, running, wait_for

EVERY_SECOND = RECORDER + '''
from eventbus_cli import cron, every

heartbeat = every("1s", "user_created", kwargs={"email": "beat"})
nightly = cron("0 3 * * *", "bulk.report", tz="Europe/Oslo", catch_up="skip")
'''


def test_an_every_schedule_fires_and_is_listed_with_its_outcome(short_dir: Path) -> None:
    with running(short_dir, listeners=EVERY_SECOND) as daemon:
        records = daemon.wait_for_records(2)
        assert all(record["kwargs"] == {"email": "beat"} for record in records)
        listed = {item["name"]: item for item in daemon.json("schedule", "list")}
        assert sorted(listed) == ["heartbeat", "nightly"]
        assert listed["heartbeat"]["text"] == "every 1s"
        assert listed["heartbeat"]["outcome"] == "emitted: 1 delivery queued"
        assert listed["nightly"]["text"] == "cron 0 3 * * * (Europe/Oslo)"
        assert listed["nightly"]["last"] is None
        table = daemon.cli("schedule", "list").stdout
        assert "nightly" in table
        assert "every 1s" in table
        assert daemon.json("status")["schedules"]["count"] == 2


def test_schedule_run_fires_now_and_an_unknown_name_lists_the_known(short_dir: Path) -> None:
    listeners = RECORDER + ('\nfrom eventbus_cli import cron\n'
                            'report = cron("0 3 1 1 *", "bulk.report", kwargs={"n": 1})\n')
    with running(short_dir, listeners=listeners) as daemon:
        fired = daemon.cli("schedule", "run", "report")
        assert fired.returncode == 0, fired.stderr
        assert fired.stdout == "report: bulk.report emitted: 1 delivery queued\n"
        [record] = daemon.wait_for_records(1)
        assert record["kwargs"] == {"n": 1}
        unknown = daemon.cli("schedule", "run", "nope")
        assert unknown.returncode == 1
        assert "no schedule is named 'nope'; the schedules: report" in unknown.stderr


def test_a_reload_adds_changes_and_removes_schedules_and_a_bad_spec_changes_nothing(
    short_dir: Path,
) -> None:
    with running(short_dir) as daemon:
        assert daemon.json("schedule", "list") == []
        schedules = daemon.listeners_dir / "schedules.py"
        schedules.write_text("from eventbus_cli import every\n"
                             "tick = every('1h', 'user_created')\n")
        assert daemon.json("listeners", "reload")["schedules"] == 1
        assert [item["name"] for item in daemon.json("schedule", "list")] == ["tick"]
        schedules.write_text("from eventbus_cli import cron\n\n"
                             "tick = cron('99 * * * *', 'user_created')\n")
        failed = daemon.cli("listeners", "reload")
        assert failed.returncode == 1
        assert "schedules.py, line 3" in failed.stderr
        assert "'99 * * * *' is not a cron spec" in failed.stderr
        assert [item["text"] for item in daemon.json("schedule", "list")] == ["every 1h"]
        schedules.write_text("from eventbus_cli import cron\n\n"
                             "tick = cron('0 0 30 2 *', 'user_created')\n")
        failed = daemon.cli("listeners", "reload")
        assert failed.returncode == 1
        assert "schedules.py, line 3" in failed.stderr
        assert "never fires" in failed.stderr
        assert [item["text"] for item in daemon.json("schedule", "list")] == ["every 1h"]
        schedules.unlink()
        assert daemon.json("listeners", "reload")["schedules"] == 0


def test_schedule_tables_in_the_config_fire_and_bad_ones_name_the_key(short_dir: Path) -> None:
    config = ('[[schedule]]\nname = "beat"\nevent = "user_created"\nevery = "1s"\n'
              'kwargs = {email = "from the config"}\n')
    with running(short_dir, config=config) as daemon:
        [record, *_] = daemon.wait_for_records(1)
        assert record["kwargs"] == {"email": "from the config"}
    short_dir.mkdir()  # running() took it away
    bad = Daemon(short_dir, config='[[schedule]]\nname = "x"\nevent = "e"\n'
                 'cron = "0 9 * * *"\ntz = "Nowhere/Land"\n')
    result = bad.cli("--config", str(bad.config), "serve", "--listeners-dir",
                     str(bad.listeners_dir))
    assert result.returncode == 1
    assert "schedule 'x' ([[schedule]] 1): unknown time zone 'Nowhere/Land'" in result.stderr


def test_the_journal_keeps_the_last_fire_and_a_missed_one_is_caught_up_once(
    short_dir: Path,
) -> None:
    config = '[journal]\npath = "journal.db"\n'
    listeners = RECORDER + ('\nfrom eventbus_cli import every\n'
                            'hourly = every("1h", "user_created", kwargs={"email": "m"})\n')
    daemon = Daemon(short_dir, listeners=listeners, config=config).start()
    try:
        assert daemon.cli("schedule", "run", "hourly").returncode == 0
        daemon.wait_for_records(1)
        [listed] = daemon.json("schedule", "list")
        assert listed["last"] is not None
        daemon.stop()
        daemon.start()
        [kept] = daemon.json("schedule", "list")
        assert kept["last"] == listed["last"]  # from the journal
    finally:
        daemon.dispose()
    # A fire missed while down: make the last one an hour old in the journal, then start.
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(short_dir / "journal.db")) as db:
        db.execute("UPDATE meta SET value = value - 3600000 WHERE key = 'fire:hourly'")
        db.commit()
    daemon.start()
    try:
        daemon.wait_for_log("schedule hourly missed a fire while no daemon ran")
        wait_for(lambda: len(daemon.records()) == 2)
    finally:
        daemon.dispose()


def test_tail_shows_scheduled_due_and_fired_records(short_dir: Path) -> None:
    from tests.e2e.test_live import Tail

    listeners = RECORDER + ('\nfrom eventbus_cli import cron\n'
                            'report = cron("0 3 1 1 *", "bulk.report")\n')
    with running(short_dir, listeners=listeners) as daemon:
        follower = Tail(daemon).start(daemon, "probe")
        assert daemon.cli("emit", "user_created", "--delay", "1s").returncode == 0
        assert daemon.cli("schedule", "run", "report").returncode == 0
        wait_for(lambda: {"scheduled", "due", "fired"} <= {r["type"] for r in follower.records},
                 explain=lambda: str(follower.records))
        [scheduled] = [r for r in follower.records if r["type"] == "scheduled"]
        assert (scheduled["event"], scheduled["deliveries"]) == ("user_created", 1)
        assert scheduled["due"].endswith("Z")
        [fired] = [r for r in follower.records if r["type"] == "fired"]
        assert fired == {**fired, "schedule": "report", "event": "bulk.report",
                         "outcome": "emitted: 1 delivery queued"}
        assert follower.close() == 0
