"""The daemon's life: load listeners, bind the socket, serve, drain, clean up; and signals.

:func:`serve` is the daemon as a coroutine, to embed or test: it stops when ``shutdown_trigger``
returns. :func:`run` is the process: it alone handles signals and sets up logging.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from ..brokers.journal import Journal
from ..bus.delivery import DeliveryState
from ..bus.emitter import SimpleEventEmitter
from ..config import Config
from ..errors import EventbusError
from .connection import serve_connection
from .handlers import Operations
from .loader import load_listeners
from .socketfile import bind_socket, remove
from .systemd import notify, reloading

__all__ = ("FORCED_EXIT", "Ready", "run", "serve")

logger = logging.getLogger("eventbus.daemon")

FORCED_EXIT = 130
"""What :func:`run` returns when a second SIGINT cut the drain short."""


@dataclass(frozen=True, slots=True)
class Ready:
    """What :func:`serve` reports through ``task_status`` once it accepts connections.

    ``reload`` re-imports the listeners directory (what SIGHUP does); it raises
    :class:`LoaderError` and changes nothing if a file fails.
    """

    socket: Path
    listeners: int
    reload: Callable[[], dict[str, Any]]


async def serve(
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    task_status: anyio.abc.TaskStatus[Ready] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the daemon until ``shutdown_trigger`` returns (forever without one).

    Start-up loads the listeners (a :class:`LoaderError` names the bad file) and binds the
    socket (refused where a daemon answers). Shutdown refuses new emits with
    ``shutting_down``, drains the queue within ``shutdown_timeout``, closes every
    connection and removes the socket.
    """
    daemon = config.daemon
    listeners = load_listeners(daemon.listeners_dir)
    socket_path = daemon.socket_path.absolute()
    sock, inode = bind_socket(socket_path)  # first: "a daemon runs here" is the clearest error
    try:
        journal = Journal.open(config.journal.path) if config.journal is not None else None
        try:
            emitter = SimpleEventEmitter(
                listeners,
                queue_size=daemon.queue_size,
                concurrency=daemon.concurrency,
                shutdown_timeout=daemon.shutdown_timeout,
                keep_failed=config.delivery.keep_failed,
                defaults=config.delivery.options(),
            )
            if journal is not None:
                _resume(emitter, journal)
            ops = Operations(config, emitter, socket_path, journal)
            await _serve_socket(ops, sock, shutdown_trigger, task_status)
        finally:
            if journal is not None:
                journal.close()
    finally:
        sock.close()
        remove(socket_path, inode)


def _resume(emitter: SimpleEventEmitter, journal: Journal) -> None:
    kept, next_id = journal.load()
    emitter.add_observer(journal)  # first, so that it hears of what fails on the way back
    emitter.durable = True
    emitter.restore(kept, next_id)
    failed = sum(delivery.state is DeliveryState.FAILED for delivery in kept)
    logger.info("journal %s: %d deliveries to resume, %d failed kept", journal.path,
                len(kept) - failed, failed)


async def _serve_socket(
    ops: Operations,
    sock: socket.socket,
    shutdown_trigger: Callable[[], Awaitable[object]] | None,
    task_status: anyio.abc.TaskStatus[Ready],
) -> None:
    emitter, daemon, journal = ops.emitter, ops.config.daemon, ops.journal
    socket_listener = await anyio.abc.SocketListener.from_socket(sock)
    async with anyio.create_task_group() as connections:
        if journal is not None:
            connections.start_soon(journal.run)
        connections.start_soon(ops.health.run)
        async with emitter:
            connections.start_soon(
                partial(socket_listener.serve, task_group=connections),
                partial(serve_connection, ops=ops),
            )
            logger.info("listening on %s with %d listeners from %s", ops.socket_path,
                        len(emitter.listeners), daemon.listeners_dir.absolute())
            task_status.started(Ready(ops.socket_path, len(emitter.listeners), ops.reload))
            await (shutdown_trigger or anyio.sleep_forever)()
            ops.draining = True
            stats = emitter.stats()
            logger.info("shutting down: draining %d deliveries (at most %gs)",
                        stats.pending + stats.running + stats.retrying, daemon.shutdown_timeout)
        connections.cancel_scope.cancel()
    logger.info("stopped")


async def _serve_until_signalled(config: Config) -> int:
    stop = anyio.Event()
    forced = False
    ready: Ready | None = None

    async def watch_signals(group: anyio.abc.TaskGroup) -> None:
        nonlocal forced
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    _reload_on_signal(ready)
                elif not stop.is_set():
                    notify("STOPPING=1")
                    logger.info("%s received; send SIGINT again to stop without draining",
                                signal.Signals(signum).name)
                    stop.set()
                elif signum == signal.SIGINT:
                    logger.warning("second SIGINT: stopping now, without draining")
                    forced = True
                    group.cancel_scope.cancel()

    async def serve_until_stopped(
        group: anyio.abc.TaskGroup, *, task_status: anyio.abc.TaskStatus[Ready]
    ) -> None:
        await serve(config, shutdown_trigger=stop.wait, task_status=task_status)
        group.cancel_scope.cancel()  # the signal watcher's work is done

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(watch_signals, group)
            ready = await group.start(serve_until_stopped, group)
            notify("READY=1")
            notify(f"STATUS=serving {ready.listeners} listeners on {ready.socket}")
    except BaseExceptionGroup as errors:
        # A start-up error (a broken listener file, a socket in use) is one error, not a group.
        if len(errors.exceptions) == 1:
            raise errors.exceptions[0] from None
        raise
    return FORCED_EXIT if forced else 0


def _reload_on_signal(ready: Ready | None) -> None:
    if ready is None:
        logger.warning("SIGHUP received while starting; ignored (send it again once ready)")
        return
    logger.info("SIGHUP received: reloading the listeners")
    reloading()
    with contextlib.suppress(EventbusError):  # logged by reload; the old listeners run on
        ready.reload()
    notify("READY=1")


def run(config: Config) -> int:
    """Serve in the foreground until SIGTERM or SIGINT; return the process's exit status.

    Logs go to stderr with timestamps, at the config's ``log_level``.
    """
    configure_logging(config.daemon.log_level)
    return anyio.run(_serve_until_signalled, config)


def configure_logging(level: str) -> None:
    """Send every log record (the daemon's and the listeners') to stderr with a timestamp."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
