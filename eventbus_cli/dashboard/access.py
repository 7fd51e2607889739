"""Who may read and who may act: the guards of every dashboard route.

Reading: a mounted dashboard leaves it to the host app's guards. A standalone one lets in a
loopback peer whose uid the daemon's socket would let in (found in ``/proc/net/tcp``, as
``SO_PEERCRED`` finds it on the socket), and anyone else only with the token: the dashboard
never shows what the socket's own check would refuse.

Acting (retry, purge, run, emit): the token (a cookie set by ``/login``, or an
``Authorization: Bearer`` header), or the host app's guards; a browser's form also carries
the CSRF value of its cookie, and a cross-site request is refused outright.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from pathlib import Path
from typing import Any

from .board import Board

__all__ = ("CSRF_COOKIE", "TOKEN_COOKIE", "Forbidden", "can_act", "can_read", "check_form",
           "csrf_value", "peer_uid", "session_value")

TOKEN_COOKIE = "eventbus_session"
CSRF_COOKIE = "eventbus_csrf"
_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


class Forbidden(Exception):
    """A request this dashboard refuses (403), with what to do instead."""

    status = 403

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


def session_value(token: str) -> str:
    """The session cookie's value for ``token``: derived from it, so the cookie does not
    hold the token itself."""
    return hmac.new(token.encode(), b"eventbus dashboard session", hashlib.sha256).hexdigest()


def csrf_value(cookies: dict[str, str]) -> str:
    """The CSRF value of this browser (its cookie's), or a new one to set."""
    return cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)


def _has_session(board: Board, cookies: dict[str, str], headers: Any) -> bool:
    if board.token is None:
        return False
    bearer = headers.get("authorization", "")
    if bearer.startswith("Bearer ") and board.token_matches(bearer[7:].strip()):
        return True
    cookie = cookies.get(TOKEN_COOKIE)
    return cookie is not None and hmac.compare_digest(cookie, session_value(board.token))


def can_read(board: Board, scope: dict[str, Any], cookies: dict[str, str],
             headers: Any) -> None:
    """Raise :class:`Forbidden` unless this request may read the bus."""
    if board.local_uids is None or _has_session(board, cookies, headers):
        return
    client, server = scope.get("client"), scope.get("server")
    uid = peer_uid(client, server) if client and server else None
    if uid is None:
        raise Forbidden("this dashboard shows a remote browser nothing without its token: "
                        "open /login?token=... (the token `eventbus dashboard` printed)")
    if uid not in board.local_uids:
        raise Forbidden(f"user {uid} may not read this bus: the daemon's socket would refuse "
                        "that user too (its allow_uids); or log in with the token")


def can_act(board: Board, cookies: dict[str, str], headers: Any, form_csrf: str | None) -> None:
    """Raise :class:`Forbidden` unless this request may change the bus."""
    if board.read_only:
        raise Forbidden("this dashboard is read-only (started with --read-only)")
    if not board.actions:
        raise Forbidden("this dashboard has no token and no guards, so it changes nothing: "
                        "give EventbusDashboard(token=...) or guards=[...]")
    if board.token is not None and not _has_session(board, cookies, headers):
        raise Forbidden("this action needs the dashboard's token: log in at /login with the "
                        "token `eventbus dashboard` printed (or send Authorization: Bearer)")
    if not headers.get("authorization", "").startswith("Bearer "):
        check_form(headers, cookies, form_csrf)
    # else a header a browser cannot send across sites: no form, no CSRF value to check


def check_form(headers: Any, cookies: dict[str, str], form_csrf: str | None) -> None:
    """Raise :class:`Forbidden` unless this form was posted from this dashboard's own page:
    not across sites, and with the CSRF value of its cookie."""
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise Forbidden("a request from another site may not change the bus")
    cookie = cookies.get(CSRF_COOKIE)
    if not cookie or not form_csrf or not hmac.compare_digest(cookie, form_csrf):
        raise Forbidden("the form's CSRF check failed: reload the page and try again")


def peer_uid(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The uid owning the loopback TCP socket at ``client`` talking to ``server``, read from
    ``/proc/net/tcp``; None for a peer that is not on loopback or cannot be found."""
    host, port = client[0], client[1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    if not (mapped or address).is_loopback:
        return None
    local, remote = f":{port:04X}", f":{server[1]:04X}"
    for table in _TABLES:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 7 and fields[1].endswith(local) and fields[2].endswith(remote):
                return int(fields[7])
    return None
