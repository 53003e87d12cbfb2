"""``ipam.pod_subnet_source: kubernetes`` in an agent: real etcd, controller, KV scheduler,
Linux dataplane in a namespace, nodesync, ipam and ipnet.

The agent starts while its Node has no podCIDR: it is not ready and says why, and wires
nothing; the podCIDR arriving makes it ready. Another node's mesh route is its Node's podCIDR
(not block <ID> of the cluster CIDR), follows a change of it, and an unusable one is reported
and routes nothing, without making the agent unready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

import httpx
import pytest

from core.agent import Agent
from core.etcdserver import EtcdServer
from core.health import HealthPlugin
from core.http import HTTPConfig, HTTPPlugin
from core.kvdb.api import agent_prefix
from core.kvdb.plugin import KVDBConfig, KVDBPlugin
from core.servicelabel import ServiceLabelConfig, ServiceLabelPlugin
from plugins.controller.config import ControllerConfig, DBWatcherConfig
from plugins.controller.plugin import ControllerPlugin
from plugins.ipam.api import PodSubnetPendingError
from plugins.ipam.config import IPAMConfig
from plugins.ipam.plugin import IPAMPlugin
from plugins.ipnet.config import IPNetConfig
from plugins.ipnet.plugin import IPNetPlugin
from plugins.ksr.keys import allocated_id_key, node_key
from plugins.ksr.model import KSR_LABEL
from plugins.ksr.model import Node as K8sNode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.config import LinuxConfig
from plugins.linux.plugin import LinuxDataplanePlugin
from plugins.nodesync.api import VppNode
from plugins.nodesync.plugin import NodeSyncPlugin
from plugins.podmanager.api import AddPod, DeletePod, LocalPod
from tests.plugins.ipam.helpers import RecordedPods
from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns

ME, OTHER = "podcidr-a", "podcidr-b"
KSR = agent_prefix(KSR_LABEL)
WAITING = f"waiting for Node {ME} spec.podCIDR"


@dataclass
class Running:
    controller: ControllerPlugin
    health: HealthPlugin
    http: HTTPPlugin
    ipam: IPAMPlugin
    kvdb: KVDBPlugin
    node_ns: str

    def routes(self) -> str:
        return ip("route", "show", ns=self.node_ns)

    def events(self) -> list[str]:
        assert self.controller.loop is not None
        return [r.description for r in self.controller.loop.history_records()]

    def errors(self) -> list[str]:
        assert self.controller.loop is not None
        return [r.error or "" for r in self.controller.loop.history_records()]


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``predicate`` (a generous deadline: the machine is shared and loaded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.05)


async def put_k8s_node(kvdb: KVDBPlugin, name: str, pod_cidr: str = "") -> None:
    node = K8sNode(name=name, pod_cidr=pod_cidr, pod_cidrs=[pod_cidr] if pod_cidr else [])
    await kvdb.broker.put(KSR + node_key(name), node.model_dump_json().encode())


@pytest.fixture
async def running(etcd: EtcdServer, tmp_path: Path, make_netns: Callable[[], str]) -> AsyncIterator[Running]:
    """The agent of node ``ME`` (ID 1); node ``OTHER`` (ID 2) has a Node with podCIDR
    10.244.9.0/24, ``ME``'s Node has none yet."""
    node_ns = make_netns()
    setup = KVDBPlugin(KVDBConfig(**etcd.kvdb_config(), op_timeout_s=2.0))
    await setup.init()
    other = VppNode(id=2, name=OTHER, ip_addresses=["192.168.16.2/24"])
    await setup.broker.put(KSR + allocated_id_key(2), other.model_dump_json().encode())
    await put_k8s_node(setup, OTHER, "10.244.9.0/24")
    await put_k8s_node(setup, ME)
    await setup.close()

    http = HTTPPlugin(HTTPConfig(port=0))
    health = HealthPlugin(http=http)
    label = ServiceLabelPlugin(ServiceLabelConfig(label=ME))
    kvdb = KVDBPlugin(KVDBConfig(**etcd.kvdb_config(), op_timeout_s=2.0), health=health)
    scheduler = KVScheduler()
    linux = LinuxDataplanePlugin(LinuxConfig(scan_namespaces=[node_ns]), scheduler=scheduler)
    controller = ControllerPlugin(
        ControllerConfig(
            delay_after_error_healing_s=0.1,
            dbwatcher=DBWatcherConfig(mirror_file=str(tmp_path / "mirror.sqlite"), remote_db_probing_interval_s=0.2),
        ),
        scheduler=scheduler, service_label=label, kvdb=kvdb, http=http, health=health,
    )
    nodesync = NodeSyncPlugin(kvdb=kvdb, service_label=label, controller=controller)
    pods = RecordedPods()
    ipam = IPAMPlugin(
        IPAMConfig(state_file=tmp_path / "ipam.json", pod_subnet_source="kubernetes",
                   pod_subnet_cidr=IPv4Network("10.244.0.0/16"), pod_cidr_wait_s=0),
        kvdb=kvdb, nodesync=nodesync, http=http, controller=controller, podmanager=pods, health=health,
    )
    ipnet = IPNetPlugin(IPNetConfig(node_namespace=node_ns), ipam=ipam, nodesync=nodesync, podmanager=pods)
    agent = Agent([http, health, label, kvdb, linux, controller, nodesync, ipam, ipnet])
    await agent.start()
    try:
        await wait_until(lambda: controller.loop is not None and controller.loop.started)
        yield Running(controller, health, http, ipam, kvdb, node_ns)
    finally:
        await agent.stop()
        await scheduler.close()


