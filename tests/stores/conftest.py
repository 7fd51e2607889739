"""The store contract suite's fixtures: every test runs once per store, each against a real
daemon served in-process (``serve()`` in the test's loop) and driven by ``AsyncClient``.

A store is the config that picks it: memory (nothing), SQLite (``[journal]``), Redis
(``[backend]`` on the session's real redis-server, a key prefix of its own per test),
PostgreSQL (``[backend]`` on the session's real cluster, a schema of its own per test). A new
store joins by adding its case to :data:`STORES`; it is done when this suite passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from eventbus_cli import AsyncClient, Config
from eventbus_cli.daemon.server import serve
from tests.postgres_server import PostgresServer, new_schema
from tests.redis_server import RedisServer, new_prefix
from tests.stores import probe

LISTENERS = '''
from eventbus_cli import listener
from tests.stores import probe

@listener("work")
async def work(**kwargs):
    probe.ran("work", **kwargs)

@listener("fan")
async def fan_a(**kwargs):
    probe.ran("fan_a", **kwargs)

@listener("fan")
async def fan_b(**kwargs):
    probe.ran("fan_b", **kwargs)

@listener("held")
async def held(**kwargs):
    probe.ran("held", **kwargs)
    await probe.gate()

@listener("flaky", retries=1, backoff=0.3)
async def flaky(**kwargs):
    probe.ran("flaky", **kwargs)
    from eventbus_cli import current_delivery
    if current_delivery().attempts == 1:
        raise RuntimeError("the first attempt fails")

@listener("broken")
async def broken(**kwargs):
    probe.ran("broken", **kwargs)
    if not probe.fixed:
        raise ValueError("broken on purpose")

@listener("line", retries=1, backoff=0.2)
async def line(**kwargs):
    """Records its starts and ends; blocks on the gate when told, fails a first attempt
    when told, and takes the time it is told."""
    import anyio
    from eventbus_cli import current_delivery
    probe.ran("line", **kwargs)
    if kwargs.get("block"):
        await probe.gate()
    await anyio.sleep(kwargs.get("work", 0))
    if kwargs.get("fail") and current_delivery().attempts == 1:
        probe.ended("line", **kwargs)
        raise RuntimeError("the first attempt fails")
    probe.ended("line", **kwargs)

@listener("paced", rate="20/s")
async def paced(**kwargs):
    probe.ran("paced", **kwargs)
'''


@dataclass
class Store:
    """One kind of store, as a daemon's config selects it."""

    kind: str
    shared: bool = False
    """Whether several daemons may share it (one bus on several hosts)."""
    durable: bool = False
    """Whether what it holds outlives the daemon."""
    tables: Callable[[Path, str], dict[str, Any]] = field(default=lambda root, name: {})
    """The config tables that select it, for a daemon named ``name`` with files in ``root``."""
    server: RedisServer | None = None
    postgres: PostgresServer | None = None


STORES = ("memory", "sqlite", "redis", "postgres")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis-py speaks asyncio only; the emitter's trio runs are in tests/bus


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses ``store`` runs once per store, or per store its
    ``@pytest.mark.stores(...)`` names."""
    if "store" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("stores")
        metafunc.parametrize("store", marker.args if marker else STORES, indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> Store:
    kind = request.param
    if kind == "memory":
        return Store(kind)
    if kind == "sqlite":
        return Store(kind, durable=True,
                     tables=lambda root, name: {"journal": {"path": str(root / f"{name}.db")}})
    if kind == "postgres":
        database: PostgresServer = request.getfixturevalue("postgres_server")
        schema = new_schema()
        return Store(kind, shared=True, durable=True, postgres=database,
                     tables=lambda root, name: {"backend": {
                         "url": database.url(), "prefix": schema, "name": name,
                         "claim_after": 2.0}})
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = new_prefix()
    return Store(kind, shared=True, durable=True, server=server, tables=lambda root, name: {
        "backend": {"url": server.url, "prefix": prefix, "name": name, "claim_after": 2.0}})


@pytest.fixture(autouse=True)
def _fresh_probe() -> Iterator[None]:
    probe.reset()
    yield
    probe.reset()


@pytest.fixture
def listeners_dir(short_dir: Path) -> Path:
    folder = short_dir / "listeners.d"
    folder.mkdir()
    (folder / "contract.py").write_text(LISTENERS)
    return folder


@dataclass
class Daemons:
    """Starts in-process daemons of one test on its store."""

    store: Store
    root: Path
    listeners_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)
    """More config tables for every daemon (``schedule``, say)."""

    def config(self, name: str, daemon: dict[str, Any], delivery: dict[str, Any]) -> Config:
        return Config.from_dict({
            "daemon": {"socket": str(self.root / f"{name}.sock"),
                       "listeners_dir": str(self.listeners_dir), **daemon},
            "delivery": delivery, **self.store.tables(self.root, name), **self.extra})

    @property
    def prefix(self) -> str:
        """The Redis keys' prefix of this test's bus, in braces as the broker writes it."""
        backend = self.config("a", {}, {}).backend
        assert backend is not None, "a Redis store's daemons have a [backend]"
        return "{" + backend.prefix + "}"

    @property
    def schema(self) -> str:
        """The PostgreSQL schema of this test's bus."""
        backend = self.config("a", {}, {}).backend
        assert backend is not None, "a PostgreSQL store's daemons have a [backend]"
        return backend.prefix

    @contextlib.asynccontextmanager
    async def run(self, name: str = "a", *, delivery: dict[str, Any] | None = None,
                  **daemon: Any) -> AsyncIterator[AsyncClient]:
        """Serve a daemon named ``name`` (its socket, its journal) until the block ends;
        yield a client of it."""
        # A test that fails with a call still held must not wait out the default drain.
        config = self.config(name, {"shutdown_timeout": 2, **daemon}, delivery or {})
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            await group.start(partial(serve, config, shutdown_trigger=stop.wait))
            try:
                async with AsyncClient(self.root / f"{name}.sock") as client:
                    yield client
            finally:
                probe.open_gate()
                stop.set()


@pytest.fixture
def daemons(store: Store, short_dir: Path, listeners_dir: Path) -> Daemons:
    return Daemons(store, short_dir, listeners_dir)


def known_defect(request: pytest.FixtureRequest, store: Store, *kinds: str, why: str) -> None:
    """Expect this test to fail on these stores until ``why`` is fixed (strict: once it
    passes, the mark must go)."""
    if store.kind in kinds:
        request.applymarker(pytest.mark.xfail(strict=True, reason=why))
