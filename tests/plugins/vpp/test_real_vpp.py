"""Against real VPPs (two nodes, two VPPs in two node namespaces): pods, mesh, restarts.

Skipped, with the reason, where no VPP is installed (``CONTIV_TEST_VPP_DIR`` or ``vpp`` on PATH);
``.ci/run`` unpacks one so CI always runs them. One VPP uses ~285 MB: the module shares them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from ipaddress import IPv4Network
from typing import Any

import pytest
import pytest_asyncio

from plugins.ipnet.renderer.vpp import nat_loopback_ip
from plugins.kvscheduler.api import ResyncMode, ValueWithMetadata
from plugins.linux.descriptors.offload import get_segmentation, get_tx_checksum
from plugins.linux.netns import run_in_namespace
from plugins.policy.processor import Delta, LocalPodRules, SetContent
from plugins.policy.renderer.acl import AclPolicyRenderer
from plugins.policy.rules import PodRules, PortMatch, Rule
from plugins.service.renderer.nat44 import Nat44RenderSettings, Nat44ServiceRenderer
from plugins.vpp.descriptors import all_descriptors
from plugins.vpp.index import Indexes
from tests.vppreal.cluster import Cluster, Node, commit, mutating, reach, running, start_agent
from tests.vppreal.fixtures import NodeVPPs, node_vpps, vpp_install  # noqa: F401 - fixtures
from tests.vppreal.integrity import checksum_errors, start_server, tcp_exchange, udp_exchange
from tests.vppreal.services import service
from tests.vppstub import VPPStub

pytestmark = [pytest.mark.netns, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(600)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(node_vpps: NodeVPPs) -> AsyncIterator[Cluster]:  # noqa: F811 - fixture
    async with running(node_vpps, [(1, "a1", 2), (1, "a2", 3), (2, "b1", 2)]) as lab:
        yield lab


async def test_ping_tcp_udp_same_node_and_across_the_vxlan_mesh(cluster: Cluster) -> None:
    a1, a2 = cluster.nodes[1].pods["a1"], cluster.nodes[1].pods["a2"]
    b1 = cluster.nodes[2].pods["b1"]
    # before the pod's ADD returned (the commit is the ADD's): checksum offload on (VPP reads the
    # virtio-net header and completes checksums), segmentation off (no GSO frames into VXLAN)
    assert await get_tx_checksum(a1.intent.netns_path, "eth0") is True
    assert await get_segmentation(a1.intent.netns_path, "eth0") is False
    assert await reach(a1.netns, "ping", str(cluster.nodes[1].intent.pod_gateway)) == "ok"
    for src, dst in ((a1, a2), (a1, b1), (b1, a2)):
        assert await reach(src.netns, "ping", dst.ip) == "ok"
        name = f"default/{dst.intent.pod_name}"
        assert (await reach(src.netns, "tcp", dst.ip)).startswith(f"{name} {src.ip}:")  # no NAT on the way
        assert (await reach(src.netns, "udp", dst.ip)).startswith(f"{name} {src.ip}:")
    # the host interconnect (vpp1, offloads as the pods'): the node's own stack to a pod
    host = cluster.nodes[1].netns
    assert (await reach(host, "tcp", a1.ip)).startswith("default/a1 172.30.1.2:")
    assert (await reach(host, "udp", b1.ip)).split()[0] == "default/b1"


async def test_payloads_and_checksums_are_intact_both_ways_with_offload_on(cluster: Cluster) -> None:
    """Random payloads through VPP with the pods' checksum offload on (partial checksums handed
    to VPP): TCP (1 MiB each way, MTU-sized segments) and UDP (1 to 1400 bytes), same node,
    across the VXLAN mesh and from the node's own stack; what arrives is what was sent, and no
    receiver counted a checksum error."""
    a1, a2 = cluster.nodes[1].pods["a1"], cluster.nodes[1].pods["a2"]
    b1 = cluster.nodes[2].pods["b1"]
    host = cluster.nodes[1].netns
    for name in ("eth0",):
        for pod in (a1, a2, b1):
            assert await get_tx_checksum(pod.intent.netns_path, name) is True
    afp = cluster.nodes[1].vpp.cli("show hardware-interfaces")
    assert afp.count("cksum-gso-enabled") == 3, afp  # a1, a2 and host-vpp2; not the VXLAN NIC
    servers = [start_server(pod.netns) for pod in (a2, b1, a1)]
    try:
        before = {ns: checksum_errors(ns) for ns in (a1.netns, a2.netns, b1.netns, host)}
        for src, dst in ((a1.netns, a2.ip), (a1.netns, b1.ip), (b1.netns, a2.ip), (host, a1.ip), (host, b1.ip)):
            await reach(src, "ping", dst)  # the path is up (the mesh may still be converging)
            await asyncio.to_thread(run_in_namespace, src, lambda d=dst: tcp_exchange(d, 1 << 20))  # type: ignore[misc]
            for size in (1, 100, 1000, 1400):
                await asyncio.to_thread(run_in_namespace, src, lambda d=dst, n=size: udp_exchange(d, n))  # type: ignore[misc]
        after = {ns: checksum_errors(ns) for ns in before}
        assert after == before
    finally:
        for server in servers:
            server.kill()
            server.wait()


async def test_stand_in_reads_back_what_the_real_vpp_reads_back(cluster: Cluster) -> None:
    """The same values into the stand-in and into the real VPP read back the same (the real one
    is the reference: where they disagreed, the stand-in was fixed)."""
    node = cluster.nodes[1]
    vpp_values = {k: v for k, v in node.values.items() if k.startswith("config/vpp")}
    real = await read_back(node.plugin.connection, vpp_values)
    stub = VPPStub(node.vpp.run_dir / "stub.sock").start()
    stub.options.check_host_links = False  # the NICs live in the node namespace
    scheduler, plugin = await start_agent(stub.socket_path, "")
    try:
        # The Linux side (veths in the node namespace) exists: a full resync finds it, creates the VPP side.
        result = await scheduler.commit(node.values, resync=ResyncMode.FULL)
        assert result.ok, result.errors
        stand_in = await read_back(plugin.connection, vpp_values)
        assert stand_in == real
    finally:
        await plugin.close()
        await scheduler.close()
        stub.stop()


async def read_back(connection: Any, values: dict[str, Any]) -> dict[str, Any]:
    correlate = [ValueWithMetadata(k, v, None) for k, v in values.items()]
    found: dict[str, Any] = {}
    for descriptor in all_descriptors(connection, Indexes()):
        for item in await descriptor.retrieve(correlate):
            found[item.key] = item.value
    return found


async def test_agent_restart_makes_no_mutating_vpp_call(cluster: Cluster) -> None:
    node = cluster.nodes[1]
    lost_before = node.plugin.connection.reconnects
    scheduler, plugin = await start_agent(node.vpp.api_socket, node.vpp.api_dir)
    try:
        result = await scheduler.commit(node.values, resync=ResyncMode.FULL)
        assert result.ok, result.errors
        assert mutating(dict(plugin.connection.stats.calls)) == {}
        assert plugin.connection.reconnects == 0 and node.plugin.connection.reconnects == lost_before
    finally:
        await plugin.close()
        await scheduler.close()


async def test_vpp_restart_recreates_everything_and_traffic_comes_back(cluster: Cluster) -> None:
    node = cluster.nodes[1]
    resyncs = node.plugin.resyncs
    old_pid = node.vpp.pid
    node.vpp.restart()
    assert node.vpp.pid != old_pid
    loop = asyncio.get_running_loop()
    end = loop.time() + 60
    while node.plugin.resyncs == resyncs:  # the plugin's downstream resync after the reconnect
        assert loop.time() < end, "no resync after the VPP restart"
        await asyncio.sleep(0.1)
    await node.scheduler.settled(timeout=60)
    a1, b1 = node.pods["a1"], cluster.nodes[2].pods["b1"]
    assert (await reach(a1.netns, "tcp", b1.ip)).startswith(f"default/b1 {a1.ip}:")
    assert (await reach(b1.netns, "udp", a1.ip)).startswith(f"default/a1 {b1.ip}:")


async def render_services(cluster: Cluster, make: Any) -> None:
    """Each node renders the services as its processor would see them, and commits them."""
    for n, node in cluster.nodes.items():
        renderer = Nat44ServiceRenderer(Nat44RenderSettings(pod_network=IPv4Network("10.1.0.0/16"), local_weight=2))
        for svc in make(f"node{n}"):
            renderer.set_service(svc.key, svc)
        values = dict(renderer.values())
        node.values.update(values)
        await commit(node, values)


def web_services(cluster: Cluster) -> Any:
    """ClusterIP 10.96.0.10 (NodePort 30080) and a ``Local`` one, backends a1 (node1), b1 (node2)."""
    a1, b1 = cluster.nodes[1].pods["a1"], cluster.nodes[2].pods["b1"]
    backends = [(a1.ip, 8080, "node1"), (b1.ip, 8080, "node2")]
    node_ips = ("192.168.16.1", "192.168.16.2")

    def services(me: str) -> list[Any]:
        return [
            service("web", "10.96.0.10", 80, backends, me=me, node_ips=node_ips, node_port=30080,
                    protocols=("tcp", "udp")),
            service("local", "10.96.0.11", 80, backends, me=me, node_ips=node_ips, node_port=30081, local=True),
        ]

    return services


async def test_services_through_nat44_clusterip_nodeport_and_local_policy(cluster: Cluster) -> None:
    a1, a2 = cluster.nodes[1].pods["a1"], cluster.nodes[1].pods["a2"]
    b1 = cluster.nodes[2].pods["b1"]
    await render_services(cluster, web_services(cluster))
    for kind in ("tcp", "udp"):  # ClusterIP: balanced over a backend on each node
        seen = await answers(a2.netns, kind, "10.96.0.10", 80, {"default/a1", "default/b1"})
        assert seen == {"default/a1", "default/b1"}
    seen = await answers(b1.netns, "tcp", "192.168.16.1", 30080, {"default/a1", "default/b1"})  # NodePort
    assert seen == {"default/a1", "default/b1"}
    for _ in range(8):  # externalTrafficPolicy: Local: node1's NodePort only reaches node1's backend
        assert (await reach(a2.netns, "tcp", "192.168.16.1", 30081)).startswith("default/a1 ")
    assert (await reach(a1.netns, "tcp", "10.96.0.11", 80)).split()[0] in {"default/a1", "default/b1"}  # hairpin


async def answers(netns: str, kind: str, ip: str, port: int, want: set[str], tries: int = 200) -> set[str]:
    """Backends that answered, asking until all of ``want`` did (or ``tries`` ran out)."""
    seen: set[str] = set()
    for _ in range(tries):
        seen.add((await reach(netns, kind, ip, port)).split()[0])
        if want <= seen:
            break
    return seen


async def blocked(netns: str, kind: str, ip: str, port: int = 8080) -> bool:
    """One attempt that must not get through (a dropped SYN/datagram times out after 2 s)."""
    try:
        await reach(netns, kind, ip, port, deadline_s=2.0)
    except AssertionError:
        return True
    return False


async def test_policies_through_acls_default_deny_then_allow_from_selector(cluster: Cluster) -> None:
    node = cluster.nodes[1]
    a1, a2, b1 = node.pods["a1"], node.pods["a2"], cluster.nodes[2].pods["b1"]
    renderer = acl_renderer(node)

    async def apply(rules: PodRules, sets: dict[str, SetContent | None]) -> None:
        await apply_policy(node, renderer, {"default/a1": rules}, sets)

    await apply(PodRules(ingress=()), {})  # default deny (ingress) on a1
    assert await blocked(a2.netns, "tcp", a1.ip) and await blocked(b1.netns, "udp", a1.ip)
    assert (await reach(a1.netns, "tcp", b1.ip)).startswith(f"default/b1 {a1.ip}:")  # replies come back
    selector = SetContent("addr", frozenset({a2.ip}))
    await apply(PodRules(ingress=(Rule(peers="p-web", ports=(PortMatch("tcp", 8080, 8080),)),)),
                {"p-web": selector})  # allow TCP 8080 from the selected pod only
    assert (await reach(a2.netns, "tcp", a1.ip)).startswith(f"default/a1 {a2.ip}:")
    assert await blocked(b1.netns, "tcp", a1.ip) and await blocked(a2.netns, "udp", a1.ip)
    await apply(PodRules(), {"p-web": None})  # policies gone: open again, ACLs removed
    assert (await reach(b1.netns, "tcp", a1.ip)).startswith(f"default/a1 {b1.ip}:")
    assert not [d for d in await node.plugin.connection.dump("acl_dump", acl_index=0xFFFFFFFF)]


def acl_renderer(node: Node) -> AclPolicyRenderer:
    """The node's ACL renderer, wired as the policy plugin wires it (pods' and outbound interfaces)."""
    names = {f"default/{p.intent.pod_name}": node.renderer.pod_interface_name(p.intent) for p in node.pods.values()}
    renderer = AclPolicyRenderer(lambda key, ip: names.get(key), nat_loopback_ip(node.intent),
                                 node.renderer.outbound_interfaces())
    renderer.set_local_pods({f"default/{name}": pod.ip for name, pod in node.pods.items()})
    return renderer


async def apply_policy(node: Node, renderer: AclPolicyRenderer, rules: dict[str, PodRules],
                       sets: dict[str, SetContent | None]) -> None:
    """What the policy plugin commits for the processor's changes (``PodRules()``: no policy left)."""
    pods = {key: None if r == PodRules() else LocalPodRules(node.pods[key.split("/")[1]].ip, r)
            for key, r in rules.items()}
    renderer.apply(Delta(pods=pods, sets=sets))
    changes: dict[str, Any] = dict(renderer.values())
    changes.update(dict.fromkeys(renderer.take_removed()))
    await commit(node, changes)


