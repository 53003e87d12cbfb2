"""contiv on a real Kubernetes v1.28 cluster of 2 nodes (apps/lab/kube): real kube-apiserver,
controller-manager, scheduler, and on each node Debian's containerd and a real kubelet. contiv is
installed as a user installs it, ``kubectl apply -f deploy/contiv.yaml``, the committed file
unmodified, with the images of ``make images`` (this session's build) imported into every node.

In order: the cold start, traffic (pods on both nodes, ClusterIP and NodePort over both nodes,
a NetworkPolicy, a hostPort), a node reboot, rollouts of KSR and the vswitch DaemonSet (a new
image tag, then a changed ConfigMap) with a client probing all along, and uninstall/re-install.

Needs the Kubernetes binaries: KUBE_BIN_DIR (``.ci/run`` sets it when a Kubernetes release
archive lies beside the clone); without them every test here is skipped with that reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apps.lab.kube import probes
from apps.lab.kube.cli import apply_and_wait, install_contiv
from apps.lab.kube.cluster import KubeLab
from apps.lab.kube.contiv import MANIFEST, contiv_gaps, node_ready, pod_ready, wait_for
from apps.lab.kube.contiv import contiv_images as manifest_images
from apps.lab.kube.failures import reboot
from apps.lab.kube.state import KubeLabError
from tests.kubecluster import ROOT, manifest_aliases, require_kubernetes, running_cluster

pytestmark = [pytest.mark.netns, pytest.mark.images, pytest.mark.timeout(2400)]

DEMO = ROOT / "examples" / "kube" / "demo.yaml"
LAB = f"k{os.getpid() % 10000}"

require_kubernetes()


@pytest.fixture(scope="module")
def cluster(contiv_images: str) -> Iterator[KubeLab]:
    with running_cluster(LAB, contiv_images, "k8s-logs") as lab:
        yield lab


@pytest.fixture(scope="module")
def installed(cluster: KubeLab) -> dict[str, float]:
    """contiv applied on the cold cluster, then the demo workload; the times they took."""
    assert all(not node_ready(n) for n in cluster.get_json("nodes")["items"]), "Ready before any CNI"
    took = install_contiv(cluster, timeout_s=300)
    start = time.monotonic()
    apply_and_wait(cluster, DEMO)
    return {"contiv_ready_s": took, "workload_ready_s": time.monotonic() - start}


def full_matrix(lab: KubeLab) -> list[Any]:
    """What keeps the 4 demo pods from all reaching each other (a probe that cannot run yet, e.g.
    a container a rebooted node has not restarted, counts as not reaching)."""
    try:
        rows = probes.pod_matrix(lab, "demo", timeout_s=2.0)
    except KubeLabError as err:
        return [str(err)]
    if len(rows) != 12:
        return [f"{len(rows)} of 12 pairs probed"]
    return [r for r in rows if not r["tcp"]]


def wait_matrix(lab: KubeLab, timeout_s: float = 120.0) -> None:
    wait_for("every demo pod reaching every other", lambda: full_matrix(lab), timeout_s, interval_s=1.0)


def test_cold_start_every_contiv_pod_ready_and_pods_get_addresses(cluster: KubeLab,
                                                                  installed: dict[str, float]) -> None:
    print(f"cold start: contiv Ready {installed['contiv_ready_s']:.1f}s after kubectl apply, "
          f"the workload {installed['workload_ready_s']:.1f}s later")
    assert not contiv_gaps(cluster)
    pods = {p["metadata"]["name"]: p for p in cluster.get_json("pods", "-n", "demo")["items"]}
    assert set(pods) == {"web-1", "web-2", "client-1", "client-2"}
    for name, pod in pods.items():
        assert pod_ready(pod), name
        assert pod["status"]["podIP"].startswith("10.1."), pod["status"]
    # The nodes' meshes use their own addresses, as the kubelet reports them.
    for st in cluster.state.nodes.values():
        assert cluster.get_json("node", st.name)["status"]["addresses"][0]["address"] == st.ip


def test_pods_on_both_nodes_reach_each_other(cluster: KubeLab, installed: dict[str, float]) -> None:
    wait_matrix(cluster, timeout_s=60)


def test_clusterip_and_nodeport_balance_over_both_nodes(cluster: KubeLab, installed: dict[str, float]) -> None:
    svc = cluster.get_json("service", "-n", "demo", "web-np")
    # Allocated by the real API server, backends from the real EndpointSlice controller.
    assert svc["spec"]["clusterIP"].startswith("10.") and svc["spec"]["ports"][0]["nodePort"] == 30080
    slices = cluster.get_json("endpointslices", "-n", "demo", "-l", "kubernetes.io/service-name=web-np")
    assert len([e for s in slices["items"] for e in s["endpoints"]]) == 2
    for name in ("web", "web-np"):
        rows = probes.probe_service(cluster, "demo", name, count=12)
        assert rows and all(r["failed"] == 0 for r in rows), rows
        for r in rows:
            assert set(r["answers"]) == {"demo/web-1", "demo/web-2"}, r


def test_a_network_policy_isolates(cluster: KubeLab, installed: dict[str, float]) -> None:
    policy = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-clients, namespace: demo}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 8080}]}]
"""
    cluster.kubectl("apply", "-f", "-", input=policy)

    def wrong() -> list[str]:
        rows = probes.pod_matrix(cluster, "demo", timeout_s=1.0)
        allowed = {(r["from"], r["to"]) for r in rows if r["tcp"]}
        bad = []
        for r in rows:
            should = not r["to"].startswith("demo/web") or r["from"].startswith("demo/client")
            if should != ((r["from"], r["to"]) in allowed):
                bad.append(f"{r['from']}->{r['to']} {'answered' if not should else 'blocked'}")
        return bad

    try:
        wait_for("the policy enforced on both nodes", wrong, 90, interval_s=1.0)
    finally:
        cluster.kubectl("delete", "networkpolicy", "-n", "demo", "web-from-clients")
    wait_matrix(cluster, timeout_s=90)


