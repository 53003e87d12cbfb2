"""Data integrity through the dataplane: random payloads both ways over TCP and UDP, checked by
hash, and the receivers' checksum error counters (issue 26: checksum offload through VPP).

A pod runs :data:`SERVER` (``start_server``): TCP port 5301 reads a length-prefixed payload and
answers its SHA-256 and the payload reversed; UDP port 5302 answers each datagram with its
SHA-256 and the datagram reversed. So every byte crosses the path in both directions, with
checksums the sending kernels left to VPP (partial) where offload is on; a wrong checksum makes
the receiving kernel drop the segment (the exchange times out) and counts in ``InCsumErrors``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
import sys

from plugins.linux.netns import run_in_namespace

TCP_PORT, UDP_PORT = 5301, 5302

SERVER = f"""\
import hashlib, socket, struct, threading
TCP_PORT, UDP_PORT = {TCP_PORT}, {UDP_PORT}
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", TCP_PORT)); s.listen(8)
    while True:
        c, _ = s.accept()
        def serve(c=c):
            with c:
                f = c.makefile("rb"); (n,) = struct.unpack("!Q", f.read(8)); data = f.read(n)
                c.sendall(hashlib.sha256(data).digest() + data[::-1])
        threading.Thread(target=serve, daemon=True).start()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", UDP_PORT))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(hashlib.sha256(data).digest() + data[::-1], peer)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
tcp()
"""


def start_server(netns: str) -> subprocess.Popen[str]:
    """The integrity server in ``netns``, listening once this returns (kill it when done)."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", SERVER],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"integrity server in {netns} did not start: {line!r}")
    return proc


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(1 << 16, n - got))
        if not chunk:
            raise ConnectionError(f"connection closed after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def tcp_exchange(ip: str, size: int, timeout_s: float = 20.0) -> None:
    """Send ``size`` random bytes to the server at ``ip`` and check what comes back (both ways)."""
    data = os.urandom(size)
    with socket.create_connection((ip, TCP_PORT), timeout=timeout_s) as sock:
        sock.sendall(struct.pack("!Q", size) + data)
        digest = _read_exactly(sock, 32)
        back = _read_exactly(sock, size)
    if digest != hashlib.sha256(data).digest():
        raise AssertionError(f"TCP to {ip}: the server received other bytes than were sent")
    if back != data[::-1]:
        raise AssertionError(f"TCP from {ip}: the client received other bytes than were sent")


def udp_exchange(ip: str, size: int, timeout_s: float = 2.0, attempts: int = 5) -> None:
    """One random datagram of ``size`` bytes to the server at ``ip`` and its answer, checked (a
    lost datagram is sent again; every attempt lost fails)."""
    data = os.urandom(size)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        for _ in range(attempts):
            sock.sendto(data, (ip, UDP_PORT))
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                continue
            if reply[:32] != hashlib.sha256(data).digest() or reply[32:] != data[::-1]:
                raise AssertionError(f"UDP {ip} ({size} bytes): the answer does not match what was sent")
            return
    raise AssertionError(f"UDP {ip} ({size} bytes): no answer in {attempts} attempts")


def checksum_errors(netns: str) -> dict[str, int]:
    """``InCsumErrors`` of TCP and UDP in ``netns`` (/proc/thread-self/net/snmp inside it)."""
    def read() -> dict[str, int]:
        with open("/proc/thread-self/net/snmp") as f:
            lines = f.read().splitlines()
        out = {}
        for head, values in zip(lines[::2], lines[1::2], strict=False):
            proto, names = head.split(":", 1)
            if proto in ("Tcp", "Udp"):
                table = dict(zip(names.split(), values.split(":", 1)[1].split(), strict=True))
                out[proto] = int(table["InCsumErrors"])
        return out
    return run_in_namespace(netns, read)