async def test_egress_policy_allows_a_clusterip_of_allowed_backends_and_blocks_other_pods(cluster: Cluster) -> None:
    """Egress rules sit after the services' DNAT (local tables, global table on the BVI): a pod
    allowed to reach the backends reaches them through their ClusterIP, on both nodes."""
    node = cluster.nodes[1]
    if "a3" not in node.pods:
        await cluster.add_pod(1, "a3", 4)
    a1, a2, a3, b1 = node.pods["a1"], node.pods["a2"], node.pods["a3"], cluster.nodes[2].pods["b1"]
    await render_services(cluster, web_services(cluster))
    renderer = acl_renderer(node)
    web = {"p-web": SetContent("addr", frozenset({a1.ip, b1.ip}))}  # app=web: the backends
    await apply_policy(node, renderer, {"default/a2": PodRules(egress=(
        Rule(peers="p-web", ports=(PortMatch("tcp", 8080, 8080),)),))}, dict(web))
    try:
        seen = await answers(a2.netns, "tcp", "10.96.0.10", 80, {"default/a1", "default/b1"})
        assert seen == {"default/a1", "default/b1"}  # through the service, to both nodes; replies pass
        assert await blocked(a2.netns, "tcp", a3.ip)  # a pod the policy does not allow (same node)
        assert await blocked(a2.netns, "udp", "10.96.0.10", 80)  # a protocol it does not allow
        assert (await reach(a3.netns, "tcp", a2.ip)).startswith(f"default/a2 {a3.ip}:")  # a2 still answers
    finally:
        await apply_policy(node, renderer, {"default/a2": PodRules()}, {"p-web": None})
    assert (await reach(a2.netns, "tcp", a3.ip)).startswith(f"default/a3 {a2.ip}:")
    assert not [d for d in await node.plugin.connection.dump("acl_dump", acl_index=0xFFFFFFFF)]


