"""Network namespaces as the Linux descriptors see them: references, netlink handles, setns.

A namespace reference is a string: ``""`` is the agent's own namespace, a bare name is a
namespace under ``/var/run/netns`` (``ip netns add NAME``), anything with a ``/`` is a path to a
namespace file (``/proc/<pid>/ns/net``, a bind mount). A reference never creates a namespace:
a missing one is an error (:class:`NamespaceNotFoundError`).

Netlink sockets are opened *inside* the namespace from a short-lived thread that enters it with
``setns(2)`` (network namespaces are per thread), so no process is forked per operation and
the event loop's thread never changes namespace.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

from pyroute2 import AsyncIPRoute

NETNS_RUN_DIR = "/var/run/netns"
_CLONE_NEWNET = 0x40000000
_NETLINK_ROUTE = 0

T = TypeVar("T")


class NamespaceNotFoundError(OSError):
    """The referenced network namespace does not exist (yet, or any more)."""

    def __init__(self, ref: str, path: str) -> None:
        super().__init__(f"network namespace {ref!r} not found (no file {path})")
        self.ref = ref


def namespace_path(ref: str) -> str | None:
    """The file of a namespace reference, or None for the agent's own namespace."""
    if ref == "":
        return None
    if "/" in ref:
        return ref
    return os.path.join(NETNS_RUN_DIR, ref)


def namespace_label(ref: str) -> str:
    """A key-safe label of a reference (no ``/``): ``-`` for the agent's own namespace."""
    return "-" if ref == "" else quote(ref, safe="")


def validate_namespace_ref(ref: str) -> str | None:
    """Return why ``ref`` is not a usable reference, or None when it is fine."""
    if ref == "":
        return None
    if "/" in ref and not ref.startswith("/"):
        return f"namespace path {ref!r} must be absolute"
    if "\x00" in ref or ref in (".", ".."):
        return f"bad namespace reference {ref!r}"
    return None


_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _open_namespace(ref: str) -> int | None:
    path = namespace_path(ref)
    if path is None:
        return None
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NamespaceNotFoundError(ref, path) from None


def _call_in(fd: int, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread that entered the namespace ``fd``; re-raise its error."""
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        # The thread dies afterwards, so its namespace never leaks to other work.
        try:
            _setns(fd)
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            error.append(exc)

    thread = threading.Thread(target=body, name="contiv-netns", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def run_in_namespace(ref: str, fn: Callable[[], T]) -> T:
    """Run the blocking ``fn`` inside namespace ``ref`` (in the caller's thread for ``""``)."""
    fd = _open_namespace(ref)
    if fd is None:
        return fn()
    try:
        return _call_in(fd, fn)
    finally:
        os.close(fd)


def namespace_exists(ref: str) -> bool:
    path = namespace_path(ref)
    return path is None or os.path.exists(path)


def _netlink_socket_in(ref: str) -> int | None:
    """A NETLINK_ROUTE socket bound to namespace ``ref`` (its fd), or None for our own."""
    fd = _open_namespace(ref)
    if fd is None:
        return None
    try:
        sock = _call_in(
            fd, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE)
        )
    finally:
        os.close(fd)
    return sock.detach()


@asynccontextmanager
async def netlink(ref: str) -> AsyncIterator[AsyncIPRoute]:
    """An :class:`AsyncIPRoute` working in namespace ``ref``; closed on exit.

    Never cached: an open socket would keep a pod's namespace alive after the pod is gone.
    """
    fileno = await asyncio.to_thread(_netlink_socket_in, ref) if ref else None
    if fileno is None:
        ipr = AsyncIPRoute()
    else:
        try:
            ipr = AsyncIPRoute(fileno=fileno)
        except BaseException:
            os.close(fileno)
            raise
    async with ipr:
        yield ipr


def _ns_identity(ref: str) -> tuple[int, int] | None:
    """(device, inode) of a namespace file: a recreated namespace at the same path differs."""
    path = namespace_path(ref)
    if path is None:
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NamespaceNotFoundError(ref, path) from None
    return (st.st_dev, st.st_ino)


@dataclass
class _Handle:
    loop: asyncio.AbstractEventLoop
    ipr: AsyncIPRoute
    identity: tuple[int, int] | None
    users: int = 0
    timer: asyncio.TimerHandle | None = None


class NetlinkPool:
    """Netlink handles for the descriptors, reused across operations.

    ``sticky`` namespaces (the agent's own, the node namespace) keep their handle until
    :meth:`close`. Others (pods) keep theirs only while in use and ``idle_s`` after, so one
    transaction's operations in a pod share one handle, yet no socket keeps a deleted pod
    namespace alive for long. A handle is replaced when the namespace file now names another
    namespace (same path, new inode).
    """

    def __init__(self, sticky: Iterable[str] = (), idle_s: float = 0.2) -> None:
        self.sticky = frozenset(sticky)
        self.idle_s = idle_s
        self._open: dict[str, _Handle] = {}

    @asynccontextmanager
    async def connect(self, ref: str) -> AsyncIterator[AsyncIPRoute]:
        loop = asyncio.get_running_loop()
        identity = _ns_identity(ref)
        handle = self._open.get(ref)
        if handle is not None and (handle.loop is not loop or handle.identity != identity):
            if handle.users == 0:
                self._drop(ref)
            else:
                self._open.pop(ref)
            handle = None
        if handle is None:
            # Entering the namespace takes a thread: keep the event loop free meanwhile.
            fileno = await asyncio.to_thread(_netlink_socket_in, ref) if ref else None
            ipr = AsyncIPRoute() if fileno is None else AsyncIPRoute(fileno=fileno)
            handle = _Handle(loop, ipr, identity)
            self._open[ref] = handle
        if handle.timer is not None:
            handle.timer.cancel()
            handle.timer = None
        handle.users += 1
        broken = False
        try:
            yield handle.ipr
        except (ConnectionError, EOFError):
            broken = True
            raise
        finally:
            handle.users -= 1
            if self._open.get(ref) is not handle:
                if handle.users == 0:
                    handle.ipr.close()
            elif broken:
                self._drop(ref)
            elif handle.users == 0 and ref not in self.sticky:
                handle.timer = loop.call_later(self.idle_s, self._expire, ref, handle)

    def _expire(self, ref: str, handle: _Handle) -> None:
        if self._open.get(ref) is handle and handle.users == 0:
            self._drop(ref)

    def _drop(self, ref: str) -> None:
        handle = self._open.pop(ref, None)
        if handle is None:
            return
        if handle.timer is not None:
            handle.timer.cancel()
        try:
            handle.ipr.close()
        except Exception:  # noqa: BLE001 - closing a handle of a finished loop
            pass

    def close(self) -> None:
        """Close every handle that is not in use."""
        for ref in list(self._open):
            self._drop(ref)
