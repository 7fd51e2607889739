"""Who is at the other end of a Unix socket (``SO_PEERCRED``): both the daemon, checking its
clients, and the clients, checking the daemon, ask."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ("Peer", "peer_of")


@dataclass(frozen=True, slots=True)
class Peer:
    """The process at the other end of a connection, from SO_PEERCRED."""

    pid: int
    uid: int
    gid: int

    def allowed(self, uids: Iterable[int], gids: Iterable[int]) -> bool:
        """Whether this peer is root, the daemon's own user, or in ``uids`` / ``gids``."""
        return self.uid in (0, os.getuid(), *uids) or self.gid in tuple(gids)


def peer_of(sock: socket.socket) -> Peer | None:
    """The peer's credentials; None where the platform has no SO_PEERCRED."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    size = struct.calcsize("3i")
    pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, size))
    return Peer(pid, uid, gid)
