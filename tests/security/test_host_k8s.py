"""On a real Kubernetes cluster with the committed deploy/contiv.yaml, unmodified: a pod isolated
for egress does not reach its node's etcd (contiv's, 12379), the agent's REST (9999) or the kubelet
(10250); the API server's port, which its policy allows through an ipBlock of the node's address,
is the witness (tests/security/hostprobe.py explains the method). Heavy: run it under
``flock /tmp/heavy.lock`` (it builds the images and starts a 2-node cluster); needs KUBE_BIN_DIR.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.lab.kube import probes
from apps.lab.kube.cli import install_contiv
from apps.lab.kube.cluster import KubeLab
from apps.lab.kube.contiv import pod_ready, wait_for
from tests.kubecluster import require_kubernetes, running_cluster
from tests.security.hostprobe import NODE_SERVICES

pytestmark = [pytest.mark.netns, pytest.mark.images, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
LAB = f"ks{os.getpid() % 10000}"
API_PORT = 6443
PORTS = list(NODE_SERVICES.values())

#: hostprobe.probe's method, run inside the pod (the image has Python, not the tests).
PROBE = """
import errno, json, select, socket, sys
ip, witness, ports = sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
socket.create_connection((ip, witness), timeout=20).close()  # primes the path (neighbours)
pending = {}
for port in ports:
    s = socket.socket(); s.setblocking(False); pending[port] = s; s.connect_ex((ip, port))
socket.create_connection((ip, witness), timeout=20).close()
_, w, _ = select.select([], list(pending.values()), [], 0)
out = {}
for port, s in pending.items():
    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if s in w else None
    out[port] = "dropped" if s not in w else ("reached" if err == 0 else
                                              "refused" if err == errno.ECONNREFUSED else str(err))
print(json.dumps(out))
"""

POD = """apiVersion: v1
kind: Namespace
metadata: {name: sec}
---
apiVersion: v1
kind: Pod
metadata: {name: prober, namespace: sec, labels: {app: prober}}
spec:
  nodeSelector: {kubernetes.io/hostname: NODE}
  tolerations: [{operator: Exists}]
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  containers:
    - name: sleep
      image: localhost/contiv-vswitch:0.1.0
      imagePullPolicy: Never
      command: ["/opt/contiv/bin/python", "-m", "apps.lab.echo", "--name", "sec/prober", "--port", "8080"]
      readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"""

POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-api-only, namespace: sec}
spec:
  podSelector: {matchLabels: {app: prober}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: NODE_IP/32}}], ports: [{protocol: TCP, port: 6443}]}]
"""

require_kubernetes()


@pytest.fixture(scope="module")
def cluster(contiv_images: str) -> Iterator[KubeLab]:
    with running_cluster(LAB, contiv_images, "k8s-security-logs") as lab:
        install_contiv(lab, timeout_s=300)
        yield lab


def probe(lab: KubeLab, node_ip: str) -> dict[int, str]:
    out = lab.kubectl("exec", "-n", "sec", "prober", "--", probes.IMAGE_PYTHON, "-c", PROBE, node_ip,
                      str(API_PORT), *map(str, PORTS), timeout=60)
    return {int(k): v for k, v in json.loads(out.stdout).items()}


def test_an_egress_isolated_pod_does_not_reach_its_nodes_services(cluster: KubeLab) -> None:
    node = cluster.control_plane  # the API server, contiv's etcd member, a kubelet, an agent
    cluster.kubectl("apply", "-f", "-", input=POD.replace("NODE", node.name))
    wait_for("the prober Ready", lambda: not pod_ready(cluster.get_json("pod", "-n", "sec", "prober")), 120)
    before = probe(cluster, node.ip)
    # etcd and the kubelet answer on the node's address; the REST is on 127.0.0.1 only (an RST)
    assert before == {NODE_SERVICES["etcd"]: "reached", NODE_SERVICES["kubelet"]: "reached",
                      NODE_SERVICES["rest"]: "refused"}, before
    cluster.kubectl("apply", "-f", "-", input=POLICY.replace("NODE_IP", node.ip))
    try:
        wait_for("the node's services dropped for the isolated pod",
                 lambda: [f"{p}: {s}" for p, s in probe(cluster, node.ip).items() if s != "dropped"], 90,
                 interval_s=1.0)
    finally:
        cluster.kubectl("delete", "networkpolicy", "-n", "sec", "egress-api-only")
    wait_for("the node's services open again",
             lambda: [] if probe(cluster, node.ip) == before else ["not yet"], 90, interval_s=1.0)
