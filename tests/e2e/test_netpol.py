"""NetworkPolicy end to end, as the upstream netpol e2e suite does it: a real lab (2 nodes, real
agents, KSR, etcd), namespaces x, y, z with pods a, b, c serving TCP and UDP on 80 and 81, and
for every case the whole probe matrix compared with the independent model
(tests/plugins/policy/netpol_model.py, written from the API documentation).

Waiting is on state, never on time: a case converges when every agent reports the policies in
force over REST and then the probe matrix equals the model's, polled under a generous deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

import pytest
import yaml

from apps.lab import netns
from apps.lab.cluster import Lab
from apps.lab.manifests import delete_objects
from apps.lab.matrix import probe_matrix
from apps.lab.netns import python_module
from apps.lab.pods import Kubelet
from apps.lab.state import write_manifest
from tests.plugins.policy import netpol_cases as nc
from tests.plugins.policy.netpol_model import ModelPod, NetpolModel

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.timeout(900)]

LAB = f"np{os.getpid() % 100000}"
Obj = dict[str, Any]
DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    lab = Lab(LAB)
    try:
        lab.up(2)
        kubelet = Kubelet(lab)
        kubelet.apply([nc.namespace_manifest(ns) for ns in nc.NAMESPACES])
        i = 0
        for ns in nc.NAMESPACES:
            for name in nc.PODS:
                kubelet.apply([nc.pod_manifest(ns, name, node=f"node{i % 2 + 1}")])
                i += 1
        yield lab
    finally:
        Lab(LAB).down()


def ips(lab: Lab) -> dict[str, str]:
    return {k: p.ip for k, p in lab.state.pods.items()}


def manifest(lab: Lab, filename: str) -> Obj:
    obj: Obj = yaml.safe_load((lab.state.manifests / filename).read_text())
    return obj


def model_for(lab: Lab, policies: list[Obj]) -> NetpolModel:
    namespaces = {}
    pods = []
    for path in lab.state.manifests.glob("*.yaml"):
        obj = yaml.safe_load(path.read_text())
        if obj.get("kind") == "Namespace":
            namespaces[obj["metadata"]["name"]] = obj["metadata"].get("labels") or {}
        elif obj.get("kind") == "Pod" and (obj.get("status") or {}).get("podIP"):
            ports = [p for c in obj["spec"]["containers"] for p in c.get("ports", [])]
            meta = obj["metadata"]
            pods.append(ModelPod(meta["namespace"], meta["name"], dict(meta.get("labels") or {}),
                                 obj["status"]["podIP"], ports))
    return NetpolModel(namespaces, pods, policies)


def matrix(lab: Lab) -> dict[tuple[str, str, int, str], bool]:
    rows = probe_matrix(lab, nc.PORTS, nc.PROTOCOLS, timeout_s=1.0)
    return {(r["from"], r["to"], r["port"], r["protocol"]): r["ok"] for r in rows}


def agent_policies(lab: Lab, node: str) -> dict[str, Any] | None:
    out = netns.run(python_module("apps.lab.http_get", "http://127.0.0.1:9999/contiv/v1/policies"),
                    netns=lab.node(node).netns, check=False, timeout=30)
    try:
        body: dict[str, Any] = json.loads(out.stdout)
    except json.JSONDecodeError:
        return None
    return body


def wait_agents_have(lab: Lab, keys: set[str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        seen = {n: (agent_policies(lab, n) or {}).get("policies") for n in lab.state.nodes}
        if all(v is not None and set(v) == keys for v in seen.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"agents did not converge on policies {sorted(keys)}: {seen}")


def converge(lab: Lab, policies: list[Obj], skipped: AbstractSet[str] = frozenset()) -> Mapping[Any, bool]:
    """Wait until the agents have ``policies`` and the matrix is the model's; return it."""
    keys = {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in policies} - skipped
    wait_agents_have(lab, keys)
    good = [p for p in policies if f"{p['metadata']['namespace']}/{p['metadata']['name']}" not in skipped]
    deadline = time.monotonic() + DEADLINE_S
    while True:
        expected = model_for(lab, good).matrix(nc.PORTS, nc.PROTOCOLS)
        got = matrix(lab)
        wrong = sorted(f"{k}: expected {'allowed' if v else 'blocked'}"
                       for k, v in expected.items() if got.get(k) != v)
        if not wrong:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(wrong)} probes differ from the model: {wrong[:20]}")
        time.sleep(0.2)


