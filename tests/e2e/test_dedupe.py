"""Dedupe keys through the real daemon: a repeat is answered as the first was, queues nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventbus_cli import Client
from tests.harness import Daemon, running, wait_for


def test_a_repeated_key_is_answered_as_the_first_and_queues_nothing(daemon: Daemon) -> None:
    first = daemon.json("emit", "user_created", "email=once", "--key", "signup-7")
    again = daemon.json("emit", "user_created", "email=once", "--key", "signup-7")
    assert first == {"event_id": "user_created", "deliveries": 1}
    assert again == {**first, "duplicate": True}
    text = daemon.cli("emit", "user_created", "--key", "signup-7")
    assert text.stdout == ("user_created: a duplicate of an emit already accepted with key "
                           "'signup-7' (1 delivery then); nothing queued now\n")
    assert daemon.cli("emit", "user_created", "email=other", "--key", "signup-8").returncode == 0
    wait_for(lambda: daemon.json("queue")["succeeded"] == 2)
    assert [r["kwargs"]["email"] for r in daemon.records()] == ["once", "other"]


def test_keys_in_an_events_file_and_in_a_batch_count_duplicates(daemon: Daemon) -> None:
    lines = "".join(json.dumps({"event": "user_created", "kwargs": {"n": n}, "key": f"k{n % 3}"})
                    + "\n" for n in range(6))
    result = daemon.cli("emit", "--file", "-", "--json", input=lines)
    assert json.loads(result.stdout) == {"events": 6, "accepted": 6, "deliveries": 3,
                                         "unrouted": 0, "duplicates": 3}
    with Client(daemon.socket) as client:
        assert client.emit_many([{"event": "user_created", "key": "k1"}]).duplicates == 1
    wait_for(lambda: daemon.json("queue")["succeeded"] == 3)
    assert daemon.json("queue")["duplicates"] == 4  # the daemon counts them too


@pytest.mark.process  # kill -9
def test_the_journal_keeps_keys_across_a_restart(short_dir: Path) -> None:
    config = '[journal]\npath = "journal.db"\n'
    daemon = Daemon(short_dir, config=config).start()
    try:
        assert daemon.json("emit", "user_created", "--key", "k")["deliveries"] == 1
        daemon.kill()
        daemon.start()
        assert daemon.json("emit", "user_created", "--key", "k").get("duplicate") is True
    finally:
        daemon.dispose()


def test_a_key_is_forgotten_after_the_window(short_dir: Path) -> None:
    with running(short_dir, config="[daemon]\ndedupe_window = 1\n") as daemon:
        assert daemon.json("emit", "user_created", "--key", "k")["deliveries"] == 1
        wait_for(lambda: daemon.json("emit", "user_created", "--key", "k").get(
            "duplicate") is None, seconds=10)
