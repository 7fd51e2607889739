"""What a dashboard changes: retry, purge, run a schedule, emit; and logging in. Each checks
who asks (:func:`~.access.can_act`) before it sends the daemon anything, then goes back to
the page it came from with a notice saying what happened."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from litestar import Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.response import Redirect

from ..errors import RemoteError
from ..plural import counted
from .access import TOKEN_COOKIE, Forbidden, can_act, check_form, session_value
from .pages import AnyRequest, board_of, catalog
from .render import page, root_of

__all__ = ("ACTIONS",)


def _back(request: AnyRequest, where: str, notice: str, **query: str) -> Redirect:
    root = root_of(request)
    query = {name: value for name, value in query.items() if value} | {"notice": notice}
    return Redirect(f"{root}{where}?{urlencode(query)}", status_code=303)


async def _acting(request: AnyRequest) -> FormMultiDict:
    board = board_of(request)
    form = await request.form()
    can_act(board, dict(request.cookies), request.headers, form.get("csrf"))
    return form


def _ids(form: FormMultiDict) -> list[int]:
    try:
        return [int(value) for value in form.getall("delivery")]
    except ValueError:
        raise Forbidden("a delivery id is a whole number") from None


def _matching(form: FormMultiDict) -> dict[str, str]:
    return {name: form[name] for name in ("listener", "event", "text") if form.get(name)}


@post("/failed/retry", name="eventbus:retry")
async def retry(request: AnyRequest) -> Redirect:
    board = board_of(request)
    form = await _acting(request)
    matching = _matching(form)
    async with board.client() as client:
        if form.get("scope") == "matching":
            retried = await client.retry(listener=matching.get("listener"),
                                         event=matching.get("event"), text=matching.get("text"))
        elif ids := _ids(form):
            retried = await client.retry(ids)
        else:
            return _back(request, "/failed", "Nothing selected: tick the deliveries to retry",
                         **matching)
    return _back(request, "/failed", f"Queued {counted(len(retried), 'delivery')} again",
                 **matching)


@post("/deliveries/{delivery_id:int}/retry", name="eventbus:retry-one")
async def retry_one(request: AnyRequest) -> Redirect:
    delivery_id: int = request.path_params["delivery_id"]
    board = board_of(request)
    await _acting(request)
    async with board.client() as client:
        await client.retry([delivery_id])
    return _back(request, f"/deliveries/{delivery_id}", f"Delivery #{delivery_id} queued again")


@get("/failed/purge", name="eventbus:purge-confirm")
async def purge_confirm(request: AnyRequest) -> Response[str]:
    board = board_of(request)
    async with board.client() as client:
        counts = await client.queue()
    return page(request, board, "purge.html", count=counts.failed_list)


@post("/failed/purge", name="eventbus:purge")
async def purge(request: AnyRequest) -> Redirect:
    board = board_of(request)
    await _acting(request)
    async with board.client() as client:
        purged = await client.purge("failed")
    notice = (f"Purged {counted(purged, 'failed delivery', 'failed deliveries')}" if purged else
              "Nothing to purge: the failed list was already empty (purged by someone else?)")
    return _back(request, "/failed", notice)


@post("/schedules/{name:str}/run", name="eventbus:run")
async def run_schedule(request: AnyRequest) -> Redirect:
    name: str = request.path_params["name"]
    board = board_of(request)
    await _acting(request)
    async with board.client() as client:
        fired = await client.fire(name)
    return _back(request, "/schedules", f"Schedule {name} fired: {fired.outcome or 'done'}")


@post("/listeners/{name:str}/pause", name="eventbus:pause")
async def pause(request: AnyRequest) -> Redirect:
    name: str = request.path_params["name"]
    board = board_of(request)
    form = await _acting(request)
    seconds = _minutes(form.get("minutes"))
    async with board.client() as client:
        state = await client.pause(name, seconds)
    until = f" until {state.until}" if state.until else ""
    return _back(request, "/listeners", f"Paused {name}{until}: its deliveries wait")


@post("/listeners/{name:str}/resume", name="eventbus:resume")
async def resume(request: AnyRequest) -> Redirect:
    name: str = request.path_params["name"]
    board = board_of(request)
    await _acting(request)
    async with board.client() as client:
        await client.resume(name)
    return _back(request, "/listeners", f"Resumed {name}")


def _minutes(text: str | None) -> float | None:
    if not text:
        return None
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not 0 < minutes <= 525_600:
        raise ValueError(f"pause for {text!r} minutes: give a number of minutes above 0, "
                         "or leave it empty to pause until resumed")
    return minutes * 60


def _arguments(form: FormMultiDict) -> tuple[list[Any], dict[str, Any]]:
    try:
        args = json.loads(form.get("args") or "[]")
        kwargs = json.loads(form.get("kwargs") or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"the arguments are not JSON: {exc}") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError("args must be a JSON list and kwargs a JSON object")
    return args, kwargs


@post("/events/emit", name="eventbus:emit")
async def emit(request: AnyRequest) -> Response[str]:
    board = board_of(request)
    form = await request.form()
    dry_run = form.get("action") != "emit"
    if dry_run:  # changes nothing: any reader may, from this dashboard's own form
        check_form(request.headers, dict(request.cookies), form.get("csrf"))
    else:
        can_act(board, dict(request.cookies), request.headers, form.get("csrf"))
    values = {name: form.get(name) or "" for name in ("event", "args", "kwargs")}
    outcome: dict[str, Any] = {"dry_run": dry_run}
    async with board.client() as client:
        try:
            args, kwargs = _arguments(form)
            fields = {"event": values["event"], "args": args, "kwargs": kwargs}
            outcome["result"] = await client.call("emit", **fields | (
                {"dry_run": True} if dry_run else {}))
        except (ValueError, RemoteError) as exc:
            outcome["error"] = str(exc)
        found, schemas = await catalog(client)
    return page(request, board, "events.html", catalog=found, schemas=schemas, form=values,
                outcome=outcome)


@get("/login", name="eventbus:login")
async def login_page(request: AnyRequest) -> Response[str]:
    token = request.query_params.get("token", "")
    board = board_of(request)
    if token:
        return _login(request, token)
    return page(request, board, "login.html", problem=None)


@post("/login", name="eventbus:login-form")
async def login(request: AnyRequest) -> Response[str]:
    form = await request.form()
    check_form(request.headers, dict(request.cookies), form.get("csrf"))
    return _login(request, form.get("token") or "")


def _login(request: AnyRequest, token: str) -> Response[Any]:
    board = board_of(request)
    if board.token is None or not board.token_matches(token.strip()):
        problem = ("this dashboard has no token: actions are governed by the app's guards"
                   if board.token is None else "that is not this dashboard's token")
        return page(request, board, "login.html", 403, problem=problem)
    response = _back(request, "/", "Logged in: actions are on")
    response.set_cookie(TOKEN_COOKIE, session_value(board.token),
                        path=root_of(request) or "/", httponly=True, samesite="strict")
    return response


@post("/logout", name="eventbus:logout")
async def logout(request: AnyRequest) -> Redirect:
    check_form(request.headers, dict(request.cookies), (await request.form()).get("csrf"))
    response = _back(request, "/", "Logged out")
    response.delete_cookie(TOKEN_COOKIE, path=root_of(request) or "/")
    return response


ACTIONS = (retry, retry_one, purge_confirm, purge, run_schedule, pause, resume, emit,
           login_page, login, logout)
