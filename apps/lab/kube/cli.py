"""``contiv-lab ... --kubernetes``: the commands of the lab on a real Kubernetes cluster.

    contiv-lab up --kubernetes [--nodes 2] [--kube-bin-dir DIR]   # cluster, images, kubectl apply
    contiv-lab status             # nodes, contiv's pods, workload pods
    contiv-lab apply -f FILE      # kubectl apply (e.g. examples/kube/demo.yaml), waits for Ready
    contiv-lab delete -f FILE     # kubectl delete
    contiv-lab probe [--json]     # TCP matrix between workload pods (kubectl exec)
    contiv-lab probe --service NS/NAME [--count N]   # which backends answer, from nodes and pods
    contiv-lab probe --ports 8080 --protocols tcp,udp  # the port matrix (policies)
    contiv-lab kubectl -- ARGS    # kubectl as the cluster admin
    contiv-lab down

Once a Kubernetes lab of that name is up, every command above goes to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from apps.lab.kube import probes
from apps.lab.kube.cluster import KubeLab
from apps.lab.kube.contiv import (
    MANIFEST,
    contiv_gaps,
    contiv_images,
    contiv_pods,
    node_ready,
    pod_ready,
    wait_for,
)
from apps.lab.kube.state import KubeLabError

COMMANDS = ("up", "status", "apply", "delete", "probe", "down", "kubectl")


def handles(name: str, args: argparse.Namespace) -> bool:
    """Whether ``args`` is for the Kubernetes lab (``up --kubernetes``, or a lab of that name is up)."""
    if args.cmd == "up":
        return bool(getattr(args, "kubernetes", False))
    return args.cmd in COMMANDS and KubeLab(name).exists


def install_contiv(lab: KubeLab, manifest: Path = MANIFEST, timeout_s: float = 300.0) -> float:
    """``kubectl apply -f manifest``; waits until every node and contiv pod is Ready; seconds taken."""
    start = time.monotonic()
    lab.kubectl("apply", "-f", str(manifest))
    wait_for("contiv on every node", lambda: contiv_gaps(lab), timeout_s)
    return time.monotonic() - start


def apply_and_wait(lab: KubeLab, path: Path, timeout_s: float = 180.0) -> list[str]:
    out = lab.kubectl("apply", "-f", str(path)).stdout.splitlines()

    def pending() -> list[str]:
        names = [line.split()[0] for line in out if line.startswith("pod/")]
        missing = []
        for name in names:
            ns = _namespace_of(path, name.split("/", 1)[1])
            pod = lab.kubectl("get", "-n", ns, name, "-o", "json", check=False)
            if pod.returncode != 0 or not pod_ready(json.loads(pod.stdout)):
                missing.append(name)
        return missing

    wait_for(f"the pods of {path}", pending, timeout_s)
    return out


def _namespace_of(path: Path, pod: str) -> str:
    import yaml

    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "Pod" and doc["metadata"]["name"] == pod:
            return str(doc["metadata"].get("namespace", "default"))
    return "default"


def print_status(lab: KubeLab) -> None:
    print(f"lab {lab.name}: Kubernetes API server {lab.api_server} (kubectl: contiv-lab kubectl -- ...)")
    nodes = {n["metadata"]["name"]: n for n in lab.get_json("nodes").get("items", [])}
    print(f"{'NODE':<8} {'NETNS':<12} {'IP':<16} {'POD CIDR':<14} READY")
    for name, st in lab.state.nodes.items():
        node = nodes.get(name, {})
        print(f"{name:<8} {st.netns:<12} {st.ip:<16} {node.get('spec', {}).get('podCIDR', ''):<14} "
              f"{'yes' if node and node_ready(node) else 'no'}")
    print(f"{'CONTIV POD':<34} {'NODE':<8} READY")
    for pod in contiv_pods(lab):
        print(f"{pod['metadata']['name']:<34} {pod['spec'].get('nodeName', ''):<8} "
              f"{'yes' if pod_ready(pod) else 'no'}")
    workload = probes.workload_pods(lab)
    if workload:
        print(f"{'POD':<28} {'NODE':<8} IP")
        for pod in workload:
            print(f"{probes.pod_key(pod):<28} {pod['spec'].get('nodeName', ''):<8} {pod['status']['podIP']}")


def run(name: str, args: argparse.Namespace) -> int:
    lab = KubeLab(name)
    try:
        return _run(lab, args)
    except KubeLabError as err:
        print(f"contiv-lab: {err}", file=sys.stderr)
        return 1


def _run(lab: KubeLab, args: argparse.Namespace) -> int:
    if args.cmd == "up":
        print(f"== a Kubernetes cluster of {args.nodes} nodes, the images of deploy/contiv.yaml imported")
        lab.up(args.nodes, bin_dir=args.kube_bin_dir, images=contiv_images())
        print(f"== kubectl apply -f {MANIFEST.relative_to(MANIFEST.parents[1])}")
        took = install_contiv(lab)
        print(f"contiv Ready on every node {took:.1f}s after kubectl apply")
        print_status(lab)
    elif args.cmd == "status":
        print_status(lab)
    elif args.cmd == "apply":
        for path in args.filename:
            for line in apply_and_wait(lab, path):
                print(line)
    elif args.cmd == "delete":
        for path in args.filename or []:
            print(lab.kubectl("delete", "--ignore-not-found", "-f", str(path)).stdout, end="")
    elif args.cmd == "kubectl":
        out = lab.kubectl(*[a for a in args.command if a != "--"], check=False)
        sys.stdout.write(out.stdout)
        sys.stderr.write(out.stderr)
        return out.returncode
    elif args.cmd == "probe" and args.service:
        ns, _, svc = args.service.rpartition("/")
        rows = probes.probe_service(lab, ns or "default", svc, args.count)
        print(json.dumps(rows)) if args.json else probes.print_service_rows(rows)
        return 0 if all(r["answers"] and not r["failed"] for r in rows) else 1
    elif args.cmd == "probe" and args.ports:
        ports = [int(p) for p in args.ports.split(",")]
        matrix = probes.port_matrix(lab, ports, args.protocols.split(","), timeout_s=args.timeout)
        if args.json:
            print(json.dumps(matrix))
        else:
            for r in matrix:
                print(f"{r['from']:<24} -> {r['to']:<24} {r['target']:<24} {'.' if r['ok'] else 'X'}")
            print(f"{sum(r['ok'] for r in matrix)}/{len(matrix)} probes answered ('.' allowed, 'X' blocked)")
    elif args.cmd == "probe":
        rows = probes.pod_matrix(lab, timeout_s=args.timeout)
        print(json.dumps(rows)) if args.json else probes.print_pod_matrix(rows)
        return 0 if rows and all(r["tcp"] for r in rows) else 1
    elif args.cmd == "down":
        for line in lab.down():
            print(f"removed {line}")
    return 0
