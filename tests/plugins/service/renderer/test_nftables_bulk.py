"""The service table as the agent creates it at scale: its elements go over netlink (the
descriptor's default threshold), and the kernel's table reads back as the desired value."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network

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
from plugins.kvscheduler.api import ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.descriptors.nfttable import BULK_MIN, NftTableDescriptor
from plugins.linux.descriptors.sessions import SessionsDescriptor
from plugins.linux.nft.driver import Nft
from plugins.service.processor import NodeAddresses, ServiceProcessor
from plugins.service.renderer.nftables import NftRenderer

pytestmark = pytest.mark.netns


def objects(count: int) -> tuple[list[Service], list[EndpointSlice]]:
    """Services of every kind the renderer knows: ClusterIP over 1-3 backends, NodePort (SNAT),
    UDP, ClientIP affinity, and one without endpoints."""
    services, slices = [], []
    for i in range(count):
        vip = str(IPv4Address("10.96.0.10") + i)
        kind = ("ClusterIP", "NodePort", "ClusterIP", "ClusterIP")[i % 4]
        protocol = Protocol.UDP if i % 4 == 2 else Protocol.TCP
        services.append(Service(
            name=f"s{i}", namespace="b", cluster_ip=vip, cluster_ips=[vip], service_type=kind,
            session_affinity="ClientIP" if i % 97 == 0 else "None",
            ports=[ServicePort(name="p", protocol=protocol, port=80, target_port=TargetPort(int_val=8080),
                               node_port=30000 + i if kind == "NodePort" else 0)]))
        if i == count - 1:
            continue  # no endpoints: rejected
        slices.append(EndpointSlice(name=f"s{i}-1", namespace="b", service_name=f"s{i}", ports=[
            EndpointPort(name="p", protocol=protocol, port=8080)], endpoints=[
            SliceEndpoint(addresses=[str(IPv4Address("10.1.0.2") + 3 * i + j)], node_name="n1" if j else "n2")
            for j in range(1 + i % 3)]))
    return services, slices


async def test_a_big_service_table_is_created_over_netlink_and_reads_back_as_desired(
    make_netns: Callable[[], str],
) -> None:
    node = make_netns()
    processor = ServiceProcessor(NodeAddresses("n1", own=("192.168.16.1",), others=("192.168.16.2",)))
    renderer = NftRenderer(namespace=node, pod_network=IPv4Network("10.1.0.0/16"),
                           service_network=IPv4Network("10.96.0.0/12"), route_service_network=False)
    services, slices = objects(800)
    processor.resync(services, slices, processor.nodes)
    for key, intent in processor.intents.items():
        renderer.set_service(key, intent)
    value = renderer.table_value()
    assert sum(len(g) for b in value.buckets.values() for g in b.values()) > BULK_MIN
    sched = KVScheduler(verify=True)  # every change is read back and compared
    desc = NftTableDescriptor()
    sched.register_descriptor(desc)
    sched.register_descriptor(SessionsDescriptor())
    try:
        result = await sched.commit(dict(renderer.values()))
        assert result.ok, result.errors
        assert desc.writes == 3  # the inert table, the elements over netlink, the base chains
        table = Nft(node).list_table("ip", "contiv-svc")
        assert table is not None
        assert table.sets["fe"].elements["10.96.0.11 . tcp . 80"] == "goto lb-tcp-2"
        assert table.sets["be-udp"].elements["10.96.0.12 . udp . 80 . 0"] == "10.1.0.10 . 8080"  # text order
        assert "192.168.16.1 . tcp . 30001" in table.sets["masq"].elements
        assert "10.96.3.41 . tcp . 80" in table.sets["noep"].elements  # the last one, 10.96.0.10 + 799
        # A full resync (an agent restart) finds it as desired: nothing is written.
        result = await sched.commit(dict(renderer.values()), resync=ResyncMode.FULL)
        assert result.ok and result.operations == [], result.operations
        assert desc.writes == 3
    finally:
        await sched.close()