async def test_egress_policy_to_a_pod_on_the_other_node_through_the_global_table(cluster: Cluster) -> None:
    node = cluster.nodes[1]
    a1, b1 = node.pods["a1"], cluster.nodes[2].pods["b1"]
    renderer = acl_renderer(node)
    await apply_policy(node, renderer, {"default/a1": PodRules(egress=(
        Rule(peers="p-b1", ports=(PortMatch("tcp", 8080, 8080),)),))},
        {"p-b1": SetContent("addr", frozenset({b1.ip}))})
    try:
        assert (await reach(a1.netns, "tcp", b1.ip)).startswith(f"default/b1 {a1.ip}:")  # allowed, reply back
        assert await blocked(a1.netns, "udp", b1.ip)  # another port: dropped on the BVI's output
        assert (await reach(b1.netns, "tcp", a1.ip)).startswith(f"default/a1 {b1.ip}:")  # replies to b1 pass
    finally:
        await apply_policy(node, renderer, {"default/a1": PodRules()}, {"p-b1": None})
    assert (await reach(a1.netns, "udp", b1.ip)).startswith(f"default/b1 {a1.ip}:")


async def test_outbound_traffic_is_snated_to_the_node_address(cluster: Cluster) -> None:
    """A pod reaching an address outside the cluster behind the main interface leaves as the node
    (output feature, SNAT pool = node IP); the reply finds its way back through the session."""
    node1, node2 = cluster.nodes[1], cluster.nodes[2]
    a2 = node1.pods["a2"]
    outside = "192.168.16.100"  # an "outside host": an extra address on node2's VPP uplink
    node2.vpp.cli(f"set interface ip address host-eth1 {outside}/24")
    try:
        assert await reach(a2.netns, "ping", outside) == "ok"
        sessions = node1.vpp.cli("show nat44 sessions")
        assert f"i2o {a2.ip} proto ICMP" in sessions and "o2i 192.168.16.1 proto ICMP" in sessions, sessions
    finally:
        node2.vpp.cli(f"set interface ip address del host-eth1 {outside}/24")
