"""The daemon's life: start up (load listeners, bind the socket, open the broker), serve,
shut down (drain), close; and, in :func:`run` alone, signals.

:func:`serve` is the daemon as a coroutine, to embed or test: it stops when ``shutdown_trigger``
returns. :func:`run` is the process: it alone handles signals and sets up logging.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from .._version import __version__
from ..bus.emitter import SimpleEventEmitter
from ..bus.schedules import Schedule
from ..config import Config, import_paths
from ..errors import ConfigError, EventbusError
from ..plural import counted
from ..protocol.results import ReloadResult
from ..stores import open_broker
from .connection import Connections
from .handlers import Operations
from .loader import load_modules
from .logs import configure_logging
from .metrics import Metrics, check_listen, serve_metrics
from .socketfile import bind_socket, remove
from .systemd import notify, reloading
from .watching import reload_on_change

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
    reload: Callable[[], Awaitable[ReloadResult]]


class Server:
    """One daemon's life in named phases: :meth:`startup`, :meth:`main_loop`, :meth:`shutdown`
    (the drain), then :meth:`close`."""

    def __init__(self, config: Config, *, watch: bool = False) -> None:
        self.config = config = config.absolute()
        self.watch = watch
        """Whether listener files are watched and reloaded when they change (--reload)."""
        self.socket_path = config.daemon.socket_path
        self._sock: socket.socket | None = None
        self._inode = 0
        self.ops: Operations | None = None
        self._schedules: list[Schedule] = []

    def startup(self) -> Operations:
        """Load the listeners, bind the socket, open the broker; any failure here stops the
        daemon before it served anything, with what went wrong (and :meth:`close` undoes the
        steps that were taken)."""
        config, daemon = self.config, self.config.daemon
        if config.metrics is not None:
            check_listen(config.metrics, config.path)
        loaded = load_modules(daemon.listeners_dir, import_paths(config))
        # The socket first: "another daemon runs here" is the clearest error there is.
        self._sock, self._inode = bind_socket(
            self.socket_path, shared=bool(daemon.allow_uids or daemon.allow_gids))
        broker = open_broker(config, self.socket_path)
        emitter = SimpleEventEmitter(
            loaded.listeners,
            concurrency=daemon.concurrency,
            max_per_listener=daemon.max_per_listener or None,
            overrides=config.listeners,
            max_threads=daemon.max_threads,
            shutdown_timeout=daemon.shutdown_timeout,
            defaults=config.delivery.options(),
            broker=broker,
            timings=config.metrics is not None,
            tracing=True,  # where OpenTelemetry is installed and set up: see bus.tracing
        )
        metrics = None
        if config.metrics is not None:
            metrics = Metrics(emitter, lambda: 0, broker.commit_times)
        self.ops = Operations(config, emitter, self.socket_path, metrics=metrics)
        self._schedules = loaded.schedules
        return self.ops

    async def main_loop(
        self, ops: Operations, shutdown_trigger: Callable[[], Awaitable[object]] | None,
        task_status: anyio.abc.TaskStatus[Ready],
    ) -> None:
        """Serve connections until ``shutdown_trigger`` returns, then shut down."""
        assert self._sock is not None
        socket_listener = await anyio.abc.SocketListener.from_socket(self._sock)
        daemon = self.config.daemon
        accepted = Connections(daemon.max_connections, daemon.idle_timeout)
        await ops.broker.open()
        ops.serve_schedules(self._schedules)  # once the broker says when each last fired
        async with anyio.create_task_group() as connections:
            connections.start_soon(accepted.sweep)
            if ops.metrics is not None and self.config.metrics is not None:
                ops.metrics.open_connections = accepted.__len__
                await _start_metrics(connections, self.config, ops.metrics)
            async with ops.emitter:
                connections.start_soon(accepted.serve, socket_listener, ops, connections)
                connections.start_soon(ops.scheduler.run)
                if self.watch:
                    connections.start_soon(reload_on_change, ops)
                _log_banner(ops)
                task_status.started(Ready(ops.socket_path, len(ops.emitter.listeners),
                                          ops.reload))
                await _first(shutdown_trigger or anyio.sleep_forever, ops.stopping.wait)
                self.shutdown(ops)
            # The drain is over: the waits still open answer, then every connection closes.
            ops.monitor.cut_short(f"not finished when the daemon shut down: the event was "
                                  f"accepted and the wait cut short; what did not run runs "
                                  f"{ops.broker.rerun}" if ops.broker.durable else
                                  "not finished when the daemon shut down: the event was "
                                  "accepted, the wait cut short, and what did not run is lost "
                                  "with the in-memory queue")
            await accepted.answered(_ANSWER_SECONDS)
            connections.cancel_scope.cancel()

    def shutdown(self, ops: Operations) -> None:
        """Refuse new emits; leaving the emitter then drains, within ``shutdown_timeout``."""
        ops.intake.draining = True
        stats = ops.emitter.stats()
        if ops.emitter.drain_cut:
            logger.info("shutting down without draining: cutting short %s",
                        counted(stats.pending + stats.running + stats.retrying, "delivery"))
            return
        logger.info("shutting down: draining %s (at most %gs)",
                    counted(stats.pending + stats.running + stats.retrying, "delivery"),
                    self.config.daemon.shutdown_timeout)

    def close(self) -> None:
        """Write out and close the broker, close and remove the socket."""
        try:
            if self.ops is not None:
                self.ops.broker.close()
        finally:
            if self._sock is not None:
                self._sock.close()
                remove(self.socket_path, self._inode)


_ANSWER_SECONDS = 2.0
"""How long, at shutdown, the replies still owed have to go out before connections close."""


async def serve(
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    task_status: anyio.abc.TaskStatus[Ready] = anyio.TASK_STATUS_IGNORED,
    watch: bool = False,
) -> None:
    """Run the daemon until ``shutdown_trigger`` returns (forever without one).

    Start-up loads the listeners (a :class:`LoaderError` names the bad file) and binds the
    socket (refused where a daemon answers). Shutdown refuses new emits with
    ``shutting_down``, drains the queue within ``shutdown_timeout``, closes every
    connection and removes the socket. ``watch`` reloads the listeners when their files
    change (``eventbus serve --reload``).
    """
    server = Server(config, watch=watch)
    try:
        ops = server.startup()
        await server.main_loop(ops, shutdown_trigger, task_status)
    finally:
        server.close()


async def _first(*waits: Callable[[], Awaitable[object]]) -> None:
    """Return once the first of ``waits`` returns (the others are cancelled)."""
    async with anyio.create_task_group() as group:
        async def until(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            group.cancel_scope.cancel()

        for wait in waits:
            group.start_soon(until, wait)


async def _start_metrics(group: anyio.abc.TaskGroup, config: Config, metrics: Metrics) -> None:
    assert config.metrics is not None
    listen = config.metrics.listen
    try:
        await group.start(partial(serve_metrics, config.metrics, metrics))
    except OSError as exc:
        raise ConfigError(config.path, "metrics.listen", f"cannot listen on {listen}: "
                          f"{exc.strerror or exc}; choose another port, or stop what uses "
                          "it") from None


def _log_banner(ops: Operations) -> None:
    """What was loaded and where it serves, as huey's consumer says it at start."""
    config, emitter = ops.config, ops.emitter
    lines = [f"eventbus {__version__} listening on {ops.socket_path}; deliveries in "
             f"{ops.broker.describe()}",
             f"{counted(len(emitter.listeners), 'listener')} from "
             f"{config.daemon.listeners_dir}:"]
    for item, options in emitter.listener_options():
        timeout = "none" if math.isinf(options.timeout) else f"{options.timeout:g}s"
        kind = "async" if item.is_async else "sync"
        lines.append(f"  {item.name} ({kind}) on "
                     f"{', '.join(sorted(item.event_ids))}: retries={options.retries} "
                     f"backoff={options.backoff:g}s timeout={timeout}")
    schedules = ops.scheduler.listing()
    if schedules:
        lines.append(f"{counted(len(schedules), 'schedule')}:")
        lines += [f"  {info.name}: {info.event} {info.text}, next {info.next}"
                  for info in schedules]
    logger.info("%s", "\n".join(lines))
    for info in schedules:  # it fires, and nothing runs: most likely a typo
        if not ops.broker.targets(info.event, emitter.slots_for(info.event)):
            logger.warning("schedule %s emits %r, which no listener takes: its fires will be "
                           "counted as unrouted (a typo in its event, or a listener not "
                           "loaded?)", info.name, info.event)


