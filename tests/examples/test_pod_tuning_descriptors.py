"""The pod-tuning descriptors against a real network namespace and the real KV scheduler:
waiting for the pod interface, retry, read-back that leaves right values alone, repair, removal,
and a value the kernel refuses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from contiv_sdk import ResyncMode, ValueState, link_property_key
from contiv_sdk.testing import Item, ItemDescriptor, KVScheduler, MemoryDevice, RetryPolicy, item_key

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "pod-tuning-plugin"))
from pod_tuning.descriptors import PodMtuDescriptor, PodSysctlDescriptor
from pod_tuning.model import PodMtu, PodSysctl, mtu_key, sysctl_key

pytestmark = pytest.mark.netns

TTL = "net.ipv4.ip_default_ttl"


@pytest.fixture
def pod_ns() -> Iterator[str]:
    name = f"plugd{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def ns_run(ns: str, *cmd: str) -> str:
    return subprocess.run(["nsenter", f"--net={ns}", *cmd], check=True, capture_output=True,
                          text=True).stdout.strip()


def ttl_in(ns: str) -> str:
    return ns_run(ns, "cat", "/proc/sys/net/ipv4/ip_default_ttl")


def mtu_in(ns: str) -> int:
    return int(ns_run(ns, "cat", "/sys/class/net/eth0/mtu"))


async def wait_state(scheduler: KVScheduler, key: str, state: ValueState, timeout_s: float = 60.0) -> None:
    import asyncio

    deadline = time.monotonic() + timeout_s
    while scheduler.value_status(key).state is not state:
        if time.monotonic() > deadline:
            raise AssertionError(f"{key}: {scheduler.value_status(key)} is not {state}")
        await asyncio.sleep(0.05)


def make_scheduler(expected: Callable[[], dict[str, BaseModel]]) -> KVScheduler:
    scheduler = KVScheduler(retry=RetryPolicy(period_s=0.1, max_attempts=50, backoff=1.0))
    scheduler.register_descriptor(ItemDescriptor(MemoryDevice()))
    scheduler.register_descriptor(PodSysctlDescriptor(expected))
    scheduler.register_descriptor(PodMtuDescriptor(expected))
    return scheduler


async def test_applied_after_the_interface_retried_left_alone_repaired_removed(pod_ns: str) -> None:
    host_ttl = Path("/proc/sys/net/ipv4/ip_default_ttl").read_text()
    sysctl = PodSysctl(namespace=pod_ns, ifname="eth0", name=TTL, value="33")
    mtu = PodMtu(namespace=pod_ns, ifname="eth0", mtu=1400)
    wanted: dict[str, Any] = {sysctl_key(pod_ns, TTL): sysctl, mtu_key(pod_ns, "eth0"): mtu}
    scheduler = make_scheduler(lambda: {})
    await scheduler.commit(wanted)
    for key in wanted:
        status = scheduler.value_status(key)
        assert status.state is ValueState.PENDING and status.waiting_for[0].label == "pod interface"

    # The pod "is wired" (its interface's property appears) before the link exists: the sysctl
    # applies, the MTU fails retriably and is retried until the link is there.
    veth = Item(name="veth", derived=((link_property_key(pod_ns, "eth0"), "link"),))
    await scheduler.commit({item_key("veth"): veth})
    assert scheduler.value_status(sysctl_key(pod_ns, TTL)).state is ValueState.CONFIGURED
    assert ttl_in(pod_ns) == "33" and Path("/proc/sys/net/ipv4/ip_default_ttl").read_text() == host_ttl
    assert scheduler.value_status(mtu_key(pod_ns, "eth0")).state is ValueState.RETRYING
    ns_run(pod_ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
    await wait_state(scheduler, mtu_key(pod_ns, "eth0"), ValueState.CONFIGURED)
    assert mtu_in(pod_ns) == 1400

    desired = dict(scheduler.desired())
    result = await scheduler.commit(desired, resync=ResyncMode.FULL)
    assert result.ok and result.operations == []  # right: left alone

    # A restarted agent: nothing believed applied, the handler's values are read back.
    restarted = make_scheduler(lambda: wanted)
    result = await restarted.commit(desired, resync=ResyncMode.FULL)
    assert result.ok and [op.key for op in result.operations] == [item_key("veth")]  # the memory item only

    ns_run(pod_ns, "sh", "-c", "echo 50 > /proc/sys/net/ipv4/ip_default_ttl")
    ns_run(pod_ns, "ip", "link", "set", "eth0", "mtu", "1500")
    result = await scheduler.commit(desired, resync=ResyncMode.FULL)
    assert result.ok and sorted(op.operation.value for op in result.operations) == ["update", "update"]
    assert ttl_in(pod_ns) == "33" and mtu_in(pod_ns) == 1400

    await scheduler.commit({item_key("veth"): None})  # the pod goes: the values go first
    assert ttl_in(pod_ns) == "64"  # the value found before is restored
    assert scheduler.value_status(sysctl_key(pod_ns, TTL)).state is ValueState.PENDING


async def test_a_value_the_kernel_refuses_fails_without_retry(pod_ns: str) -> None:
    scheduler = make_scheduler(lambda: {})
    veth = Item(name="veth", derived=((link_property_key(pod_ns, "eth0"), "link"),))
    bad = PodSysctl(namespace=pod_ns, ifname="eth0", name=TTL, value="0")
    result = await scheduler.commit({item_key("veth"): veth, sysctl_key(pod_ns, TTL): bad})
    status = scheduler.value_status(sysctl_key(pod_ns, TTL))
    assert not result.ok and status.state is ValueState.FAILED
    assert status.error and "Invalid argument" in status.error
    assert ttl_in(pod_ns) == "64"
