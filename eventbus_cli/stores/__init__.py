"""The stores a daemon's deliveries live in beyond its memory: SQLite (a journal the memory
broker writes through to), and Redis Streams or PostgreSQL (shared by N daemons, through
the shared broker). :func:`open_broker` picks one from the config; nothing outside this
package asks which it is."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..bus.broker import Broker
from ..bus.memory import MemoryBroker
from ..config import Config

if TYPE_CHECKING:
    from .shared.link import Connect

__all__ = ("open_broker",)


def open_broker(config: Config, socket_path: Path) -> Broker:
    """The broker the config asks for: a shared store with ``[backend]``, the memory broker
    written through to SQLite with ``[journal]``, else the memory broker alone."""
    daemon, keep_failed = config.daemon, config.delivery.keep_failed
    if config.backend is not None:
        from .shared import SharedBroker

        store, connect = _shared_store(config.backend.url)
        return SharedBroker(config.backend, store, connect, socket_path=socket_path,
                            queue_size=daemon.queue_size, max_bytes=daemon.max_queue_bytes,
                            max_scheduled=daemon.max_scheduled, keep_failed=keep_failed,
                            dedupe_window=daemon.dedupe_window,
                            max_dedupe_keys=daemon.max_dedupe_keys)
    journal = None
    if config.journal is not None:
        from .sqlite import SqliteJournal

        journal = SqliteJournal(config.journal.path)
    return MemoryBroker(queue_size=daemon.queue_size, max_bytes=daemon.max_queue_bytes,
                        max_scheduled=daemon.max_scheduled, keep_failed=keep_failed,
                        dedupe_window=daemon.dedupe_window,
                        max_dedupe_keys=daemon.max_dedupe_keys, journal=journal)


def _shared_store(url: str) -> tuple[str, Connect]:
    """The store a ``[backend] url`` names, and how to connect to it (the config checked
    the scheme)."""
    if url.startswith(("postgresql:", "postgres:")):
        from .postgres import open_link as open_postgres

        return "PostgreSQL", open_postgres
    from .redis import open_link as open_redis

    return "Redis", open_redis
