"""The one network-namespace module: references, netlink handles, setns, work inside one.

Used by the Linux descriptors, the VPP plugin (the Linux side of its TAPs) and the lab.

A namespace reference is a string: ``""`` is the agent's own namespace, a bare name is a
namespace under ``/var/run/netns`` (``ip netns add NAME``), anything with a ``/`` is a path to a
namespace file (``/proc/<pid>/ns/net``, a bind mount). A reference never creates a namespace:
a missing one is an error (:class:`NamespaceNotFoundError`).

Netlink sockets are opened *inside* the namespace with ``setns(2)`` (network namespaces are
per thread): the calling thread enters, creates the socket and returns within three system
calls (see :func:`_netlink_socket_here`), so no process is forked and no thread is woken per
pod. Arbitrary work in a namespace (:func:`run_in_namespace`, e.g. sysctl files) runs in a
long-lived worker thread that goes home after each call; a thread that exits after a
``setns`` costs about one scheduler tick (~4 ms here), which every pod ADD paid before.
"""

from __future__ import annotations

import _socket
import asyncio
import ctypes
import ctypes.util
import gc
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from pyroute2 import AsyncIPRoute

from plugins.linux.nlreplies import drop_unread_replies

NETNS_RUN_DIR = "/var/run/netns"
_CLONE_NEWNET = 0x40000000
_NETLINK_ROUTE = 0

T = TypeVar("T")


class NamespaceNotFoundError(FileNotFoundError):
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


def open_namespace(ref: str) -> int:
    """A file descriptor of namespace ``ref`` (the process's own for ``""``); close it after."""
    path = namespace_path(ref) or f"/proc/{os.getpid()}/ns/net"
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NamespaceNotFoundError(ref, path) from None


def enter_namespace(ref: str) -> None:
    """Move the calling thread into namespace ``ref`` for good (a one-shot CLI, before it
    starts threads); raises :class:`NamespaceNotFoundError` or ``OSError`` (setns)."""
    fd = open_namespace(ref)
    try:
        _setns(fd)
    finally:
        os.close(fd)


@contextmanager
def entered(ref: str) -> Iterator[None]:
    """The calling thread inside namespace ``ref`` for the body, then back home.

    For a one-shot CLI (sockets made in the body stay in ``ref``); never for the event loop's
    thread, whose other work would run in ``ref`` too. A failed way home raises ``OSError``.
    """
    if ref == "":
        yield
        return
    home = _own_namespace_fd()
    try:
        enter_namespace(ref)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def _open_namespace(ref: str) -> int | None:
    return None if ref == "" else open_namespace(ref)


