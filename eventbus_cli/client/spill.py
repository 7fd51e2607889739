"""``Spill``: a :class:`~.outbox.DaemonEmitter`'s buffer kept in a local file as well, so what
was not sent when the app stopped or died is sent at its next start.

Every event is appended to the file (one JSON line, dedupe key included) as it is buffered,
with one ``write`` to the operating system: it outlives the process being killed, though not
the machine losing power. The file is emptied whenever the buffer is, and rewritten with what
the buffer holds when it grows past four times that. Read at the next start, every line is
sent again with its own key: lines the daemon took already are answered as duplicates
(within its ``dedupe_window``), so nothing runs twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ("Spill",)

logger = logging.getLogger("eventbus.outbox")

_GROWTH = 4  # the file is rewritten once it holds this many times what the buffer holds


class Spill:
    """The spill file at ``path`` (created with mode 0600 if missing)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._written = 0

    def open(self) -> list[bytes]:
        """Open the file for appending; return the events it held from before, in order."""
        left: list[bytes] = []
        if self.path.exists():
            left = [line for line in self.path.read_bytes().splitlines() if line.strip()]
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._written = os.fstat(self._fd).st_size
        if left:
            logger.warning("%d events left unsent in %s by the last run are sent again (with "
                           "their dedupe keys: what the daemon took already runs once)",
                           len(left), self.path)
        return left

    def add(self, line: bytes) -> None:
        """Keep one buffered event (an encoded JSON line, without newline)."""
        assert self._fd is not None, "open() first"
        self._written += os.write(self._fd, line + b"\n")

    def sent(self, buffered: Iterable[bytes], held: int) -> None:
        """Some events were sent: ``buffered`` are those still waiting (``held`` bytes of
        them). Empty the file when none wait; rewrite it when it grew past its bound."""
        assert self._fd is not None
        if not held:
            os.ftruncate(self._fd, 0)
            self._written = 0
        elif self._written > _GROWTH * held:
            temporary = self.path.with_name(self.path.name + ".new")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"".join(line + b"\n" for line in buffered))
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self._written = os.fstat(self._fd).st_size

    @property
    def refused_path(self) -> Path:
        """Where events the daemon refused for good are set aside, a JSON line each."""
        return self.path.with_name(self.path.name + ".refused")

    def set_aside(self, line: bytes) -> Path:
        """Keep an event the daemon refused for good, for an operator to resend once the
        cause is fixed (``eventbus emit --file``: its dedupe key comes along); return where."""
        fd = os.open(self.refused_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line + b"\n")
        finally:
            os.close(fd)
        return self.refused_path

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
