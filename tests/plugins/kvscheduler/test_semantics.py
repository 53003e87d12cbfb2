"""Graph semantics: pending values, cascades, derived values, validation, ownership, updates."""

from __future__ import annotations

from pydantic import BaseModel

from plugins.kvscheduler.api import Operation, ResyncMode, ValueState
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.kvscheduler.testing import Item, ItemDescriptor, MemoryDevice, item_key

A, B, C, D = (item_key(n) for n in "abcd")


def ops(result: object) -> list[tuple[str, str]]:
    return [(op.operation.value, op.key) for op in result.operations]  # type: ignore[attr-defined]


async def test_value_with_missing_dependency_is_pending_and_says_what_it_waits_for(
    scheduler: KVScheduler, device: MemoryDevice
) -> None:
    result = await scheduler.commit({B: Item(name="b", depends_on=(A,))})
    assert result.ok
    assert result.operations == []
    status = scheduler.value_status(B)
    assert status.state is ValueState.PENDING
    assert [(m.label, m.key) for m in status.waiting_for] == [("depends-on", A)]
    assert result.values[B].waiting_for[0].key == A
    assert B not in device.objects


async def test_pending_value_is_created_right_after_its_dependency(
    scheduler: KVScheduler, device: MemoryDevice
) -> None:
    await scheduler.commit({C: Item(name="c", depends_on=(B,)), B: Item(name="b", depends_on=(A,))})
    result = await scheduler.commit({A: Item(name="a")})
    assert ops(result) == [("create", A), ("create", B), ("create", C)]
    assert device.log == [("create", A), ("create", B), ("create", C)]
    for key in (A, B, C):
        assert scheduler.value_status(key).state is ValueState.CONFIGURED
    assert result.ok


async def test_creates_in_one_transaction_put_dependencies_first(scheduler: KVScheduler, device: MemoryDevice) -> None:
    # Keys sort as a < b < c but the dependencies go the other way.
    result = await scheduler.commit(
        {
            A: Item(name="a", depends_on=(B,)),
            B: Item(name="b", depends_on=(C,)),
            C: Item(name="c"),
        }
    )
    assert result.ok
    assert device.log == [("create", C), ("create", B), ("create", A)]


async def test_removing_a_dependency_deletes_dependents_first_and_re_pends_them(
    scheduler: KVScheduler, device: MemoryDevice
) -> None:
    await scheduler.commit({A: Item(name="a"), B: Item(name="b", depends_on=(A,)), C: Item(name="c", depends_on=(B,))})
    device.log.clear()
    result = await scheduler.commit({A: None})
    assert device.log == [("delete", C), ("delete", B), ("delete", A)]
    assert result.values[A].state is ValueState.REMOVED
    assert scheduler.value_status(A).state is ValueState.NONEXISTENT
    assert scheduler.value_status(B).state is ValueState.PENDING
    assert scheduler.value_status(C).state is ValueState.PENDING
    assert set(scheduler.desired()) == {B, C}

    device.log.clear()
    await scheduler.commit({A: Item(name="a")})
    assert device.log == [("create", A), ("create", B), ("create", C)]


