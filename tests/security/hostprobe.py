"""Probing a node's own services from a pod, deciding "dropped" on an event, never on a timeout.

From the pod's namespace, one non-blocking TCP connect per target is started (each SYN leaves in
its ``connect`` call), then a *witness* connection, which the policy allows, over the same path to
the same node. Once the witness is connected, its SYN-ACK has come back over the path the
targets' SYN-ACKs (or RSTs) would have taken before it: a target socket that still has no answer
was dropped. A first witness connection primes the path (the neighbour entries on both sides).
The listeners are real sockets in the node's namespace, as etcd, the agent's REST
and the kubelet are.
"""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from plugins.linux.netns import run_in_namespace

#: The node-local services an egress-isolated pod must not reach: etcd (the chart's client port),
#: the agent's REST, the kubelet.
NODE_SERVICES = {"etcd": 12379, "rest": 9999, "kubelet": 10250}
#: The port the policies under test allow on the node (the witness).
WITNESS_PORT = 8443


@contextmanager
def listeners(netns: str, ports: Iterable[int]) -> Iterator[list[socket.socket]]:
    """TCP listeners on every address of ``netns`` (closed on exit)."""
    socks: list[socket.socket] = []
    try:
        for port in ports:
            socks.append(run_in_namespace(netns, lambda p=port: socket.create_server(("0.0.0.0", p))))  # type: ignore[misc]
        yield socks
    finally:
        for sock in socks:
            sock.close()


def probe(netns: str, ip: str, ports: Iterable[int], witness_port: int = WITNESS_PORT,
          timeout_s: float = 20.0) -> dict[int, str]:
    """Each port of ``ip`` from ``netns``: ``reached`` (connected), ``refused`` (an RST: the
    packet got there) or ``dropped``. Raises when the witness cannot connect."""
    def run() -> dict[int, str]:
        pending: dict[int, socket.socket] = {}
        # Prime the path first: a packet that waits for ARP is dropped by VPP (not queued), so a
        # target's SYN sent before the neighbours are known would look dropped.
        with socket.create_connection((ip, witness_port), timeout=timeout_s):
            pass
        try:
            for port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                pending[port] = sock
                code = sock.connect_ex((ip, port))
                if code not in (0, errno.EINPROGRESS):
                    raise OSError(code, f"connect to {ip}:{port} failed at once: {errno.errorcode.get(code)}")
            with socket.create_connection((ip, witness_port), timeout=timeout_s):
                pass
            _, writable, _ = select.select([], list(pending.values()), [], 0)
            out = {}
            for port, sock in pending.items():
                if sock not in writable:
                    out[port] = "dropped"
                else:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    out[port] = "reached" if err == 0 else ("refused" if err == errno.ECONNREFUSED
                                                            else errno.errorcode.get(err, str(err)))
            return out
        finally:
            for sock in pending.values():
                sock.close()

    return run_in_namespace(netns, run)
