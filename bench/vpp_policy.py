"""Pod ADD on VPP with NetworkPolicies: the policy plugin (processor + VPP ACL renderer) and the
KV scheduler into VPP, on a node with ``--pods`` local pods (200) and ``--policies`` policies (50).

* ``pod_add_ms``: one more pod (its KSR pod event, then its AddPod), from the AddPod's handler
  to the committed transaction, p50 over ``--rounds``;
* ``pod_add_render_ms``: the AddPod's handler alone (what the plugin and renderer compute);
* ``pod_add_values``: values the AddPod's transaction carries (put or deleted), p50: what the
  scheduler has to compare;
* ``full_render_s``: the first resync with every pod and policy, into VPP.

Pods and policies are ``bench/policy.py``'s (10 namespaces, a pod in ns-0 selected by 5 of 50
policies). Each pod's VPP interface is a loopback named as ipnet's VPP renderer names it. On a
real VPP when one is installed (``CONTIV_TEST_VPP_DIR`` or ``vpp`` on PATH), else the stand-in.
Usage: ``python bench/vpp_policy.py --json out.json [--pods 200] [--policies 50]`` (root).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from policy import NAMESPACES, BenchIPAM, BenchPods, KubeState, Txn, model, pod_ip, pod_obj, policy_obj
from table import agent_process_policy, emit
from vpp_scale import Target

from core import tuning
from plugins.controller.events import DBResync, KubeStateChange
from plugins.ipnet.renderer.vpp import VppRenderer, pod_interface_name
from plugins.kvscheduler.api import ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.podmanager.api import AddPod, LocalPod, PodID
from plugins.policy.config import PolicyConfig
from plugins.policy.plugin import PolicyPlugin
from plugins.vpp import model as m
from plugins.vpp.connection import VPPConnection
from plugins.vpp.descriptors import all_descriptors
from plugins.vpp.index import Indexes


class Plan(BenchIPAM):
    """IPAM as the policy plugin reads it: the pods' addresses and this node's pod subnet."""

    def plan(self, node_id: int | None = None) -> Any:
        return SimpleNamespace(pod_subnet=IPv4Network("10.1.0.0/24"))


class IPNet:
    """ipnet as the policy plugin asks it: which dataplane, each wired pod's VPP interface."""

    def __init__(self, pods: BenchPods) -> None:
        self.pods = pods
        self.vpp = VppRenderer()
        self.config = SimpleNamespace(dataplane="vpp", nooverlay=False)  # what older policy plugins read
        self.renderer = self.vpp

    def dataplane(self) -> str:
        return "vpp"

    def node_namespace(self) -> str:
        return ""

    def pod_interface_name(self, pod: PodID) -> str | None:
        local = self.pods.pods.get(pod)
        return None if local is None else pod_interface_name(local.container_id, local.interface_name)

    def outbound_interfaces(self) -> tuple[str, ...]:
        return self.vpp.outbound_interfaces(vxlan=True)


def loopback(name: str) -> tuple[str, m.Interface]:
    return m.interface_key(name), m.Interface(name=name, type=m.InterfaceType.LOOPBACK)


async def run(target: Target, pods: int, policies: int, rounds: int) -> dict[str, Any]:
    ipam, local = Plan(), BenchPods()
    ipnet = IPNet(local)
    plugin = PolicyPlugin(PolicyConfig(), ipam=ipam, podmanager=local, ipnet=ipnet)  # type: ignore[arg-type]
    conn = VPPConnection(target.api_socket, target.api_dir, reply_timeout_s=30)
    await conn.connect()
    scheduler = KVScheduler(verify=False)
    for descriptor in all_descriptors(conn, Indexes()):
        scheduler.register_descriptor(descriptor)
    try:
        data: dict[str, dict[str, Any]] = {"namespace": {}, "pod": {}, "policy": {}}
        for n in range(NAMESPACES):
            data["namespace"][f"ns-{n}"] = model("namespace", {"metadata": {
                "name": f"ns-{n}", "labels": {"team": f"team{n % 3}"}}})
        interfaces = dict(loopback(name) for name in ipnet.outbound_interfaces())
        for i in range(pods + rounds):
            interfaces.update([loopback(pod_interface_name(f"c{i}", "eth0"))])
        for i in range(pods):
            ns, name = f"ns-{i % NAMESPACES}", f"pod-{i}"
            data["pod"][f"{ns}/{name}"] = model("pod", pod_obj(ns, name, i))
            pid = PodID(name, ns)
            ipam.ips[pid] = pod_ip(i)
            local.pods[pid] = LocalPod(name=name, namespace=ns, container_id=f"c{i}", netns_path="/x")
        for j in range(policies):
            p = policy_obj(j)
            data["policy"][f"{p['metadata']['namespace']}/{p['metadata']['name']}"] = model("policy", p)
        result = await scheduler.commit(interfaces)
        assert result.ok, result.errors

        start = time.perf_counter()
        txn = Txn()
        with tuning.gc_paused():
            plugin.resync(DBResync(data, {}), KubeState(data), 1, txn)
        result = await scheduler.commit({**interfaces, **{k: v for k, v in txn.changes.items() if v is not None}},
                                        resync=ResyncMode.FULL)
        full_render_s = time.perf_counter() - start
        assert result.ok, list(result.errors.items())[:3]

        adds, renders, sizes = [], [], []
        for k in range(rounds):
            i = pods + k
            name, ns = f"new-{k}", "ns-0"
            txn = Txn()
            plugin.update(KubeStateChange("pod", f"{name}/namespace/{ns}", None, model("pod", pod_obj(ns, name, i))),
                          txn)
            result = await scheduler.commit(txn.changes)
            assert result.ok, result.errors
            pid = PodID(name, ns)
            ipam.ips[pid] = pod_ip(i)
            local.pods[pid] = LocalPod(name=name, namespace=ns, container_id=f"c{i}", netns_path="/x")
            start = time.perf_counter()
            txn = Txn()
            with tuning.gc_paused():
                plugin.update(AddPod(local.pods[pid]), txn)
            rendered = time.perf_counter()
            result = await scheduler.commit(txn.changes)
            assert result.ok, list(result.errors.items())[:3]
            adds.append((time.perf_counter() - start) * 1000)
            renders.append((rendered - start) * 1000)
            sizes.append(len(txn.changes))
        return {
            "target": target.name,
            "pods": pods,
            "policies": policies,
            "full_render_s": round(full_render_s, 3),
            "pod_add_ms": round(statistics.median(adds), 2),
            "pod_add_render_ms": round(statistics.median(renders), 2),
            "pod_add_values": int(statistics.median(sizes)),
        }
    finally:
        await scheduler.close()
        await conn.close()


async def main() -> None:
    agent_process_policy()
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--policies", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    target = Target()
    target.start()
    try:
        emit(await run(target, args.pods, args.policies, args.rounds), args.json)
    finally:
        target.stop()


if __name__ == "__main__":
    asyncio.run(main())
