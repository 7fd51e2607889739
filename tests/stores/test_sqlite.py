"""The SQLite journal: on a real file in-process, then through the real daemon (kill -9)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from eventbus_cli import Client, SimpleEventEmitter, listener
from eventbus_cli.bus.delivery import DeliveryState
from eventbus_cli.bus.memory import MemoryBroker
from eventbus_cli.errors import EventbusError, JournalError
from eventbus_cli.stores.sqlite import SqliteJournal
from tests.harness import Daemon, wait_for
from tests.waiting import wait_until

FIRST_SCHEMA = (
    "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, event TEXT NOT NULL, listener TEXT "
    "NOT NULL, args TEXT NOT NULL, kwargs TEXT NOT NULL, state TEXT NOT NULL, attempts "
    "INTEGER NOT NULL, error TEXT, traceback TEXT);"
)
"""The deliveries table as the journal's first release wrote it, before the time columns."""


def journal_broker(path: Path) -> MemoryBroker:
    """The daemon's broker with ``[journal]`` set: the memory broker written through."""
    return MemoryBroker(journal=SqliteJournal(path))


def _rows(path: Path) -> list[tuple[int, str, str, str]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return list(db.execute("SELECT id, listener, state, kwargs FROM deliveries ORDER BY id"))


@listener("ok")
async def fine(**kwargs: object) -> None:
    pass


@listener("bad")
async def broken(**kwargs: object) -> None:
    raise RuntimeError("broken on purpose")


@listener("wait")
async def waits(**kwargs: object) -> None:
    await anyio.sleep(60)


def _read_back(path: Path) -> list[tuple[int, str, DeliveryState, dict[str, Any]]]:
    """What a broker opened on ``path`` restores, serving the listeners of this module."""
    broker = journal_broker(path)
    try:
        emitter = SimpleEventEmitter([fine, broken, waits], broker=broker)
        return [(d.id, d.listener, d.state, d.kwargs) for d in emitter.deliveries()]
    finally:
        broker.close()


@pytest.mark.anyio
async def test_accepted_deliveries_are_committed_and_finished_ones_leave(short_dir: Path) -> None:
    path = short_dir / "j.db"
    broker = journal_broker(path)
    emitter = SimpleEventEmitter([fine, broken, waits], shutdown_timeout=0, broker=broker)
    async with emitter:
        emitter.emit("wait", n=1)
        emitter.emit("bad", n=2)
        await wait_until(lambda: emitter.stats().failed == 1)
        emitter.emit("ok", n=3)
        await wait_until(lambda: emitter.stats().succeeded == 1)
        await broker.settled()
    broker.close()
    assert [row[:3] for row in _rows(path)] == [
        (1, waits.name, "pending"), (2, broken.name, "failed")]
    assert _read_back(path) == [
        (1, waits.name, DeliveryState.PENDING, {"n": 1}),
        (2, broken.name, DeliveryState.FAILED, {"n": 2}),
    ]


@pytest.mark.anyio
async def test_restore_queues_the_kept_deliveries_again_and_keeps_the_failed(
    short_dir: Path,
) -> None:
    path = short_dir / "j.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(
            FIRST_SCHEMA +
            "INSERT INTO deliveries VALUES (7, 'ok', 'fine', '[]', '{\"n\": 7}', 'retrying', 1, "
            "'E', NULL), (8, 'x', 'gone', '[]', '{}', 'pending', 0, NULL, NULL),"
            "(9, 'bad', 'broken', '[]', '{}', 'failed', 3, 'E', 'T');"
        )
    broker = journal_broker(path)
    emitter = SimpleEventEmitter([fine, broken], broker=broker)
    async with emitter:
        await wait_until(lambda: emitter.stats().succeeded == 1)
        assert emitter.emit("ok") == 1
        failed = {d.id: d.error for d in emitter.failed}
        assert failed[9] == "E"
        assert "listener gone is not loaded" in str(failed[8])
        assert max(d.id for d in emitter.deliveries()) <= 10
        await broker.settled()
    broker.close()
    assert [row[:3] for row in _rows(path)] == [(8, "gone", "failed"), (9, "broken", "failed")]


def test_a_corrupt_journal_is_a_clear_error(short_dir: Path) -> None:
    path = short_dir / "j.db"
    path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(JournalError) as caught:
        journal_broker(path)
    assert str(path) in str(caught.value)
    assert "corrupt" in str(caught.value)
    assert "move the file aside" in str(caught.value)


