"""The VPP dataplane against the VPP stand-in: pod ADD latency and API call throughput.

* ``add_p50_ms``: median time of one pod ADD as the agent handles it: an ``AddPod`` event through
  ipnet (IPAM allocation, the VPP renderer) and one revert-on-failure scheduler transaction (a
  VPP TAP into a real pod namespace, VRF, unnumbered, route, ARP, and the pod's Linux side:
  address, routes, neighbour), on a node with its base config. Not included: the CNI binary,
  gRPC and the controller's queue (see their own benchmarks).
* ``calls_per_s``: VPP API calls per second made by the descriptors (routes through the
  scheduler, one transaction).
* ``raw_calls_per_s``: the same ``ip_route_add_del`` calls through raw vpp-papi on the same
  stand-in (the ceiling the descriptors are measured against).

Usage: ``python bench/vpp.py --json out.json [--pods 20] [--routes 300] [--rounds 3]`` (needs root: namespaces).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from ipaddress import IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import BaseModel
from table import agent_process_policy, emit  # bench/table.py (the script's directory is on sys.path)
from vpp_papi import VPPApiClient

from plugins.controller.events import DBResync
from plugins.controller.txn import EventTransaction
from plugins.ipnet.config import IPNetConfig
from plugins.ipnet.plugin import IPNetPlugin
from plugins.kvscheduler.api import ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.plugin import linux_descriptors
from plugins.podmanager.api import AddPod, LocalPod
from plugins.vpp import model as m
from plugins.vpp.connection import VPPConnection
from plugins.vpp.descriptors import all_descriptors
from plugins.vpp.descriptors.base import EMPTY_LABEL_STACK
from plugins.vpp.index import Indexes
from tests.plugins.ipnet.support import NodeTable, PodRecords, node, real_ipam
from tests.vppstub import default_api_dir


def scheduler_for(conn: VPPConnection) -> KVScheduler:
    sched = KVScheduler(verify=False)
    for descriptor in [*all_descriptors(conn, Indexes()), *linux_descriptors()]:
        sched.register_descriptor(descriptor)
    return sched


async def pod_adds(conn: VPPConnection, pods: int, tag: str, workdir: Path) -> list[float]:
    """AddPod events through ipnet (IPAM allocation + VPP renderer) committed like the controller does."""
    node_ns = f"vppb-node-{tag}"
    pod_ns = [f"vppb-pod-{tag}-{i}" for i in range(pods)]
    sched = scheduler_for(conn)
    nodes = NodeTable("bench-node", {"bench-node": node(1, "bench-node")})
    try:
        for ns in [node_ns, *pod_ns]:
            subprocess.run(["ip", "netns", "add", ns], check=True)
        async with real_ipam(workdir, nodes) as ipam:
            config = IPNetConfig(dataplane="vpp", node_namespace=node_ns)
            ipnet = IPNetPlugin(config, ipam=ipam, nodesync=nodes, podmanager=PodRecords())
            txn = EventTransaction()
            ipnet.resync(DBResync({}, {}), None, 1, txn)  # type: ignore[arg-type]
            result = await sched.commit(txn.desired_state(), resync=ResyncMode.FULL)
            if not result.ok:
                raise RuntimeError(f"node base config failed: {result.errors}")
            times = []
            for i, ns in enumerate(pod_ns):
                pod = LocalPod(
                    name=f"p{i}", namespace="bench", container_id=uuid.uuid4().hex, netns_path=f"/var/run/netns/{ns}"
                )
                started = time.perf_counter()
                txn = EventTransaction()
                ipnet.update(AddPod(pod), txn)
                result = await sched.commit(txn.values(), revert_on_failure=True)
                times.append(time.perf_counter() - started)
                if not result.ok:
                    raise RuntimeError(f"pod ADD failed: {result.errors}")
            return times
    finally:
        await sched.close()
        for ns in [node_ns, *pod_ns]:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def route_values(count: int, vrf: int) -> dict[str, BaseModel]:
    values: dict[str, BaseModel] = {m.vrf_key(vrf): m.VrfTable(id=vrf, label="bench")}
    for i in range(count):
        dst = IPv4Network(f"10.{100 + i // 250}.{i % 250}.0/24")
        values[m.route_key(vrf, dst)] = m.Route(vrf=vrf, dst=dst, type=m.RouteType.DROP)
    return values


async def descriptor_rate(conn: VPPConnection, routes: int, vrf: int) -> float:
    sched = scheduler_for(conn)
    try:
        before = conn.stats.total_calls
        started = time.perf_counter()
        result = await sched.commit(route_values(routes, vrf))
        elapsed = time.perf_counter() - started
        if not result.ok:
            raise RuntimeError(f"route transaction failed: {result.errors}")
        return (conn.stats.total_calls - before) / elapsed
    finally:
        await sched.close()


def raw_rate(socket_path: str, routes: int, vrf: int) -> float:
    client = VPPApiClient(apidir=[default_api_dir()], use_socket=True, server_address=socket_path, async_thread=False)
    client.connect("bench-raw")
    try:
        client.api.ip_table_add_del(is_add=True, table={"table_id": vrf, "name": "raw"})
        path = {"sw_if_index": m.NO_INDEX, "type": 2, "label_stack": EMPTY_LABEL_STACK}
        started = time.perf_counter()
        for i in range(routes):
            prefix = f"10.{100 + i // 250}.{i % 250}.0/24"
            reply = client.api.ip_route_add_del(
                is_add=True,
                is_multipath=False,
                route={"table_id": vrf, "prefix": prefix, "n_paths": 1, "paths": [path]},
            )
            if reply.retval:
                raise RuntimeError(f"raw ip_route_add_del failed: {reply.retval}")
        return routes / (time.perf_counter() - started)
    finally:
        client.disconnect()


async def main() -> None:
    agent_process_policy()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the results as one flat JSON object")
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--routes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:6]
    directory = Path(tempfile.mkdtemp(prefix="vppb-"))
    socket_path = str(directory / "api.sock")
    # The stand-in runs as its own process, as VPP does (no GIL shared with the agent).
    stub = subprocess.Popen(
        [sys.executable, "-m", "tests.vppstub", "--socket", socket_path, "--host-taps"],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stub.stdout is not None
    stub.stdout.readline()  # "serving on ..."
    conn = VPPConnection(socket_path, default_api_dir())
    await conn.connect()
    try:
        adds = await pod_adds(conn, args.pods, tag, directory)
        # Interleaved rounds, best of each: the machine is shared, single rounds are noisy.
        calls = raw = 0.0
        for round_ in range(args.rounds):
            calls = max(calls, await descriptor_rate(conn, args.routes, 10 + 2 * round_))
            raw = max(raw, await asyncio.to_thread(raw_rate, socket_path, args.routes, 11 + 2 * round_))
    finally:
        await conn.close()
        stub.terminate()
        stub.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
    results = {
        "add_p50_ms": round(statistics.median(adds) * 1000, 2),
        "add_max_ms": round(max(adds) * 1000, 2),
        "pods": args.pods,
        "calls_per_s": round(calls, 1),
        "raw_calls_per_s": round(raw, 1),
        "descriptor_to_raw_ratio": round(calls / raw, 3),
    }
    emit(results, args.json)


if __name__ == "__main__":
    asyncio.run(main())
