"""``contiv-lab``: a Kubernetes-less cluster of network namespaces on one Linux machine.

    contiv-lab up --nodes 2          # underlay, etcd, contiv-ksr, one contiv-agent per node
    contiv-lab apply -f pods.yaml    # Namespaces, Pods (and Services, policies for KSR)
    contiv-lab probe [--json]        # pod-to-pod ping and TCP matrix
    contiv-lab probe --service NS/NAME [--count N]   # which backends answer, from every pod and node
    contiv-lab exec POD -- CMD...    # (or exec --node NODE -- CMD...) run in that namespace
    contiv-lab probe --ports 80,81 --protocols tcp,udp [--json]   # the port matrix (policies)
    contiv-lab delete -f FILE        # remove every object a manifest created
    contiv-lab status                # nodes, agents, pods, IPs
    contiv-lab down                  # remove everything (also after a crash)
    contiv-lab demo [--keep]         # up 2 nodes, apply examples/lab, probe, down

    contiv-lab up --kubernetes       # the same commands on a real Kubernetes cluster (apps/lab/kube/cli.py)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from apps.lab import env as lab_env
from apps.lab import netns
from apps.lab.agentconfig import AgentConfigError, load_overlay
from apps.lab.cluster import Lab
from apps.lab.dataplane import DATAPLANES
from apps.lab.errors import LabError
from apps.lab.kube import cli as kube_cli
from apps.lab.manifests import delete_objects
from apps.lab.matrix import parse_ports, parse_protocols, print_port_matrix, probe_matrix
from apps.lab.pods import Kubelet, load_manifests, probe
from apps.lab.policydemo import demo_policy
from apps.lab.svclab import demo_services, exec_in, print_service_probe, probe_service
from core.app import package_version

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "lab"


def print_matrix(rows: list[dict[str, Any]]) -> None:
    pods = sorted({r["from"] for r in rows} | {r["to"] for r in rows})
    cell = {(r["from"], r["to"]): ("ok" if r["ping"] and r["tcp"] else
                                   "ping" if r["ping"] else "tcp" if r["tcp"] else "--") for r in rows}
    width = max((len(p) for p in pods), default=4)
    header = "from / to"
    print(f"{header:<{width}}  " + "  ".join(f"{i:>4}" for i in range(1, len(pods) + 1)))
    for i, src in enumerate(pods, 1):
        line = "  ".join(f"{cell.get((src, dst), '.'):>4}" for dst in pods)
        print(f"{src:<{width}}  {line}   ({i})")
    good = sum(1 for r in rows if r["ping"] and r["tcp"])
    print(f"{good}/{len(rows)} pod pairs reach each other (ping and TCP)")


def print_status(lab: Lab) -> None:
    st = lab.state
    print(f"lab {st.name}: etcd {st.etcd_endpoint} ({'up' if netns.pid_alive(st.etcd_pid) else 'DOWN'}, "
          "mutual TLS), "
          f"ksr {'up' if netns.pid_alive(st.ksr_pid) else 'DOWN'}")
    print(f"{'NODE':<8} {'NETNS':<12} {'IP':<18} {'AGENT':<8} READY")
    for node in sorted(st.nodes.values(), key=lambda n: n.index):
        alive = netns.pid_alive(node.agent_pid)
        ready = lab.agent_ready(node.name) if alive else None
        print(f"{node.name:<8} {node.netns:<12} {node.ip:<18} {('pid ' + str(node.agent_pid)) if alive else 'DOWN':<8} "
              f"{'yes' if ready and ready.get('ready') else 'no'}")
    print(f"{'POD':<28} {'NODE':<8} {'NETNS':<12} IP")
    for key, pod in sorted(st.pods.items()):
        print(f"{key:<28} {pod.node:<8} {pod.netns:<12} {pod.ip}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contiv-lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true")
    parser.add_argument("--name", default=os.environ.get("CONTIV_LAB_NAME", "clab"),
                        help="lab name, the prefix of everything it makes (default clab)")
    sub = parser.add_subparsers(dest="cmd")
    up = sub.add_parser("up", help="bring up a cluster")
    up.add_argument("--nodes", type=int, default=2)
    up.add_argument("--etcd-members", type=int, default=1, help="etcd cluster size (1, 3, 5)")
    up.add_argument("--image", default="", metavar="IMAGE",
                    help="run agents and KSR from this contiv-vswitch image (make images) with podman")
    up.add_argument("--dataplane", choices=sorted(DATAPLANES), default="linux",
                    help="vpp: a real VPP per node owning its data NIC (CONTIV_TEST_VPP_DIR or vpp on PATH)")
    up.add_argument("--agent-config", type=Path, metavar="FILE",
                    help="YAML merged over every node's agent config (e.g. to enable a plugin)")
    up.add_argument("--kubernetes", action="store_true",
                    help="a real Kubernetes cluster (kubelet, containerd, API server) with deploy/contiv.yaml applied")
    up.add_argument("--kube-bin-dir", metavar="DIR",
                    help="--kubernetes: the Kubernetes binaries (default: KUBE_BIN_DIR)")
    ap = sub.add_parser("apply", help="create what Kubernetes manifests describe")
    ap.add_argument("-f", "--filename", type=Path, required=True, action="append")
    dl = sub.add_parser("delete", help="delete a pod, or every object of manifests (-f)")
    dl.add_argument("pod", nargs="?")
    dl.add_argument("-n", "--namespace", default="default")
    dl.add_argument("-f", "--filename", type=Path, action="append")
    pr = sub.add_parser("probe", help="pod-to-pod connectivity matrix, the port matrix, or a service's backends")
    pr.add_argument("--json", action="store_true")
    pr.add_argument("--service", metavar="NS/NAME", help="probe every address of a service instead")
    pr.add_argument("--count", type=int, default=10, help="connections per source and address (--service)")
    pr.add_argument("--ports", help="probe these ports (e.g. 80,81) instead of ping + the first port")
    pr.add_argument("--protocols", default="tcp", help="with --ports: tcp,udp,sctp (default tcp)")
    pr.add_argument("--timeout", type=float, default=1.0, help="seconds per probe (default 1)")
    ex = sub.add_parser("exec", help="run a command in a pod's or node's namespace: exec POD -- CMD...")
    ex.add_argument("pod", nargs="?")
    ex.add_argument("--node")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("status", help="nodes, agents, pods and IPs")
    sub.add_parser("down", help="remove everything the lab made")
    sub.add_parser("env", help="shell exports for contiv-netctl: eval \"$(contiv-lab env)\"")
    kc = sub.add_parser("kubectl", help="the Kubernetes lab: kubectl as the cluster admin (kubectl -- ARGS)")
    kc.add_argument("command", nargs=argparse.REMAINDER)
    nd = sub.add_parser("node", help="add or remove a node, restart or kill its agent")
    nd.add_argument("action", choices=["add", "remove", "restart-agent", "kill-agent"])
    nd.add_argument("node", nargs="?")
    nd.add_argument("--force", action="store_true", help="remove: also a node that runs pods")
    et = sub.add_parser("etcd", help="stop or start the lab's etcd")
    et.add_argument("action", choices=["stop", "start"])
    demo = sub.add_parser("demo", help="up, apply examples/lab, probe, down")
    demo.add_argument("--nodes", type=int, default=2)
    demo.add_argument("--keep", action="store_true", help="leave the lab up")
    args = parser.parse_args(argv)
    if args.version:
        print(f"contiv-lab {package_version()}")
        return 0
    if args.cmd is None:
        parser.print_help()
        return 2
    if os.geteuid() != 0:
        print("contiv-lab needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    if kube_cli.handles(args.name, args):
        return kube_cli.run(args.name, args)
    if args.cmd == "kubectl":
        print(f"contiv-lab: no Kubernetes lab {args.name!r} is up (contiv-lab up --kubernetes)", file=sys.stderr)
        return 1
    lab = Lab(args.name)
    try:
        return run(lab, args)
    except (LabError, AgentConfigError) as err:
        print(f"contiv-lab: {err}", file=sys.stderr)
        return 1


def run(lab: Lab, args: argparse.Namespace) -> int:
    if args.cmd == "up":
        lab.up(args.nodes, load_overlay(args.agent_config) if args.agent_config else None,
               etcd_members=args.etcd_members, image=args.image,
               dataplane=args.dataplane)
        print_status(lab)
    elif args.cmd == "apply":
        kubelet = Kubelet(lab)
        for path in args.filename:
            kubelet.apply(load_manifests(path), report=lambda line: print(line, flush=True))
    elif args.cmd == "delete":
        if args.filename:
            for path in args.filename:
                for line in delete_objects(lab, load_manifests(path)):
                    print(line, flush=True)
        elif args.pod:
            Kubelet(lab).delete_pod(args.namespace, args.pod)
        else:
            raise LabError("delete needs a pod name or -f FILE")
    elif args.cmd == "exec":
        if args.node is not None and args.pod is not None:  # "exec --node N -- CMD": CMD took the POD slot
            args.command, args.pod = [args.pod, *args.command], None
        return exec_in(lab, args.command, pod=args.pod, node=args.node)
    elif args.cmd == "probe" and args.service:
        ns, _, name = args.service.rpartition("/")
        srows = probe_service(lab, ns or "default", name, args.count)
        print(json.dumps(srows)) if args.json else print_service_probe(srows)
        return 0 if all(r["answers"] and not r["failed"] for r in srows) else 1
    elif args.cmd == "probe" and args.ports:
        matrix = probe_matrix(lab, parse_ports(args.ports), parse_protocols(args.protocols), args.timeout)
        if args.json:
            print(json.dumps(matrix))
        else:
            print_port_matrix(matrix)
    elif args.cmd == "probe":
        rows = probe(lab)
        if args.json:
            print(json.dumps(rows))
        else:
            print_matrix(rows)
        return 0 if all(r["ping"] and r["tcp"] for r in rows) else 1
    elif args.cmd == "status":
        if not lab.exists:
            print(f"lab {lab.name} is not up")
            return 1
        print_status(lab)
    elif args.cmd == "env":
        if not lab.exists:
            raise LabError(f"lab {lab.name} is not up")
        print(lab_env.shell(lab.state))
    elif args.cmd == "down":
        for line in lab.down():
            print(f"removed {line}")
    elif args.cmd == "node":
        return node_command(lab, args.action, args.node, args.force)
    elif args.cmd == "etcd":
        lab.etcd_stop() if args.action == "stop" else lab.etcd_start()
    elif args.cmd == "demo":
        return demo(lab, args.nodes, args.keep)
    return 0


def node_command(lab: Lab, action: str, name: str | None, force: bool = False) -> int:
    if action == "add":
        print(f"added {lab.add_node().name}")
        return 0
    if name is None:
        raise LabError(f"'node {action}' needs a node name")
    if action == "remove":
        lab.remove_node(name, force=force)
    elif action == "kill-agent":
        lab.kill_agent(name)
    else:
        lab.kill_agent(name)
        lab.start_agent(name)
        lab.wait_agent_ready(name)
    return 0


def demo(lab: Lab, nodes: int, keep: bool) -> int:
    if lab.exists:
        lab.down()
        lab = Lab(lab.name)
    print(f"== contiv-lab up --nodes {nodes}")
    try:
        lab.up(nodes)
        print_status(lab)
        kubelet = Kubelet(lab)
        for path in sorted(EXAMPLES.glob("*.yaml")):
            print(f"== contiv-lab apply -f {path.relative_to(EXAMPLES.parents[1])}")
            for line in kubelet.apply(load_manifests(path)):
                print(line)
        print("== contiv-lab probe")
        rows = probe(lab)
        print_matrix(rows)
        ok = all(r["ping"] and r["tcp"] for r in rows) and demo_services(lab, EXAMPLES)
        ok = demo_policy(lab, EXAMPLES) and ok
    finally:
        if not keep:
            print("== contiv-lab down")
            lab.down()
    if keep:
        print(f"lab {lab.name} left up: 'contiv-lab status', 'contiv-lab down'")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
