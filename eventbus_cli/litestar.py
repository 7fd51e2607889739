"""Litestar integration (the ``litestar`` extra).

``Litestar(route_handlers=[...], plugins=[EventbusPlugin()])`` makes ``request.app.emit(...)``
reach the daemon without blocking the request (see :class:`~eventbus_cli.DaemonEmitter`).
:class:`SimpleEventEmitter` here is eventbus's in-process emitter typed as a Litestar backend,
for ``Litestar(listeners=[...], event_emitter_backend=SimpleEventEmitter)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

from litestar.config.app import AppConfig
from litestar.events.emitter import BaseEventEmitterBackend
from litestar.events.listener import EventListener
from litestar.exceptions import ImproperlyConfiguredException
from litestar.plugins import InitPlugin

from .bus.emitter import SimpleEventEmitter as _InProcess
from .bus.listener import as_listener
from .client.outbox import DaemonEmitter
from .client.relay import Relay

__all__ = ("DaemonEmitterBackend", "EventbusPlugin", "SimpleEventEmitter")


class _Emitter(Protocol):
    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> Any: ...

    def emit(self, event_id: str, /, *args: Any, **kwargs: Any) -> Any: ...


class _Handing(BaseEventEmitterBackend):
    """A Litestar backend that hands its context and its emits to :attr:`emitter`."""

    emitter: _Emitter

    async def __aenter__(self) -> Self:
        await self.emitter.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.emitter.__aexit__(exc_type, exc, tb)

    def emit(self, event_id: str, *args: Any, **kwargs: Any) -> None:
        """Hand the event to :attr:`emitter` (see its ``emit``)."""
        self.emitter.emit(event_id, *args, **kwargs)


class DaemonEmitterBackend(_Handing):
    """A Litestar emitter backend that sends every event to the daemon through a
    :class:`DaemonEmitter` (:attr:`emitter`). :class:`EventbusPlugin` installs a subclass of
    it that carries the plugin's settings; the listeners run in the daemon, so none may be
    given to the app."""

    settings: ClassVar[dict[str, Any]] = {}
    emitter: DaemonEmitter

    def __init__(self, listeners: Sequence[EventListener]) -> None:
        if listeners:
            names = ", ".join(str(getattr(as_listener(item), "name", item)) for item in listeners)
            raise ImproperlyConfiguredException(
                f"with EventbusPlugin the listeners run in the eventbus daemon, not in the app: "
                f"move {names} to a file of the daemon's listeners directory and leave "
                "Litestar(listeners=...) out")
        super().__init__(listeners)
        self.emitter = DaemonEmitter(**self.settings)


class EventbusPlugin(InitPlugin):
    """Send the app's events to the eventbus daemon: ``Litestar(plugins=[EventbusPlugin()])``.

    ``socket`` defaults to the one the ``eventbus`` command would use (EVENTBUS_SOCKET, or
    the nearest ``eventbus.toml``); the other settings are :class:`DaemonEmitter`'s: with
    ``relay``, the app also forwards its transactional outbox (:class:`Relay`) while it runs.
    """

    __slots__ = ("settings",)

    def __init__(self, socket: Path | str | None = None, *, buffer_size: int = 10_000,
                 buffer_bytes: int = 64 << 20, flush_timeout: float = 10.0,
                 relay: Relay | None = None, require_listener: bool = False,
                 spill: Path | str | None = None) -> None:
        self.settings: dict[str, Any] = {"socket": socket, "buffer_size": buffer_size,
                                         "buffer_bytes": buffer_bytes,
                                         "flush_timeout": flush_timeout, "relay": relay,
                                         "require_listener": require_listener, "spill": spill}

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Make the app's emitter backend send to the daemon."""
        app_config.event_emitter_backend = type(
            "EventbusBackend", (DaemonEmitterBackend,), {"settings": self.settings})
        return app_config


class SimpleEventEmitter(_Handing):
    """eventbus's in-process emitter (:class:`eventbus_cli.SimpleEventEmitter`, here as
    :attr:`emitter`) as a Litestar backend: retries, timeouts and the failed list for the
    listeners given to the app. Unlike Litestar's, an event no listener takes is counted,
    not refused."""

    emitter: _InProcess

    def __init__(self, listeners: Sequence[EventListener]) -> None:
        super().__init__(listeners)
        self.emitter = _InProcess(listeners)
