"""The raw netlink framing and acknowledgement wait shared by rawelements and linkdel, fed by a
datagram socket pair standing in for the kernel's side."""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator

import pytest

from plugins.linux import netlink as nl


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with ours, kernel:
        yield ours, kernel


def ack(seq: int, code: int = 0) -> bytes:
    """An NLMSG_ERROR answer as the kernel sends it with NETLINK_CAP_ACK (no request copied)."""
    return nl.message(nl.NLMSG_ERROR, 0, seq, struct.pack("=i", -code) + b"\0" * 16)


def test_acks_of_every_message_end_the_wait_whatever_their_order_and_batching(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, kernel = pair
    kernel.send(ack(3) + nl.message(99, 0, 7, b"noise\0\0\0") + ack(2))
    kernel.send(ack(4))
    nl.wait_for_acks(ours, {2, 3, 4}, timeout_s=5)
    assert list(nl.messages(ack(1) + ack(2))) == [(nl.NLMSG_ERROR, 1, 0), (nl.NLMSG_ERROR, 2, 36)]


def test_a_refusal_names_its_message_and_error(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, kernel = pair
    kernel.send(ack(2) + ack(3, errno.ENOSPC))
    with pytest.raises(nl.NetlinkRefused) as caught:
        nl.wait_for_acks(ours, {2, 3, 4}, timeout_s=5)
    assert (caught.value.seq, caught.value.errno) == (3, errno.ENOSPC)


def test_a_kernel_that_never_answers_ends_the_wait_at_the_bound(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, kernel = pair
    kernel.send(ack(1))
    with pytest.raises(nl.NetlinkAckTimeout) as caught:
        nl.wait_for_acks(ours, {1, 2}, timeout_s=0.05)
    assert caught.value.pending == {2}


def test_attributes_are_padded_to_four_bytes() -> None:
    assert nl.attribute(1, b"abc\0x") == struct.pack("=HH", 9, 1) + b"abc\0x" + b"\0\0\0"
    assert len(nl.attribute(2, b"abcd")) == 8
