"""The Linux descriptors driven by the real KV scheduler (verify mode) on real namespaces."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest
from pydantic import BaseModel

from plugins.kvscheduler.api import ResyncMode, ValueState
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.models import InterfaceAddress, Neighbour, Route, Sysctl, Veth, VethEnd
from plugins.linux.plugin import LinuxDataplanePlugin, linux_descriptors
from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns


@pytest.fixture
async def scheduler() -> AsyncIterator[KVScheduler]:
    sched = KVScheduler(verify=True)
    plugin = LinuxDataplanePlugin(scheduler=sched)
    await plugin.init()
    assert {d.name for d in sched.descriptors()} >= {d.name for d in linux_descriptors()}
    try:
        yield sched
    finally:
        await sched.close()


def desired_pod(pod: str, node: str) -> dict[str, BaseModel]:
    values: list[BaseModel] = [
        Veth(name="w1", end1=VethEnd(namespace=pod, ifname="eth0", mac="02:fe:00:00:00:01"),
             end2=VethEnd(namespace=node, ifname="cvw1", mac="02:fe:00:00:00:02")),
        InterfaceAddress(namespace=pod, ifname="eth0", address=IPv4Interface("10.1.1.2/32")),
        InterfaceAddress(namespace=node, ifname="cvw1", address=IPv4Interface("10.1.1.1/32")),
        Route(namespace=pod, dst=IPv4Network("10.1.1.1/32"), dev="eth0"),
        Route(namespace=pod, dst=IPv4Network("0.0.0.0/0"), gateway=IPv4Address("10.1.1.1"),
              dev="eth0", onlink=True),
        Route(namespace=node, dst=IPv4Network("10.1.1.2/32"), dev="cvw1"),
        Neighbour(namespace=pod, ifname="eth0", ip=IPv4Address("10.1.1.1"),
                  mac="02:fe:00:00:00:02"),
        Sysctl(namespace=node, name="net.ipv4.ip_forward", value="1"),
    ]
    models = {d.model: d for d in linux_descriptors()}
    return {models[type(v)].key_of(v): v for v in values}


async def test_commit_verify_resync_and_heal(
    make_netns: Callable[[], str], scheduler: KVScheduler
) -> None:
    pod, node = make_netns(), make_netns()
    # A new namespace copies the host's IPv4 settings (ip_forward is 1 on every Kubernetes node):
    # start from a known value, not from the host's.
    ip("netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    ip("link", "add", "foreign0", "type", "veth", "peer", "name", "foreign1", ns=node)
    ip("link", "set", "foreign0", "up", ns=node)
    ip("route", "add", "10.99.0.0/24", "dev", "foreign0", ns=node)
    desired = desired_pod(pod, node)

    result = await scheduler.commit(desired, description="wire a pod")
    assert result.ok, result.errors
    assert all(scheduler.value_status(k).state is ValueState.CONFIGURED for k in desired)
    assert "1 received" in ip("netns", "exec", pod, "ping", "-c1", "-W2", "10.1.1.1")

    # Nothing changed: a full resync finds everything as applied and does nothing.
    again = await scheduler.commit(desired, resync=ResyncMode.FULL)
    assert again.ok and again.operations == []

    # Someone removes our default route: the full resync puts it back.
    ip("route", "del", "default", ns=pod)
    healed = await scheduler.commit(desired, resync=ResyncMode.FULL)
    assert healed.ok, healed.errors
    assert [op.key for op in healed.operations] == [
        k for k, v in desired.items() if isinstance(v, Route) and v.gateway is not None]
    assert "default via 10.1.1.1" in ip("route", "show", ns=pod)

    # Desired state emptied: all of ours goes, the foreign link and route stay.
    cleared = await scheduler.commit({}, resync=ResyncMode.FULL)
    assert cleared.ok, cleared.errors
    names = {link["ifname"] for link in json.loads(ip("-j", "link", "show", ns=node))}
    assert "cvw1" not in names and {"foreign0", "foreign1"} <= names
    assert "10.99.0.0/24 dev foreign0" in ip("route", "show", ns=node)
    assert ip("netns", "exec", node, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "0"


async def test_dependents_wait_for_their_link(
    make_netns: Callable[[], str], scheduler: KVScheduler
) -> None:
    pod, node = make_netns(), make_netns()
    desired = desired_pod(pod, node)
    veth_key = next(k for k, v in desired.items() if isinstance(v, Veth))
    without_link = {k: v for k, v in desired.items() if k != veth_key}
    result = await scheduler.commit(without_link)
    assert result.ok, result.errors
    addr_key = next(k for k, v in desired.items() if isinstance(v, InterfaceAddress))
    status = scheduler.value_status(addr_key)
    assert status.state is ValueState.PENDING
    assert [w.key for w in status.waiting_for] == [f"linux/link/{pod}/eth0"]

    result = await scheduler.commit({veth_key: desired[veth_key]})
    assert result.ok, result.errors
    assert scheduler.value_status(addr_key).state is ValueState.CONFIGURED
    # Removing the link removes its dependents first; they wait again.
    result = await scheduler.commit({veth_key: None})
    assert result.ok, result.errors
    assert scheduler.value_status(addr_key).state is ValueState.PENDING
    assert ip("route", "show", "proto", "152", ns=pod) == ""
