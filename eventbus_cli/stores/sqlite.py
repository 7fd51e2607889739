"""``SqliteJournal``: the SQLite store, which a memory broker writes every change through to,
so a restart resumes it.

Every change the broker makes (a delivery queued, an attempt ended, a delivery dropped) is
noted on the event loop at the cost of a dict write; a writer task commits the changes noted
so far as one transaction in a worker thread, while new ones gather for the next (group
commit). A delivery that succeeds before its group is written is never written at all. The
daemon answers an emit only once :meth:`SqliteJournal.settled` returns, so an acknowledged
event is on disk or already handled.

The file is opened in WAL mode with ``synchronous=FULL`` and an exclusive lock, so a second
daemon on the same journal is refused instead of running its deliveries twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from ..bus.delivery import Delivery, DeliveryState
from ..bus.timings import Histogram
from ..errors import JournalError
from ..protocol.results import BackendStatus, JournalStatus
from .writer import WriteBehind

__all__ = ("SqliteJournal",)

logger = logging.getLogger("eventbus.journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    event TEXT NOT NULL,
    listener TEXT NOT NULL,
    args TEXT NOT NULL,
    kwargs TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    traceback TEXT,
    created REAL,
    failed REAL,
    due REAL,
    priority INTEGER,
    order_key TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, expires REAL NOT NULL,
                                 answer TEXT NOT NULL);
"""
_UPSERT = "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Columns added after the first release, with their type: older journals gain them on open.
_ADDED = {"created": "REAL", "failed": "REAL", "due": "REAL", "priority": "INTEGER",
          "order_key": "TEXT"}
_DELETE = "DELETE FROM deliveries WHERE id = ?"
_NEXT_ID = "INSERT OR REPLACE INTO meta VALUES ('next_id', ?)"
# ASCII JSON: lone surrogates, which a client may send and UTF-8 cannot hold, become escapes.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=repr)
LINGER_SECONDS = 0.002
"""How long the writer lets changes gather before it commits them as one group."""
_NOT_LOADED = "is not loaded any more, so this delivery cannot run"
_MOVE_ASIDE = "move the file aside (the daemon then starts an empty journal), or restore a backup"


