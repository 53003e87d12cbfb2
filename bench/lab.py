"""The local lab at scale: ``up`` of 3 nodes, pods per second through the kubelet stand-in
(namespace + echo server + contiv-cni + status) at 50 pods, the time for a new node to join the
mesh and be reachable, and agent RSS. JSON keys: ``up_3_nodes_s``, ``pods_per_s``,
``node_join_s``, ``agent_rss_mb``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.lab import netns
from apps.lab.cluster import Lab
from apps.lab.pods import Kubelet, probe


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(pods: int) -> dict[str, float]:
    lab = Lab(f"lb{os.getpid() % 100000}")
    try:
        t0 = time.perf_counter()
        lab.up(3)
        up_s = time.perf_counter() - t0

        kubelet = Kubelet(lab)
        manifests = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"bench-{i}"},
                      "spec": {"containers": [{"name": "echo", "image": "lab/echo"}]}} for i in range(pods)]
        t0 = time.perf_counter()
        kubelet.apply(manifests)
        pods_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        node = lab.add_node()  # returns once every agent meshes with it
        src = next(p for p in lab.state.pods.values() if p.node == "node1")
        target = kubelet.add_pod({"kind": "Pod", "metadata": {"name": "on-new-node"},
                                  "spec": {"nodeName": node.name}})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if netns.run(["ping", "-c", "1", "-W", "1", target.ip], netns=src.netns, check=False).returncode == 0:
                break
        join_s = time.perf_counter() - t0

        sample = [r for r in probe(lab) if r["from"].endswith("bench-0")]
        reachable = sum(1 for r in sample if r["ping"] and r["tcp"])
        rss = [rss_mb(n.agent_pid) for n in lab.state.nodes.values()]
    finally:
        lab.down()
    return {
        "up_3_nodes_s": round(up_s, 2),
        "pods_per_s": round(pods / pods_s, 2),
        "node_join_s": round(join_s, 2),
        "agent_rss_mb": round(statistics.mean(rss), 1),
        "pods": pods,
        "probe_from_first_pod_ok": reachable,
        "probe_from_first_pod_total": len(sample),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--pods", type=int, default=50)
    args = parser.parse_args()
    out = run(args.pods)
    print(f"{'metric':<28}{'value':>10}")
    for key in ("up_3_nodes_s", "pods_per_s", "node_join_s", "agent_rss_mb"):
        print(f"{key:<28}{out[key]:>10}")
    print(f"(pods: {out['pods']}; probe from the first pod: "
          f"{out['probe_from_first_pod_ok']}/{out['probe_from_first_pod_total']} reachable)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
