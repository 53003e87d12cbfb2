"""Pod-to-pod throughput through a real VPP (veth + af_packet), against a bare veth pair.

Two nodes wired through real VPPs (``tests.vppreal.Cluster``: pods ``a1``, ``a2`` on node 1,
``b1`` on node 2, VXLAN between the nodes' ``eth1``), and two namespaces joined by a plain veth
pair, measured in the same run with the same Python sender/receiver:

* TCP: one stream, 64 KiB writes, ``--seconds`` long: a1 -> a2 (same node), a1 -> b1 (across
  the VXLAN mesh), the bare pair;
* UDP: 64-byte datagrams sent as fast as one Python loop can for ``--seconds``; the packets the
  receiver got per second (a1 -> a2, a1 -> b1, the bare pair).

``--step`` picks the configuration (several may be given; each runs on fresh VPPs):

* ``baseline``: af_packet without flags, transmit checksum offload off on the pods' ``eth0``
  and ``vpp1`` (the renderer before issue 26);
* ``qdisc``: + qdisc bypass;
* ``header``: the virtio-net header without qdisc bypass (below);
* ``offload``: + the virtio-net header (``CKSUM_GSO``) on the pods' and the host
  interconnect's af_packet, transmit checksum offload back on, segmentation offload off on the
  pods' ``eth0`` (today's default);
* ``gso``: ``offload`` with segmentation offload left on (``af_packet_gso``): 64 KiB frames
  through VPP; the mesh stream stalls on VPP 26.10 (reported as 0);
* ``nap``: ``offload`` with VPP napping 100 us between polls (the tests' setting);
* ``worker``: ``offload`` with one worker thread (``cpu { workers 1 }``; the main thread and the
  worker share this machine's 2 cores with the pods).

Keys per step ``<step>_tcp_same_mbit_s``, ``<step>_tcp_mesh_mbit_s``, ``<step>_udp_same_pps``,
``<step>_udp_mesh_pps``, the bare pair measured right before the step ``<step>_veth_mbit_s``,
``<step>_veth_udp_pps`` and the ratios to it ``<step>_same_to_veth`` / ``<step>_mesh_to_veth``.
Without a real VPP (``CONTIV_TEST_VPP_DIR`` or ``vpp`` on PATH) it says so and measures nothing.

Usage: ``python bench/vpp_throughput.py --json out.json [--seconds 5] [--step offload ...]`` (root).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from table import emit  # bench/table.py (the script's directory is on sys.path)

from plugins.ipnet.config import VppRenderSettings
from tests.vppreal import find_vpp
from tests.vppreal.cluster import Cluster
from tests.vppreal.fixtures import NodeVPPs

RECEIVER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 5201)); s.listen(1)\n"
    "print('ready', flush=True); c,_=s.accept(); n=0\n"
    "while True:\n  b=c.recv(1<<16)\n  if not b: break\n  n+=len(b)\n"
    "print(n, flush=True)\n"
)
SENDER = (
    "import socket,sys,time\n"
    "c=socket.create_connection((sys.argv[1], 5201), timeout=10); buf=b'x'*(1<<16)\n"
    "end=time.monotonic()+float(sys.argv[2])\n"
    "start=time.monotonic()\n"
    "while time.monotonic()<end: c.sendall(buf)\n"
    "c.close(); print(time.monotonic()-start, flush=True)\n"
)
# UDP: the receiver counts datagrams until the sender's "end" datagram (sent a few times).
UDP_RECEIVER = (
    "import socket\n"
    "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5202))\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1<<22)\n"
    "print('ready', flush=True); n=0\n"
    "while True:\n  b=s.recv(2048)\n  if b==b'end': break\n  n+=1\n"
    "print(n, flush=True)\n"
)
UDP_SENDER = (
    "import socket,sys,time\n"
    "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((sys.argv[1], 5202)); buf=b'u'*64\n"
    "end=time.monotonic()+float(sys.argv[2]); start=time.monotonic(); n=0\n"
    "while time.monotonic()<end:\n"
    "  for _ in range(64):\n"
    "    try: s.send(buf); n+=1\n"
    "    except OSError: pass\n"
    "took=time.monotonic()-start; time.sleep(0.5)\n"  # let the queues drain before the marker
    "for _ in range(20):\n"
    "  try: s.send(b'end')\n"
    "  except OSError: break\n"  # the receiver is gone: it got one
    "  time.sleep(0.05)\n"
    "print(took, n, flush=True)\n"
)


@dataclass(frozen=True)
class Step:
    name: str
    offload: bool
    qdisc_bypass: bool
    gso: bool = False
    poll_sleep_usec: int = 0
    extra_conf: str = ""


STEPS = {
    "baseline": Step("baseline", offload=False, qdisc_bypass=False),
    "qdisc": Step("qdisc", offload=False, qdisc_bypass=True),
    "header": Step("header", offload=True, qdisc_bypass=False),
    "offload": Step("offload", offload=True, qdisc_bypass=True),
    "gso": Step("gso", offload=True, qdisc_bypass=True, gso=True),
    "nap": Step("nap", offload=True, qdisc_bypass=True, poll_sleep_usec=100),
    "worker": Step("worker", offload=True, qdisc_bypass=True, extra_conf="cpu { workers 1 }"),
}


def _in(ns: str, script: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-c", script, *args]


def stream(src_ns: str, dst_ns: str, dst_ip: str, seconds: float) -> float:
    """Mbit/s of one TCP stream from ``src_ns`` to ``dst_ip`` (in ``dst_ns``); 0 when the
    stream stalls (the sender's 10 s socket timeout)."""
    rx = subprocess.Popen(_in(dst_ns, RECEIVER), stdout=subprocess.PIPE, text=True)
    assert rx.stdout is not None
    try:
        assert rx.stdout.readline().strip() == "ready"
        tx = subprocess.run(_in(src_ns, SENDER, dst_ip, str(seconds)),
                            capture_output=True, text=True, check=False, timeout=seconds + 60)
        if tx.returncode != 0:
            print(f"TCP {src_ns} -> {dst_ip} stalled: {tx.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return 0.0
        received = int(rx.stdout.readline())
        rx.wait(timeout=30)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()
    return received * 8 / float(tx.stdout) / 1e6


def udp_pps(src_ns: str, dst_ns: str, dst_ip: str, seconds: float) -> float:
    """64-byte datagrams per second the receiver in ``dst_ns`` got from ``src_ns``."""
    rx = subprocess.Popen(_in(dst_ns, UDP_RECEIVER), stdout=subprocess.PIPE, text=True)
    assert rx.stdout is not None
    try:
        assert rx.stdout.readline().strip() == "ready"
        tx = subprocess.run(_in(src_ns, UDP_SENDER, dst_ip, str(seconds)),
                            capture_output=True, text=True, check=True, timeout=seconds + 60)
        received = int(rx.stdout.readline())
        rx.wait(timeout=30)
    finally:
        if rx.poll() is None:  # every "end" lost: the run measured nothing
            rx.kill()
            rx.wait()
    return received / float(tx.stdout.split()[0])


def bare_veth(seconds: float) -> tuple[float, float]:
    tag = uuid.uuid4().hex[:6]
    a, b = f"vpp17-ta{tag}", f"vpp17-tb{tag}"
    try:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b],
                       check=True)
        for ns, ip in ((a, "10.99.0.1/24"), (b, "10.99.0.2/24")):
            subprocess.run(["ip", "-n", ns, "addr", "add", ip, "dev", "eth0"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        return stream(a, b, "10.99.0.2", seconds), udp_pps(a, b, "10.99.0.2", seconds)
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], check=False)


