"""VPPConnection: async calls over vpp-papi, retval errors, lost connections, restart detection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plugins.vpp.connection import VPPConnection
from plugins.vpp.errors import VPPCallError, VPPConnectionError
from tests.vppstub import VPPStub, default_api_dir


async def test_reply_with_retval_names_message_and_code(connection: VPPConnection) -> None:
    with pytest.raises(VPPCallError, match=r"VPP sw_interface_set_flags failed with retval -2") as info:
        await connection.call("sw_interface_set_flags", sw_if_index=99, flags=1)
    assert info.value.retval == -2 and info.value.retriable
    assert connection.stats.failures["sw_interface_set_flags"] == 1
    reply = await connection.call("create_loopback_instance")
    assert reply.sw_if_index == 1
    assert connection.stats.total_calls >= 4  # probe (ping, version) + two calls


async def test_unknown_message_is_a_call_error(connection: VPPConnection) -> None:
    with pytest.raises(VPPCallError, match="no_such_thing failed with retval -9"):
        await connection.call("no_such_thing")


async def test_connect_to_missing_socket_fails_clearly(tmp_path: Path) -> None:
    conn = VPPConnection(str(tmp_path / "none.sock"), default_api_dir())
    try:
        with pytest.raises(VPPConnectionError, match="cannot connect to VPP at"):
            await conn.connect()
    finally:
        await conn.close()


async def test_restart_and_plain_reconnect_are_told_apart(connection: VPPConnection, stub: VPPStub) -> None:
    events: asyncio.Queue[bool] = asyncio.Queue()

    async def on_reconnect(restarted: bool) -> None:
        await events.put(restarted)

    lost: list[bool] = []
    connection.on_reconnect(on_reconnect)
    connection.on_lost(lambda: lost.append(True))
    connection.start_monitor()
    stub.restart()  # new PID, empty state
    assert await asyncio.wait_for(events.get(), 10) is True
    stub.stop()  # same VPP comes back (same PID): the socket was merely dropped
    stub.start()
    assert await asyncio.wait_for(events.get(), 10) is False
    assert connection.connected and connection.reconnects == 2 and len(lost) == 2


async def test_calls_while_disconnected_raise_and_recover(connection: VPPConnection, stub: VPPStub) -> None:
    stub.stop()
    with pytest.raises(VPPConnectionError):
        await connection.call("control_ping")
    with pytest.raises(VPPConnectionError, match="not connected"):
        await connection.call("control_ping")
    stub.start()
    for _ in range(100):
        if connection.connected:
            break
        await asyncio.sleep(0.05)
    assert (await connection.call("control_ping")).vpe_pid == stub.pid


async def test_calls_before_the_first_connect_do_not_race_it(stub: VPPStub) -> None:
    """Issue 17: a resync calling VPP before the plugin connected started a reconnect loop that
    raced the start-up connect; each tore down the other's fresh connection, and the first
    successful one was reported as a restart (no PID known yet) although VPP had not restarted."""
    conn = VPPConnection(stub.socket_path, default_api_dir(), reconnect_interval_s=0.01, health_interval_s=0.05)
    reconnects: list[bool] = []

    async def on_reconnect(restarted: bool) -> None:
        reconnects.append(restarted)

    lost: list[bool] = []
    conn.on_reconnect(on_reconnect)
    conn.on_lost(lambda: lost.append(True))
    try:
        for _ in range(5):  # a scheduler resync that got ahead of the plugin's after_init
            with pytest.raises(VPPConnectionError, match="not connected"):
                await conn.call("sw_interface_dump")
        await conn.connect_with_retry(5)
        conn.start_monitor()
        clients_after_connect = stub.calls["sockclnt_create"]
        pings = stub.calls["control_ping"]
        while stub.calls["control_ping"] < pings + 5:  # five health probes answered
            await asyncio.sleep(0.02)
        assert conn.connected and conn.reconnects == 0 and reconnects == [] and lost == []
        assert stub.calls["sockclnt_create"] == clients_after_connect == 1  # one session, never re-opened
    finally:
        await conn.close()


async def test_concurrent_connects_share_one_session(stub: VPPStub) -> None:
    conn = VPPConnection(stub.socket_path, default_api_dir())
    try:
        await asyncio.gather(conn.connect(), conn.connect(), conn.connect_with_retry(5))
        assert conn.connected and stub.calls["sockclnt_create"] == 1
        assert (await conn.call("control_ping")).vpe_pid == stub.pid == conn.vpe_pid
    finally:
        await conn.close()
