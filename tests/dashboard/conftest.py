"""A real daemon (served in this process), the dashboard served by uvicorn on a loopback port
of its own, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventbus_cli import Client
from eventbus_cli.dashboard.board import Board
from eventbus_cli.dashboard.server import dashboard_app, standalone_board
from tests.harness import Daemon, started

TOKEN = "test-token-0123456789"

LISTENERS = '''
import json, os, pathlib
from eventbus_cli import every, listener

OUT = pathlib.Path(os.environ["EVENTBUS_TEST_OUT"])

@listener("webhook", retries=0)
def webhook(url: str) -> None:
    """Fails until the test "fixes" it (a file beside the output)."""
    if not OUT.with_name("fixed").exists():
        raise ConnectionError(f"target {url} is down")
    with OUT.open("a") as out:
        out.write(json.dumps({"webhook": url}) + "\\n")

@listener("user_created")
async def welcome(email: str) -> None:
    with OUT.open("a") as out:
        out.write(json.dumps({"welcome": email}) + "\\n")

@listener("report.*", retries=0)
def report(**kwargs) -> None:
    raise ValueError("the report template is missing")

hourly = every("1h", "user_created", kwargs={"email": "cron@example.com"}, name="hourly")
'''


def chromium() -> str | None:
    """The system's Chromium, which Playwright drives (it downloads no browser here)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


@dataclass
class Served:
    """The dashboard of one test: its URL, its board, and the daemon behind it."""

    url: str
    board: Board
    daemon: Daemon

    def client(self) -> Client:
        return Client(self.daemon.socket)


@pytest.fixture
def served(short_dir: Path) -> Iterator[Served]:
    import uvicorn

    for daemon in started(short_dir, listeners=LISTENERS):
        board = standalone_board(daemon.socket, (), token=TOKEN, read_only=False)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        config = uvicorn.Config(dashboard_app(board), log_config=None, access_log=False,
                                timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]},
                                  daemon=True)
        thread.start()
        try:
            yield Served(f"http://127.0.0.1:{listener.getsockname()[1]}", board, daemon)
        finally:
            server.should_exit = True
            thread.join(10)
            listener.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not longer: while Playwright's sync API runs, this
    thread counts as running an event loop, and other tests' anyio.run() would refuse."""
    executable = chromium()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("no Chromium found, and CI runs the browser tests: install Debian's "
                        "chromium (.ci/run does, as root)")
        pytest.skip("no Chromium on this machine (Debian: apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()
