"""ipnet intent and the linux renderer as pure functions (property tests where they fit)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from plugins.ipnet.compute import (
    IntentError,
    fnv1a_32,
    node_intent,
    pod_intent,
    pod_macs,
    remote_node_intent,
    vxlan_mac,
)
from plugins.ipnet.intent import PodIntent, Transport
from plugins.ipnet.renderer.linux import VXLAN_IFNAME, LinuxRenderer, host_ifname
from plugins.linux.models import (
    FdbEntry,
    InterfaceAddress,
    Neighbour,
    Route,
    Sysctl,
    Veth,
    Vxlan,
)
from tests.plugins.ipnet.support import plan

node_ids = st.integers(min_value=1, max_value=254)
host_indexes = st.integers(min_value=2, max_value=253)
container_ids = st.text(alphabet="0123456789abcdef", min_size=1, max_size=64)


def make_pod(node_id: int, index: int, cid: str = "c1", ns: str = "/var/run/netns/p") -> PodIntent:
    node = node_intent(plan(node_id), f"n{node_id}")
    return pod_intent(node, pod_name="web", pod_namespace="default", container_id=cid,
                      netns_path=ns, ip=node.pod_subnet.network_address + index)


def test_fnv1a_known_vectors() -> None:
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


@given(node_ids, host_indexes, container_ids)
def test_pod_intent_shape(node_id: int, index: int, cid: str) -> None:
    pod = make_pod(node_id, index, cid)
    gateway = IPv4Address(f"10.1.{node_id}.1")
    assert pod.ip_address.network.prefixlen == 32
    assert pod.ip_address.ip == IPv4Address(f"10.1.{node_id}.{index}")
    assert pod.gateway == gateway
    link_route, default_route = pod.pod_routes
    assert link_route.dst == IPv4Network(f"{gateway}/32") and link_route.link_scope
    assert default_route.dst == IPv4Network("0.0.0.0/0") and default_route.gateway == gateway
    assert [(n.ip, n.mac) for n in pod.pod_neighbours] == [(gateway, pod.gateway_mac)]
    assert pod.node_route.dst == IPv4Network(f"{pod.ip_address.ip}/32")
    # MACs: deterministic, distinct, unicast and locally administered.
    assert (pod.pod_mac, pod.gateway_mac) == pod_macs(cid, "eth0")
    assert pod.pod_mac != pod.gateway_mac
    for mac in (pod.pod_mac, pod.gateway_mac):
        first = int(mac[:2], 16)
        assert not first & 1 and first & 2


@given(node_ids, st.sampled_from([0, 1, 255, 256, -1]))
def test_pod_ip_outside_or_reserved_is_refused(node_id: int, index: int) -> None:
    with pytest.raises(IntentError, match=rf"10\.1\.{node_id}\.0/24"):
        make_pod(node_id, index)


@given(st.integers(min_value=1, max_value=(1 << 32) - 1), st.integers(min_value=1,
                                                                       max_value=(1 << 32) - 1))
def test_vxlan_macs_are_unique_per_node(a: int, b: int) -> None:
    assert (vxlan_mac(a) == vxlan_mac(b)) == (a == b)
    assert vxlan_mac(a).startswith("12:2b:")


@given(node_ids, node_ids, st.lists(st.ip_addresses(v=4).map(str), max_size=4))
def test_remote_node_intent(me: int, other: int, mgmt: list[str]) -> None:
    node = node_intent(plan(me), "me")
    if me == other:
        with pytest.raises(IntentError):
            remote_node_intent(node, plan(other), "other")
        return
    remote = remote_node_intent(node, plan(other), "other", mgmt_addresses=mgmt)
    assert remote.node_ip == IPv4Address(f"192.168.16.{other}")
    assert remote.vxlan_ip == IPv4Address(f"192.168.30.{other}")
    assert remote.networks[:2] == (IPv4Network(f"10.1.{other}.0/24"),
                                   IPv4Network(f"172.30.{other}.0/24"))
    # Never route the tunnel end or this node's own addresses into the tunnel.
    for net in remote.networks:
        assert remote.node_ip not in net
        assert node.node_ip.ip not in net and node.vxlan_ip.ip not in net
    assert len(set(remote.networks)) == len(remote.networks)


def test_published_ip_wins_over_the_plan() -> None:
    from ipaddress import IPv4Interface

    node = node_intent(plan(1), "me", node_ip=IPv4Interface("10.200.0.1/24"))
    assert node.node_ip == IPv4Interface("10.200.0.1/24")
    remote = remote_node_intent(node, plan(2), "two",
                                published_ips=[IPv4Interface("10.200.0.2/24")],
                                mgmt_addresses=["10.200.0.2", "10.0.0.7", "not-an-ip", "fe80::1"])
    assert remote.node_ip == IPv4Address("10.200.0.2")
    assert IPv4Network("10.0.0.7/32") in remote.networks
    assert IPv4Network("10.200.0.2/32") not in remote.networks


def test_intent_models_reject_bad_values() -> None:
    pod = make_pod(1, 2)
    with pytest.raises(ValidationError, match="/32"):
        PodIntent.model_validate({**pod.model_dump(), "ip_address": "10.1.1.2/24"})
    with pytest.raises(ValidationError):
        node_intent(plan(1), "me", mtu=100)


# ------------------------------------------------------------------------- linux renderer


def by_type(values: dict[str, BaseModel]) -> dict[type, list[BaseModel]]:
    grouped: dict[type, list[BaseModel]] = {}
    for value in values.values():
        grouped.setdefault(type(value), []).append(value)
    return grouped


@given(node_ids, st.lists(host_indexes, min_size=1, max_size=8, unique=True))
def test_linux_pods_never_collide(node_id: int, indexes: list[int]) -> None:
    renderer = LinuxRenderer("nodens")
    node = node_intent(plan(node_id), "me")
    merged: dict[str, BaseModel] = dict(renderer.render_node(node))
    for i in indexes:
        pod = make_pod(node_id, i, cid=f"cid{i}", ns=f"/var/run/netns/pod{i}")
        values = renderer.render_pod(node, pod)
        assert not set(values) & set(merged)
        assert renderer.render_pod(node, pod) == values  # stable
        merged.update(values)


def test_linux_pod_values() -> None:
    renderer = LinuxRenderer("nodens")
    node = node_intent(plan(3), "me")
    pod = make_pod(3, 9, cid="abc", ns="/proc/42/ns/net")
    values = by_type(dict(renderer.render_pod(node, pod)))
    (veth,) = values[Veth]
    assert isinstance(veth, Veth)
    assert (veth.end1.namespace, veth.end1.ifname, veth.end1.mac) == (
        "/proc/42/ns/net", "eth0", pod.pod_mac)
    assert (veth.end2.namespace, veth.end2.ifname, veth.end2.mac) == (
        "nodens", host_ifname(pod), pod.gateway_mac)
    addresses = {(a.namespace, str(a.address)) for a in values[InterfaceAddress]
                 if isinstance(a, InterfaceAddress)}
    assert addresses == {("/proc/42/ns/net", "10.1.3.9/32"), ("nodens", "10.1.3.1/32")}
    routes = {(r.namespace, str(r.dst), str(r.gateway), r.dev) for r in values[Route]
              if isinstance(r, Route)}
    assert routes == {
        ("/proc/42/ns/net", "10.1.3.1/32", "None", "eth0"),
        ("/proc/42/ns/net", "0.0.0.0/0", "10.1.3.1", "eth0"),
        ("nodens", "10.1.3.9/32", "None", host_ifname(pod)),
    }
    neighbours = {(n.namespace, str(n.ip), n.mac) for n in values[Neighbour]
                  if isinstance(n, Neighbour)}
    assert neighbours == {("/proc/42/ns/net", "10.1.3.1", pod.gateway_mac),
                          ("nodens", "10.1.3.9", pod.pod_mac)}


@pytest.mark.parametrize("transport", list(Transport))
def test_linux_node_and_mesh_values(transport: Transport) -> None:
    renderer = LinuxRenderer("")
    node = node_intent(plan(1), "me", transport=transport)
    remote = remote_node_intent(node, plan(2), "two")
    base = by_type(dict(renderer.render_node(node)))
    mesh = by_type(dict(renderer.render_remote_node(node, remote)))
    assert [s.name for s in base[Sysctl] if isinstance(s, Sysctl)] == ["net.ipv4.ip_forward"]
    routes = [r for r in mesh[Route] if isinstance(r, Route)]
    assert {r.dst for r in routes} == set(remote.networks)
    if transport is Transport.VXLAN:
        (vx,) = base[Vxlan]
        assert isinstance(vx, Vxlan) and vx.vni == 10 and vx.local == IPv4Address("192.168.16.1")
        assert all(r.gateway == IPv4Address("192.168.30.2") and r.dev == VXLAN_IFNAME
                   for r in routes)
        (fdb,) = mesh[FdbEntry]
        assert isinstance(fdb, FdbEntry) and fdb.dst == IPv4Address("192.168.16.2")
        assert fdb.mac == vxlan_mac(2)
    else:
        assert Vxlan not in base and FdbEntry not in mesh
        assert all(r.gateway == IPv4Address("192.168.16.2") and not r.dev_is_ours
                   for r in routes)
