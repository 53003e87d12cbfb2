"""Kubernetes benchmark: contiv on a real cluster (apps/lab/kube: kube-apiserver, controller-manager,
scheduler, kubelet and containerd v1.28), against Debian's ``bridge`` + ``host-local`` and
against kube-proxy (iptables mode), in the same run.

Run (root, ``make images`` first, KUBE_BIN_DIR set):
``python bench/k8s.py --json out.json [--pods 30] [--services 1000,5000]``.

* ``cold_apply_to_first_pod_ready_s``: a cold one-node cluster, ``kubectl apply -f deploy/contiv.yaml``
  (committed, unmodified) until a first workload pod is Ready; ``cold_apply_to_contiv_ready_s``
  until every contiv pod and the node are Ready.
* ``pod_startup_p50_s`` / ``pod_startup_p99_s``: ``--pods`` pods (the pause image) created at once
  on the node, each from its creation to Running with an IP (polled every 0.1 s, seen through
  the API server); ``bridge_pod_startup_*`` the same with Debian's ``bridge`` + ``host-local``
  as the node's only CNI network (contiv uninstalled, no service dataplane);
  ``pod_startup_p99_ratio_to_bridge`` = ours / bridge's p99 (goal <= 1.2; Kubernetes' SLO is a
  p99 <= 5 s).
* ``service_programming_<N>_s``: N Services (no selector, 2 endpoints each in an EndpointSlice)
  created through the API server; the time from the last one being created to it being
  programmed by contiv's agent (its ClusterIP in the nftables frontend map with both
  backends), and ``kube_proxy_programming_<N>_s`` the same for kube-proxy v1.28 (iptables mode,
  in a network namespace of its own, watching the same API server at the same time: the last
  Service's KUBE-SVC jump in its nat table). ``service_programming_ratio_to_kube_proxy`` = ours
  / kube-proxy's at the largest N (goal <= 0.5). ``create_<N>_s`` is the API server's time to
  take the objects (the same for both); ``ksr_reflection_<N>_s`` the same time for contiv-ksr
  writing the last EndpointSlice into contiv's etcd (read with the chart's netctl certificate).
  Each is observed by a poller of its own, so a slow one (iptables-save of 5,000 Services)
  delays no other.

``--parts pods,services,bridge`` picks what runs after the cold start; ``--no-kube-proxy`` times
contiv alone.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.lab import netns
from apps.lab.kube.cli import install_contiv
from apps.lab.kube.cluster import UNDERLAY, KubeLab, namespace_file
from apps.lab.kube.contiv import MANIFEST, contiv_images, node_ready, wait_for
from plugins.ksr.keys import endpointslice_key

PAUSE = "registry.k8s.io/pause:3.9"
BRIDGE_CONF = {
    "cniVersion": "1.0.0", "name": "bench-bridge",
    "plugins": [{"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/16"}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": True}}],
}
KP_IP = UNDERLAY + "200"


def pod_list(n: int, prefix: str) -> str:
    items = [{"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": f"{prefix}-{i}", "namespace": "bench", "labels": {"bench": prefix}},
              "spec": {"nodeSelector": {"kubernetes.io/hostname": "node1"}, "terminationGracePeriodSeconds": 0,
                       "automountServiceAccountToken": False,
                       "containers": [{"name": "p", "image": PAUSE, "imagePullPolicy": "Never"}]}}
             for i in range(n)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def pod_startup(lab: KubeLab, n: int, prefix: str) -> list[float]:
    """Create ``n`` pods at once; seconds from the create call to each Running with an IP."""
    start = time.monotonic()
    lab.kubectl("create", "-f", "-", input=pod_list(n, prefix))
    seen: dict[str, float] = {}
    deadline = start + 300
    while len(seen) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n - len(seen)} of {n} {prefix} pods not Running after 300 s")
        now = time.monotonic()
        for pod in lab.get_json("pods", "-n", "bench", "-l", f"bench={prefix}")["items"]:
            status = pod.get("status") or {}
            if status.get("phase") == "Running" and status.get("podIP"):
                seen.setdefault(pod["metadata"]["name"], now - start)
        time.sleep(0.1)
    lab.kubectl("delete", "pods", "-n", "bench", "-l", f"bench={prefix}", "--wait=true", timeout=300)
    return sorted(seen.values())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def service_objects(start: int, end: int) -> str:
    items: list[dict[str, Any]] = []
    for i in range(start, end):
        name = f"s{i}"
        items.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "bench"},
                      "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}})
        items.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": f"{name}-x", "namespace": "bench",
                                   "labels": {"kubernetes.io/service-name": name}},
                      "addressType": "IPv4",
                      "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                      "endpoints": [{"addresses": [f"10.250.{(i * 2 + k) // 256 % 256}.{(i * 2 + k) % 256}"],
                                     "conditions": {"ready": True}} for k in range(2)]})
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


class KubeProxy:
    """kube-proxy v1.28 in iptables mode, in a namespace of its own on the lab's underlay."""

    def __init__(self, lab: KubeLab) -> None:
        self.lab = lab
        self.ns = f"{lab.name}-kp"
        self.pid: int | None = None

    def start(self) -> None:
        netns.ns_add(self.ns)
        netns.veth(self.ns, "eth0", self.lab.underlay_ns, "kp0")
        netns.run(["ip", "link", "set", "kp0", "master", "br0"], netns=self.lab.underlay_ns)
        netns.run(["ip", "addr", "add", f"{KP_IP}/24", "dev", "eth0"], netns=self.ns)
        log = self.lab.log("kube-proxy")
        with open(log, "ab") as out:
            self.pid = subprocess.Popen([
                "nsenter", f"--net={namespace_file(self.ns)}", "--",
                str(self.lab.state.bin_dir / "kube-proxy"), f"--kubeconfig={self.lab.admin_conf}",
                "--proxy-mode=iptables", "--hostname-override=kube-proxy-bench", f"--bind-address={KP_IP}",
                "--cluster-cidr=10.1.0.0/16", "--metrics-bind-address=127.0.0.1:10249",
                "--healthz-bind-address=127.0.0.1:10256", "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0", "--v=1",
            ], stdout=out, stderr=out, start_new_session=True).pid

    def programmed(self, ip: str) -> bool:
        out = subprocess.run(["ip", "netns", "exec", self.ns, "iptables-save", "-t", "nat"],
                             capture_output=True, text=True, timeout=60).stdout
        return any(f"-d {ip}/32" in line and "-j KUBE-SVC-" in line for line in out.splitlines())

    def stop(self) -> None:
        if self.pid:
            netns.kill_pids([self.pid])
            self.pid = None
        netns.ns_delete(self.ns)