async def _serve_until_signalled(config: Config, watch: bool) -> int:
    stop = anyio.Event()
    forced = False
    ready: Ready | None = None

    async def watch_signals(group: anyio.abc.TaskGroup) -> None:
        nonlocal forced
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    await _reload_on_signal(ready)
                elif not stop.is_set():
                    notify("STOPPING=1")
                    logger.info("%s received: finishing what was accepted, for at most %gs "
                                "(shutdown_timeout); a SIGINT (Ctrl-C) now stops without "
                                "waiting for it", signal.Signals(signum).name,
                                config.daemon.shutdown_timeout)
                    stop.set()
                elif signum == signal.SIGINT:
                    logger.warning("SIGINT while draining: stopping now, cutting short what "
                                   "still runs")
                    forced = True
                    group.cancel_scope.cancel()
                    _exit_unless_stopped_within(FORCED_GRACE)

    async def serve_until_stopped(
        group: anyio.abc.TaskGroup, *, task_status: anyio.abc.TaskStatus[Ready]
    ) -> None:
        await serve(config, shutdown_trigger=stop.wait, task_status=task_status, watch=watch)
        group.cancel_scope.cancel()  # the signal watcher's work is done

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(watch_signals, group)
            ready = await group.start(serve_until_stopped, group)
            notify("READY=1")
            notify(f"STATUS=serving {counted(ready.listeners, 'listener')} on {ready.socket}")
    except BaseExceptionGroup as errors:
        # A start-up error (a broken listener file, a socket in use) is one error, not a group.
        if len(errors.exceptions) == 1:
            raise errors.exceptions[0] from None
        raise
    return FORCED_EXIT if forced else 0


