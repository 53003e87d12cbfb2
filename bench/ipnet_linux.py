"""Agent-side cost of wiring pods on the linux dataplane: ipnet + KV scheduler + netlink.

Creates a node namespace and N pod namespaces (prefix ``h5b``, removed afterwards), then for
each pod runs what the agent runs for CNI ADD (ipnet's AddPod handler, one scheduler
transaction) and later DEL, and a full resync with nothing to change. Needs root.

    python bench/ipnet_linux.py --pods 50 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from table import agent_process_policy  # bench/table.py (the script's directory is on sys.path)

from core.kvdb.plugin import KVDBPlugin
from plugins.controller.events import DBResync
from plugins.controller.txn import EventTransaction
from plugins.ipam.config import IPAMConfig
from plugins.ipam.plugin import IPAMPlugin
from plugins.ipnet.config import IPNetConfig
from plugins.ipnet.plugin import IPNetPlugin
from plugins.kvscheduler.api import ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.config import LinuxConfig
from plugins.linux.plugin import LinuxDataplanePlugin
from plugins.nodesync.api import Node
from plugins.podmanager.api import AddPod, DeletePod, LocalPod, PodID


class _Nodes:
    def node_id(self) -> int:
        return 1

    def node_name(self) -> str:
        return "node1"

    def nodes(self) -> Mapping[str, Node]:
        return {"node1": Node(id=1, name="node1")}


class _Pods:
    def __init__(self) -> None:
        self.pods: dict[PodID, LocalPod] = {}

    def local_pods(self) -> Mapping[PodID, LocalPod]:
        return self.pods


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(pods: int) -> dict[str, float]:
    prefix = f"h5b{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-node"] + [f"{prefix}-p{i}" for i in range(pods)]
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    node_ns = names[0]
    scheduler = KVScheduler()
    linux = LinuxDataplanePlugin(LinuxConfig(scan_namespaces=[node_ns]), scheduler=scheduler)
    kvdb = KVDBPlugin()
    try:
        await linux.init()
        await kvdb.init()
        with tempfile.TemporaryDirectory() as tmp:
            ipam = IPAMPlugin(IPAMConfig(state_file=Path(tmp) / "ipam.json"), kvdb=kvdb,
                              nodesync=_Nodes())
            await ipam.init()
            records = _Pods()
            ipnet = IPNetPlugin(IPNetConfig(node_namespace=node_ns), ipam=ipam,
                                nodesync=_Nodes(), podmanager=records)
            txn = EventTransaction()
            ipnet.resync(DBResync({}, {}), None, 1, txn)  # type: ignore[arg-type]
            assert (await scheduler.commit(txn.desired_state(), resync=ResyncMode.FULL)).ok
            wire, unwire = [], []
            for i, ns in enumerate(names[1:]):
                pod = LocalPod(name=f"p{i}", namespace="bench", container_id=f"c{i}",
                               netns_path=f"/var/run/netns/{ns}")
                started = time.perf_counter()
                txn = EventTransaction()
                ipnet.update(AddPod(pod), txn)
                result = await scheduler.commit(txn.values(), revert_on_failure=True)
                wire.append(time.perf_counter() - started)
                assert result.ok, result.errors
                records.pods[pod.id] = pod
            started = time.perf_counter()
            txn = EventTransaction()
            ipnet.resync(DBResync({}, {}), None, 2, txn)  # type: ignore[arg-type]
            resync = await scheduler.commit(txn.desired_state(), resync=ResyncMode.FULL)
            resync_s = time.perf_counter() - started
            assert resync.ok and not resync.operations, resync.errors
            for pod in list(records.pods.values()):
                started = time.perf_counter()
                txn = EventTransaction()
                ipnet.update(DeletePod(pod), txn)
                result = await scheduler.commit(txn.values())
                unwire.append(time.perf_counter() - started)
                assert result.ok, result.errors
            await scheduler.commit({}, resync=ResyncMode.FULL)
            await ipam.close()
    finally:
        await scheduler.close()
        await linux.close()
        await kvdb.close()
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)
    return {
        "pods": float(pods),
        "wire_pod_p50_ms": round(_pct(wire, 0.5), 2),
        "wire_pod_p99_ms": round(_pct(wire, 0.99), 2),
        "wire_pod_mean_ms": round(statistics.mean(wire) * 1000, 2),
        "unwire_pod_p50_ms": round(_pct(unwire, 0.5), 2),
        "resync_noop_ms": round(resync_s * 1000, 2),
    }


def main() -> None:
    agent_process_policy()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--json", type=Path, help="write the results as one JSON object")
    args = parser.parse_args()
    results = asyncio.run(run(args.pods))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:>10}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
