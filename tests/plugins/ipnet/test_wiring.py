"""ipnet + linux renderer + the real KV scheduler + real namespaces: pods get a working network.

A "node" is a namespace created by the test (``node_namespace``), pods are namespaces too; the
handler hooks are called the way the controller calls them and each transaction is committed
to a scheduler in verify mode, so every applied value is also read back from the kernel.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugins.controller.api import Event
from plugins.controller.events import DBResync
from plugins.controller.txn import EventTransaction
from plugins.ipam.plugin import IPAMPlugin
from plugins.ipnet.config import IPNetConfig
from plugins.ipnet.plugin import IPNetPlugin
from plugins.kvscheduler.api import ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.config import LinuxConfig
from plugins.linux.plugin import LinuxDataplanePlugin
from plugins.nodesync.api import NodeUpdate
from plugins.podmanager.api import AddPod, DeletePod, LocalPod
from tests.plugins.ipnet.support import NodeTable, PodRecords, node, real_ipam
from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns

_TCP_SERVER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 7007)); s.listen(1); print('ready', flush=True)\n"
    "c,_=s.accept(); c.sendall(b'hello from '+sys.argv[1].encode()); c.close()\n"
)
_TCP_CLIENT = (
    "import socket,sys\n"
    "c=socket.create_connection((sys.argv[1], 7007), timeout=3); print(c.recv(100).decode())\n"
)


def ping(ns: str, address: str) -> bool:
    done = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W1", address],
                          capture_output=True, check=False)
    return done.returncode == 0


def tcp(server_ns: str, client_ns: str, server_ip: str) -> str:
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c",
                               _TCP_SERVER, server_ns], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        done = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c",
                               _TCP_CLIENT, server_ip], capture_output=True, text=True,
                              check=True, timeout=10)
        return done.stdout.strip()
    finally:
        server.kill()
        server.wait()


@dataclass
class Agent:
    """The dataplane half of one node's agent: scheduler, linux descriptors, ipnet."""

    nodes: NodeTable
    ipam: IPAMPlugin
    ipnet: IPNetPlugin
    scheduler: KVScheduler
    pods: PodRecords

    async def resync(self) -> None:
        txn = EventTransaction()
        self.ipnet.resync(DBResync({}, {}), None, 1, txn)  # type: ignore[arg-type]
        result = await self.scheduler.commit(txn.desired_state(), resync=ResyncMode.FULL)
        assert result.ok, result.errors

    async def event(self, event: Event) -> None:
        txn = EventTransaction()
        self.ipnet.update(event, txn)
        result = await self.scheduler.commit(txn.values(), revert_on_failure=True)
        assert result.ok, result.errors

    async def add_pod(self, name: str, netns: str) -> str:
        pod = LocalPod(name=name, namespace="default", container_id=f"cid-{name}",
                       netns_path=f"/var/run/netns/{netns}")
        event = AddPod(pod)
        await self.event(event)
        self.pods.pods[pod.id] = pod
        return event.ip_addresses[0].address.split("/")[0]


@asynccontextmanager
async def agent(tmp_path: Path, nodes: NodeTable, node_ns: str, pods: PodRecords | None = None,
                **ipnet_config: object) -> AsyncIterator[Agent]:
    scheduler = KVScheduler(verify=True)
    linux = LinuxDataplanePlugin(LinuxConfig(scan_namespaces=[node_ns]), scheduler=scheduler)
    await linux.init()
    pods = pods if pods is not None else PodRecords()
    async with real_ipam(tmp_path, nodes) as ipam:
        ipnet = IPNetPlugin(IPNetConfig(node_namespace=node_ns, **ipnet_config),  # type: ignore[arg-type]
                            ipam=ipam, nodesync=nodes, podmanager=pods)
        try:
            yield Agent(nodes, ipam, ipnet, scheduler, pods)
        finally:
            await scheduler.close()
            await linux.close()


