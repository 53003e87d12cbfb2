"""``contiv-lab probe --ports 80,81 --protocols tcp,udp``: the port/protocol matrix.

Every ordered pod pair x every port x every protocol, probed from inside each source pod, as the
upstream netpol e2e suite's probe matrix: one process, every probe at once (each socket is made
inside its source pod's namespace, then driven by one event loop), each with a short timeout. Rows are
``{"from": "ns/pod", "to": "ns/pod", "port": 80, "protocol": "tcp", "ok": true}``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

from apps.lab.cluster import Lab
from apps.lab.errors import LabError
from apps.lab.netns import NETNS_DIR
from apps.lab.portprobe import SocketFactory, probe_one
from apps.lab.state import PodState
from plugins.linux.netns import run_in_namespace

PROTOCOLS = ("tcp", "udp", "sctp")


def parse_ports(text: str) -> list[int]:
    try:
        ports = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise LabError(f"--ports {text!r}: want numbers separated by commas, e.g. 80,81") from None
    if not ports or not all(0 < p < 65536 for p in ports):
        raise LabError(f"--ports {text!r}: want port numbers 1-65535")
    return ports


def parse_protocols(text: str) -> list[str]:
    protocols = [p.strip().lower() for p in text.split(",") if p.strip()]
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad or not protocols:
        raise LabError(f"--protocols {text!r}: want some of {', '.join(PROTOCOLS)}")
    return protocols


def probe_matrix(lab: Lab, ports: Sequence[int], protocols: Sequence[str],
                 timeout_s: float = 1.0) -> list[dict[str, Any]]:
    """Probe every (source, destination, port, protocol); one row each, in order."""
    pods = sorted((p for p in lab.state.pods.values() if p.ip), key=lambda p: (p.namespace, p.name))
    for pod in pods:
        if not (NETNS_DIR / pod.netns).exists():
            raise LabError(f"pod {pod.namespace}/{pod.name}: namespace {pod.netns} is gone")
    wanted = [(src, dst, port, proto) for src in pods for dst in pods if dst is not src
              for port in ports for proto in protocols]

    def factory(src: PodState) -> SocketFactory:
        # The socket belongs to the namespace it is made in: the source pod's.
        return lambda kind, proto: run_in_namespace(
            src.netns, lambda: socket.socket(socket.AF_INET, kind, proto))

    async def run_all() -> list[dict[str, object]]:
        return list(await asyncio.gather(*(
            probe_one(f"{dst.ip}:{port}/{proto}", timeout_s, make_socket=factory(src))
            for src, dst, port, proto in wanted)))

    results = asyncio.run(run_all())
    return [{"from": f"{src.namespace}/{src.name}", "to": f"{dst.namespace}/{dst.name}",
             "port": port, "protocol": proto,
             "ok": bool(r["ok"]) and r["pod"] == f"{dst.namespace}/{dst.name}"}
            for (src, dst, port, proto), r in zip(wanted, results, strict=True)]


def print_port_matrix(rows: list[dict[str, Any]]) -> None:
    """One truth table per port/protocol, as the netpol e2e suite prints them ('.' ok, X blocked)."""
    pods = sorted({r["from"] for r in rows} | {r["to"] for r in rows})
    cells = {(r["from"], r["to"], r["port"], r["protocol"]): r["ok"] for r in rows}
    width = max((len(p) for p in pods), default=4)
    for port, proto in sorted({(r["port"], r["protocol"]) for r in rows}):
        print(f"{proto}/{port}:")
        print(f"{'':<{width}}  " + " ".join(f"{i:>2}" for i in range(1, len(pods) + 1)))
        for i, src in enumerate(pods, 1):
            marks = []
            for dst in pods:
                ok = cells.get((src, dst, port, proto))
                marks.append(" -" if ok is None else " ." if ok else " X")
            print(f"{src:<{width}}  {' '.join(marks)}   ({i})")
    good = sum(1 for r in rows if r["ok"])
    print(f"{good}/{len(rows)} probes answered ('.' allowed, 'X' blocked)")
