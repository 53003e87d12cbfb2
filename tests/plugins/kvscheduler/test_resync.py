"""Resyncs (full, upstream, downstream) and verification mode against a drifting device."""

from __future__ import annotations

from plugins.kvscheduler.api import ResyncMode, ValueState
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.kvscheduler.testing import DeviceObject, Item, ItemDescriptor, MemoryDevice, item_key

A, B, C, D = (item_key(n) for n in "abcd")


async def test_full_resync_fixes_every_difference(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a"), B: Item(name="b", depends_on=(A,)), C: Item(name="c", data="1")})
    # Drift behind the scheduler's back: A vanished (its dependent B with it), C changed,
    # an obsolete object of ours appeared, and a foreign one.
    del device.objects[A]
    del device.objects[B]
    device.objects[C] = DeviceObject(Item(name="c", data="drifted"))
    device.objects[D] = DeviceObject(Item(name="d"))
    device.put_foreign(item_key("x"), Item(name="x"))
    device.log.clear()

    result = await scheduler.commit(
        {A: Item(name="a"), B: Item(name="b", depends_on=(A,)), C: Item(name="c", data="1")},
        resync=ResyncMode.FULL,
    )
    assert result.ok, result.errors
    assert device.log == [("delete", D), ("create", A), ("create", B), ("update", C)]
    assert device.owned() == {
        A: Item(name="a"),
        B: Item(name="b", depends_on=(A,)),
        C: Item(name="c", data="1"),
    }
    assert device.objects[item_key("x")].owned is False
    assert scheduler.value_status(item_key("x")).state is ValueState.OBTAINED
    assert result.values[D].state is ValueState.REMOVED


async def test_full_resync_replaces_the_desired_state(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a"), B: Item(name="b")})
    device.log.clear()
    result = await scheduler.commit({B: Item(name="b"), C: Item(name="c")}, resync=ResyncMode.FULL)
    assert result.ok
    assert device.log == [("delete", A), ("create", C)]
    assert set(scheduler.desired()) == {B, C}


async def test_noop_full_resync_does_nothing(scheduler: KVScheduler, device: MemoryDevice) -> None:
    values = {A: Item(name="a"), B: Item(name="b", depends_on=(A,))}
    await scheduler.commit(values)
    result = await scheduler.commit(values, resync=ResyncMode.FULL)
    assert result.ok and result.operations == [] and result.values == {}


async def test_first_resync_adopts_what_exists_after_a_restart(device: MemoryDevice) -> None:
    values = {A: Item(name="a"), B: Item(name="b", depends_on=(A,))}
    first = KVScheduler(verify=True)
    first.register_descriptor(ItemDescriptor(device))
    await first.commit(values)
    await first.close()
    # A new agent on the same dataplane: nothing applied in its graph yet.
    second = KVScheduler(verify=True)
    second.register_descriptor(ItemDescriptor(device))
    device.log.clear()
    result = await second.commit(values, resync=ResyncMode.FULL)
    assert result.ok and device.log == []
    assert second.value_status(B).state is ValueState.CONFIGURED
    await second.close()


async def test_upstream_resync_trusts_the_cached_view(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a"), B: Item(name="b")})
    del device.objects[A]  # not noticed: upstream does not read back
    device.log.clear()
    scheduler.verify = False
    result = await scheduler.commit({A: Item(name="a"), C: Item(name="c")}, resync=ResyncMode.UPSTREAM)
    assert result.ok
    assert device.log == [("delete", B), ("create", C)]
    assert scheduler.value_status(A).state is ValueState.CONFIGURED
    assert A not in device.objects


async def test_downstream_resync_reapplies_the_last_desired_state(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a"), B: Item(name="b", depends_on=(A,))})
    device.objects.clear()
    device.objects[C] = DeviceObject(Item(name="c"))
    device.log.clear()
    result = await scheduler.commit({}, resync=ResyncMode.DOWNSTREAM)
    assert result.ok
    assert device.log == [("delete", C), ("create", A), ("create", B)]
    assert set(scheduler.desired()) == {A, B}


async def test_retrieve_failure_is_reported_and_the_cache_kept(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a")})
    device.fail("retrieve", retriable=True)
    device.log.clear()
    result = await scheduler.commit({}, resync=ResyncMode.DOWNSTREAM)
    assert "injected retriable retrieve failure" in result.errors["retrieve:test-item"]
    assert device.log == []
    assert scheduler.value_status(A).state is ValueState.CONFIGURED


async def test_downstream_resync_recreates_a_missing_value(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a")})
    del device.objects[A]
    result = await scheduler.commit({}, resync=ResyncMode.DOWNSTREAM)
    timeline = scheduler.history.timeline(A)
    assert result.values[A].state is ValueState.CONFIGURED
    assert [op.operation.value for op in timeline[-1].operations] == ["create"]


class LyingDescriptor(ItemDescriptor):
    """Creates values with a different payload than asked: verification must notice."""

    async def create(self, key: str, value: Item) -> object:
        return await super().create(key, value.model_copy(update={"data": "mangled"}))


async def test_verification_mode_reports_read_back_differences(device: MemoryDevice) -> None:
    sched = KVScheduler(verify=True)
    sched.register_descriptor(LyingDescriptor(device))
    result = await sched.commit({A: Item(name="a", data="wanted")})
    assert not result.ok
    assert result.errors[A].startswith("verification failed: expected Item(name='a', data='wanted'")
    assert "mangled" in result.errors[A]
    quiet = KVScheduler(verify=False)
    quiet.register_descriptor(LyingDescriptor(MemoryDevice()))
    assert (await quiet.commit({A: Item(name="a", data="wanted")})).ok
    await sched.close()
    await quiet.close()
