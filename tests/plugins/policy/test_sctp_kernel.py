"""An SCTP policy enforced by the real kernel: SCTP INIT chunks, built by hand and sent over raw
sockets (this kernel has no SCTP sockets, but its netfilter parses SCTP headers), are routed
through a node namespace holding the rendered policy table.

client (x/b) --veth-- node (the policy table, forward hook) --veth-- server (x/a)

The policy lets x/b reach x/a on SCTP port 80 only. The client sends to port 81 first, then to
port 80, over the same path: when the port-80 packet arrives, the port-81 one, sent before it on
the same path, would have arrived first had it been forwarded. So the test waits for an event
(the allowed packet), never for a timeout.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.descriptors.nfttable import NftTableDescriptor
from plugins.linux.netns import run_in_namespace
from plugins.linux.nft.table import table_key
from tests.plugins.policy import netpol_cases as nc
from tests.plugins.policy.harness import Cluster

pytestmark = pytest.mark.netns

IPPROTO_SCTP = 132


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def sctp_init(src_port: int, dst_port: int, tag: int) -> bytes:
    """An SCTP packet with one INIT chunk, checksummed (CRC32c, as RFC 4960 asks)."""
    init = struct.pack("!IIHHI", tag, 65535, 1, 1, tag)  # initiate tag, a_rwnd, streams, TSN
    chunk = struct.pack("!BBH", 1, 0, 4 + len(init)) + init
    header = struct.pack("!HHII", src_port, dst_port, 0, 0)
    crc = _crc32c(header + chunk)
    return header[:8] + struct.pack("<I", crc) + chunk


def sh(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


@pytest.fixture
def topology() -> Iterator[tuple[str, str, str]]:
    if os.geteuid() != 0:
        pytest.fail("needs root")
    tag = f"sctp{os.getpid() % 10000}{uuid.uuid4().hex[:3]}"
    node, client, server = f"{tag}-n", f"{tag}-c", f"{tag}-s"
    made: list[str] = []
    try:
        for ns in (node, client, server):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield node, client, server
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def wire(node: str, pod_ns: str, index: int, ip: str) -> None:
    """A pod namespace behind a veth, routed by the node namespace (as the Linux dataplane does)."""
    host = f"v{index}"
    sh("ip", "link", "add", host, "netns", node, "type", "veth", "peer", "name", "eth0", "netns", pod_ns)
    sh("ip", "-n", pod_ns, "link", "set", "eth0", "up")
    sh("ip", "-n", node, "link", "set", host, "up")
    sh("ip", "-n", pod_ns, "addr", "add", f"{ip}/32", "dev", "eth0")
    sh("ip", "-n", node, "addr", "add", f"169.254.1.{index}/32", "dev", host)
    sh("ip", "-n", pod_ns, "route", "add", f"169.254.1.{index}", "dev", "eth0")
    sh("ip", "-n", pod_ns, "route", "add", "default", "via", f"169.254.1.{index}", "dev", "eth0")
    sh("ip", "-n", node, "route", "add", f"{ip}/32", "dev", host)


@pytest.fixture
async def scheduler() -> AsyncIterator[KVScheduler]:
    sched = KVScheduler()
    sched.register_descriptor(NftTableDescriptor())
    yield sched
    await sched.close()


async def test_an_sctp_port_is_allowed_and_another_is_dropped_by_the_kernel(
    topology: tuple[str, str, str], scheduler: KVScheduler
) -> None:
    node, client, server = topology
    cluster = Cluster()
    server_ip, client_ip = cluster.ips["x/a"], cluster.ips["x/b"]
    # x/a lives on node1 (the table below); only x/b may reach it, on SCTP 80.
    cluster.set_policy(nc.policy("x", "sctp-80", nc.pod_sel("a"), types=["Ingress"], ingress=[
        {"from": [{"podSelector": nc.pod_sel("b")}], "ports": [{"protocol": "SCTP", "port": 80}]}]))
    table = cluster.tables()["node1"].model_copy(update={"namespace": node})
    assert any("sctp dport" in rule for chain in table.chains.values() for rule in chain.rules)
    wire(node, client, 1, client_ip)
    wire(node, server, 2, server_ip)
    sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    result = await scheduler.commit({table_key(node, "inet", table.name): table})
    assert result.ok, result.errors

    receiver = run_in_namespace(server, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_SCTP))
    sender = run_in_namespace(client, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_SCTP))
    try:
        sender.sendto(sctp_init(40000, 81, 0x81818181), (server_ip, 0))
        sender.sendto(sctp_init(40001, 80, 0x80808080), (server_ip, 0))
        seen: list[int] = []
        while 80 not in seen:
            ready, _, _ = select.select([receiver], [], [], 60)  # a generous bound: fails, never passes
            assert ready, f"no SCTP packet reached the server (seen: {seen})"
            packet = receiver.recv(2048)
            ihl = (packet[0] & 0x0F) * 4
            src, dst = struct.unpack("!HH", packet[ihl:ihl + 4])
            if src in (40000, 40001):
                seen.append(dst)
        assert seen == [80], "the SCTP packet to port 81, sent first, passed the policy"
    finally:
        receiver.close()
        sender.close()