def test_a_pod_with_a_host_port_answers_on_it(cluster: KubeLab, installed: dict[str, float]) -> None:
    pod = """apiVersion: v1
kind: Pod
metadata: {name: hostport, namespace: demo, labels: {app: hostport}}
spec:
  nodeSelector: {kubernetes.io/hostname: node2}
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  containers:
    - name: echo
      image: localhost/contiv-vswitch:0.1.0
      imagePullPolicy: Never
      command: ["/opt/contiv/bin/python", "-m", "apps.lab.echo", "--name", "demo/hostport", "--port", "8080"]
      ports: [{containerPort: 8080, hostPort: 18080}]
      readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"""
    cluster.kubectl("apply", "-f", "-", input=pod)
    wait_for("the hostPort pod Ready", lambda: not pod_ready(cluster.get_json("pod", "-n", "demo", "hostport")), 120)
    node2 = cluster.state.nodes["node2"].ip
    for source in ("node1", "node2"):
        out = probes.node_json(cluster, source, "apps.lab.svcprobe", "--count", "3", f"tcp:{node2}:18080")
        assert out[f"tcp:{node2}:18080"]["answers"] == {"demo/hostport": 3}, (source, out)
    cluster.kubectl("delete", "pod", "-n", "demo", "hostport", "--wait=true")


def reach_targets(lab: KubeLab) -> list[str]:
    pods = {p["metadata"]["name"]: p for p in lab.get_json("pods", "-n", "demo")["items"]}
    cip = lab.get_json("service", "-n", "demo", "web")["spec"]["clusterIP"]
    return [f"tcp:{pods['web-1']['status']['podIP']}:8080", f"tcp:{cip}:80"]


