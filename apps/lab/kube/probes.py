"""Traffic probes on the real-Kubernetes lab: from inside pods (``kubectl exec``, through the API
server and the kubelet, as a user would) and from the nodes' namespaces.

The workload is the lab's echo server (:mod:`apps.lab.echo`) in the contiv-vswitch image, whose
Python also runs the probe modules :mod:`apps.lab.portprobe` and :mod:`apps.lab.svcprobe`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from apps.lab.kube.cluster import KubeLab, namespace_file
from apps.lab.kube.contiv import pod_ready
from apps.lab.kube.state import KubeLabError

IMAGE_PYTHON = "/opt/contiv/bin/python"


def workload_pods(lab: KubeLab, namespace: str = "") -> list[dict[str, Any]]:
    """Running, Ready pods with a pod-network IP (not hostNetwork, not contiv's own)."""
    args = ("pods", "-n", namespace) if namespace else ("pods", "-A")
    pods = [p for p in lab.get_json(*args).get("items", [])
            if not p["spec"].get("hostNetwork") and p["metadata"]["namespace"] != "kube-system"
            and (p.get("status") or {}).get("podIP") and pod_ready(p)]
    return sorted(pods, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))


def pod_key(pod: dict[str, Any]) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def exec_json(lab: KubeLab, pod: dict[str, Any], module: str, *args: str, timeout: float = 60.0) -> Any:
    """Run ``python -m module args`` in the pod's first container; its JSON output."""
    out = lab.kubectl("exec", "-n", pod["metadata"]["namespace"], pod["metadata"]["name"], "--",
                      IMAGE_PYTHON, "-m", module, *args, check=False, timeout=timeout)
    if out.returncode != 0:
        raise KubeLabError(f"probe in {pod_key(pod)} failed: {out.stderr.strip() or out.stdout.strip()}")
    return json.loads(out.stdout)


def node_json(lab: KubeLab, node: str, module: str, *args: str, timeout: float = 60.0) -> Any:
    """Run ``python -m module args`` (this machine's Python) in a node's network namespace."""
    ns = namespace_file(lab.state.nodes[node].netns)
    out = subprocess.run(["nsenter", f"--net={ns}", "--", sys.executable, "-m", module, *args],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise KubeLabError(f"probe on {node} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def pod_matrix(lab: KubeLab, namespace: str = "", port: int = 8080, timeout_s: float = 1.0) -> list[dict[str, Any]]:
    """TCP from every workload pod to every other one's ``port``: rows ``{from, to, tcp, answered_by}``."""
    pods = workload_pods(lab, namespace)
    rows: list[dict[str, Any]] = []
    for src in pods:
        targets = {f"{p['status']['podIP']}:{port}/tcp": pod_key(p) for p in pods if p is not src}
        if not targets:
            continue
        for r in exec_json(lab, src, "apps.lab.portprobe", "--timeout", str(timeout_s), *targets):
            rows.append({"from": pod_key(src), "to": targets[r["target"]], "tcp": bool(r["ok"]),
                         "answered_by": r.get("pod") or ""})
    return rows


def port_matrix(lab: KubeLab, ports: list[int], protocols: list[str], namespace: str = "",
                timeout_s: float = 1.0) -> list[dict[str, Any]]:
    """Every workload pod to every other's ``ports`` over ``protocols``: ``{from, to, target, ok}``."""
    pods = workload_pods(lab, namespace)
    rows: list[dict[str, Any]] = []
    for src in pods:
        targets = {f"{p['status']['podIP']}:{port}/{proto}": pod_key(p)
                   for p in pods if p is not src for port in ports for proto in protocols}
        for r in exec_json(lab, src, "apps.lab.portprobe", "--timeout", str(timeout_s), *targets):
            rows.append({"from": pod_key(src), "to": targets[r["target"]], "target": r["target"],
                         "ok": bool(r["ok"])})
    return rows


def service_targets(lab: KubeLab, namespace: str, name: str) -> list[str]:
    """``proto:ip:port`` of a Service's ClusterIP ports and its NodePorts on every node."""
    svc = lab.get_json("service", "-n", namespace, name)
    spec = svc["spec"]
    targets: list[str] = []
    for p in spec.get("ports", []):
        proto = p.get("protocol", "TCP").lower()
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if ip and ip != "None":
                targets.append(f"{proto}:{ip}:{p['port']}")
        if p.get("nodePort"):
            targets += [f"{proto}:{st.ip}:{p['nodePort']}" for st in lab.state.nodes.values()]
    return targets


def probe_service(lab: KubeLab, namespace: str, name: str, count: int = 10,
                  sources: str = "all") -> list[dict[str, Any]]:
    """Connect ``count`` times to each address of the service from every node and every workload
    pod: rows ``{source, target, answers: {pod: n}, failed}``."""
    targets = service_targets(lab, namespace, name)
    if not targets:
        raise KubeLabError(f"service {namespace}/{name} has no address to probe")
    rows: list[dict[str, Any]] = []
    args = ("--count", str(count), *targets)
    if sources in ("all", "nodes"):
        for node in lab.state.nodes:
            for target, res in node_json(lab, node, "apps.lab.svcprobe", *args).items():
                rows.append({"source": f"node/{node}", "target": target, "answers": res["answers"],
                             "failed": res["failed"]})
    if sources in ("all", "pods"):
        for pod in workload_pods(lab):
            for target, res in exec_json(lab, pod, "apps.lab.svcprobe", *args).items():
                rows.append({"source": pod_key(pod), "target": target, "answers": res["answers"],
                             "failed": res["failed"]})
    return rows


def print_pod_matrix(rows: list[dict[str, Any]]) -> None:
    pods = sorted({r["from"] for r in rows} | {r["to"] for r in rows})
    cell = {(r["from"], r["to"]): "ok" if r["tcp"] else "--" for r in rows}
    width = max((len(p) for p in pods), default=4)
    print(f"{'from / to':<{width}}  " + "  ".join(f"{i:>4}" for i in range(1, len(pods) + 1)))
    for i, src in enumerate(pods, 1):
        print(f"{src:<{width}}  " + "  ".join(f"{cell.get((src, dst), '.'):>4}" for dst in pods) + f"   ({i})")
    good = sum(1 for r in rows if r["tcp"])
    print(f"{good}/{len(rows)} pod pairs reach each other (TCP, through kubectl exec)")


def print_service_rows(rows: list[dict[str, Any]]) -> None:
    width = max((len(r["source"]) for r in rows), default=6)
    for r in rows:
        answers = " ".join(f"{pod.split('/')[-1]}:{n}" for pod, n in sorted(r["answers"].items()))
        failed = f"  failed:{r['failed']}" if r["failed"] else ""
        print(f"{r['source']:<{width}} -> {r['target']:<24} {answers}{failed}")
    good = sum(1 for r in rows if r["answers"] and not r["failed"])
    print(f"{good}/{len(rows)} source/address pairs answered every time")
