"""``ipam.pod_subnet_source: kubernetes``: pod subnets from the Nodes' ``spec.podCIDR``.

The validation of a Node's podCIDR, the config rules, and the plugin against a real etcd:
this node's subnet from its reflected Node (there at start, or arriving while start-up waits),
a podCIDR outside the cluster CIDR reported without failing start, allocations persisted for
another subnet (a switch of modes) dropped like after any subnet change, and ``plan`` mode
ignoring the Node's podCIDR.
"""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.health import HealthPlugin
from core.http import HTTPConfig, HTTPPlugin
from core.kvdb.api import agent_prefix
from core.kvdb.plugin import KVDBPlugin
from plugins.controller.events import KubeStateChange
from plugins.ipam.api import PodSubnetPendingError
from plugins.ipam.config import IPAMConfig
from plugins.ipam.plan import (
    AddressPlanError,
    NodePodCIDRError,
    NodePodCIDRMissingError,
    node_id_from_pod_ip,
    node_plan,
    node_pod_subnet,
    resolve_plan,
)
from plugins.ipam.store import PodIPAllocation
from plugins.ksr.keys import node_key
from plugins.ksr.model import KSR_LABEL
from plugins.ksr.model import Node as K8sNode
from plugins.podmanager.api import PodID
from tests.plugins.ipam.helpers import Node

CLUSTER = IPv4Network("10.244.0.0/16")
K8S: dict[str, Any] = {"pod_subnet_source": "kubernetes", "pod_subnet_cidr": "10.244.0.0/16"}
ALLOCATIONS = agent_prefix("node-a") + "ipam/allocations/"


async def put_node(kvdb: KVDBPlugin, name: str, pod_cidr: str = "", pod_cidrs: list[str] | None = None) -> None:
    """The Node as KSR reflects it."""
    node = K8sNode(name=name, pod_cidr=pod_cidr, pod_cidrs=pod_cidrs or ([pod_cidr] if pod_cidr else []))
    await kvdb.broker.put(agent_prefix(KSR_LABEL) + node_key(name), node.model_dump_json().encode())


def health() -> HealthPlugin:
    return HealthPlugin(http=HTTPPlugin(HTTPConfig(port=0)))


# ----------------------------------------------------------------------------- pure rules


def test_node_pod_cidr_inside_the_cluster_cidr_is_the_subnet() -> None:
    assert node_pod_subnet("n1", "10.244.3.0/24", ["10.244.3.0/24"], CLUSTER) == IPv4Network("10.244.3.0/24")
    # Dual stack: the IPv4 one, wherever it is listed.
    assert node_pod_subnet("n1", "fd00:10::/64", ["fd00:10::/64", "10.244.4.0/25"], CLUSTER) == IPv4Network(
        "10.244.4.0/25")


@pytest.mark.parametrize(("pod_cidr", "pod_cidrs", "error", "words"), [
    ("", [], NodePodCIDRMissingError, ["Node n1", "no spec.podCIDR"]),
    ("10.9.0.0/24", [], NodePodCIDRError, ["Node n1", "10.9.0.0/24", "outside", "10.244.0.0/16"]),
    ("10.244.0.0/15", [], NodePodCIDRError, ["Node n1", "10.244.0.0/15", "outside", "10.244.0.0/16"]),
    ("fd00::/64", ["fd00::/64"], NodePodCIDRError, ["Node n1", "no IPv4", "fd00::/64"]),
    ("10.244.1.7/24", [], NodePodCIDRError, ["Node n1", "'10.244.1.7/24'", "not a CIDR"]),
    ("10.244.1.0/30", [], NodePodCIDRError, ["Node n1", "10.244.1.0/30", "too small"]),
])
def test_unusable_node_pod_cidrs_are_named(pod_cidr: str, pod_cidrs: list[str], error: type[Exception],
                                           words: list[str]) -> None:
    with pytest.raises(error) as info:
        node_pod_subnet("n1", pod_cidr, pod_cidrs, CLUSTER)
    assert all(word in str(info.value) for word in words), str(info.value)


