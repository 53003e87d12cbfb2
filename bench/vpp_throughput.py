"""Pod-to-pod TCP throughput through a real VPP (veth + af_packet), against a bare veth pair.

Two pods on one node wired through VPP (``tests.vppreal.Cluster``), and two namespaces joined
by a plain veth pair, measured in the same run with the same Python sender/receiver (one TCP
stream, 64 KiB writes, ``--seconds`` long): ``vpp_mbit_s``, ``veth_mbit_s`` and
``vpp_to_veth_ratio``. af_packet is not fast: the ratio tells users what to expect. Without a
real VPP (``CONTIV_TEST_VPP_DIR`` or ``vpp`` on PATH) it says so and measures nothing.

Usage: ``python bench/vpp_throughput.py --json out.json [--seconds 5]`` (root).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from table import emit  # bench/table.py (the script's directory is on sys.path)

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


def stream(src_ns: str, dst_ns: str, dst_ip: str, seconds: float) -> float:
    """Mbit/s of one TCP stream from ``src_ns`` to ``dst_ip`` (in ``dst_ns``)."""
    rx = subprocess.Popen(["ip", "netns", "exec", dst_ns, sys.executable, "-c", RECEIVER],
                          stdout=subprocess.PIPE, text=True)
    assert rx.stdout is not None
    assert rx.stdout.readline().strip() == "ready"
    tx = subprocess.run(["ip", "netns", "exec", src_ns, sys.executable, "-c", SENDER, dst_ip, str(seconds)],
                        capture_output=True, text=True, check=True, timeout=seconds + 60)
    received = int(rx.stdout.readline())
    rx.wait(timeout=30)
    return received * 8 / float(tx.stdout) / 1e6


def bare_veth(seconds: float) -> float:
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
        return stream(a, b, "10.99.0.2", seconds)
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], check=False)


async def through_vpp(seconds: float, poll_sleep_usec: int) -> float:
    install, _how = find_vpp()
    assert install is not None
    nodes = NodeVPPs(install, uuid.uuid4().hex[:6], poll_sleep_usec)
    cluster = Cluster(nodes)
    try:
        await cluster.start()
        a = await cluster.add_pod(1, "t1", 2)
        b = await cluster.add_pod(1, "t2", 3)
        return await asyncio.to_thread(stream, a.netns, b.netns, b.ip, seconds)
    finally:
        await cluster.close()
        nodes.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--poll-sleep-usec", type=int, default=0, help="VPP main-loop nap (0: busy polling)")
    args = parser.parse_args()
    install, how = find_vpp()
    if install is None:
        results: dict[str, object] = {"target": "none", "skipped": how}
    else:
        vpp = asyncio.run(through_vpp(args.seconds, args.poll_sleep_usec))
        veth = bare_veth(args.seconds)
        results = {"target": f"real VPP ({how})", "poll_sleep_usec": args.poll_sleep_usec,
                   "vpp_mbit_s": round(vpp, 1), "veth_mbit_s": round(veth, 1),
                   "vpp_to_veth_ratio": round(vpp / veth, 3)}
    emit(results, args.json)


if __name__ == "__main__":
    main()
