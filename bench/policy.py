"""NetworkPolicy benchmark: the policy plugin driving the real nftables table of a node namespace.

The ``policy`` plugin (cache -> processor -> configurator -> nftables renderer) is fed events as
the controller would (KSR changes, AddPod), and every event's table value is committed through
the real KV scheduler and the Linux table descriptor into a throw-away node namespace, so each
time is "event to kernel".

* ``full_render_s``: 1,000 local pods x 200 policies, from an empty table until the kernel has it;
* ``pod_add_ms``: one more pod selected by 20 policies (KSR pod event, then its AddPod), p50;
* ``policy_change_ms``: one policy changed (its port), p50;
* ``rule_sets``: distinct rule sets (chains) after sharing;
* ``throughput_ratio``: TCP throughput between two pods routed by the node namespace with the
  200 policies applied (both pods selected, the stream crossing an egress and an ingress
  chain's lookup and conntrack), divided by the same without the table: samples alternate
  with and without it in the same run, medians compared.

    python bench/policy.py --json out.json [--pods 1000] [--policies 200]

Needs root. Prints a table; writes one flat JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from table import agent_process_policy  # bench/table.py (the script's directory is on sys.path)

from core import tuning
from plugins.controller.events import DBResync, KubeStateChange
from plugins.ksr.convert import convert
from plugins.kvscheduler.api import ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.descriptors.nfttable import NftTableDescriptor
from plugins.linux.netns import run_in_namespace
from plugins.podmanager.api import AddPod, LocalPod, PodID
from plugins.policy.config import PolicyConfig
from plugins.policy.plugin import PolicyPlugin

NAMESPACES = 10


def sh(*cmd: str, ns: str | None = None) -> None:
    full = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    subprocess.run(full, check=True, capture_output=True)


class Txn:
    def __init__(self) -> None:
        self.changes: dict[str, BaseModel | None] = {}

    def put(self, key: str, value: BaseModel) -> None:
        self.changes[key] = value

    def delete(self, key: str) -> None:
        self.changes[key] = None

    def get(self, key: str) -> BaseModel | None:
        return self.changes.get(key)

    def values(self) -> Mapping[str, BaseModel | None]:
        return self.changes


class BenchIPAM:
    def __init__(self) -> None:
        self.ips: dict[PodID, IPv4Address] = {}

    def pod_ip(self, pod: PodID) -> IPv4Address | None:
        return self.ips.get(pod)


class BenchPods:
    def __init__(self) -> None:
        self.pods: dict[PodID, LocalPod] = {}

    def local_pods(self) -> Mapping[PodID, LocalPod]:
        return self.pods


class KubeState:
    def __init__(self, data: dict[str, dict[str, BaseModel]]) -> None:
        self.data = data

    def list(self, resource: str) -> Mapping[str, Any]:
        return self.data.get(resource, {})

    def get(self, resource: str, name: str) -> Any | None:
        return self.data.get(resource, {}).get(name)


def pod_ip(i: int) -> IPv4Address:
    return IPv4Address("10.1.0.0") + 10 + i


def pod_obj(ns: str, name: str, i: int, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"app": f"a{i % 20}", "tier": f"t{i % 5}", **(extra or {})}},
            "spec": {"nodeName": "bench", "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"podIP": str(pod_ip(i)), "phase": "Running"}}


def policy_obj(j: int, port: int = 80) -> dict[str, Any]:
    ns = f"ns-{j % NAMESPACES}"
    # ns-0's policies select every pod there (a pod added to ns-0 is selected by all 20 of them).
    selector = {} if j % NAMESPACES == 0 else {"matchLabels": {"tier": f"t{(j // NAMESPACES) % 5}"}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"pol-{j}", "namespace": ns},
            "spec": {"podSelector": selector, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [
                         {"from": [{"podSelector": {"matchLabels": {"app": f"a{j % 20}"}}}],
                          "ports": [{"protocol": "TCP", "port": port}, {"protocol": "TCP", "port": "http"}]},
                         {"from": [{"namespaceSelector": {"matchLabels": {"team": f"team{j % 3}"}},
                                    "podSelector": {"matchExpressions": [
                                        {"key": "tier", "operator": "In", "values": ["t1", "t2"]}]}}]},
                         {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"10.1.{j % 200}.0/24"]}}],
                          "ports": [{"protocol": "UDP", "port": 9000, "endPort": 9100}]},
                     ],
                     "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "UDP", "port": 53}]},
                                {"to": [{"podSelector": {"matchLabels": {"app": f"a{j % 20}"}}}]}]}}


def model(keyword: str, obj: dict[str, Any]) -> BaseModel:
    return convert(keyword, obj)[1]


async def committed(scheduler: KVScheduler, txn: Txn) -> None:
    result = await scheduler.commit(txn.changes)
    if not result.ok:
        raise RuntimeError(f"commit failed: {result.errors}")


async def run_bench(node_ns: str, pods: int, policies: int, rounds: int) -> dict[str, float]:
    ipam, local = BenchIPAM(), BenchPods()
    plugin = PolicyPlugin(PolicyConfig(namespace=node_ns), ipam=ipam, podmanager=local)  # type: ignore[arg-type]
    scheduler = KVScheduler()
    scheduler.register_descriptor(NftTableDescriptor())
    data: dict[str, dict[str, BaseModel]] = {"namespace": {}, "pod": {}, "policy": {}}
    for n in range(NAMESPACES):
        data["namespace"][f"ns-{n}"] = model("namespace", {"metadata": {
            "name": f"ns-{n}", "labels": {"team": f"team{n % 3}"}}})
    for i in range(pods):
        ns, name = f"ns-{i % NAMESPACES}", f"pod-{i}"
        data["pod"][f"{ns}/{name}"] = model("pod", pod_obj(ns, name, i))
        pid = PodID(name, ns)
        ipam.ips[pid] = pod_ip(i)
        local.pods[pid] = LocalPod(name=name, namespace=ns, container_id=f"c{i}", netns_path="/x")
    for j in range(policies):
        p = policy_obj(j)
        data["policy"][f"{p['metadata']['namespace']}/{p['metadata']['name']}"] = model("policy", p)

    start = time.perf_counter()
    txn = Txn()
    with tuning.gc_paused():  # as the controller runs its handlers
        plugin.resync(DBResync(data, {}), KubeState(data), 1, txn)
    result = await scheduler.commit(txn.changes, resync=ResyncMode.FULL)
    full_render_s = time.perf_counter() - start
    if not result.ok:
        raise RuntimeError(f"full render failed: {result.errors}")

    adds = []
    for k in range(rounds):
        i = pods + k
        name, ns = f"new-{k}", "ns-0"
        new_pod = model("pod", {**pod_obj(ns, name, i), "status": {"phase": "Pending"}})
        start = time.perf_counter()
        txn = Txn()
        with tuning.gc_paused():
            plugin.update(KubeStateChange("pod", f"{name}/namespace/{ns}", None, new_pod), txn)
        await committed(scheduler, txn)
        pid = PodID(name, ns)
        ipam.ips[pid] = pod_ip(i)
        local.pods[pid] = LocalPod(name=name, namespace=ns, container_id=f"n{k}", netns_path="/x")
        start = time.perf_counter()
        txn = Txn()
        with tuning.gc_paused():
            plugin.update(AddPod(local.pods[pid]), txn)
        await committed(scheduler, txn)
        adds.append((time.perf_counter() - start) * 1000)

    changes = []
    prev = data["policy"]["ns-0/pol-0"]
    for k in range(rounds):
        new = model("policy", policy_obj(0, port=81 if k % 2 == 0 else 80))
        start = time.perf_counter()
        txn = Txn()
        with tuning.gc_paused():
            plugin.update(KubeStateChange("policy", "pol-0/namespace/ns-0", prev, new), txn)
        await committed(scheduler, txn)
        changes.append((time.perf_counter() - start) * 1000)
        prev = new

    info = next(p for p in plugin.describe()["pods"] if p["pod"] == "ns-0/new-0")
    return {
        "pods": pods,
        "policies": policies,
        "full_render_s": round(full_render_s, 3),
        "pod_add_ms": round(statistics.median(adds), 2),
        "pod_add_policies": len(info["policies"]),
        "policy_change_ms": round(statistics.median(changes), 2),
        "rule_sets": len(plugin.renderer.rendered().tables),
        "peer_sets": len(plugin.renderer.rendered().peer_sets),
    }


# ------------------------------------------------------------------ throughput

def throughput(client_ns: str, server_ip: str, seconds: float, port: int) -> float:
    """Bytes/s of one TCP stream from ``client_ns`` to the sink at ``server_ip:port``."""
    # Sockets belong to the namespace they are made in; the work happens in this thread.
    sock = run_in_namespace(client_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.settimeout(10)
    sock.connect((server_ip, port))
    chunk = b"\0" * 65536
    sent = 0
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        sock.sendall(chunk)
        sent += len(chunk)
    sock.close()
    return sent / (time.perf_counter() - start)


SINK = """
import socket, sys, threading
srv = socket.create_server(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
def drain(c):
    with c:
        while c.recv(1 << 20):
            pass
while True:
    c, _ = srv.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
"""


def start_sink(server_ns: str, port: int) -> subprocess.Popen[str]:
    """A TCP sink process in ``server_ns`` (its own process: no GIL shared with the sender)."""
    proc = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", SINK, str(port)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the throughput sink did not start")
    return proc


def main() -> None:
    agent_process_policy()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=1.0, help="per throughput sample")
    parser.add_argument("--samples", type=int, default=5, help="throughput samples with and without")
    args = parser.parse_args()
    tag = f"polb{os.getpid() % 100000}"
    node, p1, p2 = f"{tag}-n", f"{tag}-p1", f"{tag}-p2"
    for ns in (node, p1, p2):
        sh("ip", "netns", "add", ns)
    try:
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=node)
        # pod-0 -> pod-10, both in ns-0: allowed by the bench policies (egress to app a0/a10 pods
        # of ns-0, ingress from them on the named port "http" = 8080), so the stream crosses the
        # egress chain and the ingress chain of the table.
        server = pod_ip(10)
        for pod_ns, idx, ip in ((p1, 1, pod_ip(0)), (p2, 2, server)):
            sh("ip", "link", "add", f"v{idx}", "netns", node, "type", "veth", "peer", "name", "eth0",
               "netns", pod_ns)
            sh("ip", "link", "set", "lo", "up", ns=pod_ns)
            sh("ip", "link", "set", "eth0", "up", ns=pod_ns)
            sh("ip", "link", "set", f"v{idx}", "up", ns=node)
            sh("ip", "addr", "add", f"{ip}/32", "dev", "eth0", ns=pod_ns)
            sh("ip", "addr", "add", f"169.254.1.{idx}/32", "dev", f"v{idx}", ns=node)
            sh("ip", "route", "add", f"169.254.1.{idx}", "dev", "eth0", ns=pod_ns)
            sh("ip", "route", "add", "default", "via", f"169.254.1.{idx}", "dev", "eth0", ns=pod_ns)
            sh("ip", "route", "add", f"{ip}/32", "dev", f"v{idx}", ns=node)
        port = 8080
        sink = start_sink(p2, port)
        result = asyncio.run(run_bench(node, args.pods, args.policies, args.rounds))
        saved = subprocess.run(["ip", "netns", "exec", node, "nft", "list", "table", "inet", "contiv-policy"],
                               check=True, capture_output=True, text=True).stdout
        # Alternate with and without the table (same streams, same machine load), medians.
        with_pol, baseline = [], []
        for _ in range(args.samples):
            with_pol.append(throughput(p1, str(server), args.seconds, port))
            sh("nft", "delete", "table", "inet", "contiv-policy", ns=node)
            baseline.append(throughput(p1, str(server), args.seconds, port))
            subprocess.run(["ip", "netns", "exec", node, "nft", "-f", "-"], input=saved, text=True, check=True)
        result["throughput_ratio"] = round(statistics.median(with_pol) / statistics.median(baseline), 3)
        result["throughput_gbit_s"] = round(statistics.median(baseline) * 8 / 1e9, 2)
        sink.kill()
        sink.wait()
    finally:
        for ns in (node, p1, p2):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
    goals = {"full_render_s": "<= 2", "pod_add_ms": "<= 30", "policy_change_ms": "<= 50",
             "throughput_ratio": ">= 0.9"}
    print(f"{'metric':<20} {'measured':>10}  goal")
    for key, value in result.items():
        print(f"{key:<20} {value:>10}  {goals.get(key, '')}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
