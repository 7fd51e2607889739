"""Bounded polling for tests: every wait has a timeout."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import anyio


async def wait_until(condition: Callable[[], bool], *, seconds: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``seconds``."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - the emitter's counters have no event to await
            await anyio.sleep(0.001)


def replies(path: Path, request: bytes, expected: bytes) -> bool:
    """Whether the server on the Unix socket ``path`` answers ``request`` with a reply that
    starts with ``expected`` (False while nothing listens there yet)."""
    probe = socket.socket(socket.AF_UNIX)
    probe.settimeout(15)
    try:
        probe.connect(str(path))
        probe.sendall(request)
        return probe.recv(4096).startswith(expected)
    except OSError:
        return False
    finally:
        probe.close()