def test_kubernetes_source_needs_the_cluster_cidr_set_explicitly() -> None:
    with pytest.raises(ValidationError, match="pod_subnet_source kubernetes needs pod_subnet_cidr"):
        IPAMConfig(pod_subnet_source="kubernetes")
    with pytest.raises(ValidationError, match="pod_subnet_source"):
        IPAMConfig(pod_subnet_source="host-local")
    assert IPAMConfig(**K8S).pod_subnet_source == "kubernetes"
    assert IPAMConfig(pod_subnet_source="kubernetes", contiv_cidr="10.128.0.0/14").pod_subnet_source == "kubernetes"
    assert IPAMConfig().pod_subnet_source == "plan"


def test_kubernetes_source_does_not_split_the_pod_cidr_per_node_id() -> None:
    # A /24 cluster CIDR has no room for /24 blocks per node ID; with Node podCIDRs it need not.
    with pytest.raises(ValidationError, match="pod_subnet_one_node_prefix_len"):
        IPAMConfig(pod_subnet_cidr="10.244.0.0/24")
    resolved = resolve_plan(IPAMConfig(pod_subnet_source="kubernetes", pod_subnet_cidr="10.244.0.0/24"))
    assert resolved.max_node_id == 254  # node interconnect and VXLAN limit the IDs, not the pod CIDR
    assert node_plan(resolved, 7).node_ip.ip == IPv4Address("192.168.16.7")
    with pytest.raises(AddressPlanError, match="does not encode its node ID"):
        node_id_from_pod_ip(resolved, IPv4Address("10.244.0.9"))


# ----------------------------------------------------------------------------- the plugin on etcd


async def test_this_nodes_subnet_is_its_node_pod_cidr(etcd_kvdb: KVDBPlugin, tmp_path: Path) -> None:
    await put_node(etcd_kvdb, "node-a", "10.244.7.0/24")
    # No waiting allowed: the Node is still read once at start.
    node = Node(etcd_kvdb, tmp_path / "ipam.json", pod_cidr_wait_s=0, **K8S)
    ipam = await node.start()
    try:
        plan = ipam.plan()
        assert plan.node_id == 1
        assert (plan.pod_subnet, plan.pod_gateway) == (IPv4Network("10.244.7.0/24"), IPv4Address("10.244.7.1"))
        assert plan.pod_network == CLUSTER
        assert plan.node_ip.ip == IPv4Address("192.168.16.1")  # the rest still comes from the ID
        assert ipam.capacity() == 252
        assert ipam.allocate_pod_ip(PodID("web", "default")) == IPv4Address("10.244.7.2")
        assert ipam.describe()["podSubnetSource"] == "kubernetes"
    finally:
        await node.stop()


