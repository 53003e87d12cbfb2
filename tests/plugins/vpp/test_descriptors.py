"""The VPP descriptors driven by the real KV scheduler against the stand-in, end to end."""

from __future__ import annotations

import asyncio

from plugins.kvscheduler.api import ResyncMode, ValueState
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.vpp import model as m
from plugins.vpp.connection import VPPConnection
from tests.plugins.vpp import values as plan
from tests.plugins.vpp.conftest import make_scheduler
from tests.plugins.vpp.snapshot import expected, snapshot
from tests.vppstub import VPPStub


async def apply(scheduler: KVScheduler, changes: dict[str, object]) -> None:
    result = await scheduler.commit(changes)  # type: ignore[arg-type]
    assert result.ok, result.errors


async def test_node_base_config(scheduler: KVScheduler, stub: VPPStub) -> None:
    base = plan.node_base(1)
    await apply(scheduler, base)
    assert snapshot(stub) == expected(base)
    for key in base:
        assert scheduler.value_status(key).state is ValueState.CONFIGURED, key


async def test_pod_tap_added_and_deleted(scheduler: KVScheduler, stub: VPPStub, pod_netns: str) -> None:
    base = plan.node_base(1)
    await apply(scheduler, base)
    pod = plan.pod(1, 2, "c1", netns=pod_netns)
    await apply(scheduler, pod)
    assert snapshot(stub) == expected({**base, **pod})
    tap = next(i for i in stub.state.interfaces.values() if i.tag == "cv:pod-c1")
    assert (tap.link["host_if_name"], tap.link["host_namespace"], tap.link["host_mtu_size"]) == (
        "eth0",
        pod_netns,
        1450,
    )
    await apply(scheduler, dict.fromkeys(pod))
    assert snapshot(stub) == expected(base)


async def test_pod_veth_added_and_deleted(scheduler: KVScheduler, stub: VPPStub, host_veth: str) -> None:
    base = plan.node_base(1)
    await apply(scheduler, base)
    pod = plan.pod(1, 3, "c2", veth_host=host_veth)
    await apply(scheduler, pod)
    assert snapshot(stub) == expected({**base, **pod})
    afp = next(i for i in stub.state.interfaces.values() if i.tag == "cv:pod-c2")
    assert afp.name == f"host-{host_veth}"
    await apply(scheduler, dict.fromkeys(pod))
    assert snapshot(stub) == expected(base)


async def test_remote_node_joins_and_leaves(scheduler: KVScheduler, stub: VPPStub) -> None:
    base = plan.node_base(1)
    await apply(scheduler, base)
    peer = plan.remote_node(1, 2)
    await apply(scheduler, peer)
    assert snapshot(stub) == expected({**base, **peer})
    await apply(scheduler, dict.fromkeys(peer))
    assert snapshot(stub) == expected(base)


async def test_agent_restart_changes_nothing(
    scheduler: KVScheduler, connection: VPPConnection, stub: VPPStub, pod_netns: str
) -> None:
    base = plan.node_base(1)
    desired = {**base, **plan.pod(1, 2, "c1", netns=pod_netns), **plan.remote_node(1, 2)}
    await apply(scheduler, desired)
    before, calls = snapshot(stub), dict(stub.mutating_calls())
    restarted = make_scheduler(connection)  # a new agent: empty graph, empty indexes
    try:
        result = await restarted.commit(desired, resync=ResyncMode.FULL)
        assert result.ok, result.errors
        assert [(op.key, op.operation, op.before, op.after) for op in result.operations] == []
    finally:
        await restarted.close()
    assert stub.mutating_calls() == calls
    assert snapshot(stub) == before


async def test_vpp_restart_is_reapplied(scheduler: KVScheduler, connection: VPPConnection, stub: VPPStub) -> None:
    base = plan.node_base(1)
    await apply(scheduler, base)
    reconnected = asyncio.Event()
    flags: list[bool] = []

    async def on_reconnect(restarted: bool) -> None:
        flags.append(restarted)
        reconnected.set()

    connection.on_reconnect(on_reconnect)
    connection.start_monitor()
    stub.restart()
    assert snapshot(stub) == expected({})
    await asyncio.wait_for(reconnected.wait(), 10)
    assert flags == [True]
    result = await scheduler.commit({}, resync=ResyncMode.DOWNSTREAM)
    assert result.ok, result.errors
    assert snapshot(stub) == expected(base)


async def test_failed_call_is_retried_and_converges(scheduler: KVScheduler, stub: VPPStub) -> None:
    base = plan.node_base(1)
    stub.fail_next("ip_route_add_del", -1, times=2)
    result = await scheduler.commit(base)
    assert not result.ok
    assert any("ip_route_add_del failed with retval -1" in e for e in result.errors.values())
    await scheduler.settled(timeout=10)
    assert snapshot(stub) == expected(base)
    assert all(scheduler.value_status(k).state is ValueState.CONFIGURED for k in base)


async def test_foreign_objects_are_left_alone(scheduler: KVScheduler, connection: VPPConnection, stub: VPPStub) -> None:
    foreign = await connection.call("create_loopback_instance", is_specified=False, user_instance=m.NO_INDEX)
    await connection.call(
        "sw_interface_add_del_address", sw_if_index=foreign.sw_if_index, is_add=True, prefix="10.99.0.1/24"
    )
    path = {"sw_if_index": foreign.sw_if_index, "type": 0, "label_stack": [{}] * 16}
    route = {"table_id": 0, "prefix": "10.98.0.0/16", "n_paths": 1, "paths": [path]}
    await connection.call("ip_route_add_del", is_add=True, route=route)
    base = plan.node_base(1)
    result = await scheduler.commit(base, resync=ResyncMode.FULL)
    assert result.ok, result.errors
    assert foreign.sw_if_index in stub.state.interfaces
    assert (0, __import__("ipaddress").ip_network("10.98.0.0/16")) in stub.state.routes
    assert snapshot(stub)["routes"] >= expected(base)["routes"]


async def test_tap_without_vhost_net_names_message_and_code(scheduler: KVScheduler, stub: VPPStub) -> None:
    stub.options.vhost_net = False
    value = m.Interface(name="t1", type=m.InterfaceType.TAP, tap=m.TapLink(host_if_name="t1"))
    result = await scheduler.commit({m.interface_key("t1"): value})
    error = result.errors[m.interface_key("t1")]
    assert "VPP tap_create_v3 failed with retval -11" in error and "use the veth pod interface mode" in error
    assert scheduler.value_status(m.interface_key("t1")).state is ValueState.FAILED  # no pointless retries


async def test_half_created_interface_is_undone_before_retry(scheduler: KVScheduler, stub: VPPStub) -> None:
    value = m.Interface(name="lone", type=m.InterfaceType.LOOPBACK)
    stub.fail_next("sw_interface_tag_add_del", -1)
    result = await scheduler.commit({m.interface_key("lone"): value})
    assert "sw_interface_tag_add_del failed with retval -1" in result.errors[m.interface_key("lone")]
    await scheduler.settled(timeout=10)
    loops = [i for i in stub.state.interfaces.values() if i.dev_type == "Loopback"]
    assert [(i.tag, i.admin_up) for i in loops] == [("cv:lone", True)]
    assert stub.calls["delete_loopback"] == 1
