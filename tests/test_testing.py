"""eventbus_cli.testing: a real daemon for a test, and waiting until it is idle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from eventbus_cli.testing import RunningDaemon, running_daemon

LISTENER = '''
import os
from eventbus_cli import listener

@listener("user_created")
def welcome(email):
    with open(os.path.join(os.path.dirname(__file__), "..", "out.txt"), "a") as out:
        out.write(email + "\\n")
'''


@pytest.fixture
def listeners(tmp_path: Path) -> Path:
    folder = tmp_path / "listeners.d"
    folder.mkdir()
    (folder / "welcome.py").write_text(LISTENER)
    return folder


def test_join_returns_once_every_delivery_has_run(listeners: Path) -> None:
    with running_daemon(listeners) as bus:
        for n in range(50):
            bus.client.emit("user_created", email=f"user{n}@example.com")
        assert bus.client.join()
        assert len((listeners.parent / "out.txt").read_text().splitlines()) == 50
    assert bus.process.returncode == 0


def test_the_fixture_starts_a_daemon_and_stops_it(
    eventbus_daemon: Callable[..., RunningDaemon], listeners: Path,
) -> None:
    bus = eventbus_daemon(listeners, config="[delivery]\nretries = 1\n")
    assert bus.client.emit("user_created", email="x@example.com") == 1
    assert bus.client.join(seconds=30)
    assert "listening on" in bus.logs()
