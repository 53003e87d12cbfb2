"""nodesync + ipam inside an agent: real controller, real KV scheduler, real etcd, real HTTP.

Another node's ID record appearing, changing and disappearing in etcd turns into NodeUpdate
events; reflected pods feed IPAM (adoption of their addresses, release once they are gone);
the REST endpoints serve the plan and the allocations.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import httpx
import pytest

from core.agent import Agent
from core.etcdserver import EtcdServer
from core.health import HealthPlugin
from core.http import HTTPConfig, HTTPPlugin
from core.kvdb.plugin import KVDBConfig, KVDBPlugin
from core.metrics import MetricsPlugin
from core.servicelabel import ServiceLabelConfig, ServiceLabelPlugin
from plugins.controller.config import ControllerConfig, DBWatcherConfig
from plugins.controller.plugin import ControllerPlugin
from plugins.ipam.config import IPAMConfig
from plugins.ipam.plugin import IPAMPlugin
from plugins.ksr.keys import node_key, pod_key
from plugins.ksr.model import Node as K8sNode
from plugins.ksr.model import NodeAddress, Pod
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.nodesync.api import VppNode
from plugins.nodesync.plugin import KSR_PREFIX, NodeSyncPlugin
from plugins.podmanager.api import PodID

NODE = "nsync-agent-a"


@dataclass
class Running:
    agent: Agent
    controller: ControllerPlugin
    nodesync: NodeSyncPlugin
    ipam: IPAMPlugin
    kvdb: KVDBPlugin
    http: HTTPPlugin


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``predicate`` (a generous deadline: the machine is shared and loaded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)


def event_names(controller: ControllerPlugin) -> list[str]:
    assert controller.loop is not None
    return [record.description for record in controller.loop.history_records()]


@pytest.fixture
async def running(etcd: EtcdServer, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """The agent; ``request.param`` (indirect parametrisation) is IPAM's release grace period."""
    grace = float(getattr(request, "param", 3600.0))
    http = HTTPPlugin(HTTPConfig(port=0))
    health = HealthPlugin(http=http)
    metrics = MetricsPlugin(http=http)
    label = ServiceLabelPlugin(ServiceLabelConfig(label=NODE))
    kvdb = KVDBPlugin(KVDBConfig(**etcd.kvdb_config(), op_timeout_s=2.0), health=health)
    scheduler = KVScheduler()
    controller = ControllerPlugin(
        ControllerConfig(
            dbwatcher=DBWatcherConfig(mirror_file=str(tmp_path / "mirror.sqlite"), remote_db_probing_interval_s=0.2)
        ),
        scheduler=scheduler, service_label=label, kvdb=kvdb, http=http, metrics=metrics, health=health,
    )
    nodesync = NodeSyncPlugin(kvdb=kvdb, service_label=label, controller=controller)
    ipam = IPAMPlugin(
        IPAMConfig(state_file=tmp_path / "ipam.json", release_grace_s=grace, stale_check_interval_s=0.1),
        kvdb=kvdb, nodesync=nodesync, http=http, controller=controller,
    )
    agent = Agent([http, health, metrics, label, kvdb, controller, nodesync, ipam])
    await agent.start()
    try:
        await wait_until(lambda: controller.loop is not None and controller.loop.started)
        yield Running(agent, controller, nodesync, ipam, kvdb, http)
    finally:
        await agent.stop()
        await scheduler.close()


async def test_other_nodes_become_node_update_events(running: Running) -> None:
    broker = running.kvdb.broker
    assert running.nodesync.node_id() == 1

    # IPAM published this node's dataplane address from the plan into its ID record.
    async def own_ips() -> list[str]:
        kv = await broker.get(f"{KSR_PREFIX}allocatedIDs/1")
        return [] if kv is None else VppNode.model_validate_json(kv.value).ip_addresses

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while await own_ips() != ["192.168.16.1/24"] and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert await own_ips() == ["192.168.16.1/24"]
    # The table shows it, through the controller's resync or the watch (whichever came last:
    # IPAM publishes during start-up, before or after the first resync's snapshot).
    await wait_until(lambda: [str(i) for i in running.nodesync.nodes()[NODE].ip_addresses]
                     == ["192.168.16.1/24"])

    other = VppNode(id=2, name="nsync-agent-b", ip_addresses=["192.168.16.2/24"])
    await broker.put(f"{KSR_PREFIX}allocatedIDs/2", other.model_dump_json().encode())
    await wait_until(lambda: "Node Update nsync-agent-b joined" in event_names(running.controller))
    assert [str(i) for i in running.nodesync.nodes()["nsync-agent-b"].ip_addresses] == ["192.168.16.2/24"]

    k8s = K8sNode(name="nsync-agent-b", addresses=[NodeAddress(type="InternalIP", address="10.0.0.2")])
    await broker.put(KSR_PREFIX + node_key("nsync-agent-b"), k8s.model_dump_json().encode())
    await wait_until(lambda: "Node Update nsync-agent-b changed" in event_names(running.controller))
    assert running.nodesync.nodes()["nsync-agent-b"].mgmt_addresses == ["10.0.0.2"]

    await broker.delete(f"{KSR_PREFIX}allocatedIDs/2")
    await wait_until(lambda: "Node Update nsync-agent-b left" in event_names(running.controller))
    assert set(running.nodesync.nodes()) == {NODE}
    # This node's own published address changing is an event (ipnet moves its VXLAN
    # endpoint); its record appearing is not. (Whether IPAM's first publish is an event
    # depends on whether it lands before the first resync's snapshot: the test used to wait
    # for that event and failed when the publish won the race, so it changes the address.)
    # IPAM's own publish may itself have been a "changed" event: count them, and wait for one more.
    def own_changes() -> int:
        return sum(1 for name in event_names(running.controller) if f"Node Update {NODE} changed" in name)

    before = own_changes()
    own = VppNode(id=1, name=NODE, ip_addresses=["192.168.16.9/24"])
    await broker.put(f"{KSR_PREFIX}allocatedIDs/1", own.model_dump_json().encode())
    await wait_until(lambda: own_changes() > before)
    assert [str(i) for i in running.nodesync.nodes()[NODE].ip_addresses] == ["192.168.16.9/24"]
    assert f"Node Update {NODE} joined" not in event_names(running.controller)


