"""Service benchmark: 10k services through the agent's own code into real nftables in a namespace.

Run (root): ``python bench/services.py --json out.json [--services 10000] [--changes 200]``.

* ``full_sync_10k_s``: processor + renderer + KV scheduler + nft-table descriptor, from 10k
  Services (2 ports, 2 endpoints each) to the kernel having the table (an empty one before).
* ``nft_file_10k_s``: the very same ruleset loaded by one ``nft -f FILE`` (the floor), same run.
* ``change_p50_ms`` / ``change_p99_ms``: one endpoint added or removed (an EndpointSlice
  change) at 10k services, event to kernel (the scheduler's transaction includes the write).
* ``agent_rss_mb``: this process's RSS (VmRSS) with the 10k services loaded and the changes
  done: it holds what the agent holds (the reflected Services and EndpointSlices, processor,
  renderer, scheduler graph and history); ``peak_rss_mb`` is its high-water mark (libnftables
  parsing the 10k-service batch).
* ``conn_ratio`` / ``udp_ratio``: TCP connections (UDP request/replies) per second from the node
  namespace to a ClusterIP among the 10k, divided by the same to the backend pod IP directly;
  one client alternates the two paths connection by connection (from two addresses).
* ``backend_*``: the 10k-service load through libnftables text (the agent's default), libnftables
  JSON, and ``nft -f`` from a subprocess - the measurement behind the backend choice
  (docs/services.md); ``backend_*_elements_s`` the elements alone (into the table without
  them) through libnftables text, JSON, and encoded here and sent over netlink
  (``netlink_encode_elements_s`` of it in Python), which is how a new big table's elements go.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from table import agent_process_policy  # bench/table.py (the script's directory is on sys.path)

from core import tuning
from plugins.ksr.model import (
    EndpointPort,
    EndpointSlice,
    ObjectReference,
    Protocol,
    Service,
    ServicePort,
    SliceEndpoint,
    TargetPort,
)
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.descriptors.nfttable import NftTableDescriptor
from plugins.linux.descriptors.sessions import SessionsDescriptor
from plugins.linux.nft import rawelements as nftraw
from plugins.linux.nft.driver import Nft
from plugins.linux.nft.table import bulk_elements, create_batch
from plugins.service.processor import NodeAddresses, ServiceProcessor
from plugins.service.renderer.nftables import NftRenderer

PREFIX = f"svcb{uuid.uuid4().hex[:5]}"
BACKEND_IP = "10.1.9.2"
NODE = NodeAddresses("node1", own=("192.168.16.1",))


def sh(*cmd: str, ns: str | None = None, check: bool = True) -> str:
    full = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    return subprocess.run(full, check=check, capture_output=True, text=True).stdout


def make(i: int, backends: list[str], udp: bool = False) -> tuple[Service, EndpointSlice]:
    """Service ``s<i>``: 80->8080 and 443->8443 over TCP (and 80->8080 over UDP with ``udp``)."""
    vip = str(IPv4Address("10.96.0.10") + i)
    ports = [ServicePort(name="http", port=80, target_port=TargetPort(int_val=8080)),
             ServicePort(name="https", port=443, target_port=TargetPort(int_val=8443))]
    slice_ports = [EndpointPort(name="http", port=8080), EndpointPort(name="https", port=8443)]
    if udp:
        ports.append(ServicePort(name="u", protocol=Protocol.UDP, port=80, target_port=TargetPort(int_val=8080)))
        slice_ports.append(EndpointPort(name="u", protocol=Protocol.UDP, port=8080))
    svc = Service(name=f"s{i}", namespace="bench", cluster_ip=vip, cluster_ips=[vip], ports=ports)
    eps = EndpointSlice(name=f"s{i}-1", namespace="bench", service_name=f"s{i}", ports=slice_ports, endpoints=[
        SliceEndpoint(addresses=[ip], node_name="node1", target_ref=ObjectReference(kind="Pod", namespace="bench",
                                                                                  name=f"p{ip}"))
        for ip in backends])
    return svc, eps


def pod_ip(i: int) -> str:
    return str(IPv4Address("10.1.16.0") + i)


async def agent_path(ns: str, count: int, changes: int) -> dict[str, Any]:
    renderer = NftRenderer(namespace=ns, pod_network=IPv4Network("10.1.0.0/16"),
                           service_network=IPv4Network("10.96.0.0/12"), route_service_network=False)
    scheduler = KVScheduler()
    desc = NftTableDescriptor("lib")
    scheduler.register_descriptor(desc)
    scheduler.register_descriptor(SessionsDescriptor())  # the probed service's UDP port
    objects = [make(i, [pod_ip(2 * i), pod_ip(2 * i + 1)]) for i in range(count - 1)]
    objects.append(make(count - 1, [BACKEND_IP], udp=True))  # the probed one
    processor = ServiceProcessor(NODE)
    started = time.perf_counter()
    with tuning.gc_paused():  # as the controller runs its handlers
        processor.resync([s for s, _ in objects], [e for _, e in objects], NODE)
        for key, intent in processor.intents.items():
            renderer.set_service(key, intent)
    result = await scheduler.commit(dict(renderer.values()))
    full = time.perf_counter() - started
    assert result.ok, result.errors
    latencies = []
    for n in range(changes):
        i = (n // 2 * 7919) % (count - 1)  # even n: one endpoint added; odd n: the same one removed
        svc, eps = objects[i]
        extra = pod_ip(2 * count + n) if n % 2 == 0 else None
        ips = [pod_ip(2 * i), pod_ip(2 * i + 1)] + ([extra] if extra else [])
        new = make(i, ips)[1]
        t0 = time.perf_counter()
        with tuning.gc_paused():
            for key in processor.set_slice(new, eps):
                renderer.set_service(key, processor.intents.get(key))
        result = await scheduler.commit(dict(renderer.values()))
        latencies.append(time.perf_counter() - t0)
        assert result.ok, result.errors
        objects[i] = (svc, new)
    latencies.sort()
    status = Path("/proc/self/status").read_text()
    rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    value = renderer.table_value()
    text = create_batch(value)
    layouts = {n: lay for n, spec in value.sets.items() if spec.managed and (lay := nftraw.layout(spec.decl))}
    pairs = {name: (layouts[name], items) for name, items in bulk_elements(value, layouts).items() if items}
    await scheduler.close()
    return {"full_sync_10k_s": full, "change_p50_ms": statistics.median(latencies) * 1000,
            "change_p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0,
            "agent_rss_mb": rss, "peak_rss_mb": peak, "writes": desc.writes, "_text": text, "_pairs": pairs}


def nft_file(ns: str, text: str) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as f:
        f.write(text)
    try:
        sh("nft", "delete", "table", "ip", "contiv-svc", ns=ns, check=False)
        t0 = time.perf_counter()
        sh("nft", "-f", f.name, ns=ns)
        return time.perf_counter() - t0
    finally:
        os.unlink(f.name)


def backends(ns: str, text: str, pairs: dict[str, tuple[nftraw.Layout, list[tuple[str, str]]]]) -> dict[str, float]:
    """The same load through each backend: libnftables text, libnftables JSON (elements), nft -f,
    and the elements encoded here and sent over netlink (what a new big table does)."""
    out: dict[str, float] = {}
    for backend in ("lib", "cli"):
        Nft(ns, backend).delete_table("ip", "contiv-svc")
        t0 = time.perf_counter()
        Nft(ns, backend).apply(text)
        out[f"backend_{backend}_text_s"] = time.perf_counter() - t0
    nft = Nft(ns)
    table = nft.list_table("ip", "contiv-svc")
    assert table is not None
    skeleton = "\n".join(line for line in text.splitlines() if not line.startswith("add element")) + "\n"
    cmds: list[dict[str, Any]] = []
    for name, found in table.sets.items():
        if not found.elements:
            continue

        def val(text_value: str) -> Any:
            if text_value.startswith("goto "):
                return {"goto": {"target": text_value[5:]}}
            parts: list[Any] = [int(p) if p.isdigit() else p for p in text_value.split(" . ")]
            parts = [{"prefix": {"addr": p.split("/")[0], "len": int(p.split("/")[1])}}
                     if isinstance(p, str) and "/" in p else p for p in parts]
            return {"concat": parts} if len(parts) > 1 else parts[0]

        elems = [[val(k), val(v)] if found.kind == "map" else val(k) for k, v in found.elements.items()]
        cmds.append({"add": {"element": {"family": "ip", "table": "contiv-svc", "name": name, "elem": elems}}})
    nft.delete_table("ip", "contiv-svc")
    nft.apply(skeleton)
    t0 = time.perf_counter()
    nft.apply(cmds)
    out["backend_lib_json_elements_s"] = time.perf_counter() - t0
    nft.delete_table("ip", "contiv-svc")
    nft.apply(skeleton)
    elements_text = "\n".join(line for line in text.splitlines() if line.startswith("add element")) + "\n"
    t0 = time.perf_counter()
    nft.apply(elements_text)
    out["backend_lib_text_elements_s"] = time.perf_counter() - t0
    nft.delete_table("ip", "contiv-svc")
    nft.apply(skeleton)
    t0 = time.perf_counter()
    fields = nftraw.Fields()
    encoded = {name: nftraw.encode(spec, items, fields) for name, (spec, items) in pairs.items()}
    out["netlink_encode_elements_s"] = time.perf_counter() - t0
    nftraw.write(ns, "ip", "contiv-svc", {name: found for name, found in encoded.items() if found is not None})
    out["backend_netlink_elements_s"] = time.perf_counter() - t0
    return out


RATE = """
import socket, sys, time
proto, seconds = sys.argv[1], float(sys.argv[2])
paths = [(sys.argv[i], int(sys.argv[i + 1]), sys.argv[i + 2]) for i in (3, 6)]  # (ip, port, source)
done, spent = [0, 0], [0.0, 0.0]
end = time.perf_counter() + seconds
i = 0
while time.perf_counter() < end:
    which = i % 2  # the paths take turns, connection by connection: load drift hits both alike
    i += 1
    ip, port, source = paths[which]
    t0 = time.perf_counter()
    try:
        if proto == "tcp":
            s = socket.create_connection((ip, port), 2, source_address=(source, 0))
            s.sendall(b"x"); s.recv(200); s.close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5); s.bind((source, 0))
            try:
                s.sendto(b"x", (ip, port)); s.recv(200)
            finally:
                s.close()
        done[which] += 1
    except OSError:  # a lost datagram or a refused attempt: its time counts, not itself
        pass
    spent[which] += time.perf_counter() - t0
