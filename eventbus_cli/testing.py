"""Test helpers: a real daemon for a test, started on a short temporary socket.

    from eventbus_cli.testing import running_daemon

    def test_welcome_mail(tmp_path):
        with running_daemon(Path("listeners.d")) as bus:
            bus.client.emit("user_created", email="ada@example.com")
            assert bus.client.join()           # every delivery has finished

With pytest, ``pytest_plugins = ["eventbus_cli.testing"]`` (in a conftest.py) gives the
``eventbus_daemon`` fixture: a function that starts one and stops it after the test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .client import Client
from .errors import EventbusError, NoDaemonError

__all__ = ("RunningDaemon", "eventbus_daemon", "running_daemon")

_EVENTBUS = [sys.executable, "-m", "eventbus_cli"]


class RunningDaemon:
    """A started ``eventbus serve``: its socket, a connected :class:`Client`, its log."""

    def __init__(self, process: subprocess.Popen[bytes], socket: Path, log: Path) -> None:
        self.process = process
        self.socket = socket
        self.log = log
        self.client = Client(socket)

    def logs(self) -> str:
        """What the daemon has logged so far."""
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit (the drain included); return the exit status."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def running_daemon(listeners_dir: Path | str, *, config: str | None = None,
                   start_timeout: float = 15.0) -> Iterator[RunningDaemon]:
    """Start ``eventbus serve`` on the listener files of ``listeners_dir`` (and the TOML
    text ``config``, if given) with a socket in a new folder under /tmp; stop it on exit."""
    root = Path(tempfile.mkdtemp(prefix="eb-test-", dir="/tmp"))  # AF_UNIX paths are short
    socket, log = root / "eventbus.sock", root / "daemon.log"
    command = [*_EVENTBUS, "serve", "--listeners-dir", str(Path(listeners_dir).absolute())]
    if config is not None:
        (root / "eventbus.toml").write_text(config)
        command[len(_EVENTBUS):len(_EVENTBUS)] = ["--config", str(root / "eventbus.toml")]
    env = {**os.environ, "EVENTBUS_SOCKET": str(socket)}
    env.pop("EVENTBUS_CONFIG", None)
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, cwd=root, stdout=out, stderr=out)
    try:
        _wait_until_ready(process, socket, log, start_timeout)
        daemon = RunningDaemon(process, socket, log)
        try:
            yield daemon
        finally:
            daemon.stop()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_ready(process: subprocess.Popen[bytes], socket: Path, log: Path,
                      seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EventbusError(f"the daemon exited {process.returncode} before it served:\n"
                                + log.read_text(errors="replace"))
        try:
            with Client(socket, timeout=1.0) as probe:
                probe.hello()
            return
        except NoDaemonError:
            time.sleep(0.02)  # not listening yet: the socket appears once it is
    raise EventbusError(f"the daemon did not answer on {socket} within {seconds:g}s:\n"
                        + log.read_text(errors="replace"))


def _fixture() -> Any:
    import pytest

    @pytest.fixture
    def eventbus_daemon() -> Iterator[Callable[..., RunningDaemon]]:
        """A function ``(listeners_dir, *, config=None)`` that starts a daemon for this test;
        each one started is stopped when the test ends."""
        with contextlib.ExitStack() as started:
            yield lambda listeners_dir, **options: started.enter_context(
                running_daemon(listeners_dir, **options))

    return eventbus_daemon


eventbus_daemon = _fixture() if "pytest" in sys.modules else None
