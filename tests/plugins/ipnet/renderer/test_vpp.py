"""The VPP renderer end to end: intent -> values -> scheduler -> stand-in VPP + real Linux side."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from plugins.ipnet.compute import node_intent, pod_intent, remote_node_intent
from plugins.ipnet.config import IPNetConfig
from plugins.ipnet.intent import NodeIntent, PodIntent
from plugins.ipnet.renderer.vpp import VppRenderer, VppRenderSettings
from plugins.kvscheduler.api import ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler, RetryPolicy
from plugins.linux.descriptors.offload import get_segmentation, get_tx_checksum
from plugins.linux.plugin import linux_descriptors
from plugins.vpp.afpacket import FLAG_CKSUM_GSO as CKSUM_GSO
from plugins.vpp.afpacket import FLAG_QDISC_BYPASS as QDISC_BYPASS
from plugins.vpp.connection import VPPConnection
from plugins.vpp.descriptors import all_descriptors
from plugins.vpp.index import Indexes
from tests.plugins.ipnet.support import plan
from tests.plugins.vpp import values as hand
from tests.plugins.vpp.snapshot import expected, snapshot
from tests.vppstub import VPPStub, default_api_dir
from tests.vppstub.interfaces import Options

pytestmark = pytest.mark.netns

#: TAP mode whatever this host has (the stand-in makes TAPs without vhost-net).
TAP = VppRenderSettings(pod_interface="tap")


def ip_json(ns: str, *args: str) -> Any:
    out = subprocess.run(["ip", "-n", ns, "-j", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else []


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    """(node namespace, pod namespace), both removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    names = (f"vppr-node-{tag}", f"vppr-pod-{tag}")
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[VPPStub, VPPConnection]]:
    directory = Path(tempfile.mkdtemp(prefix="vppr-"))
    stub = VPPStub(directory / "api.sock", options=Options(create_host_taps=True)).start()
    conn = VPPConnection(stub.socket_path, default_api_dir(), reconnect_interval_s=0.05)
    await conn.connect()
    try:
        yield stub, conn
    finally:
        await conn.close()
        stub.stop()
        stub.remove_host_taps()
        shutil.rmtree(directory, ignore_errors=True)


def scheduler_for(conn: VPPConnection) -> KVScheduler:
    sched = KVScheduler(verify=True, retry=RetryPolicy(period_s=0.05))
    for descriptor in [*all_descriptors(conn, Indexes()), *linux_descriptors()]:
        sched.register_descriptor(descriptor)
    return sched


def intents(node_ns_pod: str) -> tuple[NodeIntent, PodIntent]:
    node = node_intent(plan(1), "node1")
    pod = pod_intent(
        node,
        pod_name="web",
        pod_namespace="default",
        container_id=uuid.uuid4().hex,
        netns_path=f"/var/run/netns/{node_ns_pod}",
        ip=IPv4Address("10.1.1.7"),
    )
    return node, pod


def vpp_only(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k.startswith("config/vpp")}


def check_pod_side(ns: str, pod: PodIntent) -> None:
    (link,) = [i for i in ip_json(ns, "addr", "show", "dev", "eth0")]
    assert link["address"] == pod.pod_mac and link["mtu"] == pod.mtu
    assert [(a["local"], a["prefixlen"]) for a in link["addr_info"] if a["family"] == "inet"] == [
        (str(pod.ip_address.ip), 32)
    ]
    routes = {(r["dst"], r.get("gateway")) for r in ip_json(ns, "route", "show", "dev", "eth0")}
    assert routes == {(str(pod.gateway), None), ("default", str(pod.gateway))}
    (neigh,) = ip_json(ns, "neigh", "show", "dev", "eth0")
    assert (neigh["dst"], neigh["lladdr"], neigh["state"]) == (str(pod.gateway), pod.gateway_mac, ["PERMANENT"])


