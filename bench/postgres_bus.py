"""The PostgreSQL store against a bare queue loop on the same database, in one run.

Run: .venv/bin/pip install -e '.[test,bench]' && .venv/bin/python bench/postgres_bus.py [EVENTS]

A PostgreSQL cluster of its own (as the tests start one: Debian's newest, or
``EVENTBUS_TEST_POSTGRES_BIN``), on a Unix socket, ``fsync=off`` as in the tests (the
figures measure the queue, not the disk). Figures:

- ceiling: psycopg alone, no daemon: a producer INSERTs EVENTS rows in batches of 500 while
  a consumer takes batches of 500 with SELECT ... FOR UPDATE SKIP LOCKED and DELETEs them,
  one transaction a batch: the most this machine moves through one table. With asyncpg
  installed (it is no dependency), the same loop on asyncpg, to compare the drivers.
- one daemon: ``eventbus emit --file`` of EVENTS events into a daemon on PostgreSQL with one
  no-op listener, until the bus counts the last one succeeded; as a ratio of the ceiling.
- latency: from just before a client sends an emit until the listener starts, 2,000 emits
  sent one at a time on an idle bus; p50 and p99.
- idle: what a daemon with nothing to do costs over 10 s: CPU (of one core) and statements
  a second (transactions the database counted).
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from daemon import bulk, latency, start_daemon  # bench/daemon.py, in this script's folder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.postgres_server import PostgresServer, find_binaries

_PAYLOAD = json.dumps([0, "bulk", [1], {"email": "x@example.com"}, 0, time.time(), "",
                       None, None]).encode()
_TABLE = ("CREATE TABLE IF NOT EXISTS raw_q (id bigserial PRIMARY KEY, payload bytea NOT "
          "NULL); TRUNCATE raw_q")


async def ceiling_psycopg(url: str, events: int) -> float:
    """Rows per second through INSERT -> SELECT ... SKIP LOCKED -> DELETE, psycopg alone."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as setup:
        await setup.execute(_TABLE)
    producer = await psycopg.AsyncConnection.connect(url, autocommit=True)
    consumer = await psycopg.AsyncConnection.connect(url, autocommit=True)

    async def produce() -> None:
        for start in range(0, events, 500):
            await producer.execute("INSERT INTO raw_q (payload) SELECT unnest(%s::bytea[])",
                                   ([_PAYLOAD] * min(500, events - start),))

    async def consume() -> None:
        done = 0
        while done < events:
            async with consumer.transaction():
                cur = await consumer.execute("SELECT id, payload FROM raw_q ORDER BY id "
                                             "LIMIT 500 FOR UPDATE SKIP LOCKED")
                ids = [row[0] for row in await cur.fetchall()]
                await consumer.execute("DELETE FROM raw_q WHERE id = ANY(%s)", (ids,))
            done += len(ids)
            if not ids:
                await asyncio.sleep(0.001)

    started = time.perf_counter()
    await asyncio.gather(produce(), consume())
    rate = events / (time.perf_counter() - started)
    await producer.close()
    await consumer.close()
    return rate


async def ceiling_asyncpg(url: str, events: int) -> float | None:
    """The same loop on asyncpg, where it is installed."""
    try:
        import asyncpg  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    options: dict[str, Any] = {"user": parts.username, "database": parts.path.strip("/"),
                               "host": query["host"][0], "port": int(query["port"][0])}
    producer = await asyncpg.connect(**options)
    consumer = await asyncpg.connect(**options)
    await producer.execute(_TABLE)

    async def produce() -> None:
        for start in range(0, events, 500):
            await producer.execute("INSERT INTO raw_q (payload) SELECT unnest($1::bytea[])",
                                   [_PAYLOAD] * min(500, events - start))

    async def consume() -> None:
        done = 0
        while done < events:
            async with consumer.transaction():
                rows = await consumer.fetch("SELECT id, payload FROM raw_q ORDER BY id "
                                            "LIMIT 500 FOR UPDATE SKIP LOCKED")
                ids = [row[0] for row in rows]
                await consumer.execute("DELETE FROM raw_q WHERE id = ANY($1)", ids)
            done += len(ids)
            if not ids:
                await asyncio.sleep(0.001)

    started = time.perf_counter()
    await asyncio.gather(produce(), consume())
    rate = events / (time.perf_counter() - started)
    await producer.close()
    await consumer.close()
    return rate


def idle_cost(process: subprocess.Popen[bytes], url: str, seconds: float = 10.0,
              ) -> tuple[float, float]:
    """A core's share the daemon used, and the transactions a second it made, idle."""
    import psycopg

    def cpu() -> float:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks

    def commits(conn: Any) -> int:
        row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE "
                           "datname = current_database()").fetchone()
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(row[0])

    time.sleep(2)  # the start's own work done
    with psycopg.connect(url, autocommit=True) as conn:
        cpu_before, commits_before = cpu(), commits(conn)
        time.sleep(seconds)
        cpu_after, commits_after = cpu(), commits(conn)
    # the two reads of ours count as two transactions
    return (cpu_after - cpu_before) / seconds, (commits_after - commits_before - 2) / seconds


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    binaries = find_binaries()
    if binaries is None:
        raise SystemExit("no PostgreSQL server: install one (Debian: postgresql), or set "
                         "EVENTBUS_TEST_POSTGRES_BIN")
    server = PostgresServer(binaries).start()
    url = server.url()
    root = Path(tempfile.mkdtemp(prefix="ebp-", dir="/tmp"))
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        raw = statistics.median(asyncio.run(ceiling_psycopg(url, events)) for _ in range(3))
        print(f"ceiling (psycopg INSERT -> SELECT SKIP LOCKED -> DELETE): {raw:,.0f} events/s")
        other = asyncio.run(ceiling_asyncpg(url, events))
        if other is not None:
            print(f"the same loop on asyncpg: {other:,.0f} events/s = {other / raw:.2f}x "
                  "psycopg")
        process, sock = start_daemon(root / "one", config=(
            f'[backend]\nurl = "{url}"\nprefix = "bench"\nname = "one"\n'))
        daemons.append(process)
        cost, rate = idle_cost(process, url)
        print(f"idle daemon: {cost * 100:.2f}% of a core, {rate:.1f} transactions/s")
        p50, p99 = latency(sock, root / "one", 2000, gap=0.002)
        print(f"emit -> listener start, idle bus: p50 {p50:.0f} us, p99 {p99:.0f} us "
              "(target p50 < 5 ms)")
        single = max(bulk(sock, root / "one", events, poll=0.02) for _ in range(2))
        print(f"one daemon, emit --file -> no-op listener: {single:,.0f} events/s = "
              f"{single / raw:.2f}x the ceiling (targets >= 10,000 events/s, >= 0.6x)")
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=30)
        server.stop()


if __name__ == "__main__":
    main()
