"""The client side: the sans-IO call layer (``calls``), the transports over a socket
(``sync``: the standard ``socket`` module, what ``eventbus emit`` uses; ``aio``: anyio,
pipelined), and ``outbox``: the non-blocking sender an app emits through.

Importing this package loads the sync client alone, so ``eventbus emit`` stays light.
"""

from __future__ import annotations

from .sync import DEFAULT_TIMEOUT, Client, read_event_lines

__all__ = ("DEFAULT_TIMEOUT", "Client", "read_event_lines")
