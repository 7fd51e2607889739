"""``accept_forever``: the daemon's accept loop, for its Unix socket and its metrics port.

An accept can fail for reasons that pass: the process is out of file descriptors or memory
(a local user opening connections by the thousand), or the peer left before it was taken.
Such a failure is logged and the accept tried again after a pause, never fatal: the daemon
and the deliveries it holds outlive whatever opens connections to it.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

import anyio
import anyio.abc

__all__ = ("accept_forever",)

logger = logging.getLogger("eventbus.daemon")

_PASSING = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM,
                      errno.ECONNABORTED, errno.EPROTO})
_LONGEST_PAUSE = 1.0


async def accept_forever(listener: anyio.abc.SocketListener, what: str,
                         take: Callable[[anyio.abc.SocketStream], object]) -> None:
    """Hand each connection ``listener`` accepts to ``take`` (which must return at once),
    forever. ``what`` names the listener in the log."""
    pause = 0.0
    while True:
        try:
            stream = await listener.accept()
        except (OSError, anyio.BrokenResourceError) as exc:
            cause = exc if isinstance(exc, OSError) else exc.__cause__
            if not isinstance(cause, OSError) or cause.errno not in _PASSING:
                raise
            pause = min(max(pause * 2, 0.05), _LONGEST_PAUSE)
            logger.error("cannot accept a connection on %s (%s); trying again in %.2gs",
                         what, cause.strerror, pause)
            await anyio.sleep(pause)
            continue
        pause = 0.0
        take(stream)