async def test_tap_mode_node_and_pod(stand_in: tuple[VPPStub, VPPConnection], namespaces: tuple[str, str]) -> None:
    stub, conn = stand_in
    node_ns, pod_ns = namespaces
    renderer = VppRenderer(IPNetConfig(dataplane="vpp", node_namespace=node_ns), TAP)
    node, pod = intents(pod_ns)
    sched = scheduler_for(conn)
    try:
        base = dict(renderer.render_node(node))
        result = await sched.commit(base)
        assert result.ok, result.errors
        assert snapshot(stub) == expected(hand.node_base(1))
        (vpp1,) = ip_json(node_ns, "addr", "show", "dev", "vpp1")
        assert [a["local"] for a in vpp1["addr_info"] if a["family"] == "inet"] == ["172.30.1.2"]
        routes = {(r["dst"], r.get("gateway")) for r in ip_json(node_ns, "route", "show", "dev", "vpp1")}
        assert ("10.1.0.0/16", "172.30.1.1") in routes

        pod_values = dict(renderer.render_pod(node, pod))
        result = await sched.commit(pod_values)
        assert result.ok, result.errors
        name = renderer.pod_interface_name(pod).removeprefix("pod-")
        want = {**hand.node_base(1), **hand.pod(1, 7, name, netns=pod.netns_path, pod_mac=pod.pod_mac)}
        assert snapshot(stub) == expected(want)
        check_pod_side(pod_ns, pod)

        # an agent restart with VPP unchanged: nothing is created or deleted
        calls = stub.mutating_calls()
        again = scheduler_for(conn)
        try:
            result = await again.commit({**base, **pod_values}, resync=ResyncMode.FULL)
            assert result.ok, result.errors
            # Neither VPP nor the pod's Linux side is touched.
            assert [(o.operation.value, o.key) for o in result.operations] == []
        finally:
            await again.close()
        assert stub.mutating_calls() == calls

        result = await sched.commit(dict.fromkeys(pod_values))
        assert result.ok, result.errors
        assert snapshot(stub) == expected(hand.node_base(1))
        assert [link["ifname"] for link in ip_json(pod_ns, "link", "show")] == ["lo"]
    finally:
        await sched.close()


@pytest.mark.parametrize("offload", [True, False], ids=["virtio-net-header", "no-header"])
async def test_veth_mode_node_and_pod(
    stand_in: tuple[VPPStub, VPPConnection], namespaces: tuple[str, str], offload: bool
) -> None:
    stub, conn = stand_in
    stub.options.vhost_net = False  # as on these machines: TAPs cannot be made
    node_ns, pod_ns = namespaces
    stub.options.host_namespace = node_ns  # VPP runs in the node's namespace
    tag = uuid.uuid4().hex[:4]
    settings = VppRenderSettings(
        pod_interface="veth", host_ifname=f"vr{tag}h", vpp_side_ifname=f"vr{tag}v", veth_prefix=f"v{tag}",
        af_packet_offload=offload,
    )
    renderer = VppRenderer(IPNetConfig(dataplane="vpp", node_namespace=node_ns), settings)
    node, pod = intents(pod_ns)
    sched = scheduler_for(conn)
    try:
        values = {**renderer.render_node(node), **renderer.render_pod(node, pod)}
        result = await sched.commit(values)
        assert result.ok, result.errors
        kinds = sorted(i.dev_type for i in stub.state.interfaces.values() if i.tag)
        assert kinds == ["Loopback", "Loopback", "Loopback", "af_packet", "af_packet"]
        names = {i.name for i in stub.state.interfaces.values()}
        assert f"host-vr{tag}v" in names and any(n.startswith(f"host-v{tag}") for n in names)
        check_pod_side(pod_ns, pod)
        # before the pod's ADD returns: checksum offload on with the header (VPP completes
        # checksums), off without; segmentation off (no GSO frames into VXLAN; without checksum
        # offload the kernel drops TSO itself)
        for ns, ifname in ((pod_ns, "eth0"), (node_ns, f"vr{tag}h")):
            assert await get_tx_checksum(ns, ifname) is offload
            assert await get_segmentation(ns, ifname) is False
        flags = {i.name: i.link["flags"] for i in stub.state.interfaces.values() if i.dev_type == "af_packet"}
        assert set(flags.values()) == {(CKSUM_GSO if offload else 0) | QDISC_BYPASS}, flags
        # an agent restart: the flags read back (show hardware-interfaces) as they were asked for
        calls = stub.mutating_calls()
        again = scheduler_for(conn)
        try:
            result = await again.commit(values, resync=ResyncMode.FULL)
            assert result.ok and [o.key for o in result.operations] == [], result
        finally:
            await again.close()
        assert stub.mutating_calls() == calls
        result = await sched.commit(dict.fromkeys(renderer.render_pod(node, pod)))
        assert result.ok, result.errors
        assert not any(n.startswith(f"host-v{tag}") for n in (i.name for i in stub.state.interfaces.values()))
        result = await sched.commit(dict.fromkeys(renderer.render_node(node)))
        assert result.ok, result.errors
        assert snapshot(stub) == expected({})
    finally:
        await sched.close()


