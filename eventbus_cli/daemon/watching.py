"""``reload_on_change``: ``eventbus serve --reload``, the development loop. The listeners
directory and the config file are watched (watchfiles); a change to a listener file reloads
the listeners as ``eventbus listeners reload`` does, keeping the last good set when a file
fails; a change to the config file is logged, as its settings apply at the next start.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ..errors import EventbusError
from .handlers import Operations

__all__ = ("reload_on_change",)

logger = logging.getLogger("eventbus.daemon")


async def reload_on_change(ops: Operations) -> None:
    """Reload the listeners whenever a file of their directory changes; until cancelled."""
    try:
        from watchfiles import awatch
    except ImportError:
        logger.error("serve --reload needs watchfiles: pip install 'eventbus-cli[reload]'; "
                     "serving without it")
        return
    directory = ops.config.daemon.listeners_dir
    config = ops.config.path
    watched = [directory, *([config] if config is not None else [])]
    logger.info("watching %s for changes (--reload)", ", ".join(map(str, watched)))
    async for changes in awatch(*watched, debounce=200, step=50):
        changed = {Path(path) for _, path in changes}
        if config is not None and config.resolve() in {path.resolve() for path in changed}:
            logger.warning("%s changed: its settings apply when the daemon starts again; "
                           "the listeners are reloaded now", config)
        if not any(path.suffix == ".py" or path == config for path in changed):
            continue  # a cache file, an editor's swap file
        # A failed reload is logged by it, naming the file; the last good set keeps running.
        with contextlib.suppress(EventbusError):
            await ops.reload()