def agent_programmed(lab: KubeLab, ip: str) -> bool:
    out = lab.node("node1").run(["nft", "get", "element", "ip", "contiv-svc", "fe", f"{{ {ip} . tcp . 80 }}"],
                                check=False)
    return out.returncode == 0 and "lb-tcp-2" in out.stdout


def etcd_client(lab: KubeLab, workdir: Path) -> list[str]:
    """etcdctl's arguments to read contiv's etcd on node1: mutual TLS with the netctl (read-only)
    certificate of the chart's ``contiv-tls`` Secret."""
    data = lab.get_json("secret", "-n", "kube-system", "contiv-tls")["data"]
    for name in ("ca.crt", "netctl.crt", "netctl.key"):
        (workdir / name).write_bytes(base64.b64decode(data[name]))
    # Run in node1's namespace: its etcd also listens on 127.0.0.1, a name of its certificate.
    return ["etcdctl", "--endpoints=https://127.0.0.1:12379", f"--cacert={workdir / 'ca.crt'}",
            f"--cert={workdir / 'netctl.crt'}", f"--key={workdir / 'netctl.key'}"]


def ksr_reflected(lab: KubeLab, etcdctl: list[str], name: str) -> bool:
    """KSR has written the EndpointSlice ``<name>-x`` into contiv's etcd."""
    key = "/vnf-agent/contiv-ksr/" + endpointslice_key(f"{name}-x", "bench")
    out = lab.node("node1").run([*etcdctl, "get", "--print-value-only", key], check=False)
    if out.returncode != 0:  # a missing key is rc 0 and no output; this is etcdctl failing
        raise RuntimeError(f"etcdctl: {out.stderr.strip()[-300:]}")
    return bool(out.stdout.strip())


