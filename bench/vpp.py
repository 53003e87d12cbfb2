"""The VPP dataplane against the VPP stand-in: pod ADD latency and API call throughput.

* ``add_p50_ms``: median time of one pod ADD (the VPP renderer's values for one pod, committed
  through the KV scheduler: a VPP TAP into a real pod namespace, VRF, unnumbered, route, ARP,
  and the pod's Linux side: address, routes, neighbour), on a node with its base config.
* ``calls_per_s``: VPP API calls per second made by the descriptors (routes through the
  scheduler, one transaction).
* ``raw_calls_per_s``: the same ``ip_route_add_del`` calls through raw vpp-papi on the same
  stand-in (the ceiling the descriptors are measured against).

Usage: ``python bench/vpp.py --json out.json [--pods 20] [--routes 300]`` (needs root: namespaces).
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
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import BaseModel
from vpp_papi import VPPApiClient

from plugins.ipam.config import IPAMConfig
from plugins.ipam.plan import node_plan, resolve_plan
from plugins.ipnet.compute import node_intent, pod_intent
from plugins.ipnet.config import IPNetConfig
from plugins.ipnet.renderer.vpp import VppRenderer
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.plugin import linux_descriptors
from plugins.vpp import model as m
from plugins.vpp.connection import VPPConnection
from plugins.vpp.descriptors import all_descriptors
from plugins.vpp.descriptors.base import EMPTY_LABEL_STACK
from plugins.vpp.index import Indexes
from tests.vppstub import VPPStub, default_api_dir
from tests.vppstub.interfaces import Options


def scheduler_for(conn: VPPConnection) -> KVScheduler:
    sched = KVScheduler(verify=False)
    for descriptor in [*all_descriptors(conn, Indexes()), *linux_descriptors()]:
        sched.register_descriptor(descriptor)
    return sched


async def pod_adds(conn: VPPConnection, pods: int, tag: str) -> list[float]:
    node_ns = f"vppb-node-{tag}"
    pod_ns = [f"vppb-pod-{tag}-{i}" for i in range(pods)]
    for ns in [node_ns, *pod_ns]:
        subprocess.run(["ip", "netns", "add", ns], check=True)
    sched = scheduler_for(conn)
    renderer = VppRenderer(IPNetConfig(dataplane="vpp", node_namespace=node_ns))
    node = node_intent(node_plan(resolve_plan(IPAMConfig()), 1), "bench-node")
    try:
        result = await sched.commit(dict(renderer.render_node(node)))
        if not result.ok:
            raise RuntimeError(f"node base config failed: {result.errors}")
        times = []
        for i, ns in enumerate(pod_ns):
            pod = pod_intent(
                node,
                pod_name=f"p{i}",
                pod_namespace="bench",
                container_id=uuid.uuid4().hex,
                netns_path=f"/var/run/netns/{ns}",
                ip=IPv4Address(f"10.1.1.{10 + i}"),
            )
            values = dict(renderer.render_pod(node, pod))
            started = time.perf_counter()
            result = await sched.commit(values)
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


async def descriptor_rate(conn: VPPConnection, routes: int) -> float:
    sched = scheduler_for(conn)
    try:
        before = conn.stats.total_calls
        started = time.perf_counter()
        result = await sched.commit(route_values(routes, 7))
        elapsed = time.perf_counter() - started
        if not result.ok:
            raise RuntimeError(f"route transaction failed: {result.errors}")
        return (conn.stats.total_calls - before) / elapsed
    finally:
        await sched.close()


def raw_rate(socket_path: str, routes: int) -> float:
    client = VPPApiClient(apidir=[default_api_dir()], use_socket=True, server_address=socket_path, async_thread=False)
    client.connect("bench-raw")
    try:
        client.api.ip_table_add_del(is_add=True, table={"table_id": 8, "name": "raw"})
        path = {"sw_if_index": m.NO_INDEX, "type": 2, "label_stack": EMPTY_LABEL_STACK}
        started = time.perf_counter()
        for i in range(routes):
            prefix = f"10.{100 + i // 250}.{i % 250}.0/24"
            reply = client.api.ip_route_add_del(
                is_add=True, is_multipath=False, route={"table_id": 8, "prefix": prefix, "n_paths": 1, "paths": [path]}
            )
            if reply.retval:
                raise RuntimeError(f"raw ip_route_add_del failed: {reply.retval}")
        return routes / (time.perf_counter() - started)
    finally:
        client.disconnect()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the results as one flat JSON object")
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--routes", type=int, default=300)
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:6]
    directory = Path(tempfile.mkdtemp(prefix="vppb-"))
    stub = VPPStub(directory / "api.sock", options=Options(create_host_taps=True)).start()
    conn = VPPConnection(stub.socket_path, default_api_dir())
    await conn.connect()
    try:
        adds = await pod_adds(conn, args.pods, tag)
        calls = await descriptor_rate(conn, args.routes)
        raw = await asyncio.to_thread(raw_rate, stub.socket_path, args.routes)
    finally:
        await conn.close()
        stub.stop()
        stub.remove_host_taps()
    results = {
        "add_p50_ms": round(statistics.median(adds) * 1000, 2),
        "add_max_ms": round(max(adds) * 1000, 2),
        "pods": args.pods,
        "calls_per_s": round(calls, 1),
        "raw_calls_per_s": round(raw, 1),
        "descriptor_to_raw_ratio": round(calls / raw, 3),
    }
    width = max(len(k) for k in results)
    print(f"{'metric':<{width}}  value")
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
