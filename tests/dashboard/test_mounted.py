"""The dashboard mounted in a host Litestar app, under the app's own guards."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.testing import TestClient

from eventbus_cli.dashboard import EventbusDashboard
from tests.dashboard.conftest import LISTENERS
from tests.harness import Daemon, started

pytestmark = pytest.mark.timeout(60)


def admins_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if connection.headers.get("x-admin") != "yes":
        raise NotAuthorizedException("admins only")


@pytest.fixture
def daemon(short_dir: Any) -> Any:
    yield from started(short_dir, listeners=LISTENERS)


def _csrf(body: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', body)
    assert found, "the page has no form with a CSRF value"
    return found.group(1)


def test_the_host_apps_guards_decide_who_reads_and_acts(daemon: Daemon) -> None:
    app = Litestar(route_handlers=[EventbusDashboard("/ops/eventbus", socket=daemon.socket,
                                                     guards=[admins_only])])
    with _client(daemon) as bus:
        bus.emit("webhook", url="https://h/1")
        assert bus.join(30)
    with TestClient(app) as http:
        assert http.get("/ops/eventbus/failed").status_code == 401
        admin = {"x-admin": "yes"}
        page = http.get("/ops/eventbus/failed", headers=admin)
        assert page.status_code == 200
        assert 'href="/ops/eventbus/deliveries/' in page.text
        assert "Retry all failed" in page.text
        daemon.out.with_name("fixed").touch()
        done = http.post("/ops/eventbus/failed/retry", headers=admin, follow_redirects=False,
                         data={"csrf": _csrf(page.text), "scope": "matching"})
        assert done.status_code == 303
        assert done.headers["location"].startswith("/ops/eventbus/failed?")
        refused = http.post("/ops/eventbus/failed/retry", data={"scope": "matching"})
        assert refused.status_code == 401
    with _client(daemon) as bus:
        assert bus.join(30)
        assert bus.deliveries("failed") == []


def test_with_neither_token_nor_guards_it_changes_nothing(daemon: Daemon) -> None:
    app = Litestar(route_handlers=[EventbusDashboard("/eventbus", socket=daemon.socket)])
    with TestClient(app) as http:
        page = http.get("/eventbus/failed")
        assert page.status_code == 200
        assert "view only" in page.text
        assert "Retry all" not in page.text
        refused = http.post("/eventbus/failed/purge", data={"csrf": _csrf(page.text)})
        assert refused.status_code == 403
        assert "no token and no guards" in refused.text


def _client(daemon: Daemon) -> Any:
    from eventbus_cli import Client

    return Client(daemon.socket)
