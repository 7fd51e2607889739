"""``Link``: every statement the shared broker runs on PostgreSQL, through psycopg 3's
async connection pool (a :class:`~..shared.link.Link`).

A listener's deliveries are rows of ``deliveries`` (``schema.py``); a daemon *reads* them by
claiming a batch with ``FOR UPDATE SKIP LOCKED`` (so two daemons never read one row), which
sets it as the row's ``owner`` until ``lease_until``. The broker renews what it holds while
it lives; rows whose lease ran out are taken over by another daemon. Every time is the
database's clock. An entry (``stream``, ``entry_id``) is here the listener's name and the
delivery's id.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

import anyio

from ...bus.delivery import Delivery, DeliveryState, EmitterStats, ListenerStats
from ...config import BackendConfig
from ...errors import BackendError
from ..shared.codec import decode_failed, decode_payload, encode_failed, encode_payload
from ..shared.counts import bus_stats, pid_alive
from ..shared.link import Entry, masked
from ..shared.outbound import Emit
from . import schema
from .views import Views

__all__ = ("Link", "open_link")

logger = logging.getLogger("eventbus.backend")

_OLDEST = 130000  # PostgreSQL 13
_ALIVE = 3.0  # seconds: a daemon whose beat is older is not counted as live
_POOL = 6  # connections per daemon at most: writer, reader, upkeep and requests
_POOL_LEAST = 2  # kept open; and one more listens
_NOTE = 7900  # bytes of a record's NOTIFY text at most (the server takes 8,000)
_ACTIVE = "state <> 'failed'"


def _id(entry_id: bytes) -> int:
    return int(entry_id)


def _entry(delivery_id: int) -> bytes:
    return str(delivery_id).encode()


async def open_link(config: BackendConfig, name: str) -> Link:
    """Connect, check the server (PostgreSQL 13 or later, not a read-only replica), create
    or migrate the bus's tables, and check that no live daemon has this daemon's name; a
    :class:`BackendError` names the URL and what to do."""
    url, schema_name = masked(config.url), config.prefix
    try:
        import psycopg
        import psycopg_pool  # noqa: F401 - the extra installs both
    except ImportError:
        raise BackendError(url, "psycopg is not installed",
                           "pip install 'eventbus-cli[postgres]'") from None
    if not (schema_name.isascii() and schema_name.replace("_", "a").isalnum()
            and not schema_name[0].isdigit() and len(schema_name) <= 48):
        raise BackendError(url, f"[backend] prefix {schema_name!r} is not a schema name "
                           "eventbus can use", "use letters, digits and _ (not first a digit)")
    options = f"-c search_path={schema_name}"

    async def connect() -> Any:
        return await psycopg.AsyncConnection.connect(
            config.url, autocommit=True, connect_timeout=max(2, int(config.command_timeout)),
            options=options)

    try:
        first = await connect()
    except psycopg.Error as exc:
        raise BackendError(url, f"cannot reach the server: {_said(exc)}",
                           "start PostgreSQL there, or fix [backend] url") from None
    try:  # the first stays open while the pool opens: the LISTEN connection to come
        await _check_server(first, url)
        await _migrate(first, url, schema_name)
        pool = await _open_pool(config, options, url, connect)
    finally:
        await first.close()
    link = Link(pool, connect, url, name, schema_name, config)
    try:
        await link.check_name()
        link.version = await link.server_version()
    except BaseException:
        await pool.close()
        raise
    return link


async def _open_pool(config: BackendConfig, options: str, url: str, connect: Any) -> Any:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(config.url, min_size=_POOL_LEAST, max_size=_POOL, open=False,
                               timeout=config.command_timeout, reconnect_timeout=10**9,
                               kwargs={"autocommit": True, "options": options,
                                       "connect_timeout": max(2, int(config.command_timeout))})
    try:
        await pool.open(wait=True, timeout=config.command_timeout)
    except psycopg.Error as exc:  # PoolTimeout: what the server said is a fresh connect's
        said = _said(exc)
        try:  # while the pool holds what it opened
            await (await connect()).close()
        except psycopg.Error as refused:
            said = _said(refused)
        await pool.close()
        raise BackendError(url, f"cannot open {_POOL_LEAST + 1} connections: {said}",
                           "raise the server's max_connections (or the database's or "
                           "role's CONNECTION LIMIT), or close other clients") from None
    return pool


def _said(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")


async def _check_server(conn: Any, url: str) -> None:
    version = conn.info.server_version
    if version < _OLDEST:
        raise BackendError(url, f"PostgreSQL {version // 10000} is too old",
                           "eventbus needs PostgreSQL 13 or later")
    cur = await conn.execute("SELECT pg_is_in_recovery(), current_setting("
                             "'default_transaction_read_only')")
    recovery, read_only = await cur.fetchone()
    if recovery or read_only == "on":
        raise BackendError(url, "the database is read-only (a replica, or "
                           "default_transaction_read_only)", "point [backend] url at the "
                           "primary: eventbus writes every emit")


async def _migrate(conn: Any, url: str, schema_name: str) -> None:
    """Create the bus's tables, or check their version, under an advisory lock."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('eventbus:' || %s))",
                           (schema_name,))
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema_name}"')
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                 (f'"{schema_name}".meta',))
        (present,) = await cur.fetchone()
        found = None
        if present:
            cur = await conn.execute("SELECT value FROM meta WHERE key = 'version'")
            row = await cur.fetchone()
            found = int(row[0]) if row else None
        if found is not None and found > schema.VERSION:
            raise BackendError(url, f"the tables in schema {schema_name!r} are of version "
                               f"{found}, newer than this eventbus knows ({schema.VERSION})",
                               "upgrade eventbus on this host to the version the other "
                               "daemons run")
        if found == schema.VERSION:
            return
        for statement in schema.create():
            await conn.execute(statement)
        await conn.execute("INSERT INTO meta VALUES ('version', %s) ON CONFLICT (key) DO "
                           "UPDATE SET value = excluded.value", (str(schema.VERSION),))
    logger.info("made the bus's tables (version %d) in schema %s", schema.VERSION, schema_name)


