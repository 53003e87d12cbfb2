"""Services through the real path: a 2-node lab (etcd, contiv-ksr, one contiv-agent per node), pods
wired by contiv-cni, Services defaulted by the lab, slices from its endpoint controller, and real
nftables inside the node namespaces. Every check connects through the service addresses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apps.lab import netns
from apps.lab.cluster import Lab
from apps.lab.pods import Kubelet
from apps.lab.services import find_service
from apps.lab.state import write_manifest
from apps.lab.svclab import agent_service, probe_service, wait_service

pytestmark = pytest.mark.netns

LAB = f"svc{os.getpid() % 100000}"
NS = "sv"
TABLE_KEY = "config/linux/v1/nft-table/-/ip/contiv-svc"
EXTERNAL_IP = "203.0.113.10"
AFFINITY_S = 2


def pod(name: str, node: str, app: str = "web", ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "echo", "image": "lab/echo",
                                                        "ports": ports or [{"name": "web", "containerPort": 8080}]}]}}


def service(name: str, ports: list[dict[str, Any]], app: str = "web", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": app}, "ports": ports, **spec}}


def sctp_available() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


SERVICES = [
    service("web", [{"name": "http", "port": 80, "targetPort": 8080}]),
    service("web-np", [{"port": 8080, "nodePort": 30080}], type="NodePort"),
    service("web-local", [{"port": 8080, "nodePort": 30081}], type="NodePort", externalTrafficPolicy="Local"),
    service("web-ext", [{"port": 80, "targetPort": 8080}], externalIPs=[EXTERNAL_IP]),
    service("web-itp", [{"port": 80, "targetPort": 8080}], internalTrafficPolicy="Local"),
    service("web-aff", [{"port": 80, "targetPort": 8080}], sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": AFFINITY_S}}),
    service("named", [{"name": "http", "port": 80, "targetPort": "web"}]),
    service("empty", [{"port": 80, "targetPort": 8080}], app="nobody"),
    service("dns", [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 8080}]),
]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    lab = Lab(LAB)
    try:
        lab.up(2)
        sctp = [{"containerPort": 9000, "protocol": "SCTP"}] if sctp_available() else []
        kubelet = Kubelet(lab)
        kubelet.apply([
            pod("web-1", "node1", ports=[{"name": "web", "containerPort": 8080}, *sctp]),
            pod("web-2", "node1", ports=[{"name": "web", "containerPort": 8080}, *sctp]),
            # web-3 names another port "web": a named targetPort resolves to 9090 for it.
            pod("web-3", "node2", ports=[{"containerPort": 8080}, {"name": "web", "containerPort": 9090}, *sctp]),
            pod("client-1", "node1", app="client"), pod("client-2", "node2", app="client"),
            *SERVICES,
            *([service("sctp", [{"port": 9000, "protocol": "SCTP"}])] if sctp else []),
        ])
        for svc in SERVICES:
            name = svc["metadata"]["name"]
            wait_service(lab, NS, name, 0 if name == "empty" else 3, timeout_s=90)
        # The lab namespace reaches the external IP through node1 (a route in the lab's own namespace).
        netns.run(["ip", "route", "add", f"{EXTERNAL_IP}/32", "via", "192.168.16.1"], netns=lab.state.underlay_ns)
        yield lab
    finally:
        Lab(LAB).down()


def answers(rows: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for row in rows:
        assert row["failed"] == 0, row
        for pod_name, n in row["answers"].items():
            total[pod_name.split("/")[1]] = total.get(pod_name.split("/")[1], 0) + n
    return total


def from_ns(lab: Lab, namespace: str, target: str, count: int = 12) -> dict[str, Any]:
    out = netns.run([sys.executable, "-m", "apps.lab.svcprobe", "--count", str(count), target],
                    netns=namespace, timeout=300)
    result: dict[str, Any] = json.loads(out.stdout)[target]
    return result


def test_cluster_ip_spreads_over_three_backends_on_two_nodes(lab: Lab) -> None:
    rows = probe_service(lab, NS, "web", count=60, sources=[f"{NS}/client-1", f"{NS}/client-2"])
    for row in rows:
        got = answers([row])
        assert set(got) == {"web-1", "web-2", "web-3"}, row
        # chi-square, 2 degrees of freedom, p = 0.001: a fair spread passes 999 times in 1000.
        assert sum((n - 20) ** 2 / 20 for n in got.values()) < 13.82, got


def test_node_port_from_the_other_node_and_from_the_lab_namespace(lab: Lab) -> None:
    rows = probe_service(lab, NS, "web-np", count=15, sources=["node/node2", f"{NS}/client-1"])
    assert set(answers(rows)) == {"web-1", "web-2", "web-3"}
    for node_ip in ("192.168.16.1", "192.168.16.2"):
        result = from_ns(lab, lab.state.underlay_ns, f"tcp:{node_ip}:30080", count=15)
        assert result["failed"] == 0 and len(result["answers"]) >= 2, result
        assert result["seen_as"] != ["192.168.16.254"]  # SNAT to the node (policy Cluster)


def test_external_ip(lab: Lab) -> None:
    result = from_ns(lab, lab.state.underlay_ns, f"tcp:{EXTERNAL_IP}:80", count=15)
    assert result["failed"] == 0 and set(result["answers"]) >= {f"{NS}/web-3"}, result
    result = from_ns(lab, lab.state.pods[f"{NS}/client-2"].netns, f"tcp:{EXTERNAL_IP}:80", count=15)
    assert result["failed"] == 0 and len(result["answers"]) >= 2, result


def test_external_traffic_policy_local_keeps_the_client_address_and_the_node(lab: Lab) -> None:
    for node_ip, local in (("192.168.16.1", {"web-1", "web-2"}), ("192.168.16.2", {"web-3"})):
        result = from_ns(lab, lab.state.underlay_ns, f"tcp:{node_ip}:30081", count=15)
        assert result["failed"] == 0, result
        assert {p.split("/")[1] for p in result["answers"]} == local, result
        assert result["seen_as"] == ["192.168.16.254"]


def test_a_node_port_addressed_to_another_node_is_that_nodes_to_answer(lab: Lab) -> None:
    """From one node to the other's NodePort with ``externalTrafficPolicy: Local``: the sending
    node must not translate it (kube-proxy matches NodePorts on its own addresses only), so only
    the addressed node's backends answer; from outside through each node, see the test above."""
    for source, node_ip, local in (("node2", "192.168.16.1", {"web-1", "web-2"}),
                                   ("node1", "192.168.16.2", {"web-3"})):
        result = from_ns(lab, lab.state.nodes[source].netns, f"tcp:{node_ip}:30081", count=15)
        assert result["failed"] == 0, result
        assert {p.split("/")[1] for p in result["answers"]} == local, (source, result)


