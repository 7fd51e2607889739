"""eventbus: a local event bus for Python applications, with Litestar's listener API.

Only ``listener`` and the errors load with the package; everything else loads on first use,
so that a client which only sends events over the socket (``eventbus emit``) starts fast.
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
from .listener import DeliveryOptions as DeliveryOptions
from .listener import EventListener as EventListener
from .listener import listener as listener  # eager: `listener` is also a submodule's name

if TYPE_CHECKING:
    from .client import AsyncClient as AsyncClient
    from .client import Client as Client
    from .config import Config as Config
    from .config import load_config as load_config
    from .delivery import Delivery as Delivery
    from .delivery import DeliveryState as DeliveryState
    from .delivery import EmitterStats as EmitterStats
    from .delivery import ListenerStats as ListenerStats
    from .emitter import BaseEventEmitterBackend as BaseEventEmitterBackend
    from .emitter import SimpleEventEmitter as SimpleEventEmitter
    from .loader import load_listeners as load_listeners


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
    "AsyncClient": "client", "Client": "client",
    "Config": "config", "load_config": "config",
    "Delivery": "delivery", "DeliveryState": "delivery", "EmitterStats": "delivery",
    "ListenerStats": "delivery",
    "BaseEventEmitterBackend": "emitter", "SimpleEventEmitter": "emitter",
    "load_listeners": "loader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'eventbus_cli' has no attribute {name!r}")