FORCED_GRACE = 2.0
"""Seconds a second SIGINT waits for the tasks to end before the process exits regardless."""


def _exit_unless_stopped_within(seconds: float) -> None:
    """End the process after ``seconds`` if it is still running then: a listener that
    swallows its cancellation would otherwise keep it alive however often it is told."""

    def force() -> None:
        logger.error("a listener ignored its cancellation for %gs; exiting without it", seconds)
        logging.shutdown()
        os._exit(FORCED_EXIT)

    timer = threading.Timer(seconds, force)
    timer.daemon = True  # a process that stops in time is not held back by it
    timer.start()


async def _reload_on_signal(ready: Ready | None) -> None:
    if ready is None:
        logger.warning("SIGHUP received while starting; ignored (send it again once ready)")
        return
    logger.info("SIGHUP received: reloading the listeners")
    reloading()
    with contextlib.suppress(EventbusError):  # logged by reload; the old listeners run on
        await ready.reload()
    notify("READY=1")


def run(config: Config, *, watch: bool = False) -> int:
    """Serve in the foreground until SIGTERM or SIGINT; return the process's exit status
    (``watch``: reload the listeners when their files change).

    Logs go to stderr at the config's ``log_level``, as its ``log_format`` says.
    """
    configure_logging(config.daemon.log_level, config.daemon.log_format)
    status = anyio.run(_serve_until_signalled, config, watch, backend_options=_loop_options())
    hung = [thread for thread in threading.enumerate()
            if thread.is_alive() and not thread.daemon and thread is not threading.current_thread()]
    deadline = time.monotonic() + 1.0  # idle worker threads end as the loop closes
    for thread in hung:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [thread for thread in hung if thread.is_alive()]
    if hung:
        # Sync calls stuck past their timeout: the interpreter would wait for them forever.
        logger.warning("stopped, leaving %d sync listener calls that still run in threads "
                       "(stuck past their timeout)", len(hung))
        logging.shutdown()
        os._exit(status)
    logger.info("stopped")
    return status


def _loop_options() -> dict[str, Any]:
    """uvloop where it is installed, as uvicorn does: it cuts the emit-to-listener latency."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}
