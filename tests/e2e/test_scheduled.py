"""Delayed emits through the real daemon: scheduled, listed, purged, kept by the journal."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from eventbus_cli import Client
from tests.harness import Daemon, running, wait_for


def test_a_delayed_emit_waits_as_scheduled_then_runs(daemon: Daemon) -> None:
    before = time.time()
    result = daemon.cli("emit", "user_created", "email=later", "--delay", "1s")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("user_created: 1 delivery scheduled for ")
    queue = daemon.json("queue")
    assert (queue["scheduled"], queue["pending"]) == (1, 0)
    [listed] = daemon.json("queue", "list", "--state", "scheduled")
    due = datetime.fromisoformat(listed["due"]).timestamp()
    assert before + 1 <= due <= time.time() + 1
    assert "scheduled 1 (next " in daemon.cli("queue").stdout.splitlines()[0]
    [record] = daemon.wait_for_records(1)
    assert record["kwargs"] == {"email": "later"}
    assert time.time() >= due
    assert daemon.json("queue")["scheduled"] == 0


def test_at_a_time_past_runs_now_and_a_naive_time_is_local(daemon: Daemon) -> None:
    past = (datetime.now() - timedelta(hours=1)).isoformat(timespec="seconds")
    assert daemon.cli("emit", "user_created", "email=past", "--at", past).returncode == 0
    daemon.wait_for_records(1)
    soon = (datetime.now() + timedelta(hours=2)).isoformat(timespec="seconds")
    shown = daemon.cli("emit", "user_created", "email=soon", "--at", soon)
    assert shown.returncode == 0
    [listed] = daemon.json("queue", "list", "--state", "scheduled")
    assert abs(datetime.fromisoformat(listed["due"]).timestamp()
               - datetime.fromisoformat(soon).timestamp()) < 1


def test_scheduled_deliveries_purge_on_their_own(daemon: Daemon) -> None:
    for _ in range(3):
        daemon.cli("emit", "user_created", "email=x", "--delay", "1h")
    purged = daemon.cli("queue", "purge", "--scheduled", "--yes")
    assert purged.stdout == "3 scheduled deliveries purged\n"
    assert daemon.json("queue")["scheduled"] == 0


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--delay", "90", "'90' is not a delay: give a number and a unit"),
    ("--delay", "-5s", "'-5s' is not a delay"),
    ("--delay", "400d", "at most a year"),
    ("--at", "tomorrow", "'tomorrow' is not a time: give ISO 8601"),
])
def test_a_bad_delay_or_time_is_a_usage_error(daemon: Daemon, option: str, value: str,
                                              words: str) -> None:
    result = daemon.cli("emit", "user_created", option, value)
    assert result.returncode == 2
    assert words in " ".join(result.stderr.replace("│", " ").split())


def test_routing_and_the_argument_check_happen_at_emit(daemon: Daemon) -> None:
    refused = daemon.cli("emit", "nobody", "--delay", "1h", "--require-listener")
    assert refused.returncode == 1
    assert daemon.json("queue")["scheduled"] == 0


def test_max_scheduled_bounds_future_work_apart_from_ready_work(short_dir: Path) -> None:
    with running(short_dir, config="[daemon]\nmax_scheduled = 2\n") as daemon:
        for _ in range(2):
            assert daemon.cli("emit", "user_created", "--delay", "1h").returncode == 0
        full = daemon.cli("emit", "user_created", "--delay", "1h")
        assert full.returncode == 1
        assert "max_scheduled" in full.stderr
        assert daemon.cli("emit", "user_created", "email=now").returncode == 0  # room for now
        daemon.wait_for_records(1)


def test_clients_schedule_too(daemon: Daemon) -> None:
    with Client(daemon.socket) as client:
        assert client.emit_in(3600, "user_created", email="a") == 1
        assert client.emit_at(datetime.now() + timedelta(days=1), "user_created") == 1
    assert daemon.json("queue")["scheduled"] == 2


@pytest.mark.process  # kill -9
def test_the_journal_keeps_scheduled_deliveries_across_kill_9_and_fires_them_once_late(
    short_dir: Path,
) -> None:
    config = '[journal]\npath = "journal.db"\n'
    daemon = Daemon(short_dir, config=config).start()
    try:
        assert daemon.cli("emit", "user_created", "email=later", "--delay", "1s").returncode == 0
        assert daemon.cli("emit", "user_created", "email=far", "--delay", "1d").returncode == 0
        [due] = [datetime.fromisoformat(item["due"]).timestamp()
                 for item in daemon.json("queue", "list", "--state", "scheduled")
                 if item["kwargs"]["email"] == "later"]
        daemon.kill()
        wait_for(lambda: time.time() > due)  # "later" falls due while no daemon runs
        daemon.start()
        [record] = daemon.wait_for_records(1)  # fired once, late
        assert record["kwargs"] == {"email": "later"}
        wait_for(lambda: daemon.json("queue")["succeeded"] == 1)
        daemon.kill()
        daemon.start()
        left = daemon.json("queue", "list", "--state", "scheduled")
        assert [item["kwargs"]["email"] for item in left] == ["far"]
        assert len(daemon.records()) == 1  # not fired again
    finally:
        daemon.dispose()


@pytest.mark.process  # `stop` waits for the daemon's process to exit
def test_a_daemon_without_a_journal_warns_that_a_restart_loses_what_waits_for_later(
        short_dir: Path) -> None:
    with running(short_dir) as daemon:
        later = daemon.cli("emit", "user_created", "email=x", "--delay", "1h")
        assert later.returncode == 0
        assert "a restart before then loses these deliveries" in later.stderr
        now = daemon.cli("emit", "user_created", "email=y")
        assert "warning" not in now.stderr
        stopped = daemon.cli("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert "1 delivery emitted for later was dropped" in stopped.stderr


def test_with_a_journal_a_delayed_emit_gives_no_warning(short_dir: Path) -> None:
    with running(short_dir, config='[journal]\npath = "eventbus.db"\n') as daemon:
        later = daemon.cli("emit", "user_created", "email=x", "--delay", "1h")
        assert later.returncode == 0
        assert "warning" not in later.stderr
