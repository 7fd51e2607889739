"""HTML out: the templates, the helpers they use, and the one page every error becomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import MediaType, Request, Response

from ..errors import EventbusError, InvalidEventIdError, NoDaemonError, RemoteError
from ..plural import counted
from .access import CSRF_COOKIE, Forbidden, csrf_value
from .board import Board

__all__ = ("error_page", "page", "root_of")

_MISSING = {"not_found"}


def _ago(value: str | None) -> str:
    """An ISO time as "12 s ago" / "in 3 min" (the full time is the element's title)."""
    if not value:
        return "-"
    seconds = (datetime.fromisoformat(value) - datetime.now(UTC)).total_seconds()
    span = abs(seconds)
    text = (f"{span:.0f} s" if span < 90 else f"{span / 60:.0f} min" if span < 5400
            else f"{span / 3600:.1f} h" if span < 172_800 else f"{span / 86400:.0f} days")
    return f"in {text}" if seconds > 0 else f"{text} ago"


def _as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


@cache
def _templates() -> Environment:
    environment = Environment(loader=PackageLoader("eventbus_cli.dashboard"),
                              autoescape=select_autoescape(default=True),
                              trim_blocks=True, lstrip_blocks=True)
    environment.filters["ago"] = _ago
    environment.filters["as_json"] = _as_json
    environment.filters["counted"] = counted
    return environment


def page(request: Request[Any, Any, Any], board: Board, template: str, code: int = 200,
         **context: Any) -> Response[str]:
    """The page ``template`` filled with ``context``, with the CSRF cookie its forms carry."""
    csrf = csrf_value(dict(request.cookies))
    root = root_of(request)
    html = _templates().get_template(template).render(
        request=request, root=root, board=board, csrf=csrf, **context)
    response = Response(html, status_code=code, media_type=MediaType.HTML,
                        headers={"cache-control": "no-store",
                                 "content-security-policy": _POLICY,
                                 "x-frame-options": "DENY",
                                 "referrer-policy": "same-origin"})
    if request.cookies.get(CSRF_COOKIE) != csrf:
        response.set_cookie(CSRF_COOKIE, csrf, path=root or "/", httponly=True,
                            samesite="strict")
    return response


_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "frame-ancestors 'none'; form-action 'self'")


def root_of(request: Request[Any, Any, Any]) -> str:
    """Where this dashboard's pages are, for links, redirects and cookies: the app's own
    root path (behind a proxy) and the path the dashboard is mounted at."""
    mounted: str = request.route_handler.opt.get("eventbus_path", "")
    return request.scope.get("root_path", "") + mounted.rstrip("/")


def error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
    """Every error a dashboard route raises, as one page that says what to do."""
    board: Board = request.route_handler.opt["eventbus_board"]
    retry = False
    if isinstance(exc, Forbidden):
        status, title, detail = exc.status, "Not allowed", exc.problem
    elif isinstance(exc, NoDaemonError):
        status, title, detail, retry = 503, "The daemon is not answering", str(exc), True
    elif isinstance(exc, RemoteError) and exc.code in _MISSING:
        status, title, detail = 404, "Not found", exc.message
    elif isinstance(exc, RemoteError):
        status, title, detail = 409, "The daemon refused", f"{exc.message} [{exc.code}]"
    elif isinstance(exc, InvalidEventIdError | ValueError):
        status, title, detail = 400, "Not understood", str(exc)
    elif isinstance(exc, EventbusError):
        status, title, detail, retry = 503, "The daemon is not answering", str(exc), True
    else:
        status = getattr(exc, "status_code", 500)
        title, detail = "Error", getattr(exc, "detail", None) or str(exc)
    return page(request, board, "error.html", status, title=title, detail=detail, retry=retry)
