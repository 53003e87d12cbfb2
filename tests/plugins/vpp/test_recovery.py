"""Recovery from a half-created interface (issue 17): an untagged af_packet we asked for is ours."""

from __future__ import annotations

from plugins.kvscheduler.api import ValueState
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.vpp import model as m
from plugins.vpp.connection import VPPConnection
from tests.vppstub import VPPStub


def afpacket(name: str, host: str) -> m.Interface:
    return m.Interface(name=name, type=m.InterfaceType.AF_PACKET, afpacket=m.AfPacketLink(host_if_name=host))


async def test_untagged_af_packet_left_behind_is_taken_over_on_retry(
    scheduler: KVScheduler, stub: VPPStub, host_veth: str
) -> None:
    # The create lands, its tag does not, and the undo does not either (as when the connection
    # drops right after af_packet_create_v3): VPP keeps an untagged host-<veth>.
    stub.fail_next("sw_interface_tag_add_del", -1)
    stub.fail_next("af_packet_delete", -1)
    key = m.interface_key("pod-x")
    result = await scheduler.commit({key: afpacket("pod-x", host_veth)})
    assert "sw_interface_tag_add_del failed" in result.errors[key]
    await scheduler.settled(timeout=20)
    assert scheduler.value_status(key).state is ValueState.CONFIGURED
    afps = [i for i in stub.state.interfaces.values() if i.dev_type == "af_packet"]
    assert [(i.name, i.tag, i.admin_up) for i in afps] == [(f"host-{host_veth}", "cv:pod-x", True)]
    assert stub.calls["af_packet_create_v3"] == 2  # the retry met -79 and took the interface over


async def test_nic_attached_by_hand_before_the_agent_is_taken_over(
    scheduler: KVScheduler, connection: VPPConnection, stub: VPPStub, host_veth: str
) -> None:
    reply = await connection.call(
        "af_packet_create_v3", mode=1, use_random_hw_addr=True, host_if_name=host_veth, num_rx_queues=1, num_tx_queues=1
    )
    key = m.interface_key("main-nic")
    result = await scheduler.commit({key: afpacket("main-nic", host_veth)})
    assert result.ok, result.errors
    (iface,) = [i for i in stub.state.interfaces.values() if i.dev_type == "af_packet"]
    assert (iface.sw_if_index, iface.tag) == (reply.sw_if_index, "cv:main-nic")


async def test_nic_attached_by_hand_with_other_flags_is_re_created_with_ours(
    scheduler: KVScheduler, connection: VPPConnection, stub: VPPStub, host_veth: str
) -> None:
    """``create host-interface`` turns on both flags; the renderer's main NIC wants no header."""
    await connection.call(
        "af_packet_create_v3", mode=1, use_random_hw_addr=True, host_if_name=host_veth, flags=3,
        num_rx_queues=1, num_tx_queues=1,
    )
    key = m.interface_key("main-nic")
    link = m.AfPacketLink(host_if_name=host_veth, offload=False, qdisc_bypass=True)
    value = m.Interface(name="main-nic", type=m.InterfaceType.AF_PACKET, afpacket=link)
    result = await scheduler.commit({key: value})
    assert result.ok, result.errors
    (iface,) = [i for i in stub.state.interfaces.values() if i.dev_type == "af_packet"]
    assert (iface.tag, iface.link["flags"]) == ("cv:main-nic", 1)
    assert stub.calls["af_packet_delete"] == 1


async def test_af_packet_tagged_by_someone_else_is_not_taken(
    scheduler: KVScheduler, connection: VPPConnection, stub: VPPStub, host_veth: str
) -> None:
    reply = await connection.call(
        "af_packet_create_v3", mode=1, use_random_hw_addr=True, host_if_name=host_veth, num_rx_queues=1, num_tx_queues=1
    )
    await connection.call("sw_interface_tag_add_del", is_add=True, sw_if_index=reply.sw_if_index, tag="operator")
    key = m.interface_key("pod-y")
    result = await scheduler.commit({key: afpacket("pod-y", host_veth)})
    assert "retval -79" in result.errors[key] and "not ours, not taken over" in result.errors[key]
    assert scheduler.value_status(key).state is ValueState.FAILED
    (iface,) = [i for i in stub.state.interfaces.values() if i.dev_type == "af_packet"]
    assert iface.tag == "operator"
