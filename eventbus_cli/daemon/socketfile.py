"""The daemon's socket file: a private directory, stale sockets, binding, and peer checks."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from pathlib import Path

from ..errors import DaemonRunningError, SocketFileError

__all__ = ("bind_socket", "remove")


def _private_directory(path: Path, mode: int) -> None:
    """Create the socket's directory with ``mode``, or check that an existing one is safe."""
    directory = path.parent
    try:
        directory.mkdir(mode=mode, parents=True)
        os.chmod(directory, mode)  # mkdir's mode is cut by the umask; say it outright
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise SocketFileError(path, f"cannot create {directory}: {exc.strerror}") from exc
    info = os.stat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise SocketFileError(path, f"{directory} is not a directory")
    if info.st_uid != os.getuid():
        raise SocketFileError(
            path,
            f"its directory {directory} belongs to uid {info.st_uid}, not to this user "
            f"({os.getuid()}); choose a socket in a directory of your own",
        )
    if info.st_mode & 0o022:
        raise SocketFileError(
            path,
            f"others can write to its directory {directory} (mode "
            f"{stat.S_IMODE(info.st_mode):o}); run `chmod 700 {directory}` or choose another path",
        )


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise SocketFileError(path, f"cannot tell whether a daemon answers: {exc}") from exc
    finally:
        probe.close()
    return True


def bind_socket(path: Path, *, backlog: int = 128,
                shared: bool = False) -> tuple[socket.socket, int]:
    """Bind and listen on ``path`` (mode 0600, in a private directory). ``shared``: other
    users are allowed (``allow_uids``, ``allow_gids``), so the socket is 0666 in a folder
    they may pass through (0711): the daemon checks each peer on connect (SO_PEERCRED).
    Where the platform cannot tell who connects, the socket stays 0600.

    Refuses where a daemon answers; replaces a stale socket file where none does. Returns the
    listening socket and the file's inode, so that :func:`remove` leaves a successor's alone.
    """
    if len(os.fsencode(path)) > 100:
        raise SocketFileError(path, "the path is too long for a Unix socket; choose a shorter one")
    shared = shared and hasattr(socket, "SO_PEERCRED")
    _private_directory(path, 0o711 if shared else 0o700)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise SocketFileError(path, "a file that is not a socket is there; move it away")
        if _answers(path):
            raise DaemonRunningError(path)
        path.unlink(missing_ok=True)  # stale: left by a daemon that did not exit cleanly
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # so the socket is born 0600, with no window of wider access
    try:
        sock.bind(str(path))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise SocketFileError(path, f"cannot bind: {exc.strerror}") from exc
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o666 if shared else 0o600)
    return sock, os.stat(path).st_ino


def remove(path: Path, inode: int) -> None:
    """Remove the socket file, unless another daemon has replaced it since."""
    with contextlib.suppress(FileNotFoundError):
        if os.lstat(path).st_ino == inode:
            path.unlink()
