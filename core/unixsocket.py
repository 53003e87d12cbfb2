"""Owner-only unix sockets for the project's gRPC servers (the CNI server, contiv-stn)."""

from __future__ import annotations

import socket
import stat
from pathlib import Path


class SocketInUseError(Exception):
    """Another process already serves the socket, or the path is not a socket."""


def prepare_socket_path(path: Path) -> None:
    """Create the directory (0700) and remove a stale socket left by a crashed process.

    Raises :class:`SocketInUseError` when the path is not a socket or a process answers on it.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUseError(f"{path} exists and is not a unix socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise SocketInUseError(f"another process serves {path}")
