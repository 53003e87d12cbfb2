"""``contiv-lab up --dataplane vpp``: a real VPP per node (skipped, with the reason, without one),
pods and services through VPP; without a VPP the lab says so and makes nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.lab.cluster import Lab, LabError
from apps.lab.dataplane.realvpp import ENV_VAR
from apps.lab.manifests import delete_objects
from apps.lab.pods import Kubelet, load_manifests, probe
from apps.lab.svclab import probe_service, wait_service
from tests.vppreal.fixtures import vpp_install  # noqa: F401 - fixture

pytestmark = pytest.mark.netns

LAB = f"lv{os.getpid() % 100000}"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "lab"


def test_without_a_vpp_the_lab_says_so_and_makes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    lab = Lab(f"{LAB}x", root=tmp_path / "lab")
    with pytest.raises(LabError, match=f"--dataplane vpp needs a VPP: no real VPP: set {ENV_VAR}"):
        lab.up(1, dataplane="vpp")
    assert not (tmp_path / "lab").exists()


@pytest.fixture(scope="module")
def lab(vpp_install: object) -> Iterator[Lab]:  # noqa: F811 - fixture
    lab = Lab(LAB)
    try:
        lab.up(2, dataplane="vpp")
        kubelet = Kubelet(lab)
        kubelet.apply(load_manifests(EXAMPLES / "pods.yaml"))
        kubelet.apply(load_manifests(EXAMPLES / "services.yaml"))
        yield lab
    finally:
        Lab(LAB).down()


def test_pods_reach_each_other_through_vpp(lab: Lab) -> None:
    rows = probe(lab)
    assert rows and not [r for r in rows if not (r["ping"] and r["tcp"])]


def test_services_through_vpp_nat44(lab: Lab) -> None:
    """Every address of both example services, from every pod and from both nodes' own namespaces
    (the node reaches the ClusterIP, its own NodePort and the other node's through its VPP)."""
    wait_service(lab, "demo", "web", backends=2)
    wait_service(lab, "demo", "web-np", backends=2)
    for name in ("web", "web-np"):
        rows = probe_service(lab, "demo", name, count=12)
        assert {r["from"] for r in rows} >= {"node/node1", "node/node2", "demo/client-1", "demo/client-2"}
        assert rows and all(not r["failed"] for r in rows), [r for r in rows if r["failed"]]
        for source in ("node/node1", "node/node2"):  # balanced over both nodes, from the nodes too
            answered = {pod.split("/")[-1] for r in rows if r["from"] == source for pod in r["answers"]}
            assert answered == {"web-1", "web-2"}, [r for r in rows if r["from"] == source]


# Local traffic policy, an ExternalIP and ClientIP affinity, as the nodes see them.
POLICIES = [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-local", "namespace": "demo"},
     "spec": {"type": "NodePort", "selector": {"app": "web"}, "externalTrafficPolicy": "Local",
              "externalIPs": ["203.0.113.10"], "ports": [{"name": "http", "port": 8081, "targetPort": 8080}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-aff", "namespace": "demo"},
     "spec": {"selector": {"app": "web"}, "sessionAffinity": "ClientIP",
              "ports": [{"name": "http", "port": 8082, "targetPort": 8080}]}},
]


def test_the_nodes_get_the_traffic_policies_and_affinity_pods_get(lab: Lab) -> None:
    kubelet = Kubelet(lab)
    kubelet.apply(POLICIES)
    try:
        wait_service(lab, "demo", "web-aff", backends=2)
        rows = probe_service(lab, "demo", "web-local", count=8, sources=["node/node1", "node/node2",
                                                                          "demo/client-1", "demo/client-2"])
        assert rows and all(not r["failed"] for r in rows), [r for r in rows if r["failed"]]
        ips = {n.name: n.ip.split("/")[0] for n in lab.state.nodes.values()}
        for r in rows:
            _, ip, _ = r["to"].split(":")
            if ip in ips.values():  # a NodePort answers with the backend of that node only
                owner = next(name for name, a in ips.items() if a == ip)
                assert set(r["answers"]) == {f"demo/web-{owner[-1]}"}, r
            elif ip == "203.0.113.10":  # the ExternalIP, Local: the source's node's backend
                assert set(r["answers"]) == {f"demo/web-{r['from'][-1]}"}, r
        rows = probe_service(lab, "demo", "web-aff", count=8, sources=["node/node1", "node/node2", "demo/client-1"])
        assert rows and all(not r["failed"] and len(r["answers"]) == 1 for r in rows), rows
        # the backends see the node as the node: its end of the host interconnect
        seen = {r["from"]: set(r["seen_as"]) for r in rows}
        assert seen["node/node1"] == {"172.30.1.2"} and seen["node/node2"] == {"172.30.2.2"}, seen
    finally:
        delete_objects(lab, POLICIES)


def test_policies_through_vpp_acls(lab: Lab) -> None:
    """examples/lab/policy/demo.yaml: web pods take TCP 8080 from clients only, clients talk to web only."""
    kubelet = Kubelet(lab)
    kubelet.apply(load_manifests(EXAMPLES / "policy" / "demo.yaml"))

    def matrix() -> dict[tuple[str, str], bool]:
        return {(r["from"], r["to"]): bool(r["tcp"]) for r in probe(lab)}

    def expected(src: str, dst: str) -> bool:
        return "client" in src and "web" in dst

    deadline = time.monotonic() + 60
    got = matrix()
    while any(ok != expected(*pair) for pair, ok in got.items()) and time.monotonic() < deadline:
        time.sleep(0.5)  # the agents apply the policies as KSR reflects them
        got = matrix()
    assert got and {pair: ok for pair, ok in got.items() if ok != expected(*pair)} == {}
    delete_objects(lab, load_manifests(EXAMPLES / "policy" / "demo.yaml"))


NODE1_ONLY = [{
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
    "metadata": {"name": "web-from-node1", "namespace": "demo"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
             "ingress": [{"from": [{"ipBlock": {"cidr": "172.30.1.2/32"}}],
                          "ports": [{"protocol": "TCP", "port": 8080}]}]},
}]


def test_a_network_policy_sees_the_node_as_the_node(lab: Lab) -> None:
    """Web pods admitting only node1 (an ipBlock of its interconnect address): node1's connections
    to the ClusterIP all pass (to node2's backend through the mesh too); node2 reaches only its
    own web pods (a pod's own node always reaches it, as on nftables: the kubelet's probes), and a
    client gets nowhere: the policy decides on the node's own address."""
    kubelet = Kubelet(lab)
    kubelet.apply(NODE1_ONLY)
    own2 = {key for key, pod in lab.state.pods.items() if pod.node == "node2" and pod.name.startswith("web")}
    try:
        def rows() -> dict[str, dict[str, Any]]:
            got = probe_service(lab, "demo", "web", count=8, timeout_s=1.0,
                                sources=["node/node1", "node/node2", "demo/client-1"])
            return {r["from"]: r for r in got}

        def settled(got: dict[str, dict[str, Any]]) -> bool:
            return (set(got["node/node2"]["answers"]) <= own2 and not got["node/node1"]["failed"]
                    and not got["demo/client-1"]["answers"])

        deadline = time.monotonic() + 60
        got = rows()
        while not settled(got) and time.monotonic() < deadline:
            time.sleep(0.5)  # the agents apply the policy as KSR reflects it
            got = rows()
        assert own2 and not got["node/node1"]["failed"], got["node/node1"]
        assert set(got["node/node2"]["answers"]) <= own2 and not got["demo/client-1"]["answers"], got
    finally:
        delete_objects(lab, NODE1_ONLY)
