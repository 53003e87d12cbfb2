"""``contiv-netctl check``: a cluster health summary, one line per finding.

Every node has an ID and a pod subnet (and no two share one), every agent is ready, no pod IP
is used twice, every IPAM allocation belongs to an existing pod of its node, KSR has synced
every resource. Exit status 1 when anything fails.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from apps.netctl.cluster import Cluster
from apps.netctl.sources import KSR_PREFIX


def _ip(value: Any) -> str:
    return str(value).split("/")[0] if value else ""


def run_checks(cluster: Cluster) -> list[dict[str, Any]]:
    """The findings: ``{"check", "ok", "detail"}`` each, failures first within a check."""
    snap = cluster.snap
    out: list[dict[str, Any]] = []

    def finding(check: str, problems: list[str], ok_detail: str) -> None:
        if problems:
            out.extend({"check": check, "ok": False, "detail": p} for p in problems)
        else:
            out.append({"check": check, "ok": True, "detail": ok_detail})

    nodes = cluster.nodes()
    ids = snap.node_ids()
    id_owners: dict[Any, list[str]] = defaultdict(list)
    for name, rec in ids.items():
        id_owners[rec.get("id")].append(name)
    problems = [f"node {n} has no allocated ID" for n in nodes if n not in ids]
    problems += [f"ID {i} is held by {', '.join(sorted(o))}" for i, o in id_owners.items() if len(o) > 1]
    finding("node-ids", problems, f"{len(ids)} nodes have distinct IDs")

    subnets: dict[str, list[str]] = defaultdict(list)
    ready_problems: list[str] = []
    subnet_problems: list[str] = []
    for name in nodes:
        ready = cluster.agent_get(name, "/readiness")
        if ready is None:
            ready_problems.append(f"agent of {name} is unreachable")
            subnet_problems.append(f"node {name}: subnet unknown (agent unreachable)")
            continue
        if not ready.get("ready"):
            bad = sorted(c for c, s in (ready.get("components") or {}).items() if not s.get("ok"))
            ready_problems.append(f"agent of {name} is not ready ({', '.join(bad) or 'starting'})")
        plan = cluster.agent_get(name, "/contiv/v1/ipam") or {}
        subnet = plan.get("podSubnetThisNode")
        if subnet:
            subnets[subnet].append(name)
        else:
            subnet_problems.append(f"node {name} has no pod subnet")
    subnet_problems += [f"subnet {s} is used by {', '.join(sorted(n))}" for s, n in subnets.items() if len(n) > 1]
    finding("node-subnets", subnet_problems, f"{len(subnets)} nodes have distinct pod subnets")
    finding("agents-ready", ready_problems, f"{len(nodes)} agents ready")

    pods = {(p.get("namespace"), p.get("name")): p for p in snap.k8s("pod").values() if isinstance(p, dict)}
    users: dict[str, set[str]] = defaultdict(set)
    for (pod_ns, pod_name), pod in pods.items():
        if not pod.get("host_network") and _ip(pod.get("ip_address")):
            users[_ip(pod.get("ip_address"))].add(f"{pod_ns}/{pod_name}")
    allocations = snap.allocations()
    for a in allocations:
        if _ip(a.get("ip_address")):
            users[_ip(a.get("ip_address"))].add(f"{a.get('pod_namespace')}/{a.get('pod_name')}")
    finding("duplicate-ips", [f"IP {ip} is used by {', '.join(sorted(p))}" for ip, p in sorted(users.items())
                              if len(p) > 1], f"{len(users)} pod IPs, each used once")

    orphans = []
    for a in allocations:
        owner = pods.get((a.get("pod_namespace"), a.get("pod_name")))
        where = f"{a['node']}: {a.get('ip_address')} for {a.get('pod_namespace')}/{a.get('pod_name')}"
        if owner is None:
            orphans.append(f"allocation on {where}: no such pod")
        elif owner.get("node_name") and owner.get("node_name") != a["node"]:
            orphans.append(f"allocation on {where}: the pod runs on {owner.get('node_name')}")
    finding("orphan-allocations", orphans, f"{len(allocations)} allocations, each with its pod")

    gauges = snap.values.get(f"{KSR_PREFIX}status/gauges")
    synced = (gauges or {}).get("synced") if isinstance(gauges, dict) else None
    if not synced:
        ksr = ["KSR has written no status (is contiv-ksr running?)"]
    else:
        ksr = [f"KSR has not synced {r}" for r, ok in sorted(synced.items()) if not ok]
    finding("ksr-synced", ksr, f"KSR synced {len(synced or {})} resources")
    return out
