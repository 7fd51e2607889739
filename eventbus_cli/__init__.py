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
    from .async_client import AsyncClient as AsyncClient
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
    from .config import Config as Config
    from .config import DeliveryOptions as DeliveryOptions
    from .config import load_config as load_config
    from .daemon.loader import load_listeners as load_listeners
    from .outbox import DaemonEmitter as DaemonEmitter


__all__ = (
    "AsyncClient",
    "BadArgumentsError",
    "BaseEventEmitterBackend",
    "Client",
    "Config",
    "ConfigError",
    "DaemonEmitter",
    "Delivery",
    "DeliveryOptions",
    "DeliveryState",
    "EmitterNotRunningError",
    "EmitterStats",
    "EventListener",
    "EventbusError",
    "InvalidEventIdError",
    "ListenerError",
    "ListenerStats",
    "LoaderError",
    "NoDaemonError",
    "QueueFullError",
    "RemoteError",
    "Schedule",
    "ScheduleError",
    "SimpleEventEmitter",
    "__version__",
    "cron",
    "current_delivery",
    "every",
    "listener",
    "load_config",
    "load_listeners",
)

_LAZY = {
    "EventListener": "bus.listener", "listener": "bus.listener",
    "DeliveryOptions": "config",
    "AsyncClient": "async_client", "Client": "client",
    "Config": "config", "load_config": "config",
    "Delivery": "bus.delivery", "DeliveryState": "bus.delivery", "EmitterStats": "bus.delivery",
    "ListenerStats": "bus.delivery", "current_delivery": "bus.current",
    "BaseEventEmitterBackend": "bus.emitter", "SimpleEventEmitter": "bus.emitter",
    "load_listeners": "daemon.loader", "DaemonEmitter": "outbox",
    "Schedule": "bus.schedules", "cron": "bus.schedules", "every": "bus.schedules",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'eventbus_cli' has no attribute {name!r}")