async def test_remote_node_joins_and_leaves(
    stand_in: tuple[VPPStub, VPPConnection], namespaces: tuple[str, str]
) -> None:
    stub, conn = stand_in
    node_ns, _ = namespaces
    renderer = VppRenderer(IPNetConfig(dataplane="vpp", node_namespace=node_ns), TAP)
    node = node_intent(plan(1), "node1")
    remote = remote_node_intent(node, plan(2), "node2", published_ips=[], mgmt_addresses=[])
    sched = scheduler_for(conn)
    try:
        assert (await sched.commit(dict(renderer.render_node(node)))).ok
        peer = dict(renderer.render_remote_node(node, remote))
        result = await sched.commit(peer)
        assert result.ok, result.errors
        assert snapshot(stub) == expected({**hand.node_base(1), **hand.remote_node(1, 2)})
        result = await sched.commit(dict.fromkeys(peer))
        assert result.ok, result.errors
        assert snapshot(stub) == expected(hand.node_base(1))
    finally:
        await sched.close()


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="pod_interface"):
        VppRenderSettings.model_validate({"pod_interface": "memif"})
    renderer = VppRenderer(IPNetConfig(dataplane="vpp"))
    assert renderer.settings.pod_interface == "auto" and renderer.node_namespace == ""
    assert renderer.settings.af_packet_offload and renderer.settings.af_packet_qdisc_bypass
    assert not renderer.settings.af_packet_gso


async def test_vpp_restart_rewires_pod_completely(
    stand_in: tuple[VPPStub, VPPConnection], namespaces: tuple[str, str]
) -> None:
    stub, conn = stand_in
    node_ns, pod_ns = namespaces
    renderer = VppRenderer(IPNetConfig(dataplane="vpp", node_namespace=node_ns), TAP)
    node, pod = intents(pod_ns)
    sched = scheduler_for(conn)
    reconnected = asyncio.Event()

    async def on_reconnect(restarted: bool) -> None:
        reconnected.set()

    conn.on_reconnect(on_reconnect)
    conn.start_monitor()
    try:
        values = {**renderer.render_node(node), **renderer.render_pod(node, pod)}
        assert (await sched.commit(values)).ok
        before = snapshot(stub)
        stub.restart()  # VPP's TAPs (and their Linux sides) are gone
        assert [link["ifname"] for link in ip_json(pod_ns, "link", "show")] == ["lo"]
        await asyncio.wait_for(reconnected.wait(), 10)
        result = await sched.commit({}, resync=ResyncMode.DOWNSTREAM)
        # One resync rewires it all: a missing TAP takes its link property with it, so the
        # pod's Linux values wait for the TAP instead of failing before it is back.
        assert result.ok, result.errors
        assert [(o.operation.value, o.key) for o in result.operations if o.error is not None] == []
        assert not [s for s in result.values.values() if s.state.value in ("retrying", "failed")]
        assert snapshot(stub) == before
        check_pod_side(pod_ns, pod)
        states = {sched.value_status(k).state.value for k in values}
        assert states == {"configured"}
    finally:
        await sched.close()
