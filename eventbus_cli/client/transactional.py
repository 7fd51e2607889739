"""``Outbox``: emit inside the application's own database transaction.

``outbox.emit(session, "user_created", email=...)`` (or ``await outbox.aemit(...)`` with an
async session) adds one row to the outbox table of the application's database, in the
transaction the session or connection has open, and nothing else: the event exists if and
only if that transaction commits. A :class:`~eventbus_cli.client.relay.Relay` forwards
committed rows to the daemon and deletes them once it has them. SQLAlchemy 2 (the ``outbox``
extra), sync or async sessions and connections; PostgreSQL and SQLite.
"""

from __future__ import annotations

import inspect
import json
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..names import validate_event_id
from .calls import trace_fields

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

__all__ = ("CHANNEL", "TABLE", "Outbox")

TABLE = "eventbus_outbox"
"""The outbox table's default name."""
CHANNEL = "eventbus_outbox"
"""The PostgreSQL channel a row's insert notifies (by the table's trigger): relays listen."""


class Outbox:
    """The outbox table ``table`` (in ``schema``, if given) of the application's database:
    ``emit`` writes an event into it in the caller's transaction. Columns: ``id`` (the order
    rows are sent in), ``event``, ``body`` (the JSON of its arguments), ``created`` (Unix
    time), ``error`` (why the daemon refused it for good; the relay skips such a row)."""

    def __init__(self, table: str = TABLE, *, schema: str | None = None) -> None:
        self.name = table
        self.schema = schema

    @cached_property
    def table(self) -> Table:
        """The table, as SQLAlchemy Core describes it."""
        try:
            from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text
        except ImportError:
            raise ImportError("the transactional outbox needs SQLAlchemy 2: pip install "
                              "'eventbus-cli[outbox]'") from None
        return Table(
            self.name, MetaData(schema=self.schema),
            Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                   autoincrement=True),
            Column("event", String(200), nullable=False),
            Column("body", Text, nullable=False),
            Column("created", Float, nullable=False),
            Column("error", Text, nullable=True))

    def row(self, event_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The row of one event; raises for a bad id or arguments that are not JSON values,
        here at the call rather than in the relay."""
        validate_event_id(event_id)
        try:
            body = json.dumps({"args": list(args), "kwargs": kwargs, **trace_fields()},
                              separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"event {event_id!r}: the arguments must be JSON values ({exc})"
                            ) from None
        return {"event": event_id, "body": body, "created": time.time()}

    def emit(self, session: Any, event_id: str, /, *args: Any, **kwargs: Any) -> None:
        """Write the event into the outbox in ``session``'s transaction (a SQLAlchemy
        ``Session`` or ``Connection``); it is sent once that transaction commits."""
        if inspect.iscoroutinefunction(getattr(session, "execute", None)):
            raise TypeError(f"{type(session).__name__} is async: use `await "
                            "outbox.aemit(session, ...)`")
        _check_executes(session)
        session.execute(self.table.insert(), self.row(event_id, args, kwargs))

    async def aemit(self, session: Any, event_id: str, /, *args: Any, **kwargs: Any) -> None:
        """As :meth:`emit`, for an ``AsyncSession`` or ``AsyncConnection``."""
        if not inspect.iscoroutinefunction(getattr(session, "execute", None)):
            _check_executes(session)
            raise TypeError(f"{type(session).__name__} is not async: use "
                            "`outbox.emit(session, ...)`")
        await session.execute(self.table.insert(), self.row(event_id, args, kwargs))

    def create(self, connection: Connection) -> None:
        """Create the table where it is missing (on PostgreSQL with the trigger that wakes
        relays), and check the columns of one that exists."""
        from sqlalchemy import inspect as inspect_db
        from sqlalchemy import text

        found = inspect_db(connection)
        if found.has_table(self.name, schema=self.schema):
            columns = {column["name"] for column in found.get_columns(self.name,
                                                                      schema=self.schema)}
            wanted = {column.name for column in self.table.columns}
            if not wanted <= columns:
                raise ValueError(
                    f"table {self.qualified} exists without the outbox's columns (missing: "
                    f"{', '.join(sorted(wanted - columns))}): name another table "
                    f"(Outbox(table=...), eventbus relay --table), or drop that one")
            return
        self.table.create(connection)
        if connection.dialect.name == "postgresql":
            for statement in self.notify_ddl():
                connection.execute(text(statement))

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def notify_ddl(self) -> list[str]:
        """PostgreSQL: the function and trigger that notify :data:`CHANNEL` at the commit of
        a transaction that wrote rows (for a migration that creates the table itself)."""
        function = f"{self.qualified}_notify"
        return [
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$",
            f"CREATE TRIGGER {self.name}_notify AFTER INSERT ON {self.qualified} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        ]


def _check_executes(session: Any) -> None:
    if not callable(getattr(session, "execute", None)):
        raise TypeError(f"the outbox writes through a SQLAlchemy Session or Connection, not "
                        f"{type(session).__name__}")
