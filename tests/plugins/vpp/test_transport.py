"""The tuned vpp-papi transport: one ``sendall`` per message, replies through an in-process
queue, across reconnects (against the stand-in; the real-VPP tests run through it too)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from plugins.vpp.connection import VPPConnection
from plugins.vpp.errors import VPPConnectionError
from plugins.vpp.transport import ReplyQueue
from tests.vppstub import VPPStub


class CountingSocket:
    """Wraps the transport's socket and counts ``sendall`` calls."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.sends = sock, 0

    def sendall(self, data: bytes) -> None:
        self.sends += 1
        self.sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


async def test_one_send_per_message_and_an_in_process_reply_queue(
    connection: VPPConnection, stub: VPPStub
) -> None:
    client = connection._client
    assert client is not None
    transport = client.transport
    assert isinstance(transport.q, ReplyQueue)
    counting = CountingSocket(transport.socket)
    transport.socket = counting
    try:
        for i in range(5):
            reply = await connection.call("create_loopback_instance")
            assert reply.sw_if_index == i + 1
    finally:
        transport.socket = counting.sock
    assert counting.sends == 5  # header and body together

    # A dropped socket and a reconnect: the new session gets a fresh in-process queue.
    first = transport.q
    stub.stop()
    with pytest.raises(VPPConnectionError):
        await connection.call("control_ping")
    stub.start()
    deadline = asyncio.get_running_loop().time() + 60  # generous: the reconnect loop's pace
    while not connection.connected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert (await connection.call("control_ping")).vpe_pid == stub.pid
    client = connection._client
    assert client is not None and isinstance(client.transport.q, ReplyQueue) and client.transport.q is not first