def test_internal_traffic_policy_local(lab: Lab) -> None:
    rows = probe_service(lab, NS, "web-itp", count=12, sources=[f"{NS}/client-1"])
    assert set(answers(rows)) == {"web-1", "web-2"}
    rows = probe_service(lab, NS, "web-itp", count=12, sources=[f"{NS}/client-2"])
    assert set(answers(rows)) == {"web-3"}


def test_named_target_port_resolves_per_endpoint(lab: Lab) -> None:
    body = agent_service(lab, "node1", NS, "named") or {}
    ports = {(b["pod"], b["port"]) for b in body["ports"][0]["backends"]}
    assert ports == {(f"{NS}/web-1", 8080), (f"{NS}/web-2", 8080), (f"{NS}/web-3", 9090)}
    rows = probe_service(lab, NS, "named", count=15, sources=[f"{NS}/client-1"])
    assert set(answers(rows)) == {"web-1", "web-2", "web-3"}


def test_no_endpoints_rejects_at_once_and_udp_and_hairpin(lab: Lab) -> None:
    result = from_ns(lab, lab.state.pods[f"{NS}/client-1"].netns,
                     f"tcp:{find_service(lab.state, NS, 'empty')['spec']['clusterIP']}:80", count=3)
    assert result["answers"] == {} and result["errors"] == {"ECONNREFUSED": 3}, result
    rows = probe_service(lab, NS, "dns", count=15, sources=[f"{NS}/client-1", "node/node2"])
    assert set(answers(rows)) == {"web-1", "web-2", "web-3"}
    # Hairpin: a backend reaching its own service is answered by itself too.
    rows = probe_service(lab, NS, "web", count=30, sources=[f"{NS}/web-1"])
    assert "web-1" in answers(rows)


