"""IPNetPlugin as a controller handler: the real IPAM, the real transaction, the hooks."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from plugins.controller.api import Event
from plugins.controller.events import DBResync
from plugins.controller.handlers import check_handlers
from plugins.controller.txn import EventTransaction
from plugins.ipam.api import PoolExhaustedError
from plugins.ipnet.config import IPNetConfig
from plugins.ipnet.plugin import IPNetPlugin
from plugins.linux.models import FdbEntry, Route, Veth
from plugins.nodesync.api import NodeUpdate
from plugins.podmanager.api import AddPod, DeletePod, LocalPod
from tests.plugins.ipnet.support import NodeTable, PodRecords, node, real_ipam


def local_pod(name: str, cid: str = "", netns: str = "") -> LocalPod:
    return LocalPod(name=name, namespace="default", container_id=cid or f"cid-{name}",
                    netns_path=netns or f"/var/run/netns/{name}")


class _Other(Event):
    name = "something else"


async def test_hooks_are_valid_for_the_controller(tmp_path: Path) -> None:
    nodes = NodeTable("node1", {"node1": node(1, "node1")})
    async with real_ipam(tmp_path, nodes) as ipam:
        plugin = IPNetPlugin(ipam=ipam, nodesync=nodes, podmanager=PodRecords())
        (handler,) = check_handlers([plugin])
        assert handler.handles_event(DBResync({}, {}))
        assert handler.handles_event(AddPod(local_pod("a")))
        assert not handler.handles_event(_Other())


async def test_add_delete_revert(tmp_path: Path) -> None:
    nodes = NodeTable("node1", {"node1": node(1, "node1")})
    async with real_ipam(tmp_path, nodes) as ipam:
        plugin = IPNetPlugin(ipam=ipam, nodesync=nodes, podmanager=PodRecords())
        plugin.resync(DBResync({}, {}), None, 1, EventTransaction())  # type: ignore[arg-type]

        add = AddPod(local_pod("web"))
        txn = EventTransaction()
        assert plugin.update(add, txn) == "pod default/web wired with 10.1.1.2/32"
        assert ipam.pod_ip(add.pod.id) == IPv4Address("10.1.1.2")
        # The node-side veth end first (no sandbox, the gateway MAC), then the pod interface,
        # which the address points at: the reference plugins' layout.
        host, eth0 = add.interfaces
        assert host.name.startswith("cv") and not host.sandbox and host.mac
        assert (eth0.name, eth0.sandbox) == ("eth0", "/var/run/netns/web")
        assert [(a.address, a.gateway, a.interface) for a in add.ip_addresses] == [
            ("10.1.1.2/32", "10.1.1.1", 1)
        ]
        assert [(r.dst, r.gw) for r in add.routes] == [("0.0.0.0/0", "10.1.1.1")]
        added_keys = set(txn.values())
        assert sum(isinstance(v, Veth) for v in txn.values().values()) == 1
        # The allocation is fsynced in the background; the pod manager awaits it before replying.
        assert add.before_reply == [ipam.persisted]
        for write in add.before_reply:
            await write()
        state = json.loads(Path(ipam.config.state_file).read_text())
        assert state["allocations"] == [{"name": "web", "namespace": "default", "ip": "10.1.1.2"}]

        # A failed transaction reverts: bookkeeping undone, the fresh address released.
        second = AddPod(local_pod("db"))
        plugin.update(second, EventTransaction())
        assert ipam.pod_ip(second.pod.id) == IPv4Address("10.1.1.3")
        plugin.revert(second)
        assert ipam.pod_ip(second.pod.id) is None
        assert set(plugin.pods) == {add.pod.id}

        delete = DeletePod(add.pod)
        txn = EventTransaction()
        assert plugin.update(delete, txn) == "pod default/web un-wired, 10.1.1.2/32 released"
        assert set(txn.values()) == added_keys
        assert all(v is None for v in txn.values().values())
        assert ipam.pod_ip(add.pod.id) is None
        assert plugin.pods == {}


async def test_pool_exhaustion_is_reported_and_changes_nothing(tmp_path: Path) -> None:
    nodes = NodeTable("node1", {"node1": node(1, "node1")})
    async with real_ipam(tmp_path, nodes, pod_subnet_one_node_prefix_len=29) as ipam:
        plugin = IPNetPlugin(ipam=ipam, nodesync=nodes, podmanager=PodRecords())
        for i in range(4):  # a /29: .2 to .5 (.6 is the NAT loopback)
            plugin.update(AddPod(local_pod(f"p{i}")), EventTransaction())
        txn = EventTransaction()
        with pytest.raises(PoolExhaustedError, match=r"10\.1\.0\.8/29"):
            plugin.update(AddPod(local_pod("one-too-many")), txn)
        assert len(txn) == 0 and len(plugin.pods) == 4


async def test_resync_puts_everything_and_node_updates_diff(tmp_path: Path) -> None:
    nodes = NodeTable("node1", {"node1": node(1, "node1"), "node2": node(2, "node2")})
    pods = PodRecords()
    async with real_ipam(tmp_path, nodes) as ipam:
        plugin = IPNetPlugin(ipam=ipam, nodesync=nodes, podmanager=pods)
        for name in ("a", "b", "lost", "gone"):
            # An existing namespace file for live pods; "gone" lost its namespace.
            netns = "/var/run/netns/h5-no-such-ns" if name == "gone" else "/proc/self/ns/net"
            pod = local_pod(name, netns=netns)
            pods.pods[pod.id] = pod
            if name != "lost":  # a record without allocation is left unwired
                ipam.allocate_pod_ip(pod.id)
        txn = EventTransaction()
        plugin.resync(DBResync({}, {}), None, 1, txn)  # type: ignore[arg-type]
        values = txn.desired_state()
        assert sum(isinstance(v, Veth) for v in values.values()) == 2
        assert sorted(str(p) for p in plugin.pods) == ["default/a", "default/b"]
        mesh = {str(v.dst) for v in values.values() if isinstance(v, Route) and v.dev ==
                "contiv-vxlan"}
        assert mesh == {"10.1.2.0/24", "172.30.2.0/24"}
        assert plugin.describe_internal_state()["remotes"]  # type: ignore[truthy-bool]

        # node3 joins, node2 leaves: only their values change.
        joined = node(3, "node3")
        nodes.table["node3"] = joined
        txn = EventTransaction()
        assert plugin.update(NodeUpdate("node3", None, joined), txn)
        assert {str(v.dst) for v in txn.values().values() if isinstance(v, Route)} == {
            "10.1.3.0/24", "172.30.3.0/24"}
        assert any(isinstance(v, FdbEntry) for v in txn.values().values())
        left = nodes.table.pop("node2")
        txn = EventTransaction()
        assert plugin.update(NodeUpdate("node2", left, None), txn) == "mesh to node node2 removed"
        assert txn.values() and all(v is None for v in txn.values().values())
        assert set(plugin.remotes) == {"node3"}
        # An unchanged node is a no-op.
        assert plugin.update(NodeUpdate("node3", joined, joined), EventTransaction()) is None


async def test_nooverlay_and_config_errors(tmp_path: Path) -> None:
    nodes = NodeTable("node1", {"node1": node(1, "node1", ip="192.168.16.1/24"),
                                "node2": node(2, "node2", ip="192.168.16.2/24")})
    async with real_ipam(tmp_path, nodes) as ipam:
        plugin = IPNetPlugin(IPNetConfig(nooverlay=True), ipam=ipam, nodesync=nodes,
                             podmanager=PodRecords())
        txn = EventTransaction()
        plugin.resync(DBResync({}, {}), None, 1, txn)  # type: ignore[arg-type]
        routes = [v for v in txn.values().values() if isinstance(v, Route)]
        assert {(str(r.dst), str(r.gateway)) for r in routes} == {
            ("10.1.2.0/24", "192.168.16.2"), ("172.30.2.0/24", "192.168.16.2")}
    with pytest.raises(ValueError, match="dataplane"):
        IPNetConfig(dataplane="ovs")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown_key"):
        IPNetConfig.model_validate({"unknown_key": 1})


async def test_own_address_change_rerenders_the_mesh(tmp_path: Path) -> None:
    from plugins.linux.models import Vxlan

    nodes = NodeTable("node1", {"node1": node(1, "node1"), "node2": node(2, "node2")})
    async with real_ipam(tmp_path, nodes) as ipam:
        plugin = IPNetPlugin(ipam=ipam, nodesync=nodes, podmanager=PodRecords())
        txn = EventTransaction()
        plugin.resync(DBResync({}, {}), None, 1, txn)  # type: ignore[arg-type]
        (vx,) = [v for v in txn.values().values() if isinstance(v, Vxlan)]
        assert vx.local == IPv4Address("192.168.16.1")  # the planned address

        before = nodes.table["node1"]
        nodes.table["node1"] = node(1, "node1", ip="10.200.0.1/24")  # published later
        txn = EventTransaction()
        assert plugin.update(NodeUpdate("node1", before, nodes.table["node1"]), txn) == (
            "this node's address is now 10.200.0.1/24")
        (vx,) = [v for v in txn.values().values() if isinstance(v, Vxlan)]
        assert vx.local == IPv4Address("10.200.0.1")
        assert plugin.update(NodeUpdate("node1", nodes.table["node1"], nodes.table["node1"]),
                             EventTransaction()) is None