async def test_deletes_run_before_creates_and_updates(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a"), B: Item(name="b")})
    device.log.clear()
    await scheduler.commit({A: Item(name="a", data="new"), B: None, C: Item(name="c"), D: Item(name="d", kind="x")})
    assert device.log == [("delete", B), ("create", C), ("create", D), ("update", A)]


async def test_any_of_dependency_is_met_by_any_matching_key(scheduler: KVScheduler, device: MemoryDevice) -> None:
    group = (item_key("eth"), item_key("tap"))
    await scheduler.commit({A: Item(name="a", depends_on_any=(group,))})
    status = scheduler.value_status(A)
    assert status.state is ValueState.PENDING
    assert status.waiting_for[0].any_of == group

    await scheduler.commit({item_key("tap1"): Item(name="tap1")})
    assert scheduler.value_status(A).state is ValueState.CONFIGURED
    await scheduler.commit({item_key("eth0"): Item(name="eth0")})
    device.log.clear()
    # One of two matches goes: the dependent stays.
    await scheduler.commit({item_key("tap1"): None})
    assert device.log == [("delete", item_key("tap1"))]
    # The last match goes: the dependent is deleted first.
    device.log.clear()
    await scheduler.commit({item_key("eth0"): None})
    assert device.log == [("delete", A), ("delete", item_key("eth0"))]
    assert scheduler.value_status(A).state is ValueState.PENDING


async def test_derived_values_live_and_die_with_their_base(scheduler: KVScheduler, device: MemoryDevice) -> None:
    derived_key = item_key("a-addr")
    prop = "prop/a/up"
    base = Item(name="a", derived=((derived_key, "10.0.0.1"), (prop, "")))
    await scheduler.commit({A: base, B: Item(name="b", depends_on=(prop,))})
    assert device.log == [("create", A), ("create", derived_key), ("create", B)]
    derived = scheduler.value_status(derived_key)
    assert derived.state is ValueState.CONFIGURED and derived.derived_from == A
    assert scheduler.value_status(prop).state is ValueState.UNIMPLEMENTED
    assert derived_key not in scheduler.desired()

    # The base stops deriving the property: its dependent goes first, then the base updates.
    device.log.clear()
    await scheduler.commit({A: Item(name="a", data="v2", derived=((derived_key, "10.0.0.1"),))})
    assert device.log == [("delete", B), ("update", A)]
    assert scheduler.value_status(B).state is ValueState.PENDING

    device.log.clear()
    result = await scheduler.commit({A: None})
    assert device.log == [("delete", derived_key), ("delete", A)]
    assert result.values[derived_key].state is ValueState.REMOVED
    assert scheduler.value_status(derived_key).state is ValueState.NONEXISTENT


async def test_derived_value_failure_does_not_block_its_base(scheduler: KVScheduler, device: MemoryDevice) -> None:
    derived_key = item_key("a-addr")
    device.fail("create", derived_key, retriable=False)
    result = await scheduler.commit({A: Item(name="a", derived=((derived_key, "x"),))})
    assert scheduler.value_status(A).state is ValueState.CONFIGURED
    assert scheduler.value_status(derived_key).state is ValueState.FAILED
    assert "injected fatal create failure" in result.errors[derived_key]


async def test_key_that_does_not_match_the_value_name_is_rejected(scheduler: KVScheduler, device: MemoryDevice) -> None:
    result = await scheduler.commit({A: Item(name="not-a")})
    status = scheduler.value_status(A)
    assert status.state is ValueState.INVALID
    assert "is not the value's own key" in result.errors[A]
    assert item_key("not-a") in result.errors[A]
    assert device.objects == {}


async def test_invalid_value_is_never_applied_and_an_applied_one_is_removed(
    scheduler: KVScheduler, device: MemoryDevice
) -> None:
    await scheduler.commit({A: Item(name="a"), B: Item(name="b", depends_on=(A,))})
    device.log.clear()
    result = await scheduler.commit({A: Item(name="a", data="invalid")})
    assert result.errors[A] == "data 'invalid' is not allowed"
    assert scheduler.value_status(A).state is ValueState.INVALID
    assert device.log == [("delete", B), ("delete", A)]
    assert scheduler.value_status(B).state is ValueState.PENDING

    class Other(BaseModel):
        name: str

    result = await scheduler.commit({C: Other(name="c")})
    assert "expects a Item, got a Other" in result.errors[C]


async def test_key_without_descriptor_is_unimplemented_with_a_reason(
    scheduler: KVScheduler,
) -> None:
    result = await scheduler.commit({"config/nobody/v1/thing/x": Item(name="x")})
    status = scheduler.value_status("config/nobody/v1/thing/x")
    assert status.state is ValueState.UNIMPLEMENTED
    assert result.errors["config/nobody/v1/thing/x"] == "no descriptor is registered for this key"


async def test_update_in_place_and_recreate_when_needed(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a"), B: Item(name="b", depends_on=(A,))})
    device.log.clear()
    result = await scheduler.commit({A: Item(name="a", data="2")})
    assert device.log == [("update", A)]
    assert result.operations[0].before == Item(name="a")
    assert result.operations[0].after == Item(name="a", data="2")

    device.log.clear()
    result = await scheduler.commit({A: Item(name="a", data="2", kind="veth")})
    assert device.log == [("delete", B), ("delete", A), ("create", A), ("create", B)]
    assert [op.operation for op in result.operations] == [
        Operation.DELETE,
        Operation.DELETE,
        Operation.RECREATE,
        Operation.CREATE,
    ]
    assert device.objects[A].value.kind == "veth"


async def test_same_value_again_is_a_no_op(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a")})
    result = await scheduler.commit({A: Item(name="a")})
    assert result.operations == [] and result.values == {}
    assert device.log == [("create", A)]


async def test_dependency_cycle_stays_pending(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a", depends_on=(B,)), B: Item(name="b", depends_on=(A,))})
    assert scheduler.value_status(A).state is ValueState.PENDING
    assert scheduler.value_status(B).waiting_for[0].key == A
    assert device.objects == {}


async def test_foreign_object_satisfies_dependencies_but_is_never_touched(
    scheduler: KVScheduler, device: MemoryDevice
) -> None:
    device.put_foreign(A, Item(name="a", data="theirs"))
    await scheduler.commit({}, resync=ResyncMode.DOWNSTREAM)
    assert scheduler.value_status(A).state is ValueState.OBTAINED
    await scheduler.commit({B: Item(name="b", depends_on=(A,))})
    assert scheduler.value_status(B).state is ValueState.CONFIGURED
    # Asking for the foreign key is refused, the object stays as it is.
    result = await scheduler.commit({A: Item(name="a")})
    assert "foreign object" in result.errors[A]
    assert device.objects[A].value.data == "theirs"
    result = await scheduler.commit({A: None})
    assert scheduler.value_status(A).state is ValueState.OBTAINED
    assert device.objects[A].value.data == "theirs"


async def test_metadata_map_follows_applied_values(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a"), B: Item(name="b")})
    meta = scheduler.metadata("test-item")
    assert dict(meta) == {"a": 1, "b": 2}
    await scheduler.commit({A: None})
    assert dict(meta) == {"b": 2}


async def test_long_dependency_chain_does_not_recurse(device: MemoryDevice) -> None:
    sched = KVScheduler(verify=False)
    sched.register_descriptor(ItemDescriptor(device))
    n = 3000  # far beyond the interpreter's recursion limit
    changes = {
        item_key(f"n{i:05d}"): Item(name=f"n{i:05d}", depends_on=(item_key(f"n{i + 1:05d}"),) if i + 1 < n else ())
        for i in range(n)
    }
    result = await sched.commit(changes)
    assert result.ok and len(device.objects) == n
    result = await sched.commit({item_key(f"n{n - 1:05d}"): None})
    assert len(device.objects) == 0
    assert device.log[-1] == ("delete", item_key(f"n{n - 1:05d}"))
    await sched.close()


async def test_value_committed_before_its_descriptor_is_applied_by_the_next_resync() -> None:
    device = MemoryDevice()
    sched = KVScheduler(verify=True)
    values = {A: Item(name="a"), B: Item(name="b", depends_on=(A,))}
    result = await sched.commit(values)
    assert result.values[B].state is ValueState.UNIMPLEMENTED
    sched.register_descriptor(ItemDescriptor(device))
    result = await sched.commit(values, resync=ResyncMode.FULL)
    assert result.ok and device.log == [("create", A), ("create", B)]
    await sched.close()


async def test_derived_key_cannot_be_set_or_deleted_from_nb(scheduler: KVScheduler, device: MemoryDevice) -> None:
    derived_key = item_key("a-addr")
    await scheduler.commit({A: Item(name="a", derived=((derived_key, "x"),))})
    result = await scheduler.commit({derived_key: Item(name="a-addr", data="other")})
    assert "derived from " + A in result.errors[derived_key]
    result = await scheduler.commit({derived_key: None})
    assert "derived values cannot be set directly" in result.errors[derived_key]
    assert device.objects[derived_key].value == Item(name="a-addr", data="x")
    assert derived_key not in scheduler.desired()
