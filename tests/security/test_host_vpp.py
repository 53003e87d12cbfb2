"""Pods to their own node on the VPP dataplane, against a real VPP.

The node's own stack (etcd, the agent's REST, the kubelet) is behind VPP's host interconnect, one
of the node's outbound interfaces: the ACL renderer's global table on its output holds each
egress-isolated pod's egress rules. Two real VPPs (tests/vppreal), pods on node 1; listeners on
the node namespace's address on the host interconnect. Skipped, with the reason, without a VPP
(``CONTIV_TEST_VPP_DIR``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from plugins.ipnet.renderer.vpp import nat_loopback_ip
from plugins.policy.processor import Delta, LocalPodRules, SetContent
from plugins.policy.renderer.acl import AclPolicyRenderer
from plugins.policy.rules import PodRules, PortMatch, Rule
from tests.security.hostprobe import NODE_SERVICES, WITNESS_PORT, listeners, probe
from tests.vppreal.cluster import Cluster, Node, commit, reach, running
from tests.vppreal.fixtures import NodeVPPs, node_vpps, vpp_install  # noqa: F401 - fixtures

pytestmark = [pytest.mark.netns, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(600)]

PORTS = list(NODE_SERVICES.values())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(node_vpps: NodeVPPs) -> AsyncIterator[Cluster]:  # noqa: F811 - fixture
    async with running(node_vpps, [(1, "a1", 2), (1, "a2", 3)]) as lab:
        yield lab


def host_address(node: Node) -> str:
    """The node stack's address on the host interconnect (where its services are reached)."""
    out = subprocess.run(["ip", "-n", node.netns, "-j", "-4", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    for link in json.loads(out):
        for addr in link.get("addr_info", []):
            if ipaddress.ip_address(addr["local"]) in node.intent.host_interconnect_subnet:
                return str(addr["local"])
    raise AssertionError(f"no address of {node.intent.host_interconnect_subnet} in {node.netns}")


async def apply_policy(node: Node, renderer: AclPolicyRenderer, rules: PodRules | None,
                       sets: dict[str, SetContent | None]) -> None:
    """What the policy plugin commits for the processor's changes to pod a1."""
    pod = None if rules is None else LocalPodRules(node.pods["a1"].ip, rules)
    renderer.apply(Delta(pods={"default/a1": pod}, sets=sets))
    changes: dict[str, Any] = dict(renderer.values())
    changes.update(dict.fromkeys(renderer.take_removed()))
    await commit(node, changes)


async def test_an_egress_isolated_pod_does_not_reach_its_nodes_services(cluster: Cluster) -> None:
    node = cluster.nodes[1]
    a1, a2 = node.pods["a1"], node.pods["a2"]
    host = host_address(node)
    names = {f"default/{p.intent.pod_name}": node.renderer.pod_interface_name(p.intent) for p in node.pods.values()}
    renderer = AclPolicyRenderer(lambda key, ip: names.get(key), nat_loopback_ip(node.intent),
                                 node.renderer.outbound_interfaces())
    renderer.set_local_pods({f"default/{name}": pod.ip for name, pod in node.pods.items()})
    assert await reach(a1.netns, "tcp", a2.ip)  # the path is up (ARP, routes) before anything is measured
    isolated = PodRules(egress=(
        Rule(peers="p-a2", ports=(PortMatch("tcp", 8080, 8080),)),
        Rule(peers="p-node", ports=(PortMatch("tcp", WITNESS_PORT, WITNESS_PORT),)),
    ))
    sets: dict[str, SetContent | None] = {"p-a2": SetContent("addr", frozenset({a2.ip})),
                                          "p-node": SetContent("interval", frozenset({f"{host}/32"}))}
    with listeners(node.netns, [*PORTS, WITNESS_PORT]):
        got = await asyncio.to_thread(probe, a1.netns, host, PORTS)
        assert got == dict.fromkeys(PORTS, "reached")  # not isolated: the services answer
        await apply_policy(node, renderer, isolated, sets)
        try:
            got = await asyncio.to_thread(probe, a1.netns, host, PORTS)
            assert got == dict.fromkeys(PORTS, "dropped")  # etcd, REST, kubelet: dropped by VPP
            assert (await reach(a1.netns, "tcp", a2.ip)).startswith(f"default/a2 {a1.ip}:")  # allowed pod
            got = await asyncio.to_thread(probe, a2.netns, host, PORTS)
            assert got == dict.fromkeys(PORTS, "reached")  # a2 is not isolated
            # the node's own connections to the isolated pod (the kubelet's probes) pass both ways
            assert (await reach(node.netns, "tcp", a1.ip)).startswith("default/a1 ")
            # an ipBlock holding the node's address allows that port
            kubelet = NODE_SERVICES["kubelet"]
            wide = PodRules(egress=(*(isolated.egress or ()),
                                    Rule(peers="p-node", ports=(PortMatch("tcp", kubelet, kubelet),))))
            await apply_policy(node, renderer, wide, {})
            got = await asyncio.to_thread(probe, a1.netns, host, PORTS)
            assert got == {**dict.fromkeys(PORTS, "dropped"), kubelet: "reached"}
        finally:
            await apply_policy(node, renderer, None, {"p-a2": None, "p-node": None})
        got = await asyncio.to_thread(probe, a1.netns, host, PORTS)
        assert got == dict.fromkeys(PORTS, "reached")
