"""A UDP flow follows its service's backends: the real processor, renderer, KV scheduler, nft
table and conntrack in namespaces.

node namespace (the service table; the client is a process of the node) --veth-- pods (two
backend addresses, each answered by its own UDP responder)

NAT is decided on a flow's first datagram: without the sessions descriptor, a client that keeps
its socket would keep reaching a backend removed from the service for as long as its conntrack
entry lives (the removed responder still answers here, so the test would see it).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from ipaddress import IPv4Network

import pytest

from plugins.ksr.model import (
    EndpointPort,
    EndpointSlice,
    Protocol,
    Service,
    ServicePort,
    SliceEndpoint,
    TargetPort,
)
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.descriptors.nfttable import NftTableDescriptor
from plugins.linux.descriptors.sessions import SessionsDescriptor
from plugins.linux.netns import run_in_namespace
from plugins.service.processor import NodeAddresses, ServiceProcessor
from plugins.service.renderer.nftables import NftRenderer
from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns

VIP, BACKENDS = "10.96.7.7", ("10.1.9.2", "10.1.9.3")
RESPONDER = """
import select, socket, sys
socks = []
for ip in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((ip, 5353)); socks.append(s)
print("ready", flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        data, peer = s.recvfrom(100)
        s.sendto(s.getsockname()[0].encode(), peer)
"""


@pytest.fixture
def topology(make_netns: Callable[[], str]) -> Iterator[tuple[str, str]]:
    node, pods = make_netns(), make_netns()
    ip("link", "add", "eth0", "netns", pods, "type", "veth", "peer", "name", "to-pods", "netns", node)
    for address in BACKENDS:
        ip("addr", "add", f"{address}/24", "dev", "eth0", ns=pods)
    ip("link", "set", "eth0", "up", ns=pods)
    ip("addr", "add", "10.1.9.1/24", "dev", "to-pods", ns=node)
    ip("link", "set", "to-pods", "up", ns=node)
    ip("route", "add", "10.96.0.0/12", "dev", "lo", ns=node)
    responder = subprocess.Popen(["ip", "netns", "exec", pods, sys.executable, "-c", RESPONDER, *BACKENDS],
                                 stdout=subprocess.PIPE, text=True)
    try:
        assert responder.stdout is not None and responder.stdout.readline().strip() == "ready"
        yield node, pods
    finally:
        responder.kill()
        responder.wait()


def service() -> Service:
    return Service(name="dns", namespace="t", cluster_ip=VIP, cluster_ips=[VIP], ports=[
        ServicePort(name="dns", protocol=Protocol.UDP, port=53, target_port=TargetPort(int_val=5353))])


def endpoints(ips: tuple[str, ...]) -> EndpointSlice:
    return EndpointSlice(name="dns-1", namespace="t", service_name="dns", ports=[
        EndpointPort(name="dns", protocol=Protocol.UDP, port=5353)],
        endpoints=[SliceEndpoint(addresses=[ip], node_name="n1") for ip in ips])


@pytest.fixture
async def scheduler() -> AsyncIterator[tuple[KVScheduler, SessionsDescriptor]]:
    sched = KVScheduler(verify=True)
    sessions = SessionsDescriptor()
    sched.register_descriptor(NftTableDescriptor())
    sched.register_descriptor(sessions)
    try:
        yield sched, sessions
    finally:
        await sched.close()


async def test_a_udp_flow_moves_off_a_backend_removed_from_its_service(
    topology: tuple[str, str], scheduler: tuple[KVScheduler, SessionsDescriptor],
) -> None:
    node, _ = topology
    sched, sessions = scheduler
    processor = ServiceProcessor(NodeAddresses("n1", own=("192.168.16.1",)))
    renderer = NftRenderer(namespace=node, pod_network=IPv4Network("10.1.0.0/16"),
                           service_network=IPv4Network("10.96.0.0/12"), route_service_network=False)
    processor.resync([service()], [endpoints(BACKENDS)], processor.nodes)
    for key, intent in processor.intents.items():
        renderer.set_service(key, intent)
    result = await sched.commit(dict(renderer.values()))
    assert result.ok, result.errors
    client = run_in_namespace(node, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    client.settimeout(30)  # a lost datagram fails the test instead of hanging it
    try:
        client.bind(("10.1.9.1", 0))

        def ask() -> str:
            client.sendto(b"?", (VIP, 53))
            return client.recv(100).decode()

        first = ask()
        assert first in BACKENDS
        assert {ask() for _ in range(5)} == {first}  # one flow, one backend (its conntrack entry)
        # The backend that answered leaves the service (it keeps running, as a terminating pod may).
        remaining = tuple(ip for ip in BACKENDS if ip != first)
        for key in processor.set_slice(endpoints(remaining), endpoints(BACKENDS)):
            renderer.set_service(key, processor.intents.get(key))
        result = await sched.commit(dict(renderer.values()))
        assert result.ok, result.errors
        assert sessions.deleted >= 1
        assert ask() == remaining[0]  # the same socket, the same 5-tuple: now the remaining backend
    finally:
        client.close()


def udp_entries(ns: str) -> list[str]:
    """The conntrack entries to the service's frontend in ``ns`` (the conntrack tool's view)."""
    done = subprocess.run(["ip", "netns", "exec", ns, "conntrack", "-L", "-p", "udp", "--orig-dst", VIP],
                          capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if line.startswith("udp")]


async def test_a_new_frontend_drops_entries_that_bypassed_it_and_a_gone_one_drops_its_own(
    topology: tuple[str, str], scheduler: tuple[KVScheduler, SessionsDescriptor],
) -> None:
    node, _ = topology
    sched, _ = scheduler
    # An entry made before the service was served (no DNAT): it would carry the flow past it.
    ip("netns", "exec", node, "conntrack", "-I", "-p", "udp", "-s", "10.1.9.1", "-d", VIP, "--sport", "40000",
       "--dport", "53", "--timeout", "300", "-r", VIP, "-q", "10.1.9.1", "--reply-port-src", "53",
       "--reply-port-dst", "40000")
    assert len(udp_entries(node)) == 1
    processor = ServiceProcessor(NodeAddresses("n1"))
    renderer = NftRenderer(namespace=node, route_service_network=False)
    processor.resync([service()], [endpoints(BACKENDS)], processor.nodes)
    renderer.set_service("t/dns", processor.intents["t/dns"])
    result = await sched.commit(dict(renderer.values()))
    assert result.ok, result.errors
    assert udp_entries(node) == []
    client = run_in_namespace(node, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    client.settimeout(30)
    try:
        client.sendto(b"?", (VIP, 53))
        assert client.recv(100).decode() in BACKENDS
    finally:
        client.close()
    assert len(udp_entries(node)) == 1
    # The service goes: its flows' entries go with it.
    processor.set_service(None, service())
    renderer.set_service("t/dns", None)
    result = await sched.commit({**renderer.values(), **dict.fromkeys(renderer.take_removed())})
    assert result.ok, result.errors
    assert udp_entries(node) == []