def test_sctp(lab: Lab) -> None:
    if f"{NS}/web-1" in lab.state.pods and not sctp_available():
        pytest.skip("this kernel has no SCTP (socket(IPPROTO_SCTP) fails)")
    wait_service(lab, NS, "sctp", 3)
    rows = probe_service(lab, NS, "sctp", count=12, sources=[f"{NS}/client-1"])
    assert set(answers(rows)) == {"web-1", "web-2", "web-3"}


def table_json(lab: Lab, node: str) -> dict[str, Any]:
    out = netns.run(["nft", "-j", "list", "table", "ip", "contiv-svc"], netns=lab.node(node).netns)
    listing: dict[str, Any] = json.loads(out.stdout)
    return listing


def aff_sets_empty(lab: Lab, node: str) -> bool:
    listing = table_json(lab, node)
    return not any("elem" in item.get("set", {}) for item in listing["nftables"]
                   if item.get("set", {}).get("name", "").startswith("a-"))


def wait_for(check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
    return value


def test_client_ip_affinity_pins_then_lets_go_after_the_timeout(lab: Lab) -> None:
    client = lab.state.pods[f"{NS}/client-1"].netns
    target = f"tcp:{find_service(lab.state, NS, 'web-aff')['spec']['clusterIP']}:80"
    pinned = from_ns(lab, client, target, count=12)
    assert pinned["failed"] == 0 and len(pinned["answers"]) == 1, pinned
    first = next(iter(pinned["answers"]))
    seen = {first}
    for _ in range(20):  # each round: the entry expires, the next connection chooses anew
        wait_for(lambda: aff_sets_empty(lab, "node1"), timeout_s=AFFINITY_S * 10)
        seen.update(from_ns(lab, client, target, count=1)["answers"])
        if len(seen) > 1:
            break
    assert len(seen) > 1


class Conn:
    """A TCP connection kept open from a pod; each :meth:`ask` sends a request on it."""

    SCRIPT = ("import socket,sys\ns=socket.create_connection((sys.argv[1],int(sys.argv[2])),5)\n"
              "for line in sys.stdin:\n s.sendall(b'x'); print(s.recv(200).decode().strip(), flush=True)\n")

    def __init__(self, netns_name: str, ip: str, port: int) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", netns_name, sys.executable, "-c", self.SCRIPT, ip,
                                      str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("x\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().split(" ")[0]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def rule_handles(lab: Lab, node: str) -> dict[str, list[int]]:
    listing = table_json(lab, node)
    handles: dict[str, list[int]] = {}
    for item in listing["nftables"]:
        # The shared chains (per-service affinity chains follow their backends by design).
        if "rule" in item and item["rule"]["chain"] in ("pre", "out", "post", "rej-pre", "rej-out"):
            handles.setdefault(item["rule"]["chain"], []).append(item["rule"]["handle"])
    return handles


def test_scaling_changes_only_elements_and_keeps_connections(lab: Lab) -> None:
    vip = find_service(lab.state, NS, "web")["spec"]["clusterIP"]
    conn = Conn(lab.state.pods[f"{NS}/client-1"].netns, vip, 80)
    try:
        backend = conn.ask()
        before = {n: rule_handles(lab, n) for n in ("node1", "node2")}
        kubelet = Kubelet(lab)
        kubelet.apply([pod("web-4", "node2")])
        wait_service(lab, NS, "web", 4)
        victim = next(p for p in ("web-1", "web-2", "web-3") if f"{NS}/{p}" != backend)
        kubelet.delete_pod(NS, victim)
        wait_service(lab, NS, "web", 3)
        assert {n: rule_handles(lab, n) for n in ("node1", "node2")} == before  # no flush, no rule rewritten
        assert conn.ask() == backend
        rows = probe_service(lab, NS, "web", count=20, sources=[f"{NS}/client-2"])
        assert set(answers(rows)) == {"web-1", "web-2", "web-3", "web-4"} - {victim}
        kubelet.apply([pod(victim, "node1" if victim != "web-3" else "node2",
                           ports=[{"containerPort": 8080}, {"name": "web", "containerPort": 9090}]
                           if victim == "web-3" else None)])
        kubelet.delete_pod(NS, "web-4")
        wait_service(lab, NS, "web", 3)
    finally:
        conn.close()


def http(lab: Lab, node: str, path: str, method: str = "GET") -> Any:
    code = ("import json,sys,urllib.request\nreq=urllib.request.Request(sys.argv[1],method=sys.argv[2])\n"
            "print(urllib.request.urlopen(req,timeout=30).read().decode())")
    out = netns.run([sys.executable, "-c", code, f"http://127.0.0.1:9999{path}", method],
                    netns=lab.node(node).netns, timeout=60)
    return json.loads(out.stdout)


def test_table_edited_behind_the_agents_back_is_repaired_by_resync(lab: Lab) -> None:
    node_ns = lab.node("node1").netns
    vip = find_service(lab.state, NS, "web")["spec"]["clusterIP"]
    netns.run(["nft", f"delete element ip contiv-svc fe {{ {vip} . tcp . 80 }}"], netns=node_ns)
    netns.run(["nft", "add rule ip contiv-svc pre counter drop"], netns=node_ns)
    txn = http(lab, "node1", "/scheduler/downstream-resync", "POST")
    assert [(op["key"], op["operation"]) for op in txn["operations"]] == [(TABLE_KEY, "update")], txn
    rows = probe_service(lab, NS, "web", count=9, sources=[f"{NS}/client-1"])
    assert len(answers(rows)) >= 2
    listing = netns.run(["nft", "list", "chain", "ip", "contiv-svc", "pre"], netns=node_ns).stdout
    assert "drop" not in listing


def test_bad_input_is_logged_and_skipped_and_nothing_else_is_lost(lab: Lab) -> None:
    web = find_service(lab.state, NS, "web")
    bad = service("bad-port", [{"port": 70000, "targetPort": 8080}], clusterIP="10.96.5.5")
    clash = service("clash", [{"port": 80, "targetPort": 8080}], clusterIP=web["spec"]["clusterIP"])
    orphan = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
              "metadata": {"name": "orphan-1", "namespace": NS, "labels": {"kubernetes.io/service-name": "ghost"}},
              "endpoints": [{"addresses": ["10.1.1.99"]}], "ports": [{"port": 80}]}
    for name, obj in (("bad-port", bad), ("clash", clash), ("orphan-1", orphan)):  # as kubectl would not
        write_manifest(lab.state, f"{obj['kind'].lower()}-{NS}-{name}.yaml", obj)
    state = wait_for(lambda: ((lab.internal_state("node1") or {}).get("service") or {}).get("errors", {})
                     if {f"{NS}/bad-port", f"{NS}/clash"} <= set(
                         ((lab.internal_state("node1") or {}).get("service") or {}).get("errors", {})) else None)
    assert "70000" in state[f"{NS}/bad-port"] and "clash" in state[f"{NS}/clash"]
    rows = probe_service(lab, NS, "web", count=15, sources=[f"{NS}/client-2"])
    assert set(answers(rows)) == {"web-1", "web-2", "web-3"}
    assert (agent_service(lab, "node2", NS, "ghost")) is None


def test_agent_restart_with_100_services_writes_nothing_and_keeps_connections(lab: Lab) -> None:
    Kubelet(lab).apply([service(f"many-{i}", [{"port": 80, "targetPort": 8080}]) for i in range(100)])
    wait_service(lab, NS, "many-99", 3, timeout_s=120)
    vip = find_service(lab.state, NS, "many-50")["spec"]["clusterIP"]
    conn = Conn(lab.state.pods[f"{NS}/client-1"].netns, vip, 80)
    try:
        backend = conn.ask()
        lab.kill_agent("node1", sig=signal.SIGKILL)
        lab.start_agent("node1")
        lab.wait_agent_ready("node1")
        wait_service(lab, NS, "many-99", 3)
        timeline = http(lab, "node1", f"/scheduler/key-timeline?key={TABLE_KEY}")
        ops = [op for txn in timeline for op in txn.get("operations", [])]
        assert timeline and ops == [], timeline
        assert conn.ask() == backend
    finally:
        conn.close()
