"""The transactional outbox against a real daemon and a real database: an event exists if
and only if its transaction commits, and the relay hands each committed one over once."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from eventbus_cli import Outbox, Relay
from eventbus_cli.errors import InvalidEventIdError
from tests.harness import Daemon, running
from tests.outbox.conftest import LISTENERS

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def daemon(short_dir: Path) -> Any:
    with running(short_dir, listeners=LISTENERS) as made:
        yield made


def _engine(url: str, outbox: Outbox) -> Engine:
    engine = create_engine(url)
    with engine.begin() as connection:
        outbox.create(connection)
    return engine


def _emails(daemon: Daemon) -> list[str]:
    return [record["kwargs"]["email"] for record in daemon.records() if "kwargs" in record]


def test_a_committed_emit_is_sent_once_and_a_rolled_back_one_never(
    daemon: Daemon, db_url: str, table: str,
) -> None:
    outbox = Outbox(table)
    engine = _engine(db_url, outbox)
    with Session(engine) as session, session.begin():
        outbox.emit(session, "user_created", email="ada@example.com")
    with Session(engine) as session:
        session.begin()
        outbox.emit(session, "user_created", email="rolled@example.com")
        session.rollback()
    with engine.begin() as connection:  # a Connection works as a Session does
        outbox.emit(connection, "user_created", email="bob@example.com")
    relay = Relay(engine, daemon.socket, outbox=outbox)
    assert relay.forward() == 2
    assert relay.forward() == 0  # the rows are gone once the daemon has them
    daemon.wait_for_records(2)
    assert sorted(_emails(daemon)) == ["ada@example.com", "bob@example.com"]
    with engine.connect() as connection:
        assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
    relay.close()
    engine.dispose()


def test_rows_sent_again_after_a_lost_delete_are_answered_as_duplicates(
    daemon: Daemon, db_url: str, table: str,
) -> None:
    outbox = Outbox(table)
    engine = _engine(db_url, outbox)
    with Session(engine) as session, session.begin():
        for n in range(3):
            outbox.emit(session, "user_created", email=f"{n}@example.com")
    relay = Relay(engine, daemon.socket, outbox=outbox)
    with engine.connect() as connection:  # as a relay that sent, then died before its delete
        rows = connection.execute(outbox.table.select().order_by(outbox.table.c.id)).all()
    relay.forward()
    with engine.begin() as connection:
        connection.execute(outbox.table.insert(), [row._asdict() for row in rows])
    assert relay.forward() == 3
    daemon.wait_for_records(3)
    status = daemon.json("queue")
    assert status["duplicates"] == 3
    assert sorted(_emails(daemon)) == [f"{n}@example.com" for n in range(3)]
    relay.close()
    engine.dispose()


def test_a_row_refused_for_good_keeps_its_place_with_the_reason_and_the_rest_go_on(
    daemon: Daemon, db_url: str, table: str, caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = Outbox(table)
    engine = _engine(db_url, outbox)
    with engine.begin() as connection:
        outbox.emit(connection, "strict", n=1)
        outbox.emit(connection, "strict", n="not a number")
        outbox.emit(connection, "strict", n=3)
    relay = Relay(engine, daemon.socket, outbox=outbox)
    while relay.forward():
        pass
    daemon.wait_for_records(2)
    assert sorted(record["strict"] for record in daemon.records()) == [1, 3]
    with engine.connect() as connection:
        [(body, error)] = connection.execute(text(f"SELECT body, error FROM {table}")).all()
    assert json.loads(body)["kwargs"] == {"n": "not a number"}
    assert "strict" in error
    assert any("refused outbox row" in record.getMessage() for record in caplog.records)
    assert relay.refused == 1
    relay.close()
    engine.dispose()


def test_bad_input_is_refused_at_the_call(tmp_path: Path) -> None:
    outbox = Outbox()
    engine = _engine(f"sqlite:///{tmp_path / 'app.db'}", outbox)
    with Session(engine) as session, session.begin():
        with pytest.raises(InvalidEventIdError):
            outbox.emit(session, "no spaces allowed")
        with pytest.raises(TypeError, match="JSON values"):
            outbox.emit(session, "user_created", when=object())
        with pytest.raises(TypeError, match=re.escape("is not async: use `outbox.emit")):
            anyio.run(outbox.aemit, session, "user_created")
    with pytest.raises(TypeError, match="not dict"):
        outbox.emit({}, "user_created")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE wrong (id INTEGER)"))
        with pytest.raises(ValueError, match="table wrong exists without the outbox's columns"):
            Outbox("wrong").create(connection)
    engine.dispose()


def test_an_async_session_emits_with_aemit(daemon: Daemon, tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    outbox = Outbox()

    async def main() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            await connection.run_sync(outbox.create)
        async with AsyncSession(engine) as session, session.begin():
            await outbox.aemit(session, "user_created", email="async@example.com")
            with pytest.raises(TypeError, match=re.escape("is async: use `await outbox.aemit")):
                outbox.emit(session, "user_created")
        await engine.dispose()

    anyio.run(main)
    relay = Relay(url, daemon.socket, outbox=outbox)  # the relay takes the sync driver
    assert relay.forward() == 1
    daemon.wait_for_records(1)
    assert _emails(daemon) == ["async@example.com"]
    relay.close()


def test_a_litestar_app_emits_in_its_transaction_and_its_plugin_relays(
    daemon: Daemon, db_url: str, table: str,
) -> None:
    from litestar import Litestar, post
    from litestar.params import FromPath
    from litestar.testing import TestClient

    from eventbus_cli.litestar import EventbusPlugin

    outbox = Outbox(table)
    engine = _engine(db_url, outbox)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE {table}_users (email TEXT PRIMARY KEY)"))

    @post("/signup/{email:str}", sync_to_thread=True)
    def signup(email: FromPath[str]) -> str:
        with Session(engine) as session, session.begin():  # one transaction: both or neither
            session.execute(text(f"INSERT INTO {table}_users VALUES (:email)"),
                            {"email": email})
            outbox.emit(session, "user_created", email=email)
        return "welcome"

    relay = Relay(engine, daemon.socket, outbox=outbox)
    app = Litestar(route_handlers=[signup], plugins=[EventbusPlugin(daemon.socket, relay=relay)])
    with TestClient(app) as client:
        assert client.post("/signup/ada@example.com").status_code == 201
        assert client.post("/signup/ada@example.com").status_code == 500  # rolled back
        assert client.post("/signup/bob@example.com").status_code == 201
        daemon.wait_for_records(2)
    assert sorted(_emails(daemon)) == ["ada@example.com", "bob@example.com"]
    assert relay.sent == 2
    engine.dispose()


def test_a_relay_killed_at_any_point_sends_each_committed_row_once(
    daemon: Daemon, tmp_path: Path,
) -> None:
    import signal
    import subprocess

    from tests.harness import EVENTBUS, wait_for

    url = f"sqlite:///{tmp_path / 'app.db'}"
    outbox = Outbox()
    engine = _engine(url, outbox)
    with Session(engine) as session:
        for n in range(600):
            with session.begin():
                outbox.emit(session, "user_created", email=f"{n}@example.com")
                if n % 3 == 2:
                    session.rollback()  # a third roll back: never sent

    log = tmp_path / "relay.log"

    def relay() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen([EVENTBUS, "relay", "--db", url, "--batch", "7"],
                                    env=daemon.env, cwd=daemon.root, stderr=out)

    first = relay()
    wait_for(lambda: len(daemon.records()) >= 100, explain=lambda: str(len(daemon.records())))
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = relay()
    wait_for(lambda: log.read_text().count("relaying eventbus_outbox") == 2, explain=log.read_text)
    try:
        wait_for(lambda: len(daemon.records()) >= 400, 30, lambda: str(len(daemon.records())))
        with engine.connect() as connection:  # the rows go once the daemon has them
            wait_for(lambda: connection.execute(text("SELECT count(*) FROM eventbus_outbox")
                                                ).scalar() == 0)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=10) == 0
    emails = _emails(daemon)
    assert len(emails) == len(set(emails)) == 400
    assert {f"{n}@example.com" for n in range(600) if n % 3 != 2} == set(emails)
    engine.dispose()


def test_the_relay_command_names_a_database_it_cannot_use(daemon: Daemon,
                                                          tmp_path: Path) -> None:
    unreachable = daemon.cli("relay", "--db", f"postgresql+psycopg://nobody@/none?host={tmp_path}")
    assert unreachable.returncode == 1
    assert "the outbox relay cannot use the database" in unreachable.stderr
    assert "check the URL (--db)" in unreachable.stderr
    malformed = daemon.cli("relay", "--db", "not a url")
    assert malformed.returncode == 1
    assert "cannot use --db 'not a url'" in malformed.stderr
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE eventbus_outbox (id INTEGER)"))
    wrong = daemon.cli("relay", "--db", f"sqlite:///{tmp_path / 'app.db'}", "--once")
    assert wrong.returncode == 1
    assert "exists without the outbox's columns" in wrong.stderr
    engine.dispose()


def test_a_refusal_amid_pipelined_batches_deletes_exactly_the_rows_the_daemon_took(
    short_dir: Path, tmp_path: Path,
) -> None:
    outbox = Outbox()
    engine = _engine(f"sqlite:///{tmp_path / 'app.db'}", outbox)
    with engine.begin() as connection:  # ~60 rows a batch under a 64 KiB message limit
        for n in range(300):
            if n == 150:
                outbox.emit(connection, "strict", n="not a number")
            else:
                outbox.emit(connection, "user_created", email=f"{n}@example.com", pad="x" * 900)
    with running(short_dir, listeners=LISTENERS,
                 config="[daemon]\nmax_message_bytes = 65536\n") as daemon:
        relay = Relay(engine, daemon.socket, outbox=outbox)
        while relay.forward():
            pass
        daemon.wait_for_records(299)
        emails = _emails(daemon)
        relay.close()
    assert len(emails) == len(set(emails)) == 299
    with engine.connect() as connection:
        assert connection.execute(text("SELECT event FROM eventbus_outbox")).scalars().all() == [
            "strict"]
    engine.dispose()
