"""``eventbus serve --reload``: a listener file saved is a reload; a broken one keeps the
last good set."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import anyio
import pytest

from eventbus_cli import AsyncClient, Config
from eventbus_cli.daemon.server import serve

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

FIRST = '''
from eventbus_cli import listener

@listener("a")
def first(**kwargs): ...
'''


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _names(client: AsyncClient) -> set[str]:
    return {info.name for info in await client.listeners()}


async def _until_names(client: AsyncClient, wanted: set[str]) -> None:
    with anyio.fail_after(20):
        while await _names(client) != wanted:  # noqa: ASYNC110 - the daemon's answer, asked again
            await anyio.sleep(0.05)


async def test_a_saved_listener_file_is_reloaded_and_a_broken_one_changes_nothing(
    short_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    folder = short_dir / "listeners.d"
    folder.mkdir()
    (folder / "mine.py").write_text(FIRST)
    config = Config.from_dict({"daemon": {"socket": str(short_dir / "eb.sock"),
                                          "listeners_dir": str(folder)}})
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        await group.start(partial(serve, config, shutdown_trigger=stop.wait, watch=True))
        try:
            async with AsyncClient(short_dir / "eb.sock") as client:
                assert await _names(client) == {"mine:first"}
                (folder / "mine.py").write_text(FIRST + '''
@listener("b")
def second(**kwargs): ...
''')
                await _until_names(client, {"mine:first", "mine:second"})
                (folder / "mine.py").write_text(FIRST + "\nthis is not python\n")
                with anyio.fail_after(20):
                    while "reload failed" not in caplog.text:  # noqa: ASYNC110 - the log, read again
                        await anyio.sleep(0.05)
                assert await _names(client) == {"mine:first", "mine:second"}
        finally:
            stop.set()
    assert "mine.py" in caplog.text