def apply(lab: Lab, objects: list[Obj]) -> None:
    Kubelet(lab).apply(objects)


def remove(lab: Lab, objects: list[Obj]) -> None:
    delete_objects(lab, objects)
    wait_agents_have(lab, set())


def test_without_policies_everything_is_allowed(lab: Lab) -> None:
    got = converge(lab, [])
    assert len(got) == 9 * 8 * 4 and all(got.values())


@pytest.mark.parametrize("name", sorted(nc.CASES))
def test_case(lab: Lab, name: str) -> None:
    policies = nc.CASES[name](ips(lab))
    apply(lab, policies)
    try:
        converge(lab, policies)
    finally:
        remove(lab, policies)


@pytest.mark.parametrize("seed", [7, 1234])
def test_random_case(lab: Lab, seed: int) -> None:
    policies = nc.random_policies(seed, ips(lab))
    apply(lab, policies)
    try:
        converge(lab, policies)
    finally:
        remove(lab, policies)


def test_policy_added_changed_removed(lab: Lab) -> None:
    first = nc.policy("y", "p", nc.pod_sel("a"), ingress=[{"from": [{"podSelector": nc.pod_sel("b")}]}])
    apply(lab, [first])
    converge(lab, [first])
    changed = nc.policy("y", "p", nc.pod_sel("a"), ingress=[{"from": [{"namespaceSelector": nc.ns_sel("z")}],
                                                           "ports": [{"port": 81, "protocol": "UDP"}]}])
    apply(lab, [changed])
    converge(lab, [changed])
    remove(lab, [changed])
    converge(lab, [])


def test_pod_and_namespace_relabelled(lab: Lab) -> None:
    policies = nc.CASES["pod-or-namespace"](ips(lab))
    apply(lab, policies)
    original_pod = manifest(lab, "pod-x-b.yaml")
    original_ns = manifest(lab, "namespace-z.yaml")
    try:
        converge(lab, policies)
        relabelled = json.loads(json.dumps(original_pod))
        relabelled["metadata"]["labels"] = {"pod": "c"}  # x/b into the podSelector (pod=c)
        write_manifest(lab.state, "pod-x-b.yaml", relabelled)
        converge(lab, policies)
        apply(lab, [nc.namespace_manifest("z", {"ns": "y"})])  # z now looks like y
        converge(lab, policies)
        relabelled["metadata"]["labels"] = {"pod": "b"}  # and out again
        write_manifest(lab.state, "pod-x-b.yaml", relabelled)
        apply(lab, [original_ns])
        converge(lab, policies)
    finally:
        write_manifest(lab.state, "pod-x-b.yaml", original_pod)
        apply(lab, [original_ns])
        remove(lab, policies)