class SqliteJournal:
    """Every change of a :class:`~eventbus_cli.bus.memory.MemoryBroker`, committed to a
    SQLite file (the broker's ``journal``).

    Opening it reads what the file holds; the broker takes the deliveries back at its first
    :meth:`take_loaded`: failed ones into the failed list, the rest queued again, those of
    a listener that is not loaded failed with that reason.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commit_times = Histogram()
        """How long each commit took (for metrics)."""
        self._db, next_id = _open(path)
        self._loaded: list[Delivery] | None = self._read()
        self._next_id = next_id
        self._changes: dict[int, Delivery | None] = {}  # id -> row to write, or None: delete
        self._fires: dict[str, float] = {}  # schedule fires not written yet
        self._fired = self._read_fires()
        self._key_rows: dict[str, tuple[float, str] | None] = {}  # keys to write, or drop
        # Keys that expired while no daemon ran are of no more use; if this fails, the first
        # commit names the journal's problem.
        with contextlib.suppress(sqlite3.Error), self._db:
            self._db.execute("DELETE FROM keys WHERE expires <= ?", (time.time(),))
        self._sent_max = next_id - 1  # ids above this were never handed to the writer
        self._top = next_id - 1  # the highest id given out, written or not
        self._rounds = WriteBehind()
        self._failure: JournalError | None = None
        self._limiter = anyio.CapacityLimiter(1)

    def describe(self) -> str:
        return f"journal {self.path}"

    def status(self) -> tuple[JournalStatus | None, BackendStatus | None]:
        failure = None if self._failure is None else str(self._failure)
        return JournalStatus(str(self.path), self.size_on_disk(), failure is None, failure), None

    def problems(self) -> list[str]:
        return [] if self._failure is None else [f"emits are refused: {self._failure}"]

    def dedupe_keys(self) -> list[tuple[str, float, dict[str, Any]]]:
        return [(key, expires, json.loads(answer)) for key, expires, answer in self._db.execute(
            "SELECT key, expires, answer FROM keys ORDER BY expires")]

    def _read(self) -> list[Delivery]:
        found = []
        query = "SELECT id, event, listener, args, kwargs, state, attempts, error, traceback, " \
                "created, failed, due, priority, order_key FROM deliveries ORDER BY id"
        for row in self._db.execute(query):
            delivery_id, event, name, args, kwargs, state, attempts, error, trace = row[:9]
            created, failed_at, due = (value if isinstance(value, float) else None
                                       for value in row[9:12])
            priority, order_key = row[12:]
            try:
                values = json.loads(args), json.loads(kwargs)
                if not (isinstance(values[0], list) and isinstance(values[1], dict)
                        and isinstance(event, str) and isinstance(name, str)
                        and isinstance(attempts, int)):
                    raise ValueError("a field holds the wrong kind of value")
            except (ValueError, TypeError) as exc:
                self._db.close()
                raise JournalError(self.path, f"delivery {delivery_id} cannot be read ({exc})",
                                   "fix that row, or take it out to keep it: `sqlite3 "
                                   f"{self.path} \"DELETE FROM deliveries WHERE id = "
                                   f"{delivery_id}\"`; the other deliveries stay") from None
            delivery = Delivery(delivery_id, event, tuple(values[0]), values[1], name,
                                size=len(args) + len(kwargs), created_at=created)
            delivery.state = (DeliveryState.FAILED if state == DeliveryState.FAILED
                              else DeliveryState.SCHEDULED if state == DeliveryState.SCHEDULED
                              and due is not None else DeliveryState.PENDING)
            delivery.due_at = due
            delivery.attempts, delivery.error, delivery.traceback = attempts, error, trace
            delivery.failed_at = failed_at
            if priority in (0, 2):
                delivery.priority = priority
            if isinstance(order_key, str):
                delivery.order_key = order_key
            found.append(delivery)
        return found

    def _read_fires(self) -> dict[str, float]:
        rows = self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'fire:%'")
        return {key.removeprefix("fire:"): value / 1000 for key, value in rows}

    def fires(self) -> dict[str, float]:
        return dict(self._fired)

    def pauses(self) -> dict[str, float | None]:
        rows = self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'paused:%'")
        now = time.time()
        return {key.removeprefix("paused:"): until / 1000 if until > 0 else None
                for key, until in rows if until <= 0 or until / 1000 > now}

    async def keep_pause(self, name: str, paused: bool, until: float | None = None) -> None:
        def write() -> None:
            try:
                with self._db:
                    if paused:
                        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                         ("paused:" + name, int(until * 1000) if until else 0))
                    else:
                        self._db.execute("DELETE FROM meta WHERE key = ?", ("paused:" + name,))
            except sqlite3.Error as exc:
                raise JournalError(self.path, f"cannot write it: {exc}") from exc

        await anyio.to_thread.run_sync(write, limiter=self._limiter)

    def remember(self, key: str, expires: float, answer: dict[str, Any],
                 dropped: Sequence[str]) -> None:
        self._key_rows[key] = (expires, _ENCODER.encode(answer))
        for gone in dropped:
            self._key_rows[gone] = None
        self._note(1)

    def note_fire(self, name: str, when: float) -> None:
        self._fired[name] = when
        self._fires[name] = when
        self._note(1)

    def take_loaded(self, served: Sequence[str]) -> tuple[list[Delivery], int, str] | None:
        if self._loaded is None:
            return None
        loaded, self._loaded = self._loaded, None
        _rename_bare(loaded, served)
        kept = sum(delivery.state is DeliveryState.FAILED for delivery in loaded)
        logger.info("journal %s: %d deliveries to resume, %d failed kept", self.path,
                    len(loaded) - kept, kept)
        return loaded, self._next_id, _NOT_LOADED

    @property
    def failure(self) -> JournalError | None:
        """Why the last commit failed, while the journal cannot be written; else None."""
        return self._failure

    def size_on_disk(self) -> int:
        """Bytes on disk: the database and its write-ahead log."""
        wal = self.path.with_name(self.path.name + "-wal")
        return sum(file.stat().st_size for file in (self.path, wal) if file.exists())

    # -- write-through: called by the memory broker on the event loop ------------------------

    def kept(self, deliveries: Sequence[Delivery]) -> None:
        changes = self._changes
        for delivery in deliveries:
            changes[delivery.id] = delivery
        if deliveries:
            self._top = max(self._top, deliveries[-1].id)
        self._note(len(deliveries))

    def forgotten(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            if delivery.id > self._sent_max:  # never written: nothing to delete
                self._changes.pop(delivery.id, None)
            else:
                self._changes[delivery.id] = None
        self._note(len(deliveries))

    def _note(self, count: int) -> None:
        self._rounds.noted()

    # -- writing ----------------------------------------------------------------------------

    async def settled(self) -> None:
        """Return once every change the current task noted is committed; raise
        :class:`JournalError` if the journal cannot be written."""
        if self._failure is not None:
            raise self._failure
        await self._rounds.settled()

    async def run(self) -> None:
        """Commit the changes as they are noted, a group at a time; until cancelled."""
        rounds = self._rounds
        while True:
            await rounds.wait_for_work()
            # Linger a moment: deliveries that finish meanwhile need never be written.
            await anyio.sleep(LINGER_SECONDS)
            number, changes, fires = rounds.begin(), self._changes, self._fires
            keys, self._key_rows = self._key_rows, {}
            self._changes, self._fires = {}, {}
            if not changes and not fires and not keys:  # all cancelled out (done, unwritten)
                rounds.end(number)
                continue
            if changes:
                self._sent_max = max(self._sent_max, max(changes))
            try:
                began = time.monotonic()
                await anyio.to_thread.run_sync(self._write, changes, self._top + 1, fires,
                                               keys, limiter=self._limiter)
                self.commit_times.observe(time.monotonic() - began)
            except anyio.get_cancelled_exc_class():
                # Written or not, close() writes these again: each change is idempotent.
                self._changes = {**changes, **self._changes}
                self._fires = {**fires, **self._fires}
                self._key_rows = {**keys, **self._key_rows}
                raise
            except JournalError as exc:
                logger.error("%s; the daemon keeps the changes and tries again", exc)
                self._failure = exc
                self._changes = {**changes, **self._changes}
                self._fires = {**fires, **self._fires}
                self._key_rows = {**keys, **self._key_rows}
                rounds.end(number, exc)
                rounds.again()
                await anyio.sleep(1)
                continue
            self._failure = None
            rounds.end(number)

    def _write(self, changes: dict[int, Delivery | None], next_id: int,
               fires: dict[str, float] | None = None,
               keys: dict[str, tuple[float, str] | None] | None = None) -> None:
        rows = []
        gone = []
        for delivery_id, delivery in changes.items():
            if delivery is None:
                gone.append((delivery_id,))
            else:
                rows.append(_row(delivery))
        try:
            db = self._db
            db.execute("BEGIN")
            if gone:
                db.executemany(_DELETE, gone)
            if rows:
                db.executemany(_UPSERT, rows)
            db.execute(_NEXT_ID, (next_id,))
            if fires:
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                               [("fire:" + name, int(when * 1000)) for name, when in
                                fires.items()])
            if keys:
                db.executemany("DELETE FROM keys WHERE key = ?",
                               [(key,) for key, row in keys.items() if row is None])
                db.executemany("INSERT OR REPLACE INTO keys VALUES (?, ?, ?)",
                               [(key, *row) for key, row in keys.items() if row is not None])
            db.execute("COMMIT")
        except Exception as exc:  # sqlite3.Error, or a value it cannot take
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise JournalError(self.path, f"cannot write it: {exc}") from exc

    def close(self) -> None:
        """Commit what is left and close the file."""
        try:
            changes, self._changes = self._changes, {}
            fires, self._fires = self._fires, {}
            keys, self._key_rows = self._key_rows, {}
            self._write(changes, self._top + 1, fires, keys)
        finally:
            self._db.close()


def _row(delivery: Delivery) -> tuple[object, ...]:
    state = delivery.state
    if state not in _KEPT_STATES:
        state = DeliveryState.PENDING  # queued or running: either way it runs again on start
    return (delivery.id, delivery.event, delivery.listener, _ENCODER.encode(delivery.args),
            _ENCODER.encode(delivery.kwargs), state.value, delivery.attempts,
            _text(delivery.error), _text(delivery.traceback), delivery.created_at,
            delivery.failed_at, delivery.due_at, delivery.priority, _text(delivery.order_key))


_KEPT_STATES = (DeliveryState.FAILED, DeliveryState.RETRYING, DeliveryState.SCHEDULED)


def _text(value: str | None) -> str | None:
    """``value`` as SQLite can store it: a lone surrogate becomes its escape, as text."""
    if value is None or value.isascii():
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _open(path: Path) -> tuple[sqlite3.Connection, int]:
    """Open or create the journal; :class:`JournalError` if it is corrupt or locked.

    Returns the connection and the next delivery id to give out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise JournalError(path, f"cannot open it: {exc}") from exc
    try:
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
            raise JournalError(path, "SQLite could not put it in WAL mode")
        db.execute("PRAGMA synchronous = FULL")
        db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        columns = {row[1] for row in db.execute("PRAGMA table_info(deliveries)")}
        for column, kind in _ADDED.items():
            if column not in columns:
                db.execute(f"ALTER TABLE deliveries ADD COLUMN {column} {kind}")
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise JournalError(path, "it is corrupt: " + "; ".join(problems[:3]), _MOVE_ASIDE)
        row = db.execute("SELECT value FROM meta WHERE key = 'next_id'").fetchone()
        top = db.execute("SELECT max(id) FROM deliveries").fetchone()[0] or 0
    except sqlite3.OperationalError as exc:
        db.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise JournalError(path, "it is locked by another process", "stop the other "
                               "eventbus daemon using it, or give this one its own "
                               "[journal] path") from None
        if "readonly" in str(exc) or "read-only" in str(exc):
            raise JournalError(path, f"it cannot be written: {exc}", "give this user write "
                               f"access to it and to {path.parent} (the journal writes a -wal "
                               "file beside it); the deliveries in it are kept") from None
        raise JournalError(path, f"cannot use it: {exc}", _MOVE_ASIDE) from None
    except sqlite3.DatabaseError as exc:
        db.close()
        raise JournalError(path, f"not a journal, or corrupt: {exc}", _MOVE_ASIDE) from None
    except JournalError:
        db.close()
        raise
    next_id = max(row[0] if row else 1, top + 1)
    if next_id > _LAST_ID - _ID_HEADROOM:  # SQLite's integers end at 2**63 - 1
        db.close()
        raise JournalError(path, f"its delivery ids are used up (the next would be {next_id}, "
                           f"and SQLite's last is {_LAST_ID})", "let it drain, then move the "
                           "file aside (the daemon then starts an empty journal, ids from 1)")
    return db, next_id


_LAST_ID = 2**63 - 1
_ID_HEADROOM = 2**32
"""Ids kept in reserve: a daemon that starts this close to the end is refused, as one that
ran out mid-emit would refuse every emit from then on."""


def _rename_bare(deliveries: Sequence[Delivery], served: Sequence[str]) -> None:
    """Journals written before listener names took their module name a listener by its
    function's name alone (``send_email``);
    such a delivery goes to the one listener now named ``module:send_email`` (or
    ``module:outer.send_email``), if there is exactly one."""
    by_function: dict[str, list[str]] = {}
    for name in served:
        if ":" in name:
            by_function.setdefault(name.rpartition(":")[2].rpartition(".")[2], []).append(name)
    for delivery in deliveries:
        found = by_function.get(delivery.listener, []) if ":" not in delivery.listener else []
        if len(found) == 1:
            delivery.listener = found[0]
