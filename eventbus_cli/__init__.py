"""eventbus: a local event bus for Python applications, with Litestar's listener API.

Only the errors load with the package; everything else loads on first use, so that a client
which only sends events over the socket (``eventbus emit``) starts fast.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .errors import BadArgumentsError as BadArgumentsError
from .errors import ConfigError as ConfigError
from .errors import EmitterNotRunningError as EmitterNotRunningError
from .errors import EventbusError as EventbusError
from .errors import InvalidEventIdError as InvalidEventIdError
from .errors import ListenerError as ListenerError
from .errors import LoaderError as LoaderError
from .errors import NoDaemonError as NoDaemonError
from .errors import QueueFullError as QueueFullError
from .errors import RemoteError as RemoteError
from .errors import ScheduleError as ScheduleError

if TYPE_CHECKING:
    from .bus.current import current_delivery as current_delivery
    from .bus.delivery import Delivery as Delivery
    from .bus.delivery import DeliveryState as DeliveryState
    from .bus.delivery import EmitterStats as EmitterStats
    from .bus.delivery import ListenerStats as ListenerStats
    from .bus.emitter import BaseEventEmitterBackend as BaseEventEmitterBackend
    from .bus.emitter import SimpleEventEmitter as SimpleEventEmitter
    from .bus.listener import EventListener as EventListener
    from .bus.listener import listener as listener
    from .bus.schedules import Schedule as Schedule
    from .bus.schedules import cron as cron
    from .bus.schedules import every as every
    from .client import Client as Client
    from .client.aio import AsyncClient as AsyncClient
    from .client.outbox import DaemonEmitter as DaemonEmitter
    from .client.relay import Relay as Relay
    from .client.transactional import Outbox as Outbox
    from .config import Config as Config
    from .config import DeliveryOptions as DeliveryOptions
    from .config import load_config as load_config
    from .daemon.loader import load_listeners as load_listeners


def _lazy_names() -> dict[str, str]:
    """Each public name of the ``if TYPE_CHECKING:`` block above, with its module: read from
    this file, so that every public name is written once (the block serves the type
    checker, and this map the imports at run time). Read as text: the block is one import
    a line, and a regular expression costs less than an AST."""
    import re
    from pathlib import Path

    text = Path(__file__).read_text()
    start = text.index("\nif TYPE_CHECKING:\n")
    block = text[start:text.index("\n\n\n", start)]
    return {name: module for module, name in
            re.findall(r"^    from \.([\w.]+) import (\w+) as \2$", block, re.MULTILINE)}


_EAGER = ("__version__", *(name for name, value in list(globals().items())
                           if isinstance(value, type) and issubclass(value, EventbusError)))
"""What loads with the package: the version and the errors imported above."""
_LAZY: dict[str, str] = {}
"""Filled from :func:`_lazy_names` on the first lazy name asked for."""


def __getattr__(name: str) -> Any:
    if not _LAZY:
        _LAZY.update(_lazy_names())
    if name == "__all__":
        return tuple(sorted((*_EAGER, *_LAZY)))
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'eventbus_cli' has no attribute {name!r}")
