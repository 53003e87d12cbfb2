"""Dependency.removed_with: a value the dataplane removes with its dependency costs no delete call.

The test device removes an object's ``removed_with`` dependents when it deletes the object
(as the kernel drops a link's addresses and routes with the link); the scheduler runs in
verification mode, so every transaction's graph is checked against a read-back.
"""

from __future__ import annotations

import pytest

from plugins.kvscheduler.api import Dependency, ResyncMode, ValueState
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.kvscheduler.testing import Item, MemoryDevice, item_key

# Riders sort before their carrier: the scheduler must still take the carrier first.
RIDER, RIDER2, CARRIER, OTHER = (item_key(n) for n in ("a-rider", "b-rider", "c-carrier", "d-other"))
PROP = "config/test/v1/property/c-link"  # no descriptor: a property derived from the carrier


def carrier() -> Item:
    return Item(name="c-carrier", derived=((PROP, "up"),))


def rider(via: str = CARRIER) -> Item:
    return Item(name="a-rider", depends_on=(via,), removed_with=(via,))


def rider2() -> Item:
    # Rides on the property (the carrier's derived value) and also needs the first rider.
    return Item(name="b-rider", depends_on=(PROP, RIDER), removed_with=(PROP,))


async def wired(scheduler: KVScheduler, device: MemoryDevice) -> None:
    result = await scheduler.commit({CARRIER: carrier(), RIDER: rider(), RIDER2: rider2()})
    assert result.ok, result.errors
    assert set(device.objects) == {CARRIER, RIDER, RIDER2}
    device.log.clear()


def test_removed_with_needs_an_exact_key() -> None:
    with pytest.raises(ValueError, match="removed_with needs a key"):
        Dependency("x", any_of=("config/",), removed_with=True)


async def test_values_going_with_a_deleted_dependency_are_not_deleted_one_by_one(
    scheduler: KVScheduler, device: MemoryDevice
) -> None:
    await wired(scheduler, device)
    result = await scheduler.commit({RIDER: None, RIDER2: None, CARRIER: None})
    assert result.ok, result.errors
    # One call: the carrier's; the device dropped the riders with it.
    assert device.log == [("delete", CARRIER), ("gone-with", RIDER), ("gone-with", RIDER2)]
    assert device.objects == {}
    implicit = {op.key for op in result.operations if op.implicit}
    assert implicit == {RIDER, RIDER2}
    for key in (RIDER, RIDER2, CARRIER):
        assert scheduler.value_status(key).state is ValueState.NONEXISTENT
    # A full read-back finds the graph as the device is.
    resync = await scheduler.commit({}, resync=ResyncMode.FULL)
    assert resync.ok and resync.operations == []


async def test_a_value_deleted_alone_is_deleted_by_its_descriptor(
    scheduler: KVScheduler, device: MemoryDevice
) -> None:
    await wired(scheduler, device)
    result = await scheduler.commit({RIDER2: None})
    assert result.ok, result.errors
    assert device.log == [("delete", RIDER2)]
    assert [op.implicit for op in result.operations] == [False]
    assert set(device.objects) == {CARRIER, RIDER}


async def test_carrier_removed_alone_cascades_with_one_call_and_re_pends_the_riders(
    scheduler: KVScheduler, device: MemoryDevice
) -> None:
    await wired(scheduler, device)
    result = await scheduler.commit({CARRIER: None})
    assert result.ok, result.errors
    assert device.log == [("delete", CARRIER), ("gone-with", RIDER), ("gone-with", RIDER2)]
    assert scheduler.value_status(RIDER).state is ValueState.PENDING
    assert scheduler.value_status(RIDER2).state is ValueState.PENDING
    device.log.clear()
    result = await scheduler.commit({CARRIER: carrier()})
    assert result.ok, result.errors
    assert sorted(device.log) == [("create", RIDER), ("create", RIDER2), ("create", CARRIER)]


async def test_a_failed_carrier_delete_falls_back_to_deleting_the_riders(
    scheduler: KVScheduler, device: MemoryDevice
) -> None:
    await wired(scheduler, device)
    device.fail("delete", CARRIER, retriable=False)
    result = await scheduler.commit({RIDER: None, RIDER2: None, CARRIER: None})
    assert CARRIER in result.errors
    assert scheduler.value_status(CARRIER).state is ValueState.FAILED
    # The carrier is still there, so the riders were deleted the usual way.
    assert sorted(device.log) == [("delete", RIDER), ("delete", RIDER2)]
    assert not any(op.implicit for op in result.operations)
    assert set(device.objects) == {CARRIER}


async def test_revert_on_failure_restores_riders_deleted_with_their_carrier(
    scheduler: KVScheduler, device: MemoryDevice
) -> None:
    await wired(scheduler, device)
    device.fail("create", OTHER, retriable=False)
    result = await scheduler.commit(
        {RIDER: None, RIDER2: None, CARRIER: None, OTHER: Item(name="d-other")},
        revert_on_failure=True,
    )
    assert result.reverted
    assert set(device.objects) == {CARRIER, RIDER, RIDER2}
    for key in (RIDER, RIDER2, CARRIER):
        assert scheduler.value_status(key).state is ValueState.CONFIGURED


async def test_recreating_the_carrier_re_creates_its_riders_without_deleting_them(
    scheduler: KVScheduler, device: MemoryDevice
) -> None:
    await wired(scheduler, device)
    result = await scheduler.commit({CARRIER: carrier().model_copy(update={"kind": "new"})})
    assert result.ok, result.errors
    assert ("delete", RIDER) not in device.log and ("delete", RIDER2) not in device.log
    assert device.log[:3] == [("delete", CARRIER), ("gone-with", RIDER), ("gone-with", RIDER2)]
    assert set(device.objects) == {CARRIER, RIDER, RIDER2}
    for key in (RIDER, RIDER2, CARRIER):
        assert scheduler.value_status(key).state is ValueState.CONFIGURED
