"""``eventbus init``: write a starter ``eventbus.toml`` and a ``listeners.d`` with one example."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import CONFIG_FILE_NAME, Config, DaemonConfig
from ..errors import EventbusError

__all__ = ("ProjectExistsError", "init_project")

EXAMPLE_LISTENER = '''\
"""An example listener module: every @listener at module level is loaded."""

import logging

from eventbus_cli import listener

log = logging.getLogger(__name__)


@listener("user_created")
async def send_welcome_mail(email: str) -> None:
    log.info("would send a welcome mail to %s", email)
'''


class ProjectExistsError(EventbusError):
    """``init`` would overwrite files that exist."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        names = ", ".join(str(path) for path in paths)
        verb = "exists" if len(paths) == 1 else "exist"
        super().__init__(f"{names} already {verb}; pass --force to overwrite")


def init_project(directory: Path, *, force: bool = False) -> list[Path]:
    """Write ``eventbus.toml`` and ``listeners.d/example.py`` into ``directory``.

    Refuses to overwrite either file unless ``force``; returns the paths written.
    """
    directory = directory.absolute()
    config_path = directory / CONFIG_FILE_NAME
    example_path = directory / "listeners.d" / "example.py"
    existing = [path for path in (config_path, example_path) if path.exists()]
    if existing and not force:
        raise ProjectExistsError(existing)
    daemon = dataclasses.replace(DaemonConfig(), listeners_dir=directory / "listeners.d")
    config = Config(daemon=daemon, path=config_path)
    example_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(config.to_toml(), encoding="utf-8")
    example_path.write_text(EXAMPLE_LISTENER, encoding="utf-8")
    return [config_path, example_path]
