"""Deleting a link without waiting for the kernel's RCU barrier.

``RTM_DELLINK`` runs in the sender's system call: the kernel unlists the link, drops its
addresses, routes and neighbours and announces the deletion (an ``RTM_DELLINK`` multicast to the
link's namespace) about 1 ms in; then, with the RTNL lock already released, it waits for an RCU
barrier and for the last references before it frees the device and acknowledges the request:
15-20 ms more on this machine (a veth's creation takes 6). Nothing of the link is visible after
the announcement: the name is free, nothing routes through it.

:func:`delete_link` sends the request from a thread of its own and returns as soon as every
watched link was announced gone (both ends of a veth pair); the acknowledgement is collected in
the background (a failure there is logged). An error acknowledged before the announcements raises
:class:`NetlinkError` as a direct request would. The event loop never blocks in the kernel.

A device the kernel never frees (its log says "waiting for X to become free") keeps its sender
inside the system call for good: nothing can interrupt it. So every request has its own thread
(a fixed pool would be pinned, and every later deletion with it), and no wait is unbounded: a
deletion neither announced nor acknowledged within ``ack_timeout_s`` raises
:class:`LinkDeletionStuck` (the scheduler retries it), and an acknowledgement that has not come
by then is reported (:meth:`LinkDeleter.stuck`, an error in the log) until it comes.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyroute2.netlink.exceptions import NetlinkError

from plugins.linux import netlink as nl
from plugins.linux.netns import netlink_socket_in

log = logging.getLogger("contiv.linux")

_RTM_DELLINK = 17
_RTMGRP_LINK = 1
_IFLA_IFNAME = 3
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change

#: How long a deletion may go without its announcement or acknowledgement before it is reported.
ACK_TIMEOUT_S = 30.0


class LinkDeletionStuck(TimeoutError):
    """Neither announced nor acknowledged in time: the kernel has not released the link."""


@dataclass(frozen=True)
class StuckLink:
    """A deletion the kernel has not acknowledged within the bound (still waited for)."""

    namespace: str
    index: int
    names: tuple[str, ...]
    since: float  # time.monotonic() of the request


def _socket_in(ref: str) -> socket.socket:
    fd = netlink_socket_in(ref)
    if fd is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0, fileno=fd)


def request_deletion(sock: socket.socket, index: int, timeout_s: float = ACK_TIMEOUT_S) -> None:
    """Send RTM_DELLINK for ``index`` and wait for the acknowledgement (in a thread of its own:
    the send returns only once the kernel freed the device)."""
    with sock:
        body = _IFINFO.pack(0, 0, index, 0, 0)
        sock.send(nl.message(_RTM_DELLINK, nl.F_REQUEST | nl.F_ACK, 1, body))
        try:
            nl.wait_for_acks(sock, {1}, timeout_s)
        except nl.NetlinkRefused as exc:
            raise NetlinkError(exc.errno, exc.strerror) from None


def _deleted_names(data: bytes) -> list[str]:
    """Names of the links an RTM_DELLINK multicast announces."""
    names = []
    for kind, _seq, offset in nl.messages(data):
        if kind != _RTM_DELLINK:
            continue
        (length,) = struct.unpack_from("=I", data, offset)
        attr = offset + nl.HEADER.size + _IFINFO.size
        end = offset + length
        while attr + nl.ATTR.size <= end:
            rta_len, rta_type = nl.ATTR.unpack_from(data, attr)
            if rta_len < nl.ATTR.size:
                break
            if rta_type == _IFLA_IFNAME:
                names.append(data[attr + nl.ATTR.size:attr + rta_len].split(b"\0", 1)[0].decode())
            attr += (rta_len + 3) & ~3
    return names


class LinkDeleter:
    """Deletes links (see the module's docstring); ``request`` sends one request and waits for its
    acknowledgement in a thread (a test hands in one that stands for a kernel that never frees
    the device)."""

    def __init__(
        self,
        *,
        ack_timeout_s: float = ACK_TIMEOUT_S,
        request: Callable[[socket.socket, int, float], None] = request_deletion,
    ) -> None:
        self.ack_timeout_s = ack_timeout_s
        self._request = request
        #: Acknowledgements still awaited in the background (kept referenced until they arrive).
        self._pending: set[asyncio.Future[None]] = set()
        self._stuck: dict[asyncio.Future[None], StuckLink] = {}

    def stuck(self) -> list[StuckLink]:
        """Deletions the kernel has not acknowledged within the bound, oldest first."""
        return sorted(self._stuck.values(), key=lambda s: s.since)

    async def delete(self, ref: str, index: int, watch: Sequence[tuple[str, str]]) -> None:
        """Delete link ``index`` of namespace ``ref``; return once every ``(namespace, ifname)``
        of ``watch`` was announced deleted (or the kernel acknowledged, whichever comes first).

        Raises :class:`LinkDeletionStuck` when neither happens within ``ack_timeout_s``.
        """
        loop = asyncio.get_running_loop()
        listeners: list[tuple[socket.socket, str]] = []
        try:
            for ns, ifname in watch:
                listener = _socket_in(ns)
                listeners.append((listener, ifname))
                listener.setblocking(False)
                listener.bind((0, _RTMGRP_LINK))
            sock = _socket_in(ref)
        except BaseException:
            for listener, _ in listeners:
                listener.close()
            raise
        announced = loop.create_future()
        waiting = {(listener.fileno(), ifname) for listener, ifname in listeners}

        def readable(listener: socket.socket) -> None:
            try:
                data = listener.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:  # ENOBUFS: announcements lost; the acknowledgement decides
                log.debug("link deletion listener: %s", exc)
                return
            for name in _deleted_names(data):
                waiting.discard((listener.fileno(), name))
            if not waiting and not announced.done():
                announced.set_result(None)

        for listener, _ in listeners:
            loop.add_reader(listener.fileno(), readable, listener)
        requested = time.monotonic()
        acked = self._start(loop, sock, index)
        if not waiting:
            announced.cancel()  # nothing to watch: the acknowledgement decides
        names = tuple(ifname for _, ifname in watch)
        timed_out = False
        try:
            done, _ = await asyncio.wait({announced, acked} if waiting else {acked},
                                         timeout=self.ack_timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                timed_out = True
                raise LinkDeletionStuck(f"link {index} {list(names)} of namespace {ref or 'of the agent'}: "
                                        f"neither deleted nor acknowledged by the kernel within "
                                        f"{self.ack_timeout_s:g}s")
            if acked.done():
                acked.result()  # raises the kernel's error
        finally:
            for listener, _ in listeners:
                loop.remove_reader(listener.fileno())
                listener.close()
            if not acked.done():
                self._pending.add(acked)
                acked.add_done_callback(self._acknowledged)
                link = StuckLink(ref, index, names, requested)
                if timed_out:  # the bound has passed already
                    self._check_stuck(acked, link)
                else:
                    left = max(0.0, requested + self.ack_timeout_s - time.monotonic())
                    loop.call_later(left, self._check_stuck, acked, link)

    def _start(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, index: int) -> asyncio.Future[None]:
        """Run the request in a thread of its own; its outcome as a future of ``loop``."""
        future: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        def run() -> None:
            error: BaseException | None = None
            try:
                self._request(sock, index, self.ack_timeout_s)
            except BaseException as exc:  # noqa: BLE001 -- handed to the awaiting coroutine
                error = exc
            try:
                loop.call_soon_threadsafe(settle, error)
            except RuntimeError:  # the loop is gone (agent stopped): nobody waits any more
                pass

        threading.Thread(target=run, name=f"contiv-linkdel-{index}", daemon=True).start()
        return future

    def _check_stuck(self, ack: asyncio.Future[None], link: StuckLink) -> None:
        if ack.done():
            return
        self._stuck[ack] = link
        log.error("link %d %s of namespace %s: not released by the kernel after %.0fs (a device "
                  "still referenced: \"waiting for ... to become free\" in the kernel log); its "
                  "deletion goes on in the background", link.index, list(link.names),
                  link.namespace or "of the agent", self.ack_timeout_s)

    def _acknowledged(self, ack: asyncio.Future[None]) -> None:
        self._pending.discard(ack)
        link = self._stuck.pop(ack, None)
        if link is not None:
            log.warning("link %d %s of namespace %s: released by the kernel after %.0fs", link.index,
                        list(link.names), link.namespace or "of the agent", time.monotonic() - link.since)
        if ack.cancelled():
            return
        exc = ack.exception()
        if exc is not None and not (isinstance(exc, NetlinkError) and exc.code == errno.ENODEV):
            log.error("link deletion acknowledged with an error after its announcement: %s", exc)

    async def drain(self) -> None:
        """Wait for the acknowledgements still outstanding (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def pending(self) -> int:
        """Acknowledgements still awaited."""
        return len(self._pending)


#: The agent's deleter (the veth descriptor's).
DELETER = LinkDeleter()


async def delete_link(ref: str, index: int, watch: Sequence[tuple[str, str]]) -> None:
    """:meth:`LinkDeleter.delete` of the agent's deleter."""
    await DELETER.delete(ref, index, watch)


async def drain() -> None:
    """Wait for the agent's deleter's outstanding acknowledgements (tests, shutdown)."""
    await DELETER.drain()