def first_true(checks: dict[str, Callable[[], bool]], since: float, limit: float) -> dict[str, float]:
    """Poll every check in a thread of its own (a slow one, such as iptables-save of 5,000
    Services, must not delay another's observation) until each has been true once; the seconds
    from ``since`` to that observation, per check."""
    done: dict[str, float] = {}
    failed: dict[str, str] = {}

    def poll(name: str, check: Callable[[], bool]) -> None:
        while time.monotonic() - since < limit:
            try:
                if check():
                    done[name] = time.monotonic() - since
                    return
            except Exception as exc:  # noqa: BLE001 - reported below, with the others' times
                failed[name] = str(exc)
                return
            time.sleep(0.05)

    threads = [threading.Thread(target=poll, args=item, daemon=True) for item in checks.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    missing = sorted(set(checks) - set(done))
    if missing:
        raise RuntimeError(f"not observed within {limit:.0f} s: {', '.join(missing)} (seen: {done}; "
                           f"failed: {failed})")
    return done


def service_programming(lab: KubeLab, proxy: KubeProxy | None, start: int, end: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as workdir:
        etcdctl = etcd_client(lab, Path(workdir))
        objects = Path(workdir, "services.json")
        objects.write_text(service_objects(start, end))
        t0 = time.monotonic()
        lab.kubectl("create", "-f", str(objects), "-o", "name", timeout=1800)
        created = time.monotonic()
        last = lab.get_json("service", "-n", "bench", f"s{end - 1}")["spec"]["clusterIP"]
        checks: dict[str, Callable[[], bool]] = {
            "ours": lambda: agent_programmed(lab, last),
            "ksr": lambda: ksr_reflected(lab, etcdctl, f"s{end - 1}"),
        }
        if proxy is not None:
            checks["kube_proxy"] = lambda: proxy.programmed(last)
        return {"create_s": created - t0, **first_true(checks, created, 600)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--services", default="1000,5000", help="cumulative service counts")
    parser.add_argument("--name", default=f"kb{os.getpid() % 1000}")
    parser.add_argument("--parts", default="pods,services,bridge",
                        help="what to measure after the cold start (comma-separated; default: all)")
    parser.add_argument("--no-kube-proxy", action="store_true", help="time contiv's agent alone")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    counts = [int(c) for c in args.services.split(",") if c]
    lab = KubeLab(args.name)
    res: dict[str, Any] = {}
    proxy = KubeProxy(lab)
    try:
        lab.up(1, images=contiv_images())
        start = time.monotonic()
        res["cold_apply_to_contiv_ready_s"] = round(install_contiv(lab), 2)
        lab.kubectl("create", "namespace", "bench")
        wait_for("the bench ServiceAccount", lambda: lab.kubectl("get", "sa", "-n", "bench", "default",
                                                                   check=False).returncode, 60)
        first = pod_startup(lab, 1, "first")
        res["cold_apply_to_first_pod_ready_s"] = round(time.monotonic() - start, 2)
        res["first_pod_startup_s"] = round(first[0], 2)
        if "pods" in parts:
            ours = pod_startup(lab, args.pods, "ours")
            res["pod_startup_p50_s"] = round(statistics.median(ours), 3)
            res["pod_startup_p99_s"] = round(percentile(ours, 99), 3)
        if "services" in parts:
            measure_services(lab, None if args.no_kube_proxy else proxy, counts, res)
        if "bridge" not in parts:
            return finish(res, args.json)
        lab.kubectl("delete", "namespace", "bench", "--wait=true", timeout=900)
        # Debian's bridge + host-local as the node's network: contiv uninstalled (its agent takes
        # its conflist away on the way out), then the reference conflist.
        lab.kubectl("delete", "-f", str(MANIFEST), "--wait=true", timeout=300)
        wait_for("node1 NotReady", lambda: node_ready(lab.get_json("node", "node1")), 120)
        node = lab.node("node1")
        for plugin in ("bridge", "host-local", "loopback", "portmap"):
            target = node.path("/opt/cni/bin") / plugin
            if not target.exists():
                target.write_bytes(Path("/usr/lib/cni", plugin).read_bytes())
                target.chmod(0o755)
        (node.path("/etc/cni/net.d") / "10-bridge.conflist").write_text(json.dumps(BRIDGE_CONF))
        wait_for("node1 Ready on bridge", lambda: not node_ready(lab.get_json("node", "node1")), 120)
        lab.kubectl("create", "namespace", "bench")
        wait_for("the bench ServiceAccount", lambda: lab.kubectl("get", "sa", "-n", "bench", "default",
                                                                   check=False).returncode, 60)
        bridge = pod_startup(lab, args.pods, "bridge")
        res["bridge_pod_startup_p50_s"] = round(statistics.median(bridge), 3)
        res["bridge_pod_startup_p99_s"] = round(percentile(bridge, 99), 3)
        for q in ("p99", "p50") if "pod_startup_p99_s" in res else ():
            res[f"pod_startup_{q}_ratio_to_bridge"] = round(
                res[f"pod_startup_{q}_s"] / res[f"bridge_pod_startup_{q}_s"], 3)
    finally:
        proxy.stop()
        lab.down()
    return finish(res, args.json)


def measure_services(lab: KubeLab, proxy: KubeProxy | None, counts: list[int], res: dict[str, Any]) -> None:
    """Services in cumulative steps, each timed for contiv's agent, KSR and kube-proxy."""
    if proxy is not None:
        proxy.start()
    done = 0
    for n in counts:
        r = service_programming(lab, proxy, done, n)
        done = n
        res[f"create_{n}_s"] = round(r["create_s"], 2)
        res[f"ksr_reflection_{n}_s"] = round(r["ksr"], 3)
        res[f"service_programming_{n}_s"] = round(r["ours"], 3)
        if proxy is not None:
            res[f"kube_proxy_programming_{n}_s"] = round(r["kube_proxy"], 3)
    if counts and proxy is not None:
        top = counts[-1]
        res["service_programming_ratio_to_kube_proxy"] = round(
            res[f"service_programming_{top}_s"] / max(res[f"kube_proxy_programming_{top}_s"], 1e-3), 3)
    if proxy is not None:
        proxy.stop()


def finish(res: dict[str, Any], path: Path | None) -> int:
    width = max((len(k) for k in res), default=0)
    for key, value in res.items():
        print(f"{key:<{width}}  {value}")
    if path:
        path.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