@pytest.mark.parametrize("running", [0.0], indirect=True)
async def test_reflected_pods_feed_ipam(running: Running) -> None:
    broker = running.kvdb.broker
    ipam = running.ipam
    mine = Pod(name="adopted", namespace="default", node_name=NODE, ip_address="10.1.1.40")
    await broker.put(KSR_PREFIX + pod_key("adopted", "default"), mine.model_dump_json().encode())
    await wait_until(lambda: ipam.pod_ip(PodID("adopted", "default")) == IPv4Address("10.1.1.40"))
    # A pod allocated here that Kubernetes knows on this node stays; one nobody knows is released
    # (grace 0 in this test, checked every 0.1 s).
    # Kubernetes knows the pod before its address is allocated (as with a real CNI ADD): with
    # grace 0 an allocation whose pod the agent has not seen yet may be swept at once.
    known = Pod(name="known", namespace="default", node_name=NODE)
    await broker.put(KSR_PREFIX + pod_key("known", "default"), known.model_dump_json().encode())
    await wait_until(lambda: PodID("known", "default") in (ipam._stale.kube_pods or ()))
    ipam.allocate_pod_ip(PodID("known", "default"))
    ipam.allocate_pod_ip(PodID("ghost", "default"))
    await wait_until(lambda: PodID("ghost", "default") not in ipam.allocations())
    assert set(ipam.allocations()) == {PodID("adopted", "default"), PodID("known", "default")}
    await broker.delete(KSR_PREFIX + pod_key("adopted", "default"))
    await wait_until(lambda: PodID("adopted", "default") not in ipam.allocations())


async def test_rest_serves_plan_and_allocations(running: Running) -> None:
    ip = running.ipam.allocate_pod_ip(PodID("web", "shop"))
    async with httpx.AsyncClient(base_url=running.http.base_url, timeout=5) as client:
        plan = (await client.get("/contiv/v1/ipam")).json()
        allocations = (await client.get("/contiv/v1/ipam/allocations")).json()
    assert plan["nodeId"] == 1 and plan["nodeName"] == NODE
    assert plan["podSubnetThisNode"] == "10.1.1.0/24" and plan["podGateway"] == "10.1.1.1"
    assert plan["nodeIP"] == "192.168.16.1/24" and plan["vxlanIP"] == "192.168.30.1/24"
    assert plan["vppHostNetwork"] == "172.30.1.0/24" and plan["serviceNetwork"] == "10.96.0.0/12"
    assert plan["podCapacity"] == 252 and plan["config"]["pod_subnet_cidr"] == "10.1.0.0/16"
    assert allocations["podSubnet"] == "10.1.1.0/24" and allocations["capacity"] == 252
    assert {"namespace": "shop", "name": "web", "ip": str(ip)} in allocations["allocations"]
    json.dumps(allocations)


async def test_rest_node_ip_is_the_published_address(running: Running) -> None:
    """``nodeIP`` is what the node publishes (its interface's address with ``node_interface``),
    not the plan's 192.168.16.<ID>, which may be another node's."""
    # IPAM's own publish first (so it cannot overwrite the address written below).
    await wait_until(lambda: [str(i) for i in running.nodesync.nodes()[NODE].ip_addresses]
                     == ["192.168.16.1/24"])
    own = VppNode(id=1, name=NODE, ip_addresses=["192.168.16.7/24"])
    await running.kvdb.broker.put(f"{KSR_PREFIX}allocatedIDs/1", own.model_dump_json().encode())
    await wait_until(lambda: [str(i) for i in running.nodesync.nodes()[NODE].ip_addresses]
                     == ["192.168.16.7/24"])
    async with httpx.AsyncClient(base_url=running.http.base_url, timeout=5) as client:
        plan = (await client.get("/contiv/v1/ipam")).json()
    assert plan["nodeIP"] == "192.168.16.7/24"