async def test_start_waits_for_the_pod_cidr_to_arrive(
    etcd_kvdb: KVDBPlugin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await put_node(etcd_kvdb, "node-a")  # registered, no podCIDR assigned yet
    node = Node(etcd_kvdb, tmp_path / "ipam.json", pod_cidr_wait_s=10, **K8S)
    caplog.set_level(logging.WARNING, "contiv.ipam")
    start = asyncio.get_running_loop().create_task(node.start())
    try:
        while "waiting for Node node-a spec.podCIDR" not in caplog.text:  # it is watching now
            assert not start.done(), start
            await asyncio.sleep(0.01)
        await put_node(etcd_kvdb, "node-a", "10.244.9.0/24")
        ipam = await start
        assert ipam.plan().pod_subnet == IPv4Network("10.244.9.0/24")
        assert ipam.pending_reason() == ""
    finally:
        await start
        await node.stop()


async def test_no_pod_cidr_starts_not_ready_and_wires_nothing(etcd_kvdb: KVDBPlugin, tmp_path: Path) -> None:
    probe = health()
    node = Node(etcd_kvdb, tmp_path / "ipam.json", health=probe, pod_cidr_wait_s=0, **K8S)
    ipam = await node.start()  # the Node is not even reflected: start does not fail
    try:
        state = probe.components["ipam"]
        assert not state.ok and state.detail == "waiting for Node node-a spec.podCIDR"
        with pytest.raises(PodSubnetPendingError, match=r"waiting for Node node-a spec\.podCIDR"):
            ipam.allocate_pod_ip(PodID("web", "default"))
        with pytest.raises(PodSubnetPendingError):
            ipam.plan()
        assert ipam.pod_ip(PodID("web", "default")) is None and dict(ipam.allocations()) == {}
        ipam.release_pod_ip(PodID("web", "default"))  # a CNI DEL meanwhile succeeds
        assert ipam.release_stale() == []
        assert ipam.describe_internal_state() == {
            "podSubnet": None, "allocations": {}, "pending": "waiting for Node node-a spec.podCIDR",
            "nodePodCIDRProblems": {},
        }
    finally:
        await node.stop()


async def test_pod_cidr_outside_the_cluster_cidr_is_reported_not_fatal(
    etcd_kvdb: KVDBPlugin, tmp_path: Path
) -> None:
    await put_node(etcd_kvdb, "node-a", "10.9.3.0/24")
    probe = health()
    node = Node(etcd_kvdb, tmp_path / "ipam.json", health=probe, pod_cidr_wait_s=10, **K8S)
    ipam = await node.start()  # returns at once: waiting does not repair a wrong podCIDR
    try:
        expected = ("waiting for Node node-a spec.podCIDR: Node node-a spec.podCIDR 10.9.3.0/24 is outside "
                    "the cluster pod CIDR 10.244.0.0/16 (ipam.pod_subnet_cidr)")
        assert ipam.pending_reason() == expected
        assert (probe.components["ipam"].ok, probe.components["ipam"].detail) == (False, expected)
        with pytest.raises(PodSubnetPendingError, match="outside the cluster pod CIDR"):
            ipam.allocate_pod_ip(PodID("web", "default"))
    finally:
        await node.stop()


async def test_switching_to_kubernetes_drops_the_old_subnets_allocations(
    etcd_kvdb: KVDBPlugin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cluster: dict[str, Any] = {"pod_subnet_cidr": "10.1.0.0/16"}
    before = Node(etcd_kvdb, tmp_path / "ipam.json", **cluster)
    ipam = await before.start()
    assert ipam.allocate_pod_ip(PodID("old", "default")) == IPv4Address("10.1.1.2")
    assert await ipam.flush_to_etcd(5)
    await before.stop()

    await put_node(etcd_kvdb, "node-a", "10.1.200.0/24")
    caplog.set_level(logging.WARNING, "contiv.ipam")
    after = Node(etcd_kvdb, tmp_path / "ipam.json", pod_subnet_source="kubernetes", **cluster)
    ipam = await after.start()
    try:
        assert ipam.plan().pod_subnet == IPv4Network("10.1.200.0/24")
        assert "is for subnet 10.1.1.0/24, this node now has 10.1.200.0/24: ignoring it" in caplog.text
        assert dict(ipam.allocations()) == {}
        assert ipam.allocate_pod_ip(PodID("new", "default")) == IPv4Address("10.1.200.2")
        assert await ipam.flush_to_etcd(5)
        records = await etcd_kvdb.broker.list_models(ALLOCATIONS, PodIPAllocation)
        assert {r.pod: r.ip_address for r in records.values()} == {PodID("new", "default"): "10.1.200.2"}
    finally:
        await after.stop()


async def test_plan_mode_ignores_the_node_pod_cidr(etcd_kvdb: KVDBPlugin, tmp_path: Path) -> None:
    await put_node(etcd_kvdb, "node-a", "10.244.7.0/24")
    node = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam = await node.start()
    try:
        assert ipam.plan().pod_subnet == IPv4Network("10.1.1.0/24")
        assert ipam.plan(5).pod_subnet == IPv4Network("10.1.5.0/24")
        change = KubeStateChange("node", "node-a", None, K8sNode(name="node-a", pod_cidr="10.244.8.0/24"))
        assert not ipam.handles_event(change)
        assert ipam.describe_internal_state() == {"podSubnet": "10.1.1.0/24", "allocations": {}}
    finally:
        await node.stop()
