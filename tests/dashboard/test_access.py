"""Who may read and who may act, over plain HTTP against the real dashboard and daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from eventbus_cli.dashboard.access import Forbidden, can_read
from eventbus_cli.dashboard.server import parse_listen
from eventbus_cli.errors import EventbusError
from tests.dashboard.conftest import TOKEN, Served
from tests.harness import EVENTBUS

pytestmark = pytest.mark.timeout(60)


def _request(served: Served, path: str, *, form: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    data = None if form is None else "&".join(f"{k}={v}" for k, v in form.items()).encode()
    request = urllib.request.Request(served.url + path, data=data, headers=headers or {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers


def _fail_one(served: Served) -> int:
    with served.client() as client:
        client.emit("webhook", url="https://h/1")
        assert client.join(30)
        [failed] = client.deliveries("failed")
    return failed.id


def _session(served: Served) -> dict[str, str]:
    """The cookies of a logged-in browser, with the CSRF value its forms carry."""
    status, _, headers = _request(served, f"/login?token={TOKEN}")
    assert status == 303
    cookies = _set(headers)
    status, _body, headers = _request(served, "/failed", headers=_cookie_header(cookies))
    return cookies | _set(headers)


def _set(headers: Any) -> dict[str, str]:
    """The cookies a response sets."""
    found = {}
    for value in headers.get_all("set-cookie") or ():
        name, _, rest = value.partition("=")
        found[name] = rest.partition(";")[0]
    return found


def _cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    return {"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def test_an_action_without_the_token_is_refused_and_changes_nothing(served: Served) -> None:
    delivery = _fail_one(served)
    for path in ("/failed/retry", f"/deliveries/{delivery}/retry", "/failed/purge",
                 "/schedules/hourly/run"):
        status, body, _ = _request(served, path, form={"scope": "matching"})
        assert status == 403, path
        assert "needs the dashboard&#39;s token" in body, path
    status, body, _ = _request(served, "/events/emit",
                               form={"event": "user_created", "action": "emit"})
    assert status == 403
    with served.client() as client:
        assert [d.id for d in client.deliveries("failed")] == [delivery]


def test_a_logged_in_form_needs_its_csrf_value_and_the_same_site(served: Served) -> None:
    delivery = _fail_one(served)
    cookies = _session(served)
    headers = _cookie_header(cookies)
    status, body, _ = _request(served, "/failed/purge", form={}, headers=headers)
    assert (status, "CSRF" in body) == (403, True)
    status, body, _ = _request(served, "/failed/purge", form={"csrf": "forged"},
                               headers=headers)
    assert (status, "CSRF" in body) == (403, True)
    status, body, _ = _request(served, "/failed/purge", form={"csrf": cookies["eventbus_csrf"]},
                               headers=headers | {"sec-fetch-site": "cross-site"})
    assert (status, "another site" in body) == (403, True)
    with served.client() as client:
        assert [d.id for d in client.deliveries("failed")] == [delivery]
    status, _, headers_back = _request(served, "/failed/purge",
                                       form={"csrf": cookies["eventbus_csrf"]}, headers=headers)
    assert status == 303
    assert "Purged+1+failed+delivery" in headers_back["location"]


def test_a_bearer_token_acts_without_a_form(served: Served) -> None:
    delivery = _fail_one(served)
    status, _, _ = _request(served, f"/deliveries/{delivery}/retry", form={},
                            headers={"authorization": "Bearer wrong"})
    assert status == 403
    status, _, _ = _request(served, f"/deliveries/{delivery}/retry", form={},
                            headers={"authorization": f"Bearer {TOKEN}"})
    assert status == 303


def test_a_wrong_token_does_not_log_in(served: Served) -> None:
    status, body, headers = _request(served, "/login?token=nope")
    assert status == 403
    assert "not this dashboard&#39;s token" in body
    assert "eventbus_session" not in (headers.get("set-cookie") or "")


def test_read_only_shows_everything_and_changes_nothing(served: Served) -> None:
    delivery = _fail_one(served)
    served.board.read_only = True
    status, body, _ = _request(served, "/failed")
    assert status == 200
    assert f"#{delivery}" in body
    assert "Retry selected" not in body
    status, body, _ = _request(served, f"/deliveries/{delivery}/retry", form={},
                               headers={"authorization": f"Bearer {TOKEN}"})
    assert (status, "read-only" in body) == (403, True)


def test_bad_input_is_a_page_that_says_what_was_wrong(served: Served) -> None:
    status, body, _ = _request(served, "/deliveries/999999")
    assert status == 404
    assert "no such delivery" in body
    status, body, _ = _request(served, "/failed?event=%5B%5B")
    assert status == 400
    assert "invalid event pattern" in body
    status, body, _ = _request(served, "/failed?before=x")
    assert status == 400
    assert "before=" in body


def test_a_remote_reader_needs_the_token() -> None:
    from eventbus_cli.dashboard.server import standalone_board

    board = standalone_board(__import__("pathlib").Path("/nonexistent"), (), token="t",
                             read_only=False)
    remote = {"client": ("192.0.2.7", 50000), "server": ("192.0.2.1", 8088)}
    with pytest.raises(Forbidden, match="remote browser"):
        can_read(board, remote, {}, {})
    can_read(board, remote, {}, {"authorization": "Bearer t"})


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="reading as another user needs root (setpriv)")
def test_a_local_user_the_socket_would_refuse_reads_nothing(served: Served) -> None:
    fetch = ("import urllib.request, urllib.error, sys\n"
             "try:\n"
             f"    urllib.request.urlopen({served.url + '/failed'!r}, timeout=10)\n"
             "    print(200)\n"
             "except urllib.error.HTTPError as e:\n"
             "    print(e.code, e.read().decode())\n")
    ran = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-c", fetch], capture_output=True, text=True,
                         timeout=30, check=False)
    assert ran.stdout.startswith("403"), ran.stdout + ran.stderr
    assert "user 65534 may not read this bus" in ran.stdout
    status, _, _ = _request(served, "/failed")  # this user, as the socket would let in
    assert status == 200


def test_a_non_loopback_address_is_refused_without_allow_remote() -> None:
    with pytest.raises(EventbusError, match="not a loopback address"):
        parse_listen("0.0.0.0:8088")
    assert parse_listen("0.0.0.0:8088", allow_remote=True) == ("0.0.0.0", 8088)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    ran = subprocess.run([EVENTBUS, "dashboard", "--listen", "0.0.0.0:8088"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert ran.returncode == 1
    assert "not a loopback address" in ran.stderr
    assert "--allow-remote" in ran.stderr
