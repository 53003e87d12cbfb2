"""Pods to their own node on the Linux dataplane: the policy table's input hook, on a real kernel.

pod a --veth-- node (policy table; etcd, REST, kubelet listening) --veth-- pod b

The node namespace holds the rendered policy table (the real renderer, written by the real
table descriptor through the KV scheduler) and listeners on the ports of etcd, the agent's REST
and the kubelet, on its own address and on the pods' gateway address. Pod a is
isolated for egress: it may reach pod b on TCP 8080 and its node on TCP 8443 only
(docs/security.md, "Pods and their own node").
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.descriptors.nfttable import NftTableDescriptor
from plugins.linux.netns import run_in_namespace
from plugins.policy.processor import Delta, LocalPodRules, SetContent
from plugins.policy.renderer.nftables import NftablesPolicyRenderer
from plugins.policy.rules import PodRules, PortMatch, Rule
from tests.security.hostprobe import NODE_SERVICES, WITNESS_PORT, listeners, probe

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

NODE_IP = "192.168.77.1"
GATEWAY = "169.254.1.1"
POD_A, POD_B = "10.1.1.2", "10.1.1.3"
PORTS = list(NODE_SERVICES.values())


def sh(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


@dataclass
class Topology:
    node: str
    a: str
    b: str


def wire(node: str, pod_ns: str, index: int, ip: str) -> None:
    """A pod namespace behind a veth, routed by the node namespace (as the Linux dataplane does)."""
    host = f"v{index}"
    sh("ip", "link", "add", host, "netns", node, "type", "veth", "peer", "name", "eth0", "netns", pod_ns)
    sh("ip", "-n", pod_ns, "link", "set", "eth0", "up")
    sh("ip", "-n", node, "link", "set", host, "up")
    sh("ip", "-n", pod_ns, "addr", "add", f"{ip}/32", "dev", "eth0")
    sh("ip", "-n", node, "addr", "add", f"{GATEWAY}/32", "dev", host)
    sh("ip", "-n", pod_ns, "route", "add", GATEWAY, "dev", "eth0")
    sh("ip", "-n", pod_ns, "route", "add", "default", "via", GATEWAY, "dev", "eth0")
    sh("ip", "-n", node, "route", "add", f"{ip}/32", "dev", host)


@pytest.fixture
def topology() -> Iterator[Topology]:
    if os.geteuid() != 0:
        pytest.fail("needs root (network namespaces)")
    tag = f"shn{os.getpid() % 10000}{uuid.uuid4().hex[:3]}"
    topo = Topology(f"{tag}-node", f"{tag}-a", f"{tag}-b")
    made: list[str] = []
    try:
        for ns in (topo.node, topo.a, topo.b):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", topo.node, "addr", "add", f"{NODE_IP}/32", "dev", "lo")  # the node's own address
        wire(topo.node, topo.a, 1, POD_A)
        wire(topo.node, topo.b, 2, POD_B)
        sh("ip", "netns", "exec", topo.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield topo
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@pytest.fixture
async def scheduler() -> AsyncIterator[KVScheduler]:
    sched = KVScheduler(verify=True)
    sched.register_descriptor(NftTableDescriptor())
    yield sched
    await sched.close()


ISOLATED = PodRules(ingress=(), egress=(
    Rule(peers="p-b", ports=(PortMatch("tcp", 8080, 8080),)),
    Rule(peers="p-node", ports=(PortMatch("tcp", WITNESS_PORT, WITNESS_PORT),)),
))
SETS: dict[str, SetContent | None] = {
    "p-b": SetContent("addr", frozenset({POD_B})),
    "p-node": SetContent("interval", frozenset({NODE_IP, GATEWAY})),  # /32 prefixes: plain, as nft reads them
}


async def render(scheduler: KVScheduler, renderer: NftablesPolicyRenderer, rules: PodRules | None,
                 sets: dict[str, SetContent | None]) -> None:
    renderer.apply(Delta(pods={"default/a": None if rules is None else LocalPodRules(POD_A, rules)}, sets=sets))
    value = renderer.value()
    assert "input" in value.chains and value.chains["input"].hook == "input"
    result = await scheduler.commit({renderer.key: value})
    assert result.ok, result.errors


async def test_an_egress_isolated_pod_does_not_reach_its_nodes_services(
    topology: Topology, scheduler: KVScheduler
) -> None:
    renderer = NftablesPolicyRenderer(topology.node)
    with listeners(topology.node, [*PORTS, WITNESS_PORT]), listeners(topology.b, [8080]):
        await render(scheduler, renderer, None, {})  # the table, no pod isolated
        for ip in (NODE_IP, GATEWAY):
            assert probe(topology.a, ip, PORTS) == dict.fromkeys(PORTS, "reached")  # the services answer
        await render(scheduler, renderer, ISOLATED, SETS)
        for ip in (NODE_IP, GATEWAY):  # etcd, the REST, the kubelet: dropped on the node's input
            assert probe(topology.a, ip, PORTS) == dict.fromkeys(PORTS, "dropped"), ip
        # what the policy allows still passes: pod b (forward path) and, from b, its node (b is not isolated)
        run_in_namespace(topology.a, lambda: socket.create_connection((POD_B, 8080), timeout=20).close())
        assert probe(topology.b, NODE_IP, PORTS) == dict.fromkeys(PORTS, "reached")
        # the node's own connections to the isolated pod (the kubelet's probes) pass both ways
        with listeners(topology.a, [8080]):
            run_in_namespace(topology.node, lambda: socket.create_connection((POD_A, 8080), timeout=20).close())
        # an ipBlock holding the node's address allows it (NetworkPolicy's ipBlock semantics)
        wide = PodRules(ingress=(), egress=(*(ISOLATED.egress or ()), Rule(peers="p-node", ports=(
            PortMatch("tcp", NODE_SERVICES["kubelet"], NODE_SERVICES["kubelet"]),))))
        await render(scheduler, renderer, wide, {})
        got = probe(topology.a, NODE_IP, PORTS)
        assert got == {**dict.fromkeys(PORTS, "dropped"), NODE_SERVICES["kubelet"]: "reached"}
        await render(scheduler, renderer, None, {"p-b": None, "p-node": None})  # policy gone: open again
        assert probe(topology.a, NODE_IP, PORTS) == dict.fromkeys(PORTS, "reached")
