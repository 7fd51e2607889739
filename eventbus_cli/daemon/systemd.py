"""systemd's readiness protocol: a datagram to ``$NOTIFY_SOCKET``, when systemd asks for one.

With ``Type=notify`` in a unit, systemd waits for ``READY=1`` before it counts the service as
started; ``RELOADING=1`` and ``STOPPING=1`` say what the daemon is doing. Without
``NOTIFY_SOCKET`` in the environment, :func:`notify` does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time

__all__ = ("notify", "reloading")

logger = logging.getLogger("eventbus.daemon")


def notify(*assignments: str) -> bool:
    """Send ``assignments`` (``"READY=1"``, ``"STATUS=..."``) to systemd; True if sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall("\n".join(assignments).encode())
    except OSError as exc:
        logger.warning("cannot notify systemd at %s: %s", os.environ["NOTIFY_SOCKET"], exc)
        return False
    return True


def reloading() -> bool:
    """Tell systemd a reload has begun (send ``READY=1`` once it is over)."""
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={now}")
