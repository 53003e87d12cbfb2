"""``contiv-netctl``: what the contiv cluster looks like, from etcd and every node's agent.

    contiv-netctl nodes                         node IDs, addresses, agent readiness
    contiv-netctl pods [--node N]               pod IP, interfaces, node
    contiv-netctl ipam [--node N]               address plan, allocations, free addresses
    contiv-netctl services [--node N]           service frontends and backends (agents' view)
    contiv-netctl policies [--pod NS/NAME]      policies (agents' view)
    contiv-netctl scheduler dump|status KEY|history [--node N]
    contiv-netctl events [--node N]             controller event history
    contiv-netctl check                         cluster health summary (exit 1 on problems)

Output: aligned tables, or ``-o json`` / ``-o yaml``. Exit status: 0 fine, 1 ``check`` found
problems, 2 usage, 3 etcd unreachable, 4 an agent unreachable (what could be read is still
printed), 5 no such node/pod/key. Against the lab: ``eval "$(contiv-lab env)"``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from apps.netctl.check import run_checks
from apps.netctl.cluster import Cluster
from apps.netctl.output import FORMATS, render
from apps.netctl.sources import (
    EXIT_AGENT,
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_USAGE,
    AgentTLS,
    NetctlError,
    enter_netns,
    parse_agents,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="contiv-netctl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="store_true")
    p.add_argument("-o", "--output", choices=FORMATS, default="table")
    p.add_argument("--etcd", help="etcd endpoints host:port,... (env ETCD_ENDPOINTS)")
    p.add_argument("--netns", help="enter this network namespace first (env CONTIV_NETCTL_NETNS)")
    p.add_argument("--agent", action="append", default=[],
                   help="NODE=URL[;netns=NAME] of an agent's REST (env CONTIV_AGENTS, comma-separated)")
    p.add_argument("--token", help="the agents' REST bearer token (env CONTIV_AGENT_TOKEN, "
                                   "or a file in CONTIV_AGENT_TOKEN_FILE)")
    p.add_argument("--ca-file", help="CA certificate the agents' https:// REST is verified against "
                                     "(env CONTIV_AGENT_CA; default: the system's CAs)")
    p.add_argument("--agent-server-name",
                   help="name the agents' REST certificate must hold (env CONTIV_AGENT_SERVER_NAME; "
                        "default contiv-agent, the chart's shared certificate; \"\" = the URL's host)")
    p.add_argument("--timeout", type=float, default=3.0, help="etcd dial timeout in seconds")
    # -o also after the subcommand, as kubectl, calicoctl and cilium take it (there it wins;
    # SUPPRESS: absent there, the value given before the subcommand stays).
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("-o", "--output", choices=FORMATS, default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="cmd")
    sub.add_parser("nodes", help="node IDs, addresses and agent readiness", parents=[output])
    for name, what in (("pods", "pods: IP, interfaces, node"), ("ipam", "address plan and allocations"),
                       ("services", "service frontends and backends"), ("events", "controller event history")):
        sp = sub.add_parser(name, help=what, parents=[output])
        sp.add_argument("--node")
    pol = sub.add_parser("policies", help="network policies as the agents apply them", parents=[output])
    pol.add_argument("--node")
    pol.add_argument("--pod", help="only policies selecting this pod (NAMESPACE/NAME)")
    sch = sub.add_parser("scheduler", help="the KV scheduler of the agents", parents=[output])
    sch.add_argument("action", choices=["dump", "status", "history"])
    sch.add_argument("key", nargs="?", help="the key, for status")
    sch.add_argument("--node")
    sch.add_argument("--view", choices=["nb", "applied", "sb"], default="applied", help="for dump")
    sub.add_parser("check", help="cluster health summary; exit 1 when something is wrong", parents=[output])
    sp = sub.add_parser("probe", help="GET a URL; exit 0 when it answers 2xx (image health check)")
    sp.add_argument("url")
    return p


def token_from(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    if args.token:
        return str(args.token)
    if environ.get("CONTIV_AGENT_TOKEN"):
        return environ["CONTIV_AGENT_TOKEN"]
    path = environ.get("CONTIV_AGENT_TOKEN_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as err:
            raise NetctlError(f"cannot read CONTIV_AGENT_TOKEN_FILE {path}: {err}", EXIT_USAGE) from err
    return ""


def tls_from(args: argparse.Namespace, environ: Mapping[str, str]) -> AgentTLS:
    ca = args.ca_file if args.ca_file is not None else environ.get("CONTIV_AGENT_CA", "")
    name = args.agent_server_name
    if name is None:
        name = environ.get("CONTIV_AGENT_SERVER_NAME", AgentTLS.server_name)
    if ca and not Path(ca).is_file():
        raise NetctlError(f"the agents' CA file {ca} (CONTIV_AGENT_CA / --ca-file) does not exist", EXIT_USAGE)
    return AgentTLS(ca, name)


def probe(url: str) -> int:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3) as rsp:
            return 0 if 200 <= rsp.status < 300 else 1
    except OSError as err:
        print(f"contiv-netctl probe: {url}: {err}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    netns = args.netns or environ.get("CONTIV_NETCTL_NETNS")
    if netns:
        enter_netns(netns)
    token = token_from(args, environ)
    tls = tls_from(args, environ)
    spec = ",".join(args.agent) or environ.get("CONTIV_AGENTS", "")
    agents = parse_agents(spec, token, tls) if spec else None
    etcd = [e.strip() for e in (args.etcd or environ.get("ETCD_ENDPOINTS", "")).split(",") if e.strip()]
    cluster = Cluster(etcd, agents, token, environ, args.timeout, tls)
    fmt = args.output
    preamble: list[str] = []
    status = EXIT_OK
    if args.cmd == "nodes":
        data, rows, cols = cluster.nodes_view()
    elif args.cmd == "pods":
        data, rows, cols = cluster.pods_view(args.node)
    elif args.cmd == "ipam":
        data, rows, cols = cluster.ipam_view(args.node)
        if args.node:
            preamble = [f"node {data['node']} (ID {data['id']}): pod subnet {data['pod_subnet']}, "
                        f"gateway {data['gateway']}, {data['allocated']} allocated, "
                        f"{data['free'] if data['free'] is not None else '?'} free", ""]
    elif args.cmd == "services":
        data, rows, cols = cluster.services_view(args.node)
    elif args.cmd == "policies":
        data, rows, cols = cluster.policies_view(args.node, args.pod)
    elif args.cmd == "scheduler":
        data, rows, cols = cluster.scheduler_view(args.action, args.node, args.key, args.view)
    elif args.cmd == "events":
        data, rows, cols = cluster.events_view(args.node)
    elif args.cmd == "check":
        rows = run_checks(cluster)
        data, cols = rows, ["check", "ok", "detail"]
        if not all(r["ok"] for r in rows):
            status = EXIT_PROBLEMS
    else:
        raise NetctlError(f"unknown command {args.cmd}", EXIT_USAGE)
    print(render(data, fmt, rows, cols, preamble))
    for warning in cluster.warnings:
        print(f"contiv-netctl: warning: {warning}", file=sys.stderr)
    if status == EXIT_OK and cluster.agent_failed:
        status = EXIT_AGENT
    return status


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.version:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"contiv-netctl {version('contiv-py')}")
        except PackageNotFoundError:
            print("contiv-netctl 0.0.0+unknown")
        return EXIT_OK
    if args.cmd is None:
        parser().print_help()
        return EXIT_USAGE
    if args.cmd == "probe":
        return probe(args.url)
    try:
        return run(args, os.environ)
    except NetctlError as err:
        print(f"contiv-netctl: {err}", file=sys.stderr)
        return err.code
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
