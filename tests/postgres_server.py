"""A real PostgreSQL server for the tests: its own cluster in a temp dir, a Unix socket only,
stopped by its pid, so a test may kill or restart it.

Which binaries: ``EVENTBUS_TEST_POSTGRES_BIN`` (a folder with ``initdb`` and ``postgres``),
else Debian's newest ``/usr/lib/postgresql/*/bin`` (CI installs it), else ``initdb`` on PATH.
As root the cluster runs as the ``postgres`` user, or ``nobody`` (the server refuses root).
Where none is found the PostgreSQL tests are skipped locally with the reason, and fail under
CI (``CI`` set).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

from tests.harness import short_directory, wait_for


def find_binaries() -> Path | None:
    """The folder of ``initdb`` and ``postgres`` to run, if any."""
    if given := os.environ.get("EVENTBUS_TEST_POSTGRES_BIN"):
        return Path(given)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    if initdb := shutil.which("initdb"):
        return Path(initdb).resolve().parent
    return None


class PostgresServer:
    """One cluster; :meth:`restart` keeps its data."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.dir = short_directory()
        self.data = self.dir / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self._user: list[str] = []
        if os.geteuid() == 0:
            name = "postgres" if _exists("postgres") else "nobody"
            entry = pwd.getpwnam(name)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self._user = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                          "--clear-groups", "--"]
        subprocess.run([*self._user, str(binaries / "initdb"), "-D", str(self.data), "-A",
                        "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)

    @property
    def log(self) -> Path:
        return self.dir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.dir}&port=5433"

    def start(self) -> PostgresServer:
        args = [*self._user, str(self.binaries / "postgres"), "-D", str(self.data),
                "-k", str(self.dir), "-c", "listen_addresses=", "-p", "5433",
                "-c", "fsync=off", "-c", "max_connections=200", "-c", "log_min_messages=warning"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log)
        wait_for(self._answers, 30, lambda: self.log.read_text())
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError("postgres exited:\n" + self.log.read_text())
        result = subprocess.run([str(self.binaries / "pg_isready"), "-h", str(self.dir),
                                 "-p", "5433", "-U", "postgres"], capture_output=True)
        return result.returncode == 0

    def kill(self) -> None:
        """Stop at once, as a crash does (SIGQUIT: no checkpoint; the next start recovers)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            self.process.wait(timeout=30)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def backend(self, name: str, schema: str, claim_after: float = 2.0) -> str:
        """A ``[backend]`` table for a daemon of the bus in ``schema``."""
        return (f'[backend]\nurl = "{self.url()}"\nprefix = "{schema}"\nname = "{name}"\n'
                f"claim_after = {claim_after}\n")


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def new_schema() -> str:
    """A schema of its own for one test: tests share the server, never a bus."""
    return "t" + uuid.uuid4().hex[:10]
