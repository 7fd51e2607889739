"""eventbus: a local event bus for Python applications, with Litestar's listener API.

The emitters (and with them anyio) load on first use, so that a client which only sends
events over the socket (``eventbus emit``) starts fast.
"""

from typing import TYPE_CHECKING, Any

from .config import Config as Config
from .config import load_config as load_config
from .delivery import Delivery as Delivery
from .delivery import DeliveryState as DeliveryState
from .delivery import EmitterStats as EmitterStats
from .delivery import ListenerStats as ListenerStats
from .errors import ConfigError as ConfigError
from .errors import EmitterNotRunningError as EmitterNotRunningError
from .errors import EventbusError as EventbusError
from .errors import InvalidEventIdError as InvalidEventIdError
from .errors import ListenerError as ListenerError
from .errors import LoaderError as LoaderError
from .errors import QueueFullError as QueueFullError
from .listener import DeliveryOptions as DeliveryOptions
from .listener import EventListener as EventListener
from .listener import listener as listener
from .loader import load_listeners as load_listeners

if TYPE_CHECKING:
    from .emitter import BaseEventEmitterBackend as BaseEventEmitterBackend
    from .emitter import SimpleEventEmitter as SimpleEventEmitter

__version__ = "0.1.0"

__all__ = (
    "BaseEventEmitterBackend",
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
    "QueueFullError",
    "SimpleEventEmitter",
    "__version__",
    "listener",
    "load_config",
    "load_listeners",
)


def __getattr__(name: str) -> Any:
    if name in ("BaseEventEmitterBackend", "SimpleEventEmitter"):
        from . import emitter

        return getattr(emitter, name)
    raise AttributeError(f"module 'eventbus_cli' has no attribute {name!r}")