print(done[0] / spent[0], done[1] / spent[1])
"""
#: Client addresses of the two paths. One address for both would make a direct connection's
#: conntrack entry clash with a DNATed one's still in TIME_WAIT (the same reply tuple, from the
#: backend to the same client port), and the kernel drop its SYN (a 1 s retransmission).
VIA_VIP_SOURCE, DIRECT_SOURCE = "10.1.9.1", "10.1.9.11"


def rates(ns: str, proto: str, vip: str, seconds: float) -> tuple[float, float]:
    """(per second to the ClusterIP, per second to the pod IP directly), the two paths taking
    turns connection by connection in one client (rounds of seconds each would compare two
    different moments of a shared machine)."""
    out = sh(sys.executable, "-c", RATE, proto, str(seconds), vip, "80", VIA_VIP_SOURCE, BACKEND_IP, "8080",
             DIRECT_SOURCE, ns=ns).split()
    return float(out[0]), float(out[1])


def main(argv: list[str] | None = None) -> int:
    agent_process_policy()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0, help="per traffic measurement (TCP, UDP)")
    args = parser.parse_args(argv)
    node, pod = f"{PREFIX}-n", f"{PREFIX}-p"
    echo = None
    try:
        for ns in (node, pod):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "link", "add", "eth0", "netns", pod, "type", "veth", "peer", "name", "cvb", "netns", node)
        sh("ip", "addr", "add", f"{BACKEND_IP}/24", "dev", "eth0", ns=pod)
        sh("ip", "link", "set", "eth0", "up", ns=pod)
        sh("ip", "addr", "add", f"{VIA_VIP_SOURCE}/24", "dev", "cvb", ns=node)
        sh("ip", "addr", "add", f"{DIRECT_SOURCE}/24", "dev", "cvb", ns=node)
        sh("ip", "link", "set", "cvb", "up", ns=node)
        sh("ip", "route", "add", "10.96.0.0/12", "dev", "lo", ns=node)
        echo = subprocess.Popen(["ip", "netns", "exec", pod, sys.executable, "-m", "apps.lab.echo", "--name",
                                 "bench/pod", "--port", "8080"], stdout=subprocess.PIPE, text=True,
                                cwd=str(Path(__file__).resolve().parent.parent))
        assert echo.stdout is not None and "serving" in echo.stdout.readline()
        out = asyncio.run(agent_path(node, args.services, args.changes))
        text, pairs = out.pop("_text"), out.pop("_pairs")
        out["nft_file_10k_s"] = nft_file(node, text)
        out["sync_ratio"] = out["full_sync_10k_s"] / out["nft_file_10k_s"]
        out.update(backends(node, text, pairs))
        Nft(node).delete_table("ip", "contiv-svc")
        Nft(node).apply(text)  # the agent's table again, for the traffic ratios
        vip = str(IPv4Address("10.96.0.10") + args.services - 1)
        for proto, key in (("tcp", "conn_ratio"), ("udp", "udp_ratio")):
            via_vip, direct = rates(node, proto, vip, args.seconds)
            out[key] = via_vip / direct
            out[f"{proto}_per_s_clusterip"], out[f"{proto}_per_s_direct"] = via_vip, direct
        out["services"] = args.services
    finally:
        if echo is not None:
            echo.kill()
        for ns in (node, pod):
            sh("ip", "netns", "delete", ns, check=False)
    width = max(len(k) for k in out)
    for key, value in out.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
