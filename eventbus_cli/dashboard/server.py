"""The dashboard on its own: ``eventbus dashboard`` serves :func:`dashboard_app` with uvicorn,
on loopback unless told otherwise."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from litestar import Litestar

from ..errors import EventbusError
from . import EventbusDashboard
from .board import Board

__all__ = ("Listen", "dashboard_app", "parse_listen", "serve_dashboard", "standalone_board")

Listen = tuple[str, int]


def parse_listen(text: str, *, allow_remote: bool = False) -> Listen:
    """``HOST:PORT`` (``[::1]:8088`` for IPv6) as a pair; a host that is not loopback is
    refused unless ``allow_remote``."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise EventbusError(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:8088")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not allow_remote:
        raise EventbusError(
            f"--listen {text!r} is not a loopback address: anyone who reaches it could read "
            "the bus. Put the dashboard behind your app's auth (EventbusDashboard), or pass "
            "--allow-remote to serve it there (every page then needs the token)")
    return host, int(port)


def standalone_board(socket_path: Path, trusted_uids: tuple[int, ...], *,
                     token: str | None, read_only: bool) -> Board:
    """The board of a standalone dashboard: the token given (or a new one), and loopback
    readers let in as the daemon's socket would let them in."""
    return Board(socket_path, trusted_uids, token=token or secrets.token_urlsafe(24),
                 read_only=read_only,
                 local_uids=frozenset({os.getuid(), 0, *trusted_uids}))


def dashboard_app(board: Board) -> Litestar:
    """A Litestar app serving the dashboard at ``/``, sampling the queue's depth while it
    runs."""
    @asynccontextmanager
    async def sampling(app: Litestar) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(board.sample)
            yield
            tasks.cancel_scope.cancel()

    return Litestar(route_handlers=[EventbusDashboard("/", board=board)], debug=False,
                    openapi_config=None, logging_config=None, lifespan=[sampling])


def serve_dashboard(board: Board, listen: Listen, *,
                    ready: Callable[[str], None] = lambda url: None) -> None:
    """Serve the dashboard until interrupted; ``ready(url)`` once it accepts connections."""
    import uvicorn

    host, port = listen
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise EventbusError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another "
                            "with --listen HOST:PORT") from None
    listener.listen(128)  # browsers may connect at once: the backlog holds them till uvicorn runs
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    config = uvicorn.Config(dashboard_app(board), log_config=None, access_log=False,
                            timeout_graceful_shutdown=1)
    ready(f"http://{shown}:{bound}/")
    anyio.run(uvicorn.Server(config).serve, [listener])