async def test_not_ready_until_the_node_has_a_pod_cidr(running: Running) -> None:
    # Started (nothing failed), but not ready, saying why; the resync stopped at ipam.
    assert running.health.components["ipam"].detail == WAITING
    assert not running.health.ready()
    await wait_until(lambda: any(WAITING in error for error in running.errors()))
    async with httpx.AsyncClient(base_url=running.http.base_url, timeout=5) as client:
        readiness = await client.get("/readiness")
        plan = await client.get("/contiv/v1/ipam")
    assert readiness.status_code == 503
    assert readiness.json()["components"]["ipam"]["detail"] == WAITING
    assert (plan.status_code, plan.json()["detail"]) == (503, WAITING)
    assert "10.244.9.0/24" not in running.routes()  # nothing was wired
    # A CNI ADD meanwhile fails saying why (the runtime retries it); a DEL succeeds.
    web = LocalPod(name="web", namespace="default", container_id="cid-web", netns_path="/proc/1/ns/net")
    add = AddPod(web)
    await running.controller.push_event(add)
    with pytest.raises(PodSubnetPendingError, match=WAITING):
        await add.wait()
    delete = DeletePod(web)
    await running.controller.push_event(delete)
    await delete.wait()

    await put_k8s_node(running.kvdb, ME, "10.244.5.0/24")
    await wait_until(running.health.ready)
    assert "Pod Subnet Resync: this node's pod subnet is 10.244.5.0/24" in running.events()
    assert running.ipam.plan().pod_subnet == IPv4Network("10.244.5.0/24")
    await wait_until(lambda: "10.244.9.0/24 via 192.168.30.2 dev contiv-vxlan" in running.routes())


async def test_remote_routes_follow_their_node_pod_cidr(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    await put_k8s_node(running.kvdb, ME, "10.244.5.0/24")
    await wait_until(running.health.ready)
    # Node ID 2's route is its Node's podCIDR, not block 2 of the cluster CIDR.
    await wait_until(lambda: "10.244.9.0/24 via 192.168.30.2 dev contiv-vxlan" in running.routes())
    assert "10.244.2.0/24" not in running.routes()

    await put_k8s_node(running.kvdb, OTHER, "10.244.10.0/24")  # the Node was re-created
    await wait_until(lambda: "10.244.10.0/24 via 192.168.30.2 dev contiv-vxlan" in running.routes())
    assert "10.244.9.0/24" not in running.routes()

    caplog.set_level(logging.ERROR, "contiv.ipam")
    await put_k8s_node(running.kvdb, OTHER, "10.99.0.0/24")  # outside the cluster CIDR
    problem = f"Node {OTHER} spec.podCIDR 10.99.0.0/24 is outside the cluster pod CIDR 10.244.0.0/16"
    await wait_until(lambda: "10.244.10.0/24" not in running.routes())
    assert "10.99.0.0/24" not in running.routes()
    assert problem in caplog.text
    assert running.ipam.node_subnets.problems()[OTHER].startswith(problem)
    assert running.health.ready()  # reported, not fatal

    await put_k8s_node(running.kvdb, OTHER, "10.244.11.0/24")  # fixed: routed again
    await wait_until(lambda: "10.244.11.0/24 via 192.168.30.2 dev contiv-vxlan" in running.routes())
    assert running.ipam.node_subnets.problems() == {}
