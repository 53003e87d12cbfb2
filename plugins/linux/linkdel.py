"""Deleting a link without waiting for the kernel's RCU barrier.

``RTM_DELLINK`` runs in the sender's system call: the kernel unlists the link, drops its
addresses, routes and neighbours and announces the deletion (an ``RTM_DELLINK`` multicast to the
link's namespace) about 1 ms in; then, with the RTNL lock already released, it waits for an RCU
barrier and for the last references before it frees the device and acknowledges the request:
15-20 ms more on this machine (a veth's creation takes 6). Nothing of the link is visible after
the announcement: the name is free, nothing routes through it.

:func:`delete_link` sends the request from a worker thread and returns as soon as every watched
link was announced gone (both ends of a veth pair); the acknowledgement is collected in the
background (a failure there is logged). An error acknowledged before the announcements raises
:class:`NetlinkError` as a direct request would. The event loop never blocks in the kernel.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pyroute2.netlink.exceptions import NetlinkError

from plugins.linux.netns import netlink_socket_in

log = logging.getLogger("contiv.linux")

_RTM_DELLINK = 17
_NLMSG_ERROR = 2
_NLM_F_REQUEST_ACK = 0x1 | 0x4
_RTMGRP_LINK = 1
_IFLA_IFNAME = 3
_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_RTA = struct.Struct("=HH")

#: The threads that send the requests and wait for the acknowledgements: their own, so that a
#: burst of deletions never queues other work (record writes) behind the kernel's barriers.
_WORKERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="contiv-linkdel")

#: Acknowledgements still awaited in the background (kept referenced until they arrive).
_PENDING: set[asyncio.Future[None]] = set()


def _socket_in(ref: str) -> socket.socket:
    fd = netlink_socket_in(ref)
    if fd is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0, fileno=fd)


def _request(sock: socket.socket, index: int) -> None:
    """Send RTM_DELLINK for ``index`` and wait for the acknowledgement (in a worker thread)."""
    with sock:
        body = _IFINFO.pack(0, 0, index, 0, 0)
        sock.send(_HDR.pack(_HDR.size + len(body), _RTM_DELLINK, _NLM_F_REQUEST_ACK, 1, 0) + body)
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, _flags, seq, _pid = _HDR.unpack_from(data, offset)
                if kind == _NLMSG_ERROR and seq == 1:
                    (code,) = struct.unpack_from("=i", data, offset + _HDR.size)
                    if code:
                        raise NetlinkError(-code, os.strerror(-code))
                    return
                offset += max((length + 3) & ~3, _HDR.size)


def _deleted_names(data: bytes) -> list[str]:
    """Names of the links an RTM_DELLINK multicast announces."""
    names = []
    offset = 0
    while offset + _HDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _HDR.unpack_from(data, offset)
        if kind == _RTM_DELLINK:
            attr = offset + _HDR.size + _IFINFO.size
            end = offset + length
            while attr + _RTA.size <= end:
                rta_len, rta_type = _RTA.unpack_from(data, attr)
                if rta_len < _RTA.size:
                    break
                if rta_type == _IFLA_IFNAME:
                    names.append(data[attr + _RTA.size:attr + rta_len].split(b"\0", 1)[0].decode())
                attr += (rta_len + 3) & ~3
        offset += max((length + 3) & ~3, _HDR.size)
    return names


async def delete_link(ref: str, index: int, watch: Sequence[tuple[str, str]]) -> None:
    """Delete link ``index`` of namespace ``ref``; return once every ``(namespace, ifname)`` of
    ``watch`` was announced deleted (or the kernel acknowledged, whichever comes first)."""
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
    acked = loop.run_in_executor(_WORKERS, _request, sock, index)
    if not waiting:
        announced.cancel()  # nothing to watch: the acknowledgement decides
    try:
        await asyncio.wait({announced, acked} if waiting else {acked},
                           return_when=asyncio.FIRST_COMPLETED)
        if acked.done():
            acked.result()  # raises the kernel's error
    finally:
        for listener, _ in listeners:
            loop.remove_reader(listener.fileno())
            listener.close()
        if not acked.done():
            _PENDING.add(acked)
            acked.add_done_callback(_acknowledged)


def _acknowledged(ack: asyncio.Future[None]) -> None:
    _PENDING.discard(ack)
    if ack.cancelled():
        return
    exc = ack.exception()
    if exc is not None and not (isinstance(exc, NetlinkError) and exc.code == errno.ENODEV):
        log.error("link deletion acknowledged with an error after its announcement: %s", exc)


async def drain() -> None:
    """Wait for the acknowledgements still outstanding (tests, shutdown)."""
    while _PENDING:
        await asyncio.gather(*list(_PENDING), return_exceptions=True)
