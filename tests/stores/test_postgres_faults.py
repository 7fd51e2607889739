"""What a daemon on PostgreSQL does when the database turns read-only, holds tables of a
newer eventbus, or has no connection left: in-process daemons on the session's real
cluster (the contract suite's fixtures)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from eventbus_cli.daemon.server import serve
from eventbus_cli.errors import BackendError, RemoteError
from tests.stores import probe
from tests.stores.conftest import Daemons, Store

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60), pytest.mark.stores("postgres")]


async def _until(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Ask ``condition`` again until it holds; fail after ``seconds``."""
    with anyio.fail_after(seconds):
        while not await condition():  # noqa: ASYNC110 - the daemon's state, asked again
            await anyio.sleep(0.02)


async def _sql(store: Store, *statements: str) -> list[Any]:
    """Run ``statements`` as the superuser; the first row of the last."""
    import psycopg

    assert store.postgres is not None
    async with await psycopg.AsyncConnection.connect(store.postgres.url(),
                                                     autocommit=True) as conn:
        row: Any = None
        for statement in statements:
            cur = await conn.execute(statement)
            row = await cur.fetchone() if cur.description else None
        return list(row or [])


async def _serve_fails(daemons: Daemons, name: str) -> BackendError:
    """Start a daemon that must refuse to start; the error it raised."""
    config = daemons.config(name, {"shutdown_timeout": 2}, {})
    with pytest.raises(BackendError) as refused:
        await serve(config)
    return refused.value


async def test_a_read_only_database_refuses_emits_and_acknowledges_none(
    daemons: Daemons, store: Store,
) -> None:
    database = f"ro_{daemons.schema}"
    await _sql(store, f"CREATE DATABASE {database}")
    assert store.postgres is not None
    url = store.postgres.url(database)
    daemons.store.tables = lambda root, name: {"backend": {
        "url": url, "prefix": "eventbus", "name": name, "claim_after": 2.0}}
    async with daemons.run("a") as client:
        await client.emit("work")
        await probe.wait_runs(1, "work")
        # A failover to a replica, as the daemon's sessions see it: writes are refused.
        await _sql(store, f"ALTER DATABASE {database} SET default_transaction_read_only = on",
                   f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                   f"datname = '{database}' AND pid <> pg_backend_pid()")
        refused: list[RemoteError] = []
        answered = 1

        async def emit_refused() -> bool:
            nonlocal answered
            try:
                await client.emit("work")
            except RemoteError as exc:
                refused.append(exc)
                return "read-only" in str(exc)
            answered += 1  # taken before the sessions ended
            return False

        await _until(emit_refused, 20)
        status = await client.status()
        await _sql(store, f"ALTER DATABASE {database} SET default_transaction_read_only = off",
                   f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                   f"datname = '{database}' AND pid <> pg_backend_pid()")

        async def accepted() -> bool:
            try:
                await client.emit("work")
            except RemoteError:
                return False
            return True

        await _until(accepted, 20)
        answered += 1
        await probe.wait_runs(answered, "work")
        assert await client.join(20)
    assert not status.health.healthy
    assert any("read-only" in problem for problem in status.health.problems)
    assert refused[-1].code == "backend_unavailable"
    assert "not acknowledged" in str(refused[-1]) or "nothing was accepted" in str(refused[-1])
    assert len(probe.of("work")) == answered  # each answered emit ran; no refused one did


async def test_a_daemon_does_not_start_on_a_read_only_database(daemons: Daemons,
                                                               store: Store) -> None:
    database = f"ro_{daemons.schema}"
    await _sql(store, f"CREATE DATABASE {database}",
               f"ALTER DATABASE {database} SET default_transaction_read_only = on")
    assert store.postgres is not None
    url = store.postgres.url(database)
    daemons.store.tables = lambda root, name: {"backend": {"url": url, "name": name}}
    error = await _serve_fails(daemons, "a")
    assert "read-only" in str(error)
    assert "primary" in str(error)


async def test_tables_of_a_newer_eventbus_are_refused_with_what_to_do(daemons: Daemons,
                                                                     store: Store) -> None:
    async with daemons.run("a"):
        pass
    await _sql(store, f"UPDATE {daemons.schema}.meta SET value = '99' WHERE key = 'version'")
    error = await _serve_fails(daemons, "b")
    assert "version 99" in str(error)
    assert "upgrade eventbus" in str(error)


async def test_a_daemon_that_finds_no_connection_left_says_so(daemons: Daemons,
                                                             store: Store) -> None:
    role = f"few_{daemons.schema}"  # a superuser is never limited: a role that is
    await _sql(store, f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1",
               f"CREATE DATABASE {role} OWNER {role}")
    assert store.postgres is not None
    url = store.postgres.url(role).replace("postgres@", f"{role}@")
    daemons.store.tables = lambda root, name: {"backend": {
        "url": url, "name": name, "command_timeout": 1}}
    error = await _serve_fails(daemons, "a")  # a daemon needs more than one connection
    assert "too many connections" in str(error)
    assert "CONNECTION LIMIT" in str(error)
