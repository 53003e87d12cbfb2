"""Address, route, neighbour, FDB and sysctl descriptors against real network namespaces."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest
from pydantic import ValidationError

from plugins.kvscheduler.api import InvalidValueError, Origin, ValueWithMetadata
from plugins.linux.descriptors.address import AddressDescriptor
from plugins.linux.descriptors.neighbour import FdbDescriptor, NeighbourDescriptor
from plugins.linux.descriptors.route import RouteDescriptor
from plugins.linux.descriptors.sysctl import SysctlDescriptor
from plugins.linux.descriptors.veth import VethDescriptor
from plugins.linux.descriptors.vxlan import VxlanDescriptor
from plugins.linux.models import (
    FdbEntry,
    InterfaceAddress,
    Neighbour,
    Route,
    Sysctl,
    Veth,
    VethEnd,
    Vxlan,
    link_property_key,
)
from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns


def routes(ns: str, *extra: str) -> list[dict[str, object]]:
    return list(json.loads(ip("-j", "route", "show", *extra, ns=ns)))


async def wired(make_netns: Callable[[], str]) -> tuple[str, str]:
    """Two namespaces joined by our veth pair: ``eth0`` in the pod, ``h-p1`` in the node."""
    pod, node = make_netns(), make_netns()
    veth = Veth(name="p1", end1=VethEnd(namespace=pod, ifname="eth0", mac="02:fe:00:00:00:01"),
                end2=VethEnd(namespace=node, ifname="h-p1", mac="02:fe:00:00:00:02"))
    await VethDescriptor().create("config/linux/v1/veth/p1", veth)
    return pod, node


async def test_address_route_neighbour_roundtrip(make_netns: Callable[[], str]) -> None:
    pod, _node = await wired(make_netns)
    addr_d, route_d, neigh_d = AddressDescriptor(), RouteDescriptor(), NeighbourDescriptor()
    addr = InterfaceAddress(namespace=pod, ifname="eth0", address=IPv4Interface("10.1.1.2/32"))
    gw_route = Route(namespace=pod, dst=IPv4Network("10.1.1.1/32"), dev="eth0")
    default = Route(namespace=pod, dst=IPv4Network("0.0.0.0/0"),
                    gateway=IPv4Address("10.1.1.1"), dev="eth0", onlink=True)
    neigh = Neighbour(namespace=pod, ifname="eth0", ip=IPv4Address("10.1.1.1"),
                      mac="02:fe:00:00:00:02")
    assert [d.key for d in addr_d.dependencies("k", addr)] == [link_property_key(pod, "eth0")]

    await addr_d.create(addr_d.key_of(addr), addr)
    # Created out of order on purpose: the default route is onlink, so it needs no link route.
    for value in (default, gw_route):
        await route_d.create(route_d.key_of(value), value)
    await neigh_d.create(neigh_d.key_of(neigh), neigh)

    assert "10.1.1.2" in ip("-4", "addr", "show", "eth0", ns=pod)
    by_dst = {r["dst"]: r for r in routes(pod, "proto", "152")}
    assert set(by_dst) == {"default", "10.1.1.1"}
    assert by_dst["default"]["gateway"] == "10.1.1.1"
    assert "02:fe:00:00:00:02 PERMANENT" in ip("neigh", "show", "dev", "eth0", ns=pod)

    correlate = [ValueWithMetadata(d.key_of(v), v, None) for d, v in (
        (addr_d, addr), (route_d, gw_route), (route_d, default), (neigh_d, neigh))]
    found = {r.key: r.value for d in (addr_d, route_d, neigh_d) for r in await d.retrieve(correlate)}
    assert found == {c.key: c.value for c in correlate}

    await neigh_d.delete(neigh_d.key_of(neigh), neigh, None)
    for value in (default, gw_route):
        await route_d.delete(route_d.key_of(value), value, None)
    await addr_d.delete(addr_d.key_of(addr), addr, None)
    assert routes(pod, "proto", "152") == []
    assert "10.1.1.2" not in ip("-4", "addr", "show", "eth0", ns=pod)
    assert "PERMANENT" not in ip("neigh", "show", "dev", "eth0", ns=pod)
    assert await route_d.retrieve(correlate) == []


async def test_foreign_routes_and_addresses_are_never_touched(
    make_netns: Callable[[], str],
) -> None:
    _pod, node = await wired(make_netns)
    ip("link", "add", "foreign0", "type", "veth", "peer", "name", "foreign1", ns=node)
    ip("link", "set", "foreign0", "up", ns=node)
    ip("addr", "add", "10.77.0.1/24", "dev", "foreign0", ns=node)
    ip("route", "add", "10.78.0.0/24", "dev", "foreign0", "proto", "static", ns=node)
    ip("neigh", "add", "10.77.0.9", "lladdr", "02:00:00:00:00:09", "dev", "foreign0",
       "nud", "permanent", ns=node)
    route_d, addr_d, neigh_d = RouteDescriptor(), AddressDescriptor(), NeighbourDescriptor()
    ours = Route(namespace=node, dst=IPv4Network("10.1.1.2/32"), dev="h-p1")
    await route_d.create(route_d.key_of(ours), ours)

    scan = [ValueWithMetadata(route_d.key_of(ours), ours, None)]
    assert [r.value for r in await route_d.retrieve(scan)] == [ours]
    assert await addr_d.retrieve(scan) == []
    assert await neigh_d.retrieve(scan) == []

    # Deleting "our" route with the destination of a foreign one leaves the foreign one.
    clash = Route(namespace=node, dst=IPv4Network("10.78.0.0/24"), dev="foreign0",
                  dev_is_ours=False)
    await route_d.delete(route_d.key_of(clash), clash, None)
    assert any(r["dst"] == "10.78.0.0/24" for r in routes(node))
    # Addresses and neighbours on foreign links are refused, not added.
    with pytest.raises(OSError, match="not ours"):
        bad = InterfaceAddress(namespace=node, ifname="foreign0",
                               address=IPv4Interface("10.77.0.2/24"))
        await addr_d.create(addr_d.key_of(bad), bad)
    await route_d.delete(route_d.key_of(ours), ours, None)
    assert [r["dst"] for r in routes(node)] == ["10.77.0.0/24", "10.78.0.0/24"]


async def test_route_validation() -> None:
    desc = RouteDescriptor()
    with pytest.raises(InvalidValueError, match="needs a dev"):
        desc.validate("k", Route(namespace="x", dst=IPv4Network("10.0.0.0/8")))
    with pytest.raises(ValidationError):
        Route(namespace="x", dst=IPv4Network("10.0.0.0/8"), dev="bad name")
    foreign_dev = Route(namespace="x", dst=IPv4Network("10.0.0.0/8"), dev="eth9",
                        dev_is_ours=False)
    assert desc.dependencies("k", foreign_dev) == []


async def test_vxlan_fdb_and_neighbour(make_netns: Callable[[], str]) -> None:
    node = make_netns()
    vx_d, fdb_d, neigh_d = VxlanDescriptor(), FdbDescriptor(), NeighbourDescriptor()
    vx = Vxlan(namespace=node, ifname="vxlan10", vni=10, local=IPv4Address("192.0.2.1"),
               mac="12:2b:00:00:00:01")
    await vx_d.create(vx_d.key_of(vx), vx)
    fdb = FdbEntry(namespace=node, ifname="vxlan10", mac="12:2b:00:00:00:02",
                   dst=IPv4Address("192.0.2.2"))
    neigh = Neighbour(namespace=node, ifname="vxlan10", ip=IPv4Address("192.168.30.2"),
                      mac="12:2b:00:00:00:02")
    await fdb_d.create(fdb_d.key_of(fdb), fdb)
    await neigh_d.create(neigh_d.key_of(neigh), neigh)
    fdb_out = subprocess.run(
        ["bridge", "-n", node, "fdb", "show", "dev", "vxlan10"], capture_output=True, text=True,
        check=True).stdout
    assert "12:2b:00:00:00:02 dst 192.0.2.2" in fdb_out

    scan = [ValueWithMetadata(vx_d.key_of(vx), vx, None)]
    assert [r.value for r in await fdb_d.retrieve(scan)] == [fdb]
    assert [r.value for r in await neigh_d.retrieve(scan)] == [neigh]

    await fdb_d.delete(fdb_d.key_of(fdb), fdb, None)
    await neigh_d.delete(neigh_d.key_of(neigh), neigh, None)
    assert await fdb_d.retrieve(scan) == [] and await neigh_d.retrieve(scan) == []
    await vx_d.delete(vx_d.key_of(vx), vx, None)


async def test_sysctl_set_retrieve_restore(make_netns: Callable[[], str]) -> None:
    node = make_netns()
    # A new namespace copies the host's IPv4 settings (ip_forward is 1 on every Kubernetes node):
    # start from a known value, not from the host's.
    ip("netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    desc = SysctlDescriptor()
    value = Sysctl(namespace=node, name="net.ipv4.ip_forward", value="1")
    key = desc.key_of(value)
    previous = await desc.create(key, value)
    assert previous == "0"
    assert ip("netns", "exec", node, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
    found = await desc.retrieve([ValueWithMetadata(key, value, previous)])
    assert [(r.value, r.metadata, r.origin) for r in found] == [(value, "0", Origin.FROM_NB)]
    await desc.delete(key, value, previous)
    assert ip("netns", "exec", node, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "0"
    with pytest.raises(ValidationError):
        Sysctl(namespace=node, name="kernel.panic", value="1")
