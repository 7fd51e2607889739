"""``eventbus init``: write a starter ``eventbus.toml`` and a ``listeners.d`` with one example."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..config import CONFIG_FILE_NAME, DeliveryConfig
from ..errors import EventbusError

__all__ = ("ProjectExistsError", "init_project", "project_config", "project_socket")

_SOCKET_PATH_MAX = 100  # bytes: what bind_socket takes (AF_UNIX allows about 107)

_CONFIG = """\
# eventbus.toml, written by `eventbus init`. Every key, its default and range:
# docs/reference/config.md. Commands run in this folder or below find this file.

[daemon]
socket = "{socket}"  # this project's own daemon; clients find it through this file
listeners_dir = "listeners.d"
# python_path = ["src"]  # more folders listener modules import from (this one is on it)

[journal]  # deliveries outlive a restart of the daemon (SQLite, WAL)
path = ".eventbus/eventbus.db"

[delivery]  # for listeners that set none of these
retries = {retries}
backoff = {backoff}
timeout = {timeout}
keep_failed = {keep_failed}

# [listeners."example:send_welcome_mail"]  # one listener's own options, over its decorator's
# retries = 3
# rate = "10/s"

# [[schedule]]  # emit an event on a schedule (the journal keeps when it last fired)
# name = "nightly-report"
# event = "report.daily"
# cron = "0 3 * * *"

# [metrics]  # Prometheus text format on /metrics
# listen = "127.0.0.1:9464"

# [backend]  # N daemons on N hosts share one bus (instead of [journal])
# url = "postgresql://app@db.internal/app"  # or "redis://127.0.0.1:6379/0"
# name = "web-1"
"""

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


def project_socket(directory: Path) -> Path:
    """This project's own socket: ``.eventbus/eventbus.sock`` beside the config, or, where
    that path is too long for a Unix socket, one in ``/tmp/eventbus-UID`` named after the
    folder (its name and a hash of its path)."""
    beside = directory / ".eventbus" / "eventbus.sock"
    if len(os.fsencode(beside)) <= _SOCKET_PATH_MAX:
        return beside
    digest = hashlib.sha1(os.fsencode(directory)).hexdigest()[:8]
    return Path(f"/tmp/eventbus-{os.getuid()}") / f"{directory.name[:40]}-{digest}.sock"


def project_config(directory: Path) -> str:
    """``eventbus.toml`` for a project in ``directory``: its own socket, the journal on, and
    each optional table commented out with a line on what it does."""
    socket = project_socket(directory)
    shown = (str(socket.relative_to(directory)) if socket.is_relative_to(directory)
             else str(socket))
    delivery = DeliveryConfig()
    return _CONFIG.format(socket=shown, retries=delivery.retries, backoff=delivery.backoff,
                          timeout=delivery.timeout, keep_failed=delivery.keep_failed)


def init_project(directory: Path, *, force: bool = False) -> list[Path]:
    """Write ``eventbus.toml`` (:func:`project_config`) and ``listeners.d/example.py`` into
    ``directory``.

    Refuses to overwrite either file unless ``force``; returns the paths written.
    """
    directory = directory.absolute()
    config_path = directory / CONFIG_FILE_NAME
    example_path = directory / "listeners.d" / "example.py"
    existing = [path for path in (config_path, example_path) if path.exists()]
    if existing and not force:
        raise ProjectExistsError(existing)
    example_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(project_config(directory), encoding="utf-8")
    example_path.write_text(EXAMPLE_LISTENER, encoding="utf-8")
    return [config_path, example_path]
