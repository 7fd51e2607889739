"""The web dashboard: a Litestar router over the daemon's socket.

Mount it in your own Litestar app, under your app's guards::

    from eventbus_cli.dashboard import EventbusDashboard

    app = Litestar(route_handlers=[EventbusDashboard(path="/eventbus", guards=[admins_only])])

or run it on its own with ``eventbus dashboard`` (see :func:`.server.run_dashboard`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from ..client.calls import daemon_socket
from ..errors import EventbusError
from .access import Forbidden, can_read
from .actions import ACTIONS
from .board import Board
from .live import LIVE
from .pages import PAGES
from .render import error_page

__all__ = ("Board", "EventbusDashboard")

_STATIC = {"board.js": "text/javascript", "board.css": "text/css"}


@get("/static/{name:str}", name="eventbus:static", cache=False)
async def static(request: Request[Any, Any, Any]) -> Response[bytes]:
    name: str = request.path_params["name"]
    if name not in _STATIC:
        raise NotFoundException(f"no static file {name!r}")
    content = files("eventbus_cli.dashboard").joinpath("static", name).read_bytes()
    return Response(content, media_type=_STATIC[name],
                    headers={"cache-control": "max-age=300"})


def _may_read(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    board: Board = handler.opt["eventbus_board"]
    if handler.name in ("eventbus:static", "eventbus:login", "eventbus:login-form"):
        return
    can_read(board, connection.scope, dict(connection.cookies), connection.headers)  # type: ignore[arg-type]


class EventbusDashboard(Router):
    """The dashboard as a router to mount at ``path`` in a Litestar app.

    ``socket``: the daemon's socket (default: as the CLI finds it, from EVENTBUS_SOCKET or
    the nearest eventbus.toml). Actions (retry, purge, run, emit) need ``token`` (env
    EVENTBUS_DASHBOARD_TOKEN) or, with no token, pass when the ``guards`` given let the
    request in; with neither, and with ``read_only``, the dashboard changes nothing.
    """

    def __init__(self, path: str = "/eventbus", *, socket: Path | str | None = None,
                 token: str | None = None, guards: Sequence[Guard] | None = None,
                 read_only: bool = False, board: Board | None = None) -> None:
        if board is None:
            socket_path, trusted = daemon_socket(socket)
            board = Board(socket_path, trusted,
                          token=token or os.environ.get("EVENTBUS_DASHBOARD_TOKEN") or None,
                          guarded=bool(guards), read_only=read_only)
        self.board = board
        super().__init__(
            path=path, route_handlers=[*PAGES, *ACTIONS, *LIVE, static],
            guards=[*(guards or ()), _may_read],
            exception_handlers={Forbidden: error_page, EventbusError: error_page,
                                ValueError: error_page, HTTPException: error_page},
            opt={"eventbus_board": board, "eventbus_path": path},
            include_in_schema=False,
        )

