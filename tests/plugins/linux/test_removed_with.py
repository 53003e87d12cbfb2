"""A pod's addresses, routes and neighbours go with its veth: one kernel call, nothing left over.

Real namespaces, the real scheduler in verification mode (each transaction's graph is checked
against a read-back of the kernel).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from plugins.kvscheduler.api import Operation, ResyncMode, ValueState
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.plugin import LinuxDataplanePlugin
from tests.plugins.linux.conftest import ip
from tests.plugins.linux.test_scheduler import desired_pod

pytestmark = pytest.mark.netns


@pytest.fixture
async def scheduler() -> AsyncIterator[KVScheduler]:
    sched = KVScheduler(verify=True)
    await LinuxDataplanePlugin(scheduler=sched).init()
    try:
        yield sched
    finally:
        await sched.close()


async def test_deleting_a_pod_calls_the_kernel_for_the_veth_only(
    make_netns: Callable[[], str], scheduler: KVScheduler
) -> None:
    pod, node = make_netns(), make_netns()
    desired = desired_pod(pod, node)
    assert (await scheduler.commit(desired)).ok
    # The node-side route and address, and the pod's routes, exist before.
    assert "10.1.1.2 dev cvw1" in ip("route", "show", ns=node)
    assert "10.1.1.1/32" in ip("addr", "show", "dev", "cvw1", ns=node)

    result = await scheduler.commit({key: None for key in desired}, description="delete the pod")
    assert result.ok, result.errors
    called = [op for op in result.operations if not op.implicit]
    assert sorted(op.key.split("/")[3] for op in called) == ["sysctl", "veth"]
    implicit = [op for op in result.operations if op.implicit]
    assert sorted(op.key.split("/")[3] for op in implicit) == [
        "address", "address", "neighbour", "route", "route", "route"]
    assert all(op.operation is Operation.DELETE and op.error is None for op in implicit)
    for key in desired:
        assert scheduler.value_status(key).state is ValueState.NONEXISTENT
    # Nothing of the pod is left in either namespace (the kernel dropped it with the link).
    assert "cvw1" not in ip("link", "show", ns=node)
    assert "10.1.1" not in ip("route", "show", ns=node) + ip("neigh", "show", ns=node)
    assert ip("route", "show", ns=pod).strip() == ""
    assert "10.1.1" not in ip("addr", "show", ns=pod)
    # A full resync agrees: nothing to do.
    resync = await scheduler.commit({}, resync=ResyncMode.FULL)
    assert resync.ok and resync.operations == []


async def test_a_route_deleted_alone_is_removed_from_the_kernel(
    make_netns: Callable[[], str], scheduler: KVScheduler
) -> None:
    pod, node = make_netns(), make_netns()
    desired = desired_pod(pod, node)
    assert (await scheduler.commit(desired)).ok
    (route_key,) = [k for k in desired if "/route/" in k and "0.0.0.0" in k]
    (addr_key,) = [k for k in desired if "/address/" in k and "/cvw1/" in k]
    result = await scheduler.commit({route_key: None, addr_key: None})
    assert result.ok, result.errors
    assert [op.implicit for op in result.operations] == [False, False]
    assert "default" not in ip("route", "show", ns=pod)
    assert "10.1.1.1/32" not in ip("addr", "show", "dev", "cvw1", ns=node)
    assert "cvw1" in ip("link", "show", ns=node)