def test_a_journal_whose_ids_are_used_up_is_refused_with_what_to_do(short_dir: Path) -> None:
    path = short_dir / "j.db"
    journal_broker(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('next_id', ?)", (2**63 - 1,))
    db.close()
    with pytest.raises(JournalError) as caught:
        journal_broker(path)
    assert "its delivery ids are used up" in str(caught.value)
    assert "move the file aside" in str(caught.value)


def test_a_journal_another_process_holds_is_refused_as_locked(short_dir: Path) -> None:
    path = short_dir / "j.db"
    journal_broker(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(JournalError, match="locked by another process"):
            journal_broker(path)
    finally:
        holder.close()
    first = journal_broker(path)  # one daemon holds it for as long as it runs
    try:
        with pytest.raises(JournalError, match="locked"):
            journal_broker(path)
    finally:
        first.close()


@pytest.mark.process  # the exit status
def test_serve_with_a_corrupt_journal_stops_with_one_error_line(short_dir: Path) -> None:
    (short_dir / "eventbus.db").write_bytes(b"garbage" * 1000)
    daemon = Daemon(short_dir, config="[journal]\n").start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(timeout=30) == 1
    error = daemon.logs().strip().splitlines()[-1]
    path = short_dir / "eventbus.db"
    assert error.startswith(f"error: journal {path}: not a journal, or corrupt")
    assert "Traceback" not in daemon.logs()


WORK = '''
import json, os
import anyio
from eventbus_cli import listener

@listener("work")
async def work(n):
    await anyio.sleep(0.05)
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps({"n": n}) + "\\n")

@listener("bad")
def bad():
    raise ValueError("kept across restarts")
'''


@pytest.mark.process  # kill -9
def test_kill_9_during_a_load_then_restart_handles_every_accepted_event(short_dir: Path) -> None:
    config = '[daemon]\nconcurrency = 16\n[journal]\npath = "state/journal.db"\n'
    daemon = Daemon(short_dir, listeners=WORK, config=config).start()
    try:
        assert daemon.cli("emit", "bad").returncode == 0
        wait_for(lambda: daemon.json("queue")["failed"] == 1)
        accepted: list[int] = []
        errors: list[BaseException] = []

        def produce() -> None:
            try:
                with Client(daemon.socket) as client:
                    for n in range(1000):
                        client.emit("work", n)
                        accepted.append(n)
            except (EventbusError, OSError) as exc:  # the daemon died mid-load
                errors.append(exc)

        producer = threading.Thread(target=produce)
        producer.start()
        wait_for(lambda: len(daemon.records()) >= 100)
        daemon.kill()  # SIGKILL: no drain, no clean-up
        producer.join(timeout=30)
        assert not producer.is_alive()
        handled_before = len({item["n"] for item in daemon.records()})
        assert len(accepted) > handled_before  # some accepted events were still unhandled
        status = daemon.start().json("status")
        assert status["journal"]["path"] == str(short_dir / "state" / "journal.db")
        assert status["journal"]["bytes"] > 0
        wait_for(lambda: set(accepted) <= {item["n"] for item in daemon.records()}, 60)
        [failed] = daemon.json("queue", "list", "--state", "failed")
        assert failed["error"] == "ValueError: kept across restarts"
        assert "resume" in daemon.logs()
        assert daemon.stop() == 0
    finally:
        daemon.dispose()


def test_a_drain_cut_short_keeps_the_rest_in_the_journal_for_the_next_start(
    short_dir: Path,
) -> None:
    config = "[daemon]\nconcurrency = 2\nshutdown_timeout = 0.2\n[journal]\n"
    daemon = Daemon(short_dir, listeners=WORK, config=config).start()
    try:
        lines = "".join(f'{{"event": "work", "args": [{n}]}}\n' for n in range(100))
        assert daemon.cli("emit", "--file", "-", input=lines).returncode == 0
        assert daemon.stop() == 0
        assert "are kept in the journal and run again on the next start" in daemon.logs()
        handled = {item["n"] for item in daemon.records()}
        assert len(handled) < 100
        daemon.start()
        wait_for(lambda: {item["n"] for item in daemon.records()} == set(range(100)), 30)
        assert daemon.stop() == 0
    finally:
        daemon.dispose()


def test_a_lone_surrogate_from_a_client_is_kept_and_comes_back_intact(short_dir: Path) -> None:
    failing = ("from eventbus_cli import listener\n\n@listener('odd')\n"
               "def odd(text):\n    raise ValueError(text)\n")
    daemon = Daemon(short_dir, listeners=failing, config="[journal]\n").start()
    try:
        with socket.socket(socket.AF_UNIX) as client:  # JSON allows it; UTF-8 does not
            client.connect(str(daemon.socket))
            client.sendall(b'{"id": 1, "op": "emit", "event": "odd", "kwargs": {"text": '
                           b'"a\\ud800b"}}\n')
            assert json.loads(client.recv(1000))["ok"] is True
        wait_for(lambda: daemon.json("queue")["failed"] == 1)
        assert daemon.stop() == 0
        daemon.start()
        [failed] = daemon.json("queue", "list", "--state", "failed")
        assert failed["kwargs"] == {"text": "a\ud800b"}
        assert failed["error"] == "ValueError: a\\ud800b"
        assert "a\\ud800b" in daemon.cli("queue", "list").stdout
        assert daemon.stop() == 0
    finally:
        daemon.dispose()


def test_a_row_that_cannot_be_read_is_named_with_a_fix_that_loses_nothing(
    short_dir: Path,
) -> None:
    path = short_dir / "j.db"
    journal_broker(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("INSERT INTO deliveries (id, event, listener, args, kwargs, state, attempts) "
                   "VALUES (5, 'ok', 'fine', 'not json', '{}', 'pending', 0)")
        db.commit()
    with pytest.raises(JournalError) as caught:
        journal_broker(path)
    message = str(caught.value)
    assert "delivery 5 cannot be read" in message
    assert "DELETE FROM deliveries WHERE id = 5" in message
    assert "move the file aside" not in message


def test_a_journal_of_the_first_schema_gains_the_time_columns_and_keeps_its_rows(
    short_dir: Path,
) -> None:
    path = short_dir / "j.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(
            FIRST_SCHEMA +
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
            "INSERT INTO deliveries VALUES (3, 'ok', 'fine', '[1]', '{}', 'failed', 2, "
            "'ValueError: x', NULL);")
    broker = journal_broker(path)
    try:
        broker.serve([], reason="gone")
        (delivery,) = broker.failed_list
        assert (delivery.id, delivery.args, delivery.attempts) == (3, (1,), 2)
        assert delivery.created_at is None
        assert delivery.to_dict()["created"] is None
    finally:
        broker.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway")
def test_a_read_only_journal_is_told_apart_from_a_corrupt_one(short_dir: Path) -> None:
    path = short_dir / "j.db"
    journal_broker(path).close()
    path.chmod(0o444)
    with pytest.raises(JournalError, match="cannot be written") as caught:
        journal_broker(path)
    assert "the deliveries in it are kept" in str(caught.value)