class Link:
    """One daemon's connection to the bus in PostgreSQL."""

    store = "PostgreSQL"

    def __init__(self, pool: Any, connect: Any, url: str, name: str, schema_name: str,
                 config: BackendConfig) -> None:
        import psycopg
        from psycopg_pool import PoolTimeout

        self.errors: tuple[type[BaseException], ...] = (psycopg.Error, PoolTimeout, OSError,
                                                         TimeoutError)
        self.lost_errors: tuple[type[BaseException], ...] = (
            psycopg.OperationalError, PoolTimeout, OSError, TimeoutError)
        self._pool = pool
        self.url = url
        self.name = name
        self.schema = schema_name
        self.version = ""
        self._claim = config.claim_after
        self._timeout = config.command_timeout
        self.daemons: list[dict[str, Any]] = []
        self.pauses: dict[str, float | None] = {}
        self.regrouped = False  # no groups to lose: a lost table is a refused statement
        self._views = Views(connect, schema_name, name, self.errors, lambda: self.watchers)
        self._started = time.time()
        self.watchers = 0
        """How many other live daemons want records, as the last :meth:`beat` read it."""

    @property
    def views(self) -> Views:
        return self._views

    def stream_of(self, listener: str, priority: int) -> str:
        return listener

    def listener_of(self, stream: str) -> str:
        return stream

    def foreign(self, exc: BaseException) -> str | None:
        return None  # the schema is the bus's own: nothing else writes its tables

    async def _run(self, statements: Sequence[tuple[str, Any]]) -> list[list[Any]]:
        """Run ``statements`` in one transaction, sent together (pipeline mode: one round
        trip); the rows each returned (none: [])."""
        with anyio.fail_after(self._timeout):
            async with (self._pool.connection() as conn, conn.pipeline() as pipe,
                        conn.transaction()):
                cursors = [await conn.execute(sql, params) for sql, params in statements]
                await pipe.sync()  # the replies are in: each cursor knows if it has rows
                return [await cur.fetchall() if cur.description else [] for cur in cursors]

    async def _rows(self, sql: str, params: Any = None) -> list[Any]:
        return (await self._run([(sql, params)]))[0]

    # -- start and stop ----------------------------------------------------------------------

    async def server_version(self) -> str:
        return str((await self._rows("SHOW server_version"))[0][0]).split()[0]

    async def check_name(self) -> None:
        rows = await self._rows("SELECT host, pid, extract(epoch from now() - seen) FROM "
                                "daemons WHERE name = %s", (self.name,))
        if not rows or rows[0][2] > _ALIVE * 2:
            return
        host, pid, _ = rows[0]
        if host == socket.gethostname() and not pid_alive(pid):
            return  # this host's daemon of that name died: this one takes its place
        raise BackendError(self.url, f"a daemon named {self.name!r} runs already (on {host}, "
                           f"pid {pid})", "give this daemon its own [backend] name")

    async def close(self) -> None:
        # Shielded from the stop that runs this, and bounded: a gone server costs 2 s at most.
        with (anyio.CancelScope(shield=True), anyio.move_on_after(2),
              contextlib.suppress(*self.errors)):
            await self._run([("DELETE FROM daemons WHERE name = %s", (self.name,)),
                             ("SELECT pg_notify(%s, 'r')", (self._views.channel,))])
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await self._pool.close()

    async def mark(self) -> None:
        await self._rows("INSERT INTO meta VALUES ('since', %s) ON CONFLICT DO NOTHING",
                         (repr(time.time()),))

    async def fires(self) -> dict[str, float]:
        return {name: fired for name, fired in await self._rows("SELECT name, fired FROM fires")}

    async def reserve_ids(self, count: int) -> range:
        [_, rows] = await self._run([
            ("SELECT pg_advisory_xact_lock(hashtext('eventbus.ids:' || %s))", (self.schema,)),
            ("SELECT setval('delivery_ids', nextval('delivery_ids') + %s - 1)", (count,))])
        end = int(rows[0][0])
        return range(end - count + 1, end + 1)

    # -- listeners ---------------------------------------------------------------------------

    async def join(self, local: dict[str, tuple[str, ...]], joins: set[str], leaves: set[str],
                   handbacks: Sequence[Entry] = (), *, keep: int = 0,
                   reason: str = "") -> dict[str, tuple[str, ...]]:
        statements: list[tuple[str, Any]] = [
            ("INSERT INTO routes VALUES (%s, %s, %s) ON CONFLICT (listener, daemon) DO UPDATE "
             "SET patterns = excluded.patterns", (name, self.name, json.dumps(local[name])))
            for name in sorted(joins)]
        statements += [("DELETE FROM routes WHERE listener = %s AND daemon = %s",
                        (name, self.name)) for name in sorted(leaves)]
        if handbacks:
            statements.append(("UPDATE deliveries SET owner = NULL, lease_until = NULL "
                               "WHERE id = ANY(%s) AND owner = %s",
                               ([_id(entry) for _, entry in handbacks], self.name)))
        if joins or leaves:  # the others route anew
            statements.append(("SELECT pg_notify(%s, 'r')", (self._views.channel,)))
        if handbacks:  # and read what this daemon gave back
            statements.append(("SELECT pg_notify(%s, 'w')", (self._views.channel,)))
        await self._run(statements)
        for name in sorted(leaves):
            moved = await self._retire(name, keep, f"ListenerRemoved: listener {name} {reason}")
            if moved > 0:
                logger.warning("%d waiting deliveries of %s failed: %s", moved, name, reason)
        return await self.routes()

    async def _retire(self, name: str, keep: int, error: str) -> int:
        """Fail what waits for ``name`` once no daemon serves it."""
        with anyio.fail_after(self._timeout):
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute("SELECT 1 FROM routes WHERE listener = %s LIMIT 1",
                                         (name,))
                if await cur.fetchone():
                    return 0
                cur = await conn.execute(
                    f"SELECT id, payload FROM deliveries WHERE listener = %s AND {_ACTIVE} "
                    "AND (owner IS NULL OR lease_until < now()) FOR UPDATE", (name,))
                rows = await cur.fetchall()
                now = time.time()
                records = []
                for delivery_id, payload in rows:
                    delivery = decode_payload(payload, name)[0]
                    delivery.error, delivery.failed_at = error, now
                    records.append((delivery_id, encode_failed(delivery)))
                await self._fail_rows(conn, records, now, keep, {name: len(records)})
                return len(records)

    async def _fail_rows(self, conn: Any, records: Sequence[tuple[int, bytes]], now: float,
                         keep: int, counts: dict[str, int]) -> None:
        if not records:
            return
        if keep > 0:
            await conn.execute(
                "UPDATE deliveries SET state = 'failed', owner = NULL, lease_until = NULL, "
                "failed = r.failed, failed_at = %s FROM unnest(%s::bigint[], %s::bytea[]) "
                "AS r(id, failed) WHERE deliveries.id = r.id",
                (now, [i for i, _ in records], [f for _, f in records]))
            await conn.execute(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE "
                "state = 'failed' ORDER BY failed_at DESC, id DESC OFFSET %s)", (keep,))
        else:
            await conn.execute("DELETE FROM deliveries WHERE id = ANY(%s)",
                               ([i for i, _ in records],))
        await _count(conn, {f"{name}:failed": n for name, n in counts.items()})

    async def routes(self) -> dict[str, tuple[str, ...]]:
        rows = await self._rows("SELECT DISTINCT ON (listener) listener, patterns FROM routes "
                                "ORDER BY listener, daemon")
        return {name: tuple(json.loads(patterns)) for name, patterns in rows}

    async def hosted_here(self, names: set[str]) -> set[str]:
        rows = await self._rows("SELECT listener FROM routes WHERE daemon = %s AND "
                                "listener = ANY(%s)", (self.name, sorted(names)))
        return {name for (name,) in rows}

    async def own_pending(self, name: str) -> list[tuple[str, bytes, bytes]]:
        rows = await self._rows(
            "UPDATE deliveries SET lease_until = now() + make_interval(secs => %s) "
            "WHERE owner = %s AND listener = %s RETURNING id, payload, position",
            (self._claim, self.name, name))
        return [(name, _entry(i), bytes(payload)) for i, payload, _ in
                sorted(rows, key=lambda row: row[2])]

    # -- the hot path's records --------------------------------------------------------------

    async def send(self, emits: Sequence[Emit], followed: set[int],
                   acks: Sequence[tuple[str, bytes, Delivery, str]],
                   parks: Sequence[tuple[str, bytes, Delivery, float, str]],
                   fails: Sequence[tuple[str, bytes, Delivery, str]], fired: dict[str, float],
                   window_ms: str, keep: int, duplicates: int = 0, max_keys: int = 0,
                   ) -> dict[int, bytes]:
        views = self._views
        if not (emits or acks or parks or fails or views.records or fired or duplicates):
            return {}
        records, views.records = views.records, []
        if not views.publishing:  # those who wait for these outcomes hear of them anyway
            from ..shared.codec import encode_record

            records += [encode_record(self.name, "finished", None, [delivery])
                        for _, _, delivery, reply_to in (*acks, *fails)
                        if reply_to and reply_to != self.name]
        firsts: dict[int, bytes] = {}
        counts: dict[str, int] = {}
        with anyio.fail_after(self._timeout):
            async with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
                if emits:
                    await self._emit(conn, emits, followed, window_ms, max_keys, firsts,
                                     counts)
                if acks:
                    await conn.execute("DELETE FROM deliveries WHERE id = ANY(%s)",
                                       ([delivery.id for _, _, delivery, _ in acks],))
                    for _, _, delivery, _ in acks:
                        name = f"{delivery.listener}:succeeded"
                        counts[name] = counts.get(name, 0) + 1
                if parks:
                    await conn.execute(
                        "UPDATE deliveries SET state = 'retrying', owner = NULL, "
                        "lease_until = NULL, payload = p.payload, due_at = now() + "
                        "make_interval(secs => p.delay) FROM unnest(%s::bigint[], "
                        "%s::bytea[], %s::float8[]) AS p(id, payload, delay) "
                        "WHERE deliveries.id = p.id",
                        ([d.id for _, _, d, _, _ in parks],
                         [encode_payload(d, reply_to) for _, _, d, _, reply_to in parks],
                         [delay for _, _, _, delay, _ in parks]))
                    for _, _, delivery, _, _ in parks:
                        name = f"{delivery.listener}:retried"
                        counts[name] = counts.get(name, 0) + 1
                if fails:
                    by_listener: dict[str, int] = {}
                    for _, _, delivery, _ in fails:
                        by_listener[delivery.listener] = by_listener.get(delivery.listener,
                                                                         0) + 1
                    await self._fail_rows(conn, [(d.id, encode_failed(d))
                                                 for _, _, d, _ in fails], time.time(), keep,
                                          by_listener)
                if fired:
                    await conn.execute(
                        "INSERT INTO fires SELECT * FROM unnest(%s::text[], %s::float8[]) "
                        "ON CONFLICT (name) DO UPDATE SET fired = "
                        "greatest(fires.fired, excluded.fired)",
                        (list(fired), list(fired.values())))
                if duplicates:
                    counts["duplicates"] = counts.get("duplicates", 0) + duplicates
                await _count(conn, counts)
                for record in records:
                    await self._note(conn, record)
                if emits or parks:
                    await conn.execute("SELECT pg_notify(%s, 'w')", (views.channel,))
        if parks or any(due is not None for _, _, due, _ in emits):
            views.woken.set()  # the reader asks again when the first is due
        return firsts

    async def _emit(self, conn: Any, emits: Sequence[Emit], followed: set[int],
                    window_ms: str, max_keys: int, firsts: dict[int, bytes],
                    counts: dict[str, int]) -> None:
        """Insert the emits' rows; an emit whose dedupe key another took inserts none."""
        window = int(window_ms) / 1000
        keyed = [(index, key, answer) for index, (key, _, _, answer) in enumerate(emits)
                 if key is not None]
        if keyed:  # expired keys go, these among them (the window is the database's clock)
            await conn.execute("DELETE FROM dedupe WHERE expires < now()")
        for index, key, answer in keyed:
            cur = await conn.execute(
                "INSERT INTO dedupe VALUES (%s, now() + make_interval(secs => %s), %s) "
                "ON CONFLICT (key) DO NOTHING RETURNING 1",
                (key, window, json.dumps(answer).encode()))
            if await cur.fetchone() is None:
                cur = await conn.execute("SELECT answer FROM dedupe WHERE key = %s", (key,))
                row = await cur.fetchone()
                firsts[index] = bytes(row[0]) if row else b""
                counts["duplicates"] = counts.get("duplicates", 0) + 1
        if keyed and max_keys > 0:
            await conn.execute(
                "DELETE FROM dedupe WHERE key IN (SELECT key FROM dedupe ORDER BY expires DESC "
                "OFFSET %s)", (max_keys,))
        columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
        ids, listeners, priorities, keys, states, dues, payloads = columns
        for index, (_, made, due, _) in enumerate(emits):
            if index in firsts:
                continue
            if not made:
                counts["unrouted"] = counts.get("unrouted", 0) + 1
            for delivery in made:
                ids.append(delivery.id)
                listeners.append(delivery.listener)
                priorities.append(delivery.priority)
                keys.append(delivery.order_key)
                states.append("pending" if due is None else "scheduled")
                dues.append(None if due is None else due / 1000)
                payloads.append(encode_payload(
                    delivery, self.name if delivery.id in followed else ""))
        if ids:
            await conn.execute(
                "INSERT INTO deliveries (id, listener, priority, order_key, state, due_at, "
                "payload) SELECT id, listener, priority, order_key, state, "
                "coalesce(to_timestamp(due), now()), payload FROM unnest(%s::bigint[], "
                "%s::text[], %s::smallint[], %s::text[], %s::text[], %s::float8[], "
                "%s::bytea[]) WITH ORDINALITY AS e(id, listener, priority, order_key, state, "
                "due, payload, n) ORDER BY n", columns)

    async def _note(self, conn: Any, record: bytes) -> None:
        """NOTIFY one record, cut into records of fewer deliveries where it is too long."""
        text = record.decode()
        if len(record) < _NOTE:
            await conn.execute("SELECT pg_notify(%s, %s)", (self._views.channel, "R" + text))
            return
        from ..shared.codec import decode_record, encode_record

        daemon, change, event, deliveries = decode_record(record)
        if len(deliveries) == 1:  # one delivery's text is too long: its error is cut
            delivery = deliveries[0]
            delivery.error = (delivery.error or "")[:1000] + "..."
            record = encode_record(daemon, change, event, deliveries)
            if len(record) < _NOTE:
                await self._note(conn, record)
            return
        half = len(deliveries) // 2
        for part in (deliveries[:half], deliveries[half:]):
            await self._note(conn, encode_record(daemon, change, event, part))

    async def read(self, names: Sequence[str], count: int, *,
                   block: bool = True) -> list[tuple[str, bytes, bytes]]:
        """Claim up to ``count`` due rows of these listeners, highest priority, then oldest
        first. With ``block``, when none is due: wait for a daemon's wake-up, or the next
        retry or scheduled delivery's due time, or a second at most (asked in the same
        round trip: an idle daemon makes one query a second here, and polls for nothing)."""
        views = self._views
        views.woken = anyio.Event()
        rows, due = await self._run([
            ("UPDATE deliveries SET owner = %s, state = 'pending', lease_until = now() + "
             "make_interval(secs => %s) WHERE id IN (SELECT id FROM deliveries WHERE "
             f"listener = ANY(%s) AND owner IS NULL AND {_ACTIVE} AND due_at <= now() "
             "ORDER BY priority, position LIMIT %s FOR UPDATE SKIP LOCKED) "
             "RETURNING listener, id, payload, priority, position",
             (self.name, self._claim, list(names), count)),
            ("SELECT extract(epoch from min(due_at) - now()) FROM deliveries WHERE "
             "listener = ANY(%s) AND owner IS NULL AND state IN ('retrying', 'scheduled')",
             (list(names),))])
        if not rows and block:
            wait = 1.0 if due[0][0] is None else min(max(float(due[0][0]), 0.001), 1.0)
            with anyio.move_on_after(wait):
                await views.woken.wait()
            return []
        rows.sort(key=lambda row: (row[3], row[4]))
        return [(name, _entry(i), bytes(payload)) for name, i, payload, _, _ in rows]

    async def move_due(self) -> None:
        """Nothing to move: a row whose time came is read as it is, and the reader waits
        by the earliest due time (:meth:`read`)."""
        await anyio.sleep_forever()

    # -- keeping up --------------------------------------------------------------------------

    async def beat(self, running: dict[str, int], held: int,
                   ) -> tuple[dict[str, tuple[str, ...]], dict[str, float], bool]:
        routes, fires, made, _, paused, watchers = await self._run([
            ("SELECT DISTINCT ON (listener) listener, patterns FROM routes "
             "ORDER BY listener, daemon", None),
            ("SELECT name, fired FROM fires", None),
            ("INSERT INTO meta VALUES ('since', %s) ON CONFLICT DO NOTHING RETURNING 1",
             (repr(time.time()),)),
            ("INSERT INTO daemons VALUES (%s, %s, %s, %s, now(), %s, %s, %s) ON CONFLICT (name) "
             "DO UPDATE SET host = excluded.host, pid = excluded.pid, started = "
             "excluded.started, seen = now(), running = excluded.running, held = "
             "excluded.held, watching = excluded.watching",
             (self.name, socket.gethostname(), os.getpid(), self._started, json.dumps(running),
              held, self._views.watching)),
            ("SELECT listener, until FROM pauses", None),
            ("SELECT count(*) FROM daemons WHERE watching AND name <> %s AND seen > now() - "
             "make_interval(secs => %s)", (self.name, _ALIVE))])
        self.pauses = _pauses(paused)
        self.watchers = int(watchers[0][0])
        return ({name: tuple(json.loads(patterns)) for name, patterns in routes},
                dict(fires), not made)

    async def pace(self, name: str, gap: float) -> float:
        rows = await self._rows(
            "INSERT INTO paces VALUES (%s, clock_timestamp() + make_interval(secs => %s)) "
            "ON CONFLICT (listener) DO UPDATE SET next = greatest(paces.next, "
            "clock_timestamp()) + make_interval(secs => %s) "
            "RETURNING extract(epoch from next - clock_timestamp())", (name, gap, gap))
        return max(0.0, float(rows[0][0]) - gap)

    async def read_pauses(self) -> dict[str, float | None]:
        self.pauses = _pauses(await self._rows("SELECT listener, until FROM pauses"))
        return self.pauses

    async def set_pause(self, name: str, paused: bool, until: float | None = None) -> None:
        if paused:
            await self._rows("INSERT INTO pauses VALUES (%s, %s) ON CONFLICT (listener) DO "
                             "UPDATE SET until = excluded.until", (name, until))
        else:
            await self._rows("DELETE FROM pauses WHERE listener = %s", (name,))

    async def renew(self, held: Sequence[Entry]) -> set[bytes]:
        ids = [_id(entry) for _, entry in held]
        if not ids:
            return set()
        rows = await self._rows(
            "UPDATE deliveries SET lease_until = now() + make_interval(secs => %s) "
            "WHERE id = ANY(%s) AND owner = %s RETURNING id", (self._claim, ids, self.name))
        kept = {row[0] for row in rows}
        return {_entry(i) for i in ids if i not in kept}

    async def take_over(self, names: Sequence[str], claim_after: float,
                        ) -> dict[str, list[tuple[bytes, bytes]]]:
        """Rows of other daemons whose lease ran out. Never this daemon's own: what it holds
        it renews (even past its lease), and what it finished waits in its outbound."""
        rows = await self._rows(
            "UPDATE deliveries SET owner = %s, lease_until = now() + make_interval(secs => %s) "
            "WHERE id IN (SELECT id FROM deliveries WHERE listener = ANY(%s) AND "
            f"owner <> %s AND lease_until < now() AND {_ACTIVE} ORDER BY position "
            "LIMIT 1000 FOR UPDATE SKIP LOCKED) RETURNING listener, id, payload, position",
            (self.name, self._claim, list(names), self.name))
        taken: dict[str, list[tuple[bytes, bytes]]] = {name: [] for name in names}
        for name, i, payload, _ in sorted(rows, key=lambda row: row[3]):
            taken[name].append((_entry(i), bytes(payload)))
        return taken

    async def heads(self, keys: Sequence[tuple[str, str]]) -> list[int | None]:
        rows = await self._rows(
            "SELECT (SELECT id FROM deliveries d WHERE d.listener = k.listener AND "
            f"d.order_key = k.key AND d.{_ACTIVE} ORDER BY position LIMIT 1) FROM "
            "unnest(%s::text[], %s::text[]) WITH ORDINALITY AS k(listener, key, n) "
            "ORDER BY n", ([name for name, _ in keys], [key for _, key in keys]))
        return [row[0] for row in rows]

    # -- inspection --------------------------------------------------------------------------

    async def stats(self, names: Sequence[str], unsent: int) -> EmitterStats | None:
        marked, counts, waiting, first, live = await self._run([
            ("SELECT 1 FROM meta WHERE key = 'since'", None),
            ("SELECT name, value FROM counters", None),
            ("SELECT listener, "
             f"count(*) FILTER (WHERE {_ACTIVE} AND (owner IS NOT NULL OR due_at <= now())), "
             "count(*) FILTER (WHERE state = 'retrying' AND owner IS NULL AND due_at > now()), "
             "count(*) FILTER (WHERE state = 'scheduled' AND owner IS NULL AND due_at > now()),"
             " count(*) FILTER (WHERE state = 'failed') FROM deliveries GROUP BY listener",
             None),
            ("SELECT extract(epoch from min(due_at)) FROM deliveries WHERE owner IS NULL AND "
             "state IN ('retrying', 'scheduled')", None),
            ("SELECT name, host, pid, running, held FROM daemons WHERE seen > now() - "
             "make_interval(secs => %s) ORDER BY name", (_ALIVE,))])
        if not marked:
            return None
        running: dict[str, int] = {}
        self.daemons = []
        for name, host, pid, each, held in live:
            mine = json.loads(each)
            for listener, count in mine.items():
                running[listener] = running.get(listener, 0) + count
            self.daemons.append({"name": name, "host": host, "pid": pid,
                                 "running": sum(mine.values()), "held": held})
        table = dict(counts)
        rows = {row[0]: row[1:] for row in waiting}
        listeners = {}
        for name in names:
            ready, retrying, scheduled, _ = rows.get(name, (0, 0, 0, 0))
            listeners[name] = ListenerStats(
                pending=max(0, ready - running.get(name, 0)), running=running.get(name, 0),
                retrying=retrying, succeeded=table.get(f"{name}:succeeded", 0),
                failed=table.get(f"{name}:failed", 0), retried=table.get(f"{name}:retried", 0),
                scheduled=scheduled)
        return bus_stats(listeners, unsent=unsent, unrouted=table.get("unrouted", 0),
                         failed_list=sum(row[3] for row in rows.values()),
                         next_due=None if first[0][0] is None else float(first[0][0]),
                         duplicates=table.get("duplicates", 0))

    async def listing(self, names: Sequence[str], most: int) -> list[Delivery]:
        failed, due, ready = await self._run([
            ("SELECT failed FROM deliveries WHERE state = 'failed' ORDER BY failed_at DESC, "
             "id DESC LIMIT %s", (most,)),
            ("SELECT listener, state, extract(epoch from due_at), payload FROM deliveries "
             "WHERE owner IS NULL AND state IN ('retrying', 'scheduled') AND due_at > now() "
             "ORDER BY due_at LIMIT %s", (most,)),
            ("SELECT listener, payload FROM deliveries WHERE listener = ANY(%s) AND "
             f"{_ACTIVE} AND (owner IS NOT NULL OR due_at <= now()) ORDER BY priority, "
             "position LIMIT %s", (list(names), most))])
        found = [decode_failed(bytes(record)) for (record,) in failed]
        for name, state, when, payload in due:
            delivery = decode_payload(bytes(payload), name)[0]
            delivery.state, delivery.due_at = DeliveryState(state), float(when)
            found.append(delivery)
        found += [decode_payload(bytes(payload), name)[0] for name, payload in ready]
        return found

    async def failed_records(self, ids: Iterable[int] | None,
                             ) -> list[tuple[int, bytes | None]]:
        if ids is None:
            rows = await self._rows("SELECT id, failed FROM deliveries WHERE state = 'failed' "
                                    "ORDER BY failed_at, id")
            return [(i, bytes(record)) for i, record in rows]
        wanted = list(ids)
        rows = await self._rows("SELECT id, failed FROM deliveries WHERE state = 'failed' "
                                "AND id = ANY(%s)", (wanted,))
        found = {i: bytes(record) for i, record in rows}
        return [(i, found.get(i)) for i in wanted]

    async def requeue(self, items: Sequence[tuple[int, str, bytes, str, str]],
                      ) -> tuple[str, int] | None:
        if not items:
            return None
        with anyio.fail_after(self._timeout):
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute("SELECT id FROM deliveries WHERE state = 'failed' AND "
                                         "id = ANY(%s) FOR UPDATE",
                                         ([item[0] for item in items],))
                present = {row[0] for row in await cur.fetchall()}
                cur = await conn.execute("SELECT DISTINCT listener FROM routes")
                routed = {row[0] for row in await cur.fetchall()}
                for delivery_id, listener, _, _, _ in items:
                    if delivery_id not in present:
                        return "missing", delivery_id
                    if listener not in routed:
                        return "unrouted", delivery_id
                await conn.execute(
                    "UPDATE deliveries SET state = 'pending', owner = NULL, lease_until = NULL,"
                    " failed = NULL, failed_at = NULL, due_at = now(), payload = r.payload, "
                    "position = nextval('positions') FROM unnest(%s::bigint[], %s::bytea[]) "
                    "WITH ORDINALITY AS r(id, payload, n) WHERE deliveries.id = r.id",
                    ([item[0] for item in items], [item[2] for item in items]))
                await conn.execute("SELECT pg_notify(%s, 'w')", (self._views.channel,))
        return None

    async def purge_failed(self) -> int:
        rows = await self._rows("DELETE FROM deliveries WHERE state = 'failed' RETURNING 1")
        return len(rows)

    async def purge_waiting(self, state: str, names: Sequence[str],
                            mine: Sequence[Entry]) -> int:
        if state == DeliveryState.SCHEDULED.value:
            condition, params = "state = 'scheduled' AND owner IS NULL", ()
        else:
            condition = "(owner IS NULL AND state IN ('pending', 'retrying')) OR id = ANY(%s)"
            params = ([_id(entry) for _, entry in mine],)  # type: ignore[assignment]
        rows = await self._rows(f"DELETE FROM deliveries WHERE {condition} RETURNING 1", params)
        return len(rows)


async def _count(conn: Any, counts: dict[str, int]) -> None:
    """Add to the bus's counters, in one order (two daemons never wait for each other)."""
    if counts:
        names = sorted(counts)
        await conn.execute(
            "INSERT INTO counters SELECT * FROM unnest(%s::text[], %s::bigint[]) "
            "ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
            (names, [counts[name] for name in names]))


def _pauses(rows: Iterable[tuple[str, float | None]]) -> dict[str, float | None]:
    """The paused listeners, each with when it resumes (None: when told); those whose time
    is up left out."""
    now = time.time()
    return {name: until for name, until in rows if until is None or until > now}
