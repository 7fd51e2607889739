"""Bounded polling for tests: every wait has a timeout."""

from __future__ import annotations

from collections.abc import Callable

import anyio


async def wait_until(condition: Callable[[], bool], *, seconds: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``seconds``."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - the emitter's counters have no event to await
            await anyio.sleep(0.001)
