"""Owner-only unix sockets for the project's gRPC servers (the CNI server, contiv-stn)."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from collections.abc import Callable
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


def bind_owner_only(path: Path, bind: Callable[[str], object]) -> None:
    """Create the unix socket ``path`` owner-only (0600) without touching the process's umask.

    ``bind(address)`` creates the socket at ``address`` (e.g. ``grpc.aio.Server.add_insecure_port``
    with ``unix:`` prepended, which binds at once): it is made inside a fresh 0700 directory next
    to ``path``, set to 0600, then renamed into place, so no other user can ever connect to it,
    and other threads and tasks keep their own file modes (a umask is process-wide).
    """
    private = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        staged = private / path.name
        bind(str(staged))
        os.chmod(staged, 0o600)
        os.replace(staged, path)
    finally:
        for leftover in private.iterdir():
            leftover.unlink()
        private.rmdir()
