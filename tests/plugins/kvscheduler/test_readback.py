"""Read-back and derived values: an agent restart is a no-op, a lost base takes its derived values.

A full resync derives from every read-back base before it plans anything, so a value that
depends on something derived from a key sorting after it is not touched; and what a base
found missing derived disappears with it, so nothing that needs it is made before it is back.
"""

from __future__ import annotations

from plugins.kvscheduler.api import ResyncMode, ValueState
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.kvscheduler.testing import Item, ItemDescriptor, MemoryDevice, item_key

A, R, Z = item_key("a"), item_key("r"), item_key("z")
Z_UP = "prop/z/up"  # a property of z (no descriptor)
Z_ADDR = item_key("z.addr")  # a derived value of z under the item descriptor
VALUES = {
    Z: Item(name="z", derived=((Z_UP, ""), (Z_ADDR, "10.0.0.1"))),
    A: Item(name="a", depends_on=(Z_UP,)),  # sorts before z
    R: Item(name="r", depends_on=(Z_ADDR,)),  # sorts before z.addr
}


def new_scheduler(device: MemoryDevice) -> KVScheduler:
    sched = KVScheduler(verify=True)
    sched.register_descriptor(ItemDescriptor(device))
    return sched


def assert_deleted_in_order(device: MemoryDevice, keys: list[str]) -> None:
    """Exactly ``keys`` were deleted, each after everything that needed it."""
    deleted = [key for op, key in device.log if op == "delete"]
    assert sorted(deleted) == sorted(keys) and len(device.log) == len(deleted), device.log
    assert deleted.index(A) < deleted.index(Z), deleted  # a needs z's property
    assert deleted.index(Z_ADDR) < deleted.index(Z), deleted  # derived from z
    assert deleted.index(R) < deleted.index(Z_ADDR), deleted  # r needs z's address


async def test_agent_restart_performs_no_operation(device: MemoryDevice) -> None:
    first = new_scheduler(device)
    assert (await first.commit(VALUES)).ok
    await first.close()
    before = dict(device.objects)
    device.log.clear()
    second = new_scheduler(device)  # a new agent: empty graph, same dataplane
    try:
        result = await second.commit(VALUES, resync=ResyncMode.FULL)
        assert result.ok, result.errors
        assert result.operations == [] and device.log == []
        assert device.objects == before
        states = {k: second.value_status(k).state for k in (A, R, Z, Z_ADDR, Z_UP)}
        assert states == {
            A: ValueState.CONFIGURED,
            R: ValueState.CONFIGURED,
            Z: ValueState.CONFIGURED,
            Z_ADDR: ValueState.CONFIGURED,
            Z_UP: ValueState.UNIMPLEMENTED,
        }
        assert second.value_status(Z_ADDR).derived_from == Z
        # The adopted graph works like one built by transactions: taking z away cascades.
        result = await second.commit({Z: None})
        assert result.ok, result.errors
        assert_deleted_in_order(device, [A, R, Z, Z_ADDR])
        assert second.value_status(A).state is ValueState.PENDING
        assert second.value_status(Z_UP).state is ValueState.NONEXISTENT
    finally:
        await second.close()


async def test_restart_removes_an_obsolete_base_after_what_hangs_off_it(device: MemoryDevice) -> None:
    first = new_scheduler(device)
    assert (await first.commit(VALUES)).ok
    await first.close()
    device.log.clear()
    second = new_scheduler(device)
    try:
        result = await second.commit({}, resync=ResyncMode.FULL)
        assert result.ok, result.errors
        assert_deleted_in_order(device, [A, R, Z, Z_ADDR])
        assert device.objects == {}
    finally:
        await second.close()


async def test_derived_values_disappear_with_a_missing_base(device: MemoryDevice) -> None:
    sched = new_scheduler(device)
    try:
        assert (await sched.commit(VALUES)).ok
        device.objects.clear()  # the dataplane restarted: everything is gone
        device.log.clear()
        result = await sched.commit({}, resync=ResyncMode.DOWNSTREAM)
        assert result.ok, result.errors
        # Nothing that needs z's property or address is made before z re-derives them.
        created = [key for op, key in device.log if op == "create"]
        assert created == [Z, Z_ADDR, A, R] and len(device.log) == 4
        assert all(s.state is ValueState.CONFIGURED for s in (sched.value_status(k) for k in VALUES))
    finally:
        await sched.close()


async def test_a_base_that_cannot_come_back_leaves_its_dependents_pending(device: MemoryDevice) -> None:
    sched = new_scheduler(device)
    try:
        assert (await sched.commit(VALUES)).ok
        for key in (Z, Z_ADDR, A):  # z vanished with its address and a; r survived
            del device.objects[key]
        device.fail("create", Z, retriable=False)
        device.log.clear()
        result = await sched.commit({}, resync=ResyncMode.DOWNSTREAM)
        assert result.errors.keys() == {Z}
        assert device.log == [("delete", R)]  # r cannot stay without z's address
        assert sched.value_status(Z).state is ValueState.FAILED
        for key in (A, R):
            assert sched.value_status(key).state is ValueState.PENDING
        assert sched.value_status(Z_UP).state is ValueState.NONEXISTENT
        assert sched.value_status(A).waiting_for[0].key == Z_UP
    finally:
        await sched.close()


async def test_read_back_base_deriving_less_drops_what_it_no_longer_derives(device: MemoryDevice) -> None:
    first = new_scheduler(device)
    assert (await first.commit(VALUES)).ok
    await first.close()
    # Behind the agent's back z lost its address (both in its value and in the dataplane).
    plain = Item(name="z", derived=((Z_UP, ""),))
    device.objects[Z].value = plain
    del device.objects[Z_ADDR]
    device.log.clear()
    second = new_scheduler(device)
    try:
        result = await second.commit(VALUES, resync=ResyncMode.FULL)
        assert result.ok, result.errors
        # z is updated and re-derives its address; r, which needs the address, is re-made
        # after it; a (on z's property, which stayed) is left alone.
        assert device.log == [("delete", R), ("update", Z), ("create", Z_ADDR), ("create", R)]
        assert device.owned() == VALUES | {Z_ADDR: Item(name="z.addr", data="10.0.0.1")}
    finally:
        await second.close()
