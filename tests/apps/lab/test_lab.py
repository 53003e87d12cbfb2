"""A real 3-node lab: namespaces, etcd, contiv-ksr, one contiv-agent per node, pods wired by
contiv-cni. Connectivity, agent crash, etcd outage, node removal, and a clean ``down``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.lab import etcd as lab_etcd
from apps.lab import netns
from apps.lab.cluster import Lab
from apps.lab.pods import Kubelet, probe
from apps.lab.state import ETCD_HOST

pytestmark = pytest.mark.netns

LAB = f"lt{os.getpid() % 100000}"


def pod(name: str, node: str, ns: str = "default") -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "containers": [{"name": "echo", "image": "lab/echo"}]}}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    lab = Lab(LAB)
    try:
        lab.up(3)
        Kubelet(lab).apply([pod(f"p{i}", f"node{(i % 3) + 1}") for i in range(6)])
        yield lab
    finally:
        Lab(LAB).down()


def pods_by_node(lab: Lab, node: str) -> list[str]:
    return sorted(k for k, p in lab.state.pods.items() if p.node == node)


def etcdctl(lab: Lab, *args: str) -> str:
    out = netns.run(lab_etcd.etcdctl(lab.state, *args),
                    netns=lab.state.underlay_ns, check=False)
    return out.stdout


def wait_for(check, timeout_s: float = 30.0, step: float = 0.3):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def test_all_pairs_of_six_pods_across_three_nodes_reach_each_other(lab: Lab) -> None:
    assert {p.node for p in lab.state.pods.values()} == {"node1", "node2", "node3"}
    rows = probe(lab)
    assert len(rows) == 30
    failed = [r for r in rows if not (r["ping"] and r["tcp"])]
    assert failed == []


def test_agent_sigkill_and_restart_loses_at_most_two_pings_and_keeps_ips(lab: Lab) -> None:
    src = lab.state.pods["default/p0"]  # on node1
    dst = lab.state.pods["default/p1"]  # on node2
    before = {k: p.ip for k, p in lab.state.pods.items()}
    ipam_before = (lab.internal_state("node2") or {}).get("ipam", {}).get("allocations")
    ping = subprocess.Popen(["ip", "netns", "exec", src.netns, "ping", "-i", "0.1", "-W", "1", dst.ip],
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        lab.kill_agent("node2", sig=signal.SIGKILL)
        time.sleep(0.5)
        lab.start_agent("node2")
        lab.wait_agent_ready("node2")
        lab.wait_converged()
        time.sleep(1.0)
    finally:
        ping.send_signal(signal.SIGINT)
        out, _ = ping.communicate(timeout=10)
    match = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert match, out
    sent, received = int(match.group(1)), int(match.group(2))
    assert sent >= 20
    assert sent - received <= 2, out
    ipam_after = (lab.internal_state("node2") or {}).get("ipam", {}).get("allocations")
    assert ipam_after == ipam_before and ipam_after
    assert {k: p.ip for k, p in lab.state.pods.items()} == before
    # A new pod after the restart gets a fresh address on that node.
    new = Kubelet(lab).add_pod(pod("after-restart", "node2"))
    assert new.ip and new.ip not in before.values()
    assert not [r for r in probe(lab) if not (r["ping"] and r["tcp"])]
    Kubelet(lab).delete_pod("default", "after-restart")


def test_etcd_outage_keeps_pods_connected_and_converges_when_back(lab: Lab) -> None:
    lab.etcd_stop()
    try:
        time.sleep(30)
        assert not [r for r in probe(lab) if not (r["ping"] and r["tcp"])]
        added = Kubelet(lab).add_pod(pod("during-outage", "node3"))
        assert added.ip
        rows = [r for r in probe(lab) if "during-outage" in (r["from"] + r["to"])]
        assert rows and all(r["ping"] and r["tcp"] for r in rows)
    finally:
        lab.etcd_start()
    # KSR writes the new pod once etcd is back; nodesync and IPAM catch up too.
    key = "/vnf-agent/contiv-ksr/k8s/pod/during-outage/namespace/default"
    assert wait_for(lambda: etcdctl(lab, "get", key, "--print-value-only").strip(), 60)
    ipam_keys = ("get", "--prefix", "/vnf-agent/node3/ipam/", "--keys-only")
    assert wait_for(lambda: "during-outage" in etcdctl(lab, *ipam_keys), 60)
    lab.wait_converged()
    for name in lab.state.nodes:
        # Each agent's etcd health probe notices etcd is back on its next round (every few
        # seconds), which may come after the mesh converged: wait for it, do not sample.
        lab.wait_agent_ready(name, timeout_s=120)
    Kubelet(lab).delete_pod("default", "during-outage")


def test_removed_node_leaves_every_mesh(lab: Lab) -> None:
    node = lab.add_node()
    assert node.name == "node4"
    for name in ("node1", "node2", "node3"):
        remotes = (lab.internal_state(name) or {}).get("ipnet", {}).get("remotes", {})
        assert "node4" in remotes
    lab.remove_node("node4")  # waits until no agent meshes with it
    for name in ("node1", "node2", "node3"):
        remotes = (lab.internal_state(name) or {}).get("ipnet", {}).get("remotes", {})
        assert set(remotes) == {"node1", "node2", "node3"} - {name}
        routes = netns.run(["ip", "route"], netns=lab.node(name).netns).stdout
        assert f"via {node.ip.split('/')[0]}" not in routes
    assert "node4" not in etcdctl(lab, "get", "--prefix", "/vnf-agent/contiv-ksr/allocatedIDs/")
    assert not [r for r in probe(lab) if not (r["ping"] and r["tcp"])]


def test_down_leaves_nothing_behind(lab: Lab) -> None:
    pids = [p for p in [lab.state.etcd_pid, lab.state.ksr_pid,
                        *(n.agent_pid for n in lab.state.nodes.values()),
                        *(p.echo_pid for p in lab.state.pods.values())] if p]
    assert pids and all(netns.pid_alive(p) for p in pids)
    # Simulate a crashed lab: the state file is lost, down must still find everything by name.
    (lab.root / "lab.json").unlink()
    Lab(LAB).down()
    assert netns.ns_list(LAB + "-") == []
    assert not any(netns.pid_alive(p) for p in pids)
    assert not Path(lab.root).exists()
    out = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout
    assert ETCD_HOST not in out  # nothing leaked into the host namespace
