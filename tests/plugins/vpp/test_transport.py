"""Our socket transport under vpp-papi's client: one ``sendall`` per message, replies through an
in-process queue, across reconnects (against the stand-in; the real-VPP tests run through it
too); and the contract with the pinned vpp-papi: its client uses nothing of a transport that
ours does not implement."""

from __future__ import annotations

import asyncio
import queue
from pathlib import Path
from typing import Any

import pytest
from vpp_papi import VPPApiClient

from plugins.vpp.apidefs import bundled_api_dir
from plugins.vpp.connection import VPPConnection
from plugins.vpp.errors import VPPConnectionError
from plugins.vpp.transport import SocketTransport
from tests.vppstub import VPPStub

#: The transport members VPPApiClient may use: what SocketTransport implements.
INTERFACE = frozenset({
    "connect", "disconnect", "write", "read", "suspend", "resume", "get_callback", "get_msg_index",
    "msg_table_max_index", "message_table", "socket_index", "connected",
})


class CountingSocket:
    """Wraps the transport's socket and counts ``sendall`` calls."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.sends = sock, 0

    def sendall(self, data: bytes) -> None:
        self.sends += 1
        self.sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class OnlyTheInterface:
    """A transport that lets the client use :data:`INTERFACE` and fails on anything else."""

    def __init__(self, inner: SocketTransport) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "used", set())

    def __getattr__(self, name: str) -> Any:
        if name not in INTERFACE:
            raise AssertionError(f"vpp-papi's client uses transport.{name}, which SocketTransport lacks")
        self.used.add(name)
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AssertionError(f"vpp-papi's client sets transport.{name}")


async def test_one_send_per_message_and_an_in_process_reply_queue(
    connection: VPPConnection, stub: VPPStub
) -> None:
    client = connection._client
    assert client is not None
    transport = client.transport
    assert isinstance(transport, SocketTransport) and isinstance(transport.replies, queue.Queue)
    counting = CountingSocket(transport.socket)
    transport.socket = counting  # type: ignore[assignment]
    try:
        for i in range(5):
            reply = await connection.call("create_loopback_instance")
            assert reply.sw_if_index == i + 1
    finally:
        transport.socket = counting.sock
    assert counting.sends == 5  # header and body together

    # A dropped socket and a reconnect: the new session gets a fresh in-process queue.
    first = transport.replies
    stub.stop()
    with pytest.raises(VPPConnectionError):
        await connection.call("control_ping")
    stub.start()
    deadline = asyncio.get_running_loop().time() + 60  # generous: the reconnect loop's pace
    while not connection.connected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert (await connection.call("control_ping")).vpe_pid == stub.pid
    client = connection._client
    assert client is not None and client.transport.replies is not first


def test_the_client_uses_only_the_transport_interface_we_implement(stub: VPPStub, socket_path: Path) -> None:
    """Fails when a vpp-papi release makes its client use more of a transport (or set it): then
    SocketTransport must follow, and setup.cfg's vpp_papi range moves with it."""
    client = VPPApiClient(apidir=[str(bundled_api_dir())], use_socket=True, server_address=str(socket_path),
                          read_timeout=2, async_thread=False)
    assert hasattr(client, "transport")  # the member our transport replaces
    strict = OnlyTheInterface(SocketTransport(client, read_timeout=2, server_address=str(socket_path)))
    client.transport = strict
    client.connect("contract")
    try:
        assert client.api.control_ping().vpe_pid == stub.pid
        assert client.api.create_loopback_instance().retval == 0
    finally:
        client.disconnect()
    assert {"connect", "write", "read", "disconnect", "get_msg_index"} <= strict.used <= INTERFACE
