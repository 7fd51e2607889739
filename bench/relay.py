"""The transactional outbox: what a request pays for it, and how fast the relay forwards.

Run: .venv/bin/pip install -e '.[test,bench]' && .venv/bin/python bench/relay.py [ROWS]

The database is PostgreSQL at ``EVENTBUS_BENCH_POSTGRES_URL`` (a SQLAlchemy URL with the
psycopg driver) where it is set, else a SQLite file. Figures:

- insert: a transaction that inserts one business row, against the same transaction with
  ``outbox.emit`` too; median of 2,000 each, interleaved. The outbox's cost is one INSERT.
- relay: ROWS committed outbox rows (default 50,000) forwarded into a daemon with a no-op
  listener by one relay (``Relay.forward`` rounds of 1,000), until the table is empty; rows/s.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from daemon import start_daemon  # bench/daemon.py: this script's folder is on sys.path
from sqlalchemy import create_engine, text

from eventbus_cli import Outbox, Relay


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    root = Path(tempfile.mkdtemp(prefix="ebo-", dir="/tmp"))
    url = os.environ.get("EVENTBUS_BENCH_POSTGRES_URL") or f"sqlite:///{root / 'app.db'}"
    engine = create_engine(url)
    outbox = Outbox(f"bench_outbox_{os.getpid()}")
    with engine.begin() as connection:
        outbox.create(connection)
        connection.execute(text(f"CREATE TABLE bench_users_{os.getpid()} (email TEXT)"))
    users = f"bench_users_{os.getpid()}"
    process, sock = start_daemon(root / "daemon", config="[daemon]\nqueue_size = 100000\n")
    try:
        plain: list[float] = []
        with_event: list[float] = []
        for n in range(2000):
            for timings, emit in ((plain, False), (with_event, True)):
                start = time.perf_counter()
                with engine.begin() as connection:
                    connection.execute(text(f"INSERT INTO {users} VALUES (:e)"), {"e": f"{n}"})
                    if emit:
                        outbox.emit(connection, "bulk", email=f"{n}@example.com")
                timings.append(time.perf_counter() - start)
        a, b = statistics.median(plain) * 1e6, statistics.median(with_event) * 1e6
        print(f"insert: a transaction {a:.0f} us, with outbox.emit {b:.0f} us (+{b - a:.0f} us, "
              f"one INSERT) on {engine.dialect.name}")
        with engine.begin() as connection:
            connection.execute(text(f"DELETE FROM {outbox.name}"))
            connection.execute(outbox.table.insert(), [
                outbox.row("bulk", (), {"n": n}) for n in range(rows)])
        relay = Relay(engine, sock, outbox=outbox)
        start = time.perf_counter()
        while relay.forward():
            pass
        took = time.perf_counter() - start
        relay.close()
        print(f"relay: {rows:,} rows forwarded in {took:.2f}s: {rows / took:,.0f} rows/s "
              f"(target >= 20,000 from PostgreSQL)")
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE {outbox.name}"))
            connection.execute(text(f"DROP TABLE {users}"))
        engine.dispose()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
