"""eventbus: a local event bus for Python applications, with Litestar's listener API.

Only the errors load with the package; everything else loads on first use, so that a client
which only sends events over the socket (``eventbus emit``) starts fast.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .errors import ConfigError as ConfigError
from .errors import EmitterNotRunningError as EmitterNotRunningError
from .errors import EventbusError as EventbusError
from .errors import InvalidEventIdError as InvalidEventIdError
from .errors import ListenerError as ListenerError
from .errors import LoaderError as LoaderError
from .errors import NoDaemonError as NoDaemonError
from .errors import QueueFullError as QueueFullError
from .errors import RemoteError as RemoteError

if TYPE_CHECKING:
    from .bus.delivery import Delivery as Delivery
    from .bus.delivery import DeliveryState as DeliveryState
    from .bus.delivery import EmitterStats as EmitterStats
    from .bus.delivery import ListenerStats as ListenerStats
    from .bus.emitter import BaseEventEmitterBackend as BaseEventEmitterBackend
    from .bus.emitter import SimpleEventEmitter as SimpleEventEmitter
    from .bus.listener import EventListener as EventListener
    from .bus.listener import listener as listener
    from .client import AsyncClient as AsyncClient
    from .client import Client as Client
    from .config import Config as Config
    from .config import DeliveryOptions as DeliveryOptions
    from .config import load_config as load_config
    from .daemon.loader import load_listeners as load_listeners


__all__ = (
    "AsyncClient",
    "BaseEventEmitterBackend",
    "Client",
    "Config",
    "ConfigError",
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
    "SimpleEventEmitter",
    "__version__",
    "listener",
    "load_config",
    "load_listeners",
)

_LAZY = {
    "EventListener": "bus.listener", "listener": "bus.listener",
    "DeliveryOptions": "config",
    "AsyncClient": "client", "Client": "client",
    "Config": "config", "load_config": "config",
    "Delivery": "bus.delivery", "DeliveryState": "bus.delivery", "EmitterStats": "bus.delivery",
    "ListenerStats": "bus.delivery",
    "BaseEventEmitterBackend": "bus.emitter", "SimpleEventEmitter": "bus.emitter",
    "load_listeners": "daemon.loader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'eventbus_cli' has no attribute {name!r}")
