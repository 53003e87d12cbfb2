"""Veth and VXLAN descriptors against real network namespaces."""

from __future__ import annotations

import json
from collections.abc import Callable
from ipaddress import IPv4Address

import pytest
from pydantic import ValidationError

from plugins.kvscheduler.api import InvalidValueError, Origin, ValueWithMetadata
from plugins.linux.descriptors.veth import VethDescriptor
from plugins.linux.descriptors.vxlan import VxlanDescriptor
from plugins.linux.models import Veth, VethEnd, Vxlan, link_property_key
from plugins.linux.netns import NamespaceNotFoundError
from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns


def links(ns: str) -> dict[str, dict[str, object]]:
    return {link["ifname"]: link for link in json.loads(ip("-d", "-j", "link", "show", ns=ns))}


def pair(ns1: str, ns2: str, name: str = "p1") -> Veth:
    return Veth(
        name=name,
        end1=VethEnd(namespace=ns1, ifname="eth0", mac="02:fe:00:00:00:01", mtu=1400),
        end2=VethEnd(namespace=ns2, ifname=f"h-{name}", mac="02:fe:00:00:00:02", mtu=1400),
    )


async def test_veth_across_namespaces_create_retrieve_update_delete(
    make_netns: Callable[[], str],
) -> None:
    pod, node = make_netns(), make_netns()
    desc = VethDescriptor()
    value = pair(pod, node)
    key = desc.key_of(value)
    assert key == "config/linux/v1/veth/p1"

    await desc.create(key, value)
    pod_end, node_end = links(pod)["eth0"], links(node)["h-p1"]
    assert pod_end["address"] == "02:fe:00:00:00:01" and pod_end["mtu"] == 1400
    assert node_end["address"] == "02:fe:00:00:00:02"
    assert "UP" in pod_end["flags"] and "UP" in node_end["flags"]
    assert str(pod_end["ifalias"]).startswith(f"contiv:{key}@")

    found = await desc.retrieve([ValueWithMetadata(key, value, None)])
    assert [(r.key, r.value, r.origin) for r in found] == [(key, value, Origin.FROM_NB)]

    changed = value.model_copy(update={"end1": value.end1.model_copy(update={"mtu": 1300})})
    assert not desc.update_needs_recreate(key, value, changed)
    await desc.update(key, value, changed, None)
    assert links(pod)["eth0"]["mtu"] == 1300
    moved = changed.model_copy(update={"end1": changed.end1.model_copy(update={"ifname": "e1"})})
    assert desc.update_needs_recreate(key, changed, moved)

    await desc.delete(key, changed, None)
    assert "eth0" not in links(pod) and "h-p1" not in links(node)
    assert await desc.retrieve([ValueWithMetadata(key, changed, None)]) == []
    # Deleting again is a no-op.
    await desc.delete(key, changed, None)


async def test_veth_left_unmarked_by_a_crash_is_replaced_on_create(
    make_netns: Callable[[], str],
) -> None:
    """An agent killed between ``link add`` and marking leaves an unmarked veth: the next
    create replaces it (it used to fail with EEXIST for ever); a foreign veth stays."""
    pod, node = make_netns(), make_netns()
    desc = VethDescriptor()
    value = pair(pod, node)
    key = desc.key_of(value)
    ip("link", "add", "eth0", "type", "veth", "peer", "name", "h-p1", "netns", node, ns=pod)
    await desc.create(key, value)
    assert str(links(pod)["eth0"]["ifalias"]).startswith(f"contiv:{key}@")
    assert links(node)["h-p1"]["address"] == "02:fe:00:00:00:02"
    await desc.delete(key, value, None)
    # Marked for another value: not ours to remove.
    other = desc.key_of(pair(pod, node, name="p2"))
    ip("link", "add", "eth0", "type", "veth", "peer", "name", "x-p1", "netns", node, ns=pod)
    ip("link", "set", "eth0", "alias", f"contiv:{other}", ns=pod)
    with pytest.raises(Exception, match="File exists"):
        await desc.create(key, value)
    assert "eth0" in links(pod)


