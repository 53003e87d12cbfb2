"""ipnet with ``dataplane: vpp``: AddPod/DeletePod/NodeUpdate events wire pods through the stand-in VPP."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plugins.controller.api import Event
from plugins.controller.events import DBResync
from plugins.controller.txn import EventTransaction
from plugins.ipnet.config import IPNetConfig, VppRenderSettings
from plugins.ipnet.plugin import IPNetPlugin
from plugins.ipnet.renderer.vpp import VppRenderer
from plugins.kvscheduler.api import ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.nodesync.api import NodeUpdate
from plugins.podmanager.api import AddPod, DeletePod, LocalPod
from plugins.vpp.connection import VPPConnection
from tests.plugins.ipnet.renderer.test_vpp import ip_json, scheduler_for
from tests.plugins.ipnet.support import NodeTable, PodRecords, node, real_ipam
from tests.plugins.vpp import values as hand
from tests.plugins.vpp.snapshot import expected, snapshot
from tests.vppstub import VPPStub, default_api_dir
from tests.vppstub.interfaces import Options

pytestmark = pytest.mark.netns


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[VPPStub, VPPConnection]]:
    directory = Path(tempfile.mkdtemp(prefix="vppi-"))
    stub = VPPStub(directory / "api.sock", options=Options(create_host_taps=True)).start()
    conn = VPPConnection(stub.socket_path, default_api_dir())
    await conn.connect()
    try:
        yield stub, conn
    finally:
        await conn.close()
        stub.stop()
        stub.remove_host_taps()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def netns() -> Iterator[list[str]]:
    tag = uuid.uuid4().hex[:6]
    names = [f"vppi-{tag}-{i}" for i in range(3)]
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


async def handle(ipnet: IPNetPlugin, scheduler: KVScheduler, event: Event) -> None:
    txn = EventTransaction()
    ipnet.update(event, txn)
    result = await scheduler.commit(txn.values(), revert_on_failure=True)
    assert result.ok, result.errors


async def test_ipnet_wires_pods_and_mesh_through_vpp(
    tmp_path: Path, stand_in: tuple[VPPStub, VPPConnection], netns: list[str]
) -> None:
    stub, conn = stand_in
    node_ns, pod_a, pod_b = netns
    table = {"node1": node(1, "node1"), "node2": node(2, "node2")}
    nodes = NodeTable("node1", {"node1": table["node1"]})
    scheduler = scheduler_for(conn)
    try:
        async with real_ipam(tmp_path, nodes) as ipam:
            ipnet = IPNetPlugin(
                IPNetConfig(dataplane="vpp", node_namespace=node_ns, vpp=VppRenderSettings(pod_interface="tap")),
                ipam=ipam, nodesync=nodes, podmanager=PodRecords(),
            )
            assert isinstance(ipnet.renderer, VppRenderer)
            txn = EventTransaction()
            ipnet.resync(DBResync({}, {}), None, 1, txn)  # type: ignore[arg-type]
            result = await scheduler.commit(txn.desired_state(), resync=ResyncMode.FULL)
            assert result.ok, result.errors
            assert snapshot(stub) == expected(hand.node_base(1))

            pods = []
            for name, ns in (("a", pod_a), ("b", pod_b)):
                pod = LocalPod(
                    name=name, namespace="default", container_id=f"cid-{name}", netns_path=f"/var/run/netns/{ns}"
                )
                event = AddPod(pod)
                await handle(ipnet, scheduler, event)
                pods.append((pod, event.ip_addresses[0].address))
            assert [address for _, address in pods] == ["10.1.1.2/32", "10.1.1.3/32"]
            taps = sorted(
                i.link["host_namespace"] for i in stub.state.interfaces.values() if i.tag.startswith("cv:pod-")
            )
            assert taps == sorted(f"/var/run/netns/{ns}" for ns in (pod_a, pod_b))
            (eth0,) = ip_json(pod_a, "addr", "show", "dev", "eth0")
            assert [a["local"] for a in eth0["addr_info"] if a["family"] == "inet"] == ["10.1.1.2"]

            # the second node joins the mesh and leaves it again
            nodes.table["node2"] = table["node2"]
            await handle(ipnet, scheduler, NodeUpdate("node2", None, table["node2"]))
            assert [i.name for i in stub.state.interfaces.values() if i.dev_type == "VXLAN"] == ["vxlan_tunnel0"]
            assert ("vxlanBVI", "192.168.30.2", "12:2b:00:00:00:02") in snapshot(stub)["neighbours"]
            del nodes.table["node2"]
            await handle(ipnet, scheduler, NodeUpdate("node2", table["node2"], None))
            assert not any(i.dev_type == "VXLAN" for i in stub.state.interfaces.values())

            for pod, _ in pods:
                await handle(ipnet, scheduler, DeletePod(pod))
            assert snapshot(stub) == expected(hand.node_base(1))
            assert [link["ifname"] for link in ip_json(pod_a, "link", "show")] == ["lo"]
    finally:
        await scheduler.close()