class _NamespaceWorker:
    """One long-lived thread that enters a namespace for a call and goes home afterwards.

    Should the way home ever fail, that thread is retired (it finishes and exits; nothing else
    is queued to it) and the next call starts a fresh one, so no work ever runs in a namespace
    it did not ask for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._home = -1

    def submit(self, fd: int, fn: Callable[[], T], close_fd: bool = False) -> Future[T]:
        """Run ``fn`` in namespace ``fd`` (closed afterwards by the worker with ``close_fd``)."""
        with self._lock:
            if self._executor is None:
                executor = ThreadPoolExecutor(1, thread_name_prefix="contiv-netns")
                self._home = executor.submit(_own_namespace_fd).result()
                self._executor = executor
            executor, home = self._executor, self._home
        return executor.submit(self._run, executor, home, fd, fn, close_fd)

    def _run(
        self, executor: ThreadPoolExecutor, home: int, fd: int, fn: Callable[[], T], close_fd: bool
    ) -> T:
        try:
            _setns(fd)
        finally:
            if close_fd:
                os.close(fd)
        try:
            return fn()
        finally:
            try:
                _setns(home)
            except OSError:
                self._retire(executor)
                raise

    def _retire(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None
                os.close(self._home)
                self._home = -1
        executor.shutdown(wait=False)


def _own_namespace_fd() -> int:
    return os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net",
                   os.O_RDONLY | os.O_CLOEXEC)


_WORKER = _NamespaceWorker()


def _call_in(fd: int, fn: Callable[[], T]) -> T:
    """Run ``fn`` in the worker thread entered into the namespace ``fd``; re-raise its error."""
    return _WORKER.submit(fd, fn).result()


async def call_in_namespace(ref: str, fn: Callable[[], T]) -> T:
    """:func:`run_in_namespace` for a coroutine: the event loop keeps running meanwhile."""
    fd = _open_namespace(ref)
    if fd is None:
        return fn()
    # The worker closes the descriptor: a cancelled caller cannot close it under its feet.
    return await asyncio.wrap_future(_WORKER.submit(fd, fn, close_fd=True))


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


_HOME = threading.local()


def _netlink_socket_here(ref: str) -> int | None:
    """A NETLINK_ROUTE socket of namespace ``ref``, made by the calling thread itself.

    The thread enters the namespace, creates the socket and goes straight back: three system
    calls (about 30 us) with the garbage collector paused, so no other Python code of this
    thread runs in between. Handing this to the worker thread instead costs two thread
    wake-ups, about 1.5 ms per pod ADD on a busy machine. Should the way home ever fail, the
    thread would carry on in the pod's namespace: the process exits instead (the agent is
    restart-safe), as nothing else could be trusted after that.
    """
    fd = _open_namespace(ref)
    if fd is None:
        return None
    home: int | None = getattr(_HOME, "fd", None)
    if home is None:
        home = _HOME.fd = _own_namespace_fd()
    collecting = gc.isenabled()
    gc.disable()
    try:
        _setns(fd)
        try:
            sock = _socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE)
        finally:
            try:
                _setns(home)
            except BaseException as exc:  # noqa: BLE001 - nothing is safe after this
                os.write(2, f"contiv: cannot return to the agent's network namespace "
                            f"({exc}); exiting\n".encode())
                os._exit(70)
    finally:
        if collecting:
            gc.enable()
        os.close(fd)
    return int(sock.detach())


def netlink_socket_in(ref: str) -> int | None:
    """A NETLINK_ROUTE socket (its fd, owned by the caller) of namespace ``ref``, made by the
    calling thread (see :func:`_netlink_socket_here`); None for the agent's own namespace."""
    return _netlink_socket_here(ref) if ref else None


async def _anetlink_socket_in(ref: str) -> int | None:
    """A socket of namespace ``ref`` for the event loop (None for the agent's own)."""
    return _netlink_socket_here(ref) if ref else None


@asynccontextmanager
async def netlink(ref: str) -> AsyncIterator[AsyncIPRoute]:
    """An :class:`AsyncIPRoute` working in namespace ``ref``; closed on exit.

    Never cached: an open socket would keep a pod's namespace alive after the pod is gone.
    """
    fileno = await _anetlink_socket_in(ref)
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
    #: Per-handle memo of the link helpers (:mod:`plugins.linux.links`): dies with the handle.
    memo: dict[str, Any] = field(default_factory=dict)


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
            # The loop's own thread enters the namespace for the socket (three system calls).
            fileno = await _anetlink_socket_in(ref)
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
            if handle.users == 0:  # a handle reused within idle_s lives on: no orphaned ACKs
                drop_unread_replies(handle.ipr)
            if self._open.get(ref) is not handle:
                if handle.users == 0:
                    handle.ipr.close()
            elif broken:
                self._drop(ref)
            elif handle.users == 0 and ref not in self.sticky:
                handle.timer = loop.call_later(self.idle_s, self._expire, ref, handle)

    def memo(self, ipr: AsyncIPRoute) -> dict[str, Any] | None:
        """The memo of the open handle ``ipr`` (None when it is not one of this pool's).

        It lives exactly as long as the handle, so nothing in it outlives the namespace
        identity the handle was opened for.
        """
        for handle in self._open.values():
            if handle.ipr is ipr:
                return handle.memo
        return None

    def memos(self, ref: str) -> list[dict[str, Any]]:
        """The memo of the handle open for ``ref``, if any (to invalidate entries)."""
        return [h.memo for h in (self._open.get(ref),) if h is not None]

    def _expire(self, ref: str, handle: _Handle) -> None:
        if self._open.get(ref) is handle and handle.users == 0:
            self._drop(ref)

    def _drop(self, ref: str) -> None:
        handle = self._open.pop(ref, None)
        if handle is None:
            return
        if handle.timer is not None:
            handle.timer.cancel()
        with suppress(Exception):  # closing a handle of a finished loop
            handle.ipr.close()

    def close(self) -> None:
        """Close every handle that is not in use."""
        for ref in list(self._open):
            self._drop(ref)
