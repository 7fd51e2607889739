"""``Relay``: forwards the committed rows of an :class:`~.transactional.Outbox` to the daemon.

A round takes the oldest rows (by id; on PostgreSQL locked ``FOR UPDATE SKIP LOCKED``, so two
relays never send one row), sends them in ``emit_many`` batches, each event with a dedupe key
made from its row, and deletes the rows the daemon acknowledged, in one transaction. A crash
anywhere sends a row again at most: its key makes the daemon answer it as a duplicate, so it
is handled once (within the daemon's ``dedupe_window``, and across its restarts with a
journal). A row the daemon refuses for good (bad arguments, an unknown id under
``require_listener``, too large) keeps its place with the reason in ``error``, logged; the
relay skips it until an operator clears ``error`` (or deletes the row).

Rounds run in a worker thread, on a sync SQLAlchemy engine and the sync :class:`Client`. On
PostgreSQL the relay waits for the table's NOTIFY between rounds; elsewhere it polls.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ..errors import (
    EventbusError,
    RemoteError,
)
from .calls import daemon_socket
from .sync import Client
from .transactional import CHANNEL, TABLE, Outbox

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ("Relay", "sync_url")

logger = logging.getLogger("eventbus.relay")

_BACKOFF_FIRST, _BACKOFF_MAX = 0.05, 2.0


def sync_url(url: str) -> str:
    """``url`` with a sync driver in place of an async one (the relay runs in a thread):
    ``sqlite+aiosqlite`` -> ``sqlite``, ``postgresql+asyncpg`` -> ``postgresql+psycopg``."""
    scheme, sep, rest = url.partition("://")
    dialect, _, driver = scheme.partition("+")
    if driver in ("aiosqlite", "pysqlite", ""):
        driver = "" if dialect == "sqlite" else driver
    if driver in ("asyncpg", "psycopg_async", "psycopg"):
        driver = "psycopg"
    return f"{dialect}{'+' + driver if driver else ''}{sep}{rest}"


class Relay:
    """Forward the outbox table of ``db`` (a URL or a SQLAlchemy ``Engine``; an async
    driver's URL is used with its sync driver) to the daemon on ``socket`` (default: the
    one the CLI would use). ``create_table`` creates the table where it is missing."""

    def __init__(self, db: str | Engine, socket: Path | str | None = None, *,
                 outbox: Outbox | None = None, table: str = TABLE, batch: int = 1000,
                 poll: float = 0.1, create_table: bool = True) -> None:
        self.outbox = outbox or Outbox(table)
        self._db = db
        self.socket_path, self._trusted = daemon_socket(socket)
        self.batch = batch
        self.poll = poll
        self.create_table = create_table
        self.sent = 0
        """Rows the daemon acknowledged (and the relay deleted)."""
        self.refused = 0
        """Rows the daemon refused for good (kept, with ``error`` set)."""
        self._client: Client | None = None
        self._engine: Engine | None = None
        self._listener: Any = None  # PostgreSQL: a connection LISTENing on CHANNEL

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            if isinstance(self._db, str):
                try:
                    from sqlalchemy import create_engine
                except ImportError:
                    raise EventbusError("the outbox relay needs SQLAlchemy 2: pip install "
                                        "'eventbus-cli[outbox]'") from None
                try:
                    self._engine = create_engine(sync_url(self._db))
                except Exception as exc:  # a malformed URL, a driver that is not installed
                    raise EventbusError(f"the outbox relay cannot use --db {self._db!r}: {exc} "
                                        "(a SQLAlchemy URL, as postgresql+psycopg://user@host/"
                                        "db or sqlite:///app.db, whose driver is installed)"
                                        ) from None
            else:
                self._engine = self._db
        return self._engine

    def prepare(self) -> None:
        """Check the database answers, and create (or check) the table; an
        :class:`EventbusError` says what is wrong."""
        from sqlalchemy.exc import SQLAlchemyError

        where = self.engine.url.render_as_string(hide_password=True)
        try:
            with self.engine.begin() as connection:
                if self.create_table:
                    self.outbox.create(connection)
        except SQLAlchemyError as exc:
            problem = str(getattr(exc, "orig", None) or exc).strip()
            raise EventbusError(f"the outbox relay cannot use the database {where}: "
                                f"{problem.splitlines()[0] if problem else type(exc).__name__}"
                                "; check the URL (--db), that the database runs, and that this "
                                "user may create and use the outbox table") from None
        except ValueError as exc:  # a table without the outbox's columns
            raise EventbusError(str(exc)) from None

    def forward(self) -> int:
        """One round: send the oldest rows, delete those the daemon took (and mark one it
        refused for good); return how many rows the round settled. Raises what stops the
        round (the daemon away or refusing for now, the database away), once the rows the
        daemon took are deleted."""
        from sqlalchemy import delete, select, update

        table = self.outbox.table
        columns = table.c
        with self.engine.begin() as connection:
            query = (select(columns.id, columns.event, columns.body, columns.created)
                     .where(columns.error.is_(None)).order_by(columns.id).limit(self.batch))
            if connection.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = connection.execute(query).all()
            if not rows:
                return 0
            events = [{"event": row.event, **json.loads(row.body),
                       "key": f"outbox:{self.outbox.name}:{row.id}:{int(row.created * 1e6)}"}
                      for row in rows]
            result = self._daemon().emit_many(events)
            # Batches go pipelined: the rows taken are those of no rejected range.
            rejected = {index for start, stop in result.rejected for index in range(start, stop)}
            taken = [row.id for index, row in enumerate(rows) if index not in rejected]
            if taken:
                connection.execute(delete(table).where(columns.id.in_(taken)))
            self.sent += len(taken)
            error, index = result.error, _index(result.error)
            if error is not None and error.for_good and index is not None and index < len(rows):
                row = rows[index]
                connection.execute(update(table).where(columns.id == row.id).values(
                    error=str(error)))
                self.refused += 1
                logger.error("the daemon refused outbox row %d (event %r) for good; it stays "
                             "in %s with the reason in `error`, skipped until that is "
                             "cleared: %s", row.id, row.event, self.outbox.qualified, error)
                return len(taken) + 1
        if error is not None:
            raise error  # the rows it took are deleted: the rest go again after a pause
        return len(taken)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                  ) -> None:
        """Forward rows until cancelled; a daemon or database away is waited out with
        backoff (logged once per spell)."""
        await anyio.to_thread.run_sync(self.prepare)
        task_status.started()
        pause: float | None = None
        try:
            while True:
                try:
                    moved = await anyio.to_thread.run_sync(self.forward)
                except Exception as exc:  # the daemon or the database: both come back
                    self._drop_client()
                    if pause is None:
                        logger.warning("the outbox relay cannot forward rows of %s (%s); "
                                       "trying again with backoff", self.outbox.qualified,
                                       exc)
                        pause = _BACKOFF_FIRST
                    await anyio.sleep(pause)
                    pause = min(pause * 2, _BACKOFF_MAX)
                    continue
                if pause is not None:
                    logger.info("the outbox relay forwards rows again")
                    pause = None
                if moved < self.batch:
                    await self._wait_for_rows()
        finally:
            self.close()

    async def _wait_for_rows(self) -> None:
        """Until rows may have come: a NOTIFY on PostgreSQL (at most a second), else the
        poll interval."""
        if (self.engine.dialect.name, self.engine.dialect.driver) != ("postgresql", "psycopg"):
            await anyio.sleep(self.poll)  # LISTEN is read through psycopg 3
            return
        await anyio.to_thread.run_sync(self._notified, 1.0, abandon_on_cancel=True)

    def _notified(self, seconds: float) -> None:
        if self._listener is None:
            self._listener = self.engine.raw_connection()
            self._listener.driver_connection.autocommit = True
            self._listener.driver_connection.execute(f"LISTEN {CHANNEL}")
        for _ in self._listener.driver_connection.notifies(timeout=seconds, stop_after=1):
            pass

    def _daemon(self) -> Client:
        if self._client is None:
            self._client = Client(self.socket_path, trusted_uids=self._trusted)
        return self._client

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        """Close the daemon connection and the database connections."""
        self._drop_client()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._engine is not None and isinstance(self._db, str):
            self._engine.dispose()

    def __repr__(self) -> str:
        return f"Relay({self.outbox.qualified} -> {self.socket_path}, sent {self.sent})"


def _index(error: RemoteError | None) -> int | None:
    """The index, among the rows sent, of the event ``error`` refused, if it names one."""
    index = error.details.get("index") if error is not None else None
    return index if isinstance(index, int) else None


def relay_until_stopped(relay: Relay, *, once: bool = False) -> int:
    """Run ``relay`` until SIGTERM or SIGINT (``once``: forward what waits now, then stop);
    return how many rows it forwarded. For ``eventbus relay``."""
    import signal

    async def main() -> None:
        await anyio.to_thread.run_sync(relay.prepare)  # its error stands alone, not in a group
        if once:
            while await anyio.to_thread.run_sync(relay.forward) >= relay.batch:
                pass
            relay.close()
            return
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as group:
                await group.start(relay.run)
                logger.info("relaying %s to the daemon on %s", relay.outbox.qualified,
                            relay.socket_path)
                async for _ in signals:
                    group.cancel_scope.cancel()
                    break

    anyio.run(main)
    return relay.sent
