"""Raw netlink framing and acknowledgements, for the two places that talk netlink without pyroute2:
set elements written straight to nf_tables (:mod:`plugins.linux.nft.rawelements`) and link
deletion that does not wait for the kernel's RCU barrier (:mod:`plugins.linux.linkdel`).

Only the message header (``nlmsghdr``), attributes and the kernel's ``NLMSG_ERROR`` answers are
handled here; each user encodes its own message bodies.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Collection, Iterator

#: ``nlmsghdr``: length, type, flags, sequence number, port ID.
HEADER = struct.Struct("=IHHII")
#: ``nlattr``: length, type.
ATTR = struct.Struct("=HH")
NLMSG_ERROR = 2
F_REQUEST, F_ACK, F_CREATE = 0x1, 0x4, 0x400
NESTED = 0x8000
SOL_NETLINK, NETLINK_CAP_ACK = 270, 10


class NetlinkAckTimeout(TimeoutError):
    """The kernel did not answer every message in time; ``pending`` holds their sequence numbers."""

    def __init__(self, pending: Collection[int], timeout_s: float) -> None:
        super().__init__(f"no answer from the kernel within {timeout_s:g}s for {len(pending)} message(s)")
        self.pending = frozenset(pending)


class NetlinkRefused(OSError):
    """The kernel refused message ``seq`` with ``errno``."""

    def __init__(self, seq: int, code: int) -> None:
        super().__init__(code, os.strerror(code))
        self.seq = seq


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """One netlink message: the header and ``body`` (padded by the caller where it must be)."""
    return HEADER.pack(HEADER.size + len(body), kind, flags, seq, 0) + body


def attribute(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    data = ATTR.pack(ATTR.size + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def messages(data: bytes) -> Iterator[tuple[int, int, int]]:
    """``(type, sequence number, offset)`` of every message in one datagram."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, _flags, seq, _pid = HEADER.unpack_from(data, offset)
        yield kind, seq, offset
        offset += max((length + 3) & ~3, HEADER.size)


def wait_for_acks(sock: socket.socket, seqs: Collection[int], timeout_s: float) -> None:
    """Read the kernel's answers on ``sock`` until every message of ``seqs`` is acknowledged.

    Raises :class:`NetlinkRefused` at the first refusal (a refused message of a batch aborts the
    whole batch: the rest are not answered) and :class:`NetlinkAckTimeout` when ``timeout_s``
    passes first: a caller never waits for the kernel without a bound.
    """
    pending = set(seqs)
    deadline = time.monotonic() + timeout_s
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NetlinkAckTimeout(pending, timeout_s)
        sock.settimeout(left)
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            raise NetlinkAckTimeout(pending, timeout_s) from None
        for kind, seq, offset in messages(data):
            if kind != NLMSG_ERROR or seq not in pending:
                continue
            (code,) = struct.unpack_from("=i", data, offset + HEADER.size)
            if code:
                raise NetlinkRefused(seq, -code)
            pending.discard(seq)
