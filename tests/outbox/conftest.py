"""The application's databases for the outbox tests: a SQLite file always, and PostgreSQL:
``EVENTBUS_TEST_POSTGRES_URL`` where given (a database the tests may create tables in), else
the test session's own cluster (``tests/postgres_server.py``: skipped without a server,
failing under CI)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import RECORDER
from tests.postgres_server import PostgresServer

LISTENERS = RECORDER + '''
@listener("strict")
def strict(n: int) -> None:
    with open(os.environ["EVENTBUS_TEST_OUT"], "a") as out:
        out.write(json.dumps({"strict": n}) + "\\n")
'''


def postgres_url() -> str | None:
    return os.environ.get("EVENTBUS_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL (sync driver) with a fresh outbox table name per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    url = postgres_url()
    if url is None:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.url().replace("postgresql://", "postgresql+psycopg://", 1)
    yield url


@pytest.fixture
def table() -> str:
    return f"outbox_{uuid.uuid4().hex[:10]}"