def test_new_pod_is_isolated_before_its_cni_add_returns(lab: Lab) -> None:
    only_from_b = nc.policy("x", "only-from-b", ingress=[{"from": [{"podSelector": nc.pod_sel("b")}]}])
    apply(lab, [only_from_b])
    converge(lab, [only_from_b])
    kubelet = Kubelet(lab)
    try:
        pod = kubelet.add_pod(nc.pod_manifest("x", "d", node="node1"))  # returns after the CNI ADD
        outsider = lab.state.pods["y/a"]
        code = ("import asyncio,sys; from apps.lab.portprobe import probe_one; "
                f"r=asyncio.run(probe_one('{pod.ip}:80/tcp', 1.0, attempts=1)); sys.exit(0 if r['ok'] else 3)")
        first = subprocess.run(["ip", "netns", "exec", outsider.netns, sys.executable, "-c", code],
                               check=False, env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert first.returncode == 3, "the first packet to a new pod under a deny policy went through"
        converge(lab, [only_from_b])  # and x/b reaches it, y/a does not (the model says so)
    finally:
        if "x/d" in lab.state.pods:
            kubelet.delete_pod("x", "d")
        remove(lab, [only_from_b])


def test_bad_policies_are_skipped_and_the_rest_keep_working(lab: Lab) -> None:
    good = nc.policy("x", "deny-in", types=["Ingress"])
    bad_cidr = nc.policy("y", "bad-cidr", ingress=[{"from": [{"ipBlock": {"cidr": "10.1.0.0/33"}}]}])
    bad_proto = nc.policy("z", "bad-proto", ingress=[{"ports": [{"protocol": "ICMP", "port": 80}]}])
    apply(lab, [good, bad_cidr, bad_proto])
    try:
        # The bad CIDR reaches the agents and is skipped there; KSR already refuses the protocol.
        converge(lab, [good, bad_cidr, bad_proto], skipped={"y/bad-cidr", "z/bad-proto"})
        for node in lab.state.nodes:
            body = agent_policies(lab, node) or {}
            assert "not a CIDR" in body.get("bad_policies", {}).get("y/bad-cidr", "")
    finally:
        remove(lab, [good, bad_cidr, bad_proto])


def test_agent_restart_changes_nothing_and_keeps_connections(lab: Lab) -> None:
    policies = nc.CASES["union"](ips(lab)) + nc.CASES["udp-only"](ips(lab))
    apply(lab, policies)
    try:
        converge(lab, policies)
        server = lab.state.pods["x/a"]
        client = lab.state.pods["x/b"]  # allowed into x/a by "union"
        node = lab.node(server.node)
        code = ("import socket,sys\n"
                f"s=socket.create_connection(('{server.ip}',80),timeout=10)\n"
                "for line in sys.stdin:\n"
                "    s.sendall(b'probe'); print(s.recv(200).decode().split()[0], flush=True)\n")
        conn = subprocess.Popen(["ip", "netns", "exec", client.netns, sys.executable, "-c", code],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert conn.stdin is not None and conn.stdout is not None
            conn.stdin.write("1\n")
            conn.stdin.flush()
            assert conn.stdout.readline().strip() == "x/a"
            before = netns.run(["nft", "-a", "list", "table", "inet", "contiv-policy"], netns=node.netns).stdout
            lab.kill_agent(server.node, sig=15)
            lab.start_agent(server.node)
            lab.wait_agent_ready(server.node)
            wait_agents_have(lab, {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in policies})
            after = netns.run(["nft", "-a", "list", "table", "inet", "contiv-policy"], netns=node.netns).stdout
            assert after == before  # same rules, same handles: nothing was rewritten
            conn.stdin.write("2\n")
            conn.stdin.flush()
            assert conn.stdout.readline().strip() == "x/a"  # the established connection lives
        finally:
            conn.kill()
            conn.wait()
        converge(lab, policies)
    finally:
        remove(lab, policies)


def service_answer(lab: Lab, src: str, address: str) -> str | None:
    """The pod answering one TCP request from pod ``src`` to ``address`` (IP:PORT), or None."""
    import asyncio
    import socket

    from apps.lab.portprobe import probe_one
    from plugins.linux.netns import run_in_namespace

    ns = lab.state.pods[src].netns

    def make(kind: int, proto: int) -> socket.socket:
        return run_in_namespace(ns, lambda: socket.socket(socket.AF_INET, kind, proto))

    result = asyncio.run(probe_one(f"{address}/tcp", 1.0, attempts=1, make_socket=make))
    return str(result["pod"]) if result["ok"] else None


def test_policies_see_service_traffic_after_dnat(lab: Lab) -> None:
    """A policy on the backend pod sees the client pod behind the ClusterIP: services and
    policies compose (the policy hook runs after the services' DNAT)."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc-a", "namespace": "x"},
           "spec": {"selector": {"pod": "a"}, "ports": [{"name": "tcp", "port": 8000, "targetPort": 80}]}}
    only_from_b = nc.policy("x", "a-from-b", nc.pod_sel("a"), ingress=[{"from": [{"podSelector": nc.pod_sel("b")}]}])
    apply(lab, [svc])
    try:
        address = f"{manifest(lab, 'service-x-svc-a.yaml')['spec']['clusterIP']}:8000"
        deadline = time.monotonic() + DEADLINE_S
        while {service_answer(lab, "x/b", address), service_answer(lab, "y/b", address)} != {"x/a"}:
            assert time.monotonic() < deadline, "the service never answered from x/b and y/b"
            time.sleep(0.2)
        apply(lab, [only_from_b])
        wait_agents_have(lab, {"x/a-from-b"})
        deadline = time.monotonic() + DEADLINE_S
        while service_answer(lab, "y/b", address) is not None:  # y/b is not pod=b of x
            assert time.monotonic() < deadline, "the policy never applied to service traffic"
            time.sleep(0.2)
        assert service_answer(lab, "x/b", address) == "x/a"
    finally:
        remove(lab, [only_from_b])
        delete_objects(lab, [svc])