async def through_vpp(step: Step, seconds: float) -> dict[str, float]:
    install, _how = find_vpp()
    assert install is not None
    nodes = NodeVPPs(install, uuid.uuid4().hex[:6], step.poll_sleep_usec, step.extra_conf)
    render = VppRenderSettings(pod_interface="veth", main_interface="host-eth1", af_packet_offload=step.offload,
                               af_packet_qdisc_bypass=step.qdisc_bypass, af_packet_gso=step.gso)
    cluster = Cluster(nodes, render=render)
    try:
        await cluster.start()
        a1 = await cluster.add_pod(1, "t1", 2)
        a2 = await cluster.add_pod(1, "t2", 3)
        b1 = await cluster.add_pod(2, "t3", 2)
        out = {}
        for where, dst in (("same", a2), ("mesh", b1)):
            out[f"tcp_{where}_mbit_s"] = await asyncio.to_thread(stream, a1.netns, dst.netns, dst.ip, seconds)
            out[f"udp_{where}_pps"] = await asyncio.to_thread(udp_pps, a1.netns, dst.netns, dst.ip, seconds)
        return out
    finally:
        await cluster.close()
        nodes.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--step", action="append", choices=sorted(STEPS),
                        help="configuration(s) to measure (default: all, in the order above)")
    args = parser.parse_args()
    install, how = find_vpp()
    results: dict[str, object]
    if install is None:
        results = {"target": "none", "skipped": how}
    else:
        results = {"target": f"real VPP ({how})", "seconds": args.seconds}
        for name in args.step or list(STEPS):
            # the bare pair right before each step: on a shared machine the load moves
            veth, veth_pps = bare_veth(args.seconds)
            results.update({f"{name}_veth_mbit_s": round(veth, 1), f"{name}_veth_udp_pps": round(veth_pps)})
            got = asyncio.run(through_vpp(STEPS[name], args.seconds))
            for key, value in got.items():
                results[f"{name}_{key}"] = round(value, 1) if key.endswith("mbit_s") else round(value)
            results[f"{name}_same_to_veth"] = round(got["tcp_same_mbit_s"] / veth, 3)
            results[f"{name}_mesh_to_veth"] = round(got["tcp_mesh_mbit_s"] / veth, 3)
    emit(results, args.json)


if __name__ == "__main__":
    main()