class Reach:
    """A client pod probing targets all along (apps.lab.reachprobe through kubectl exec -i)."""

    def __init__(self, lab: KubeLab, pod: str, targets: list[str]) -> None:
        self.proc = subprocess.Popen(
            lab.kubectl_command("exec", "-i", "-n", "demo", pod, "--", probes.IMAGE_PYTHON, "-m",
                                "apps.lab.reachprobe", "--interval", "0.2", "--timeout", "1", *targets),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> dict[str, dict[str, float]]:
        out, err = self.proc.communicate(input="", timeout=60)
        assert self.proc.returncode == 0, err
        stats: dict[str, dict[str, float]] = json.loads(out)
        return stats


def test_a_node_reboot_converges_and_the_other_node_keeps_its_traffic(cluster: KubeLab,
                                                                       installed: dict[str, float]) -> None:
    wait_matrix(cluster)
    reach = Reach(cluster, "client-1", [reach_targets(cluster)[0]])  # node1 to node1: must not notice
    time.sleep(0.5)
    reboot(cluster, "node2")
    cluster.start_runtime_and_kubelet("node2")
    wait_for("node2 and contiv back", lambda: contiv_gaps(cluster), 240, interval_s=1.0)
    wait_for("the demo pods Ready again",
             lambda: [p["metadata"]["name"] for p in cluster.get_json("pods", "-n", "demo")["items"]
                      if not pod_ready(p)], 180)
    wait_matrix(cluster, timeout_s=120)
    stats = reach.result()
    print(f"during node2's reboot, client-1 -> web-1: {stats}")
    for target, s in stats.items():
        assert s["ok"] > 0 and s["longest_outage_s"] < 3.0, (target, s)


def rollout(lab: KubeLab, kind: str, *change: str) -> None:
    lab.kubectl(*change)
    lab.kubectl("rollout", "status", "-n", "kube-system", kind, "--timeout=300s", timeout=330)
    wait_for("contiv Ready after the rollout", lambda: contiv_gaps(lab), 120)


def test_rollouts_of_ksr_and_the_vswitch_keep_pods_connected(cluster: KubeLab, installed: dict[str, float],
                                                            contiv_images: str) -> None:
    wait_matrix(cluster)
    new_tag = "rollout2"
    for src, dst in manifest_aliases(contiv_images).items():
        for node in cluster.state.nodes:
            cluster.tag_image(node, src, dst.rsplit(":", 1)[0] + ":" + new_tag)
    reach = Reach(cluster, "client-2", reach_targets(cluster))
    time.sleep(0.5)
    ksr = next(n for n in manifest_images() if "contiv-ksr" in n)
    vswitch = next(n for n in manifest_images() if "contiv-vswitch" in n)
    rollout(cluster, "deployment/contiv-ksr", "set", "image", "-n", "kube-system", "deployment/contiv-ksr",
            f"contiv-ksr={ksr.rsplit(':', 1)[0]}:{new_tag}")
    rollout(cluster, "daemonset/contiv-vswitch", "set", "image", "-n", "kube-system", "daemonset/contiv-vswitch",
            f"contiv-vswitch={vswitch.rsplit(':', 1)[0]}:{new_tag}",
            f"contiv-cni-install={vswitch.rsplit(':', 1)[0]}:{new_tag}")
    # A changed configuration, as an upgrade with new chart values applies it (the config
    # checksum annotation rolls both).
    changed = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "render.py"), "--set", "agent.logLevel=debug"],
        capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert changed != MANIFEST.read_text()
    cluster.kubectl("apply", "-f", "-", input=changed)
    cluster.kubectl("rollout", "status", "-n", "kube-system", "deployment/contiv-ksr", "--timeout=300s", timeout=330)
    cluster.kubectl("rollout", "status", "-n", "kube-system", "daemonset/contiv-vswitch", "--timeout=300s",
                    timeout=330)
    wait_for("contiv Ready after the configuration change", lambda: contiv_gaps(cluster), 120)
    wait_matrix(cluster)
    stats = reach.result()
    print(f"during the rollouts, client-2 saw: {stats}")
    for target, s in stats.items():
        assert s["ok"] > 0 and s["longest_outage_s"] < 5.0, (target, s)
    agent = cluster.get_json("configmap", "-n", "kube-system", "contiv-agent-cfg")["data"]["agent.yaml"]
    assert "default_level: debug" in agent


def test_uninstall_leaves_nodes_not_ready_and_reinstall_recovers(cluster: KubeLab,
                                                                 installed: dict[str, float]) -> None:
    cluster.kubectl("delete", "-f", str(MANIFEST), "--wait=true", timeout=300)

    def still_ready() -> list[str]:
        return [n["metadata"]["name"] for n in cluster.get_json("nodes")["items"] if node_ready(n)]

    wait_for("every node NotReady for networking", still_ready, 120)
    for node in cluster.get_json("nodes")["items"]:
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert "network" in ready["message"].lower() or "cni" in ready["message"].lower(), ready
    for st in cluster.state.nodes.values():
        assert not list(cluster.node(st.name).path("/etc/cni/net.d").glob("*contiv*")), st.name
    install_contiv(cluster, timeout_s=300)
    wait_matrix(cluster, timeout_s=180)
