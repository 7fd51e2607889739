"""Who is at the other end of a Unix socket (``SO_PEERCRED``): both the daemon, checking its
clients, and the clients, checking the daemon, ask."""

from __future__ import annotations

# _socket, the C module under `socket`: socket.py builds its enums on import, a cost the start
# of `eventbus emit` shows and needs none of (a `socket.socket` is one of its sockets).
import _socket
import os
from collections.abc import Iterable
from typing import NamedTuple

from .errors import UntrustedDaemonError

__all__ = ("Peer", "check_server", "peer_of")


class Peer(NamedTuple):
    """The process at the other end of a connection, from SO_PEERCRED."""

    pid: int
    uid: int
    gid: int

    def allowed(self, uids: Iterable[int] = (), gids: Iterable[int] = ()) -> bool:
        """Whether this peer is root, this process's own user, or in ``uids`` / ``gids``."""
        return self.uid in (0, os.getuid(), *uids) or self.gid in tuple(gids)


def peer_of(sock: _socket.socket) -> Peer | None:
    """The peer's credentials; None where the platform has no SO_PEERCRED."""
    option = getattr(_socket, "SO_PEERCRED", None)
    if option is None:
        return None
    pid, uid, gid = memoryview(sock.getsockopt(_socket.SOL_SOCKET, option, 12)).cast("i")
    return Peer(pid, uid, gid)


def check_server(sock: _socket.socket, path: str, trusted_uids: Iterable[int] = ()) -> None:
    """Refuse to talk to a daemon that another user runs (root and ``trusted_uids`` aside),
    before anything is sent: whoever created the socket first would read every emit.

    Raises :class:`NoDaemonError`'s sibling :class:`UntrustedDaemonError`."""
    peer = peer_of(sock)
    if peer is not None and not peer.allowed(trusted_uids):
        raise UntrustedDaemonError(path, peer.uid, peer.pid)
