from __future__ import annotations

import pytest


# The library speaks anyio only, so every async test runs on both of anyio's backends.
@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]