async def test_veth_retrieve_reports_ours_only(make_netns: Callable[[], str]) -> None:
    pod, node = make_netns(), make_netns()
    ip("link", "add", "foreign0", "type", "veth", "peer", "name", "foreign1", ns=node)
    desc = VethDescriptor(extra_namespaces=[node])
    value = pair(pod, node, "orphan")
    await desc.create(desc.key_of(value), value)

    # Nothing believed applied (state lost): ours is discovered through its mark, with its
    # peer recovered from the mark; the foreign pair is never reported.
    found = await desc.retrieve([])
    assert [r.key for r in found] == ["config/linux/v1/veth/orphan"]
    discovered = found[0].value
    assert isinstance(discovered, Veth)
    assert {(e.namespace, e.ifname) for e in (discovered.end1, discovered.end2)} == {
        (pod, "eth0"), (node, "h-orphan")}
    await desc.delete(found[0].key, discovered, None)
    assert "h-orphan" not in links(node)
    assert {"foreign0", "foreign1"} <= set(links(node))

    # A foreign link with the name of ours is not deleted by our delete.
    impostor = Veth(name="x", end1=VethEnd(namespace=node, ifname="foreign0"),
                    end2=VethEnd(namespace=node, ifname="foreign1"))
    await desc.delete(desc.key_of(impostor), impostor, None)
    assert {"foreign0", "foreign1"} <= set(links(node))


async def test_veth_derived_link_properties_and_validation(make_netns: Callable[[], str]) -> None:
    desc = VethDescriptor()
    value = pair("ns-a", "ns-b")
    assert [d.key for d in desc.derived_values("k", value)] == [
        link_property_key("ns-a", "eth0"), link_property_key("ns-b", "h-p1")]
    same = Veth(name="s", end1=VethEnd(namespace="n", ifname="a"),
                end2=VethEnd(namespace="n", ifname="a"))
    with pytest.raises(InvalidValueError, match="same name"):
        desc.validate("k", same)
    with pytest.raises(ValidationError, match="interface name"):
        VethEnd(namespace="n", ifname="much-too-long-name0")
    with pytest.raises(ValidationError, match="multicast"):
        VethEnd(namespace="n", ifname="a", mac="01:00:00:00:00:01")
    with pytest.raises(ValidationError, match="absolute"):
        VethEnd(namespace="relative/path", ifname="a")


async def test_veth_into_missing_namespace_fails_cleanly(make_netns: Callable[[], str]) -> None:
    node = make_netns()
    desc = VethDescriptor()
    value = pair("/var/run/netns/h5l-does-not-exist", node)
    with pytest.raises(NamespaceNotFoundError) as caught:
        await desc.create(desc.key_of(value), value)
    assert not desc.is_retriable(caught.value)
    assert "h-p1" not in links(node)


async def test_vxlan_create_retrieve_delete(make_netns: Callable[[], str]) -> None:
    node = make_netns()
    desc = VxlanDescriptor()
    value = Vxlan(namespace=node, ifname="vxlan10", vni=10, local=IPv4Address("192.0.2.1"),
                  mac="12:2b:00:00:00:01", mtu=1450)
    key = desc.key_of(value)
    await desc.create(key, value)
    dev = links(node)["vxlan10"]
    data = dev["linkinfo"]["info_data"]  # type: ignore[index]
    assert data["id"] == 10 and data["local"] == "192.0.2.1" and not data.get("learning")
    assert dev["address"] == "12:2b:00:00:00:01" and dev["mtu"] == 1450

    found = await desc.retrieve([ValueWithMetadata(key, value, None)])
    assert [(r.key, r.value) for r in found] == [(key, value)]

    down = value.model_copy(update={"up": False})
    assert not desc.update_needs_recreate(key, value, down)
    await desc.update(key, value, down, None)
    assert "UP" not in links(node)["vxlan10"]["flags"]
    assert desc.update_needs_recreate(key, value, value.model_copy(update={"vni": 11}))

    await desc.delete(key, down, None)
    assert "vxlan10" not in links(node)