async def test_pods_on_one_node(tmp_path: Path, make_netns: Callable[[], str]) -> None:
    node_ns, pod_a, pod_b = make_netns(), make_netns(), make_netns()
    nodes = NodeTable("node1", {"node1": node(1, "node1")})
    async with agent(tmp_path, nodes, node_ns) as a:
        await a.resync()
        ip_a = await a.add_pod("a", pod_a)
        ip_b = await a.add_pod("b", pod_b)
        assert (ip_a, ip_b) == ("10.1.1.2", "10.1.1.3")

        assert ping(pod_a, ip_b) and ping(pod_b, ip_a)
        assert ping(pod_a, "10.1.1.1")  # the node, as the gateway
        assert tcp(pod_b, pod_a, ip_b) == f"hello from {pod_b}"

        # ADD again for the same container: same address, nothing to do.
        assert await a.add_pod("a", pod_a) == ip_a
        assert ping(pod_a, ip_b)

        # Nothing drifted: a full resync from the handler's state does nothing.
        txn = EventTransaction()
        a.ipnet.resync(DBResync({}, {}), None, 2, txn)  # type: ignore[arg-type]
        again = await a.scheduler.commit(txn.desired_state(), resync=ResyncMode.FULL)
        assert again.ok and again.operations == []

        # DEL removes every trace of pod a and frees its IP; pod b keeps working.
        pod = a.pods.pods.pop(next(p for p in a.pods.pods if p.name == "a"))
        await a.event(DeletePod(pod))
        assert a.ipam.pod_ip(pod.id) is None
        assert "eth0" not in ip("link", "show", ns=pod_a)
        assert ip_a not in ip("route", "show", ns=node_ns)
        assert ip("link", "show", ns=node_ns).count("cv") == 1
        assert ping(pod_b, "10.1.1.1")

        # The runtime removed pod b's namespace before DEL: DEL still succeeds.
        ip("netns", "del", pod_b)
        pod = a.pods.pods.pop(next(p for p in a.pods.pods if p.name == "b"))
        await a.event(DeletePod(pod))
        assert a.ipam.pod_ip(pod.id) is None
        ip("netns", "add", pod_b)  # for the fixture's cleanup

        # A desired state without us: the node namespace is left as we found it.
        cleared = await a.scheduler.commit({}, resync=ResyncMode.FULL)
        assert cleared.ok, cleared.errors
        assert "cv" not in ip("link", "show", ns=node_ns)
        assert ip("route", "show", ns=node_ns) == ""


@pytest.mark.parametrize("nooverlay", [False, True], ids=["vxlan", "nooverlay"])
async def test_pods_across_nodes(tmp_path: Path, make_netns: Callable[[], str],
                                 nooverlay: bool) -> None:
    ns1, ns2, pod1, pod2 = make_netns(), make_netns(), make_netns(), make_netns()
    # The underlay: one veth between the two node namespaces (the lab uses a bridge).
    ip("link", "add", "u0", "netns", ns1, "type", "veth", "peer", "name", "u0", "netns", ns2)
    for ns, address in ((ns1, "192.168.16.1/24"), (ns2, "192.168.16.2/24")):
        ip("addr", "add", address, "dev", "u0", ns=ns)
        ip("link", "set", "u0", "up", ns=ns)
    table = {"node1": node(1, "node1", ip="192.168.16.1/24"),
             "node2": node(2, "node2", ip="192.168.16.2/24")}
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(
            agent(tmp_path, NodeTable("node1", table), ns1, nooverlay=nooverlay))
        two = await stack.enter_async_context(
            agent(tmp_path, NodeTable("node2", table), ns2, nooverlay=nooverlay))
        await one.resync()
        await two.resync()
        ip1 = await one.add_pod("p1", pod1)
        ip2 = await two.add_pod("p2", pod2)
        assert (ip1, ip2) == ("10.1.1.2", "10.1.2.2")
        assert ping(pod1, ip2) and ping(pod2, ip1)
        assert tcp(pod2, pod1, ip2) == f"hello from {pod2}"
        if not nooverlay:
            assert "vxlan id 10" in ip("-d", "link", "show", "contiv-vxlan", ns=ns1)

        # node2 leaves: node1 removes it from its mesh, pod1 no longer reaches pod2.
        await one.event(NodeUpdate("node2", table["node2"], None))
        assert "10.1.2.0/24" not in ip("route", "show", ns=ns1)
        assert not ping(pod1, ip2)
        # ... and comes back.
        await one.event(NodeUpdate("node2", None, table["node2"]))
        assert ping(pod1, ip2)


async def test_restarted_agent_keeps_pods(tmp_path: Path, make_netns: Callable[[], str]) -> None:
    node_ns, pod_a, pod_b, pod_c = make_netns(), make_netns(), make_netns(), make_netns()
    nodes = NodeTable("node1", {"node1": node(1, "node1")})
    records = PodRecords()
    async with agent(tmp_path, nodes, node_ns, records) as first:
        await first.resync()
        ip_a = await first.add_pod("a", pod_a)
        ip_b = await first.add_pod("b", pod_b)
    # The first agent is gone (its scheduler state with it); the kernel keeps the pods wired.
    assert ping(pod_a, ip_b)
    async with agent(tmp_path, nodes, node_ns, records) as second:
        txn = EventTransaction()
        second.ipnet.resync(DBResync({}, {}), None, 1, txn)  # type: ignore[arg-type]
        result = await second.scheduler.commit(txn.desired_state(), resync=ResyncMode.FULL)
        assert result.ok, result.errors
        # The restart is a no-op: the pods keep their links, MACs, addresses, routes and
        # neighbours (the first full resync adopts what it reads back, derived values too).
        assert [(o.operation.value, o.key) for o in result.operations] == []
        assert second.ipam.pod_ip(next(iter(records.pods))) is not None
        assert ping(pod_a, ip_b) and ping(pod_b, ip_a)
        ip_c = await second.add_pod("c", pod_c)
        assert ip_c not in (ip_a, ip_b)
        assert ping(pod_c, ip_a)
        await second.scheduler.commit({}, resync=ResyncMode.FULL)
