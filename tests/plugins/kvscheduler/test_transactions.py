"""Transactions: retries with back-off, fatal failures, revert-on-failure, argument errors."""

from __future__ import annotations

import asyncio

import pytest

from plugins.kvscheduler.api import ResyncMode, SchedulerError, TxnKind, ValueState
from plugins.kvscheduler.scheduler import KVScheduler, RetryPolicy
from plugins.kvscheduler.testing import Item, ItemDescriptor, MemoryDevice, item_key

A, B, C = (item_key(n) for n in "abc")


async def test_retriable_failure_is_retried_until_it_succeeds(scheduler: KVScheduler, device: MemoryDevice) -> None:
    device.fail("create", A, retriable=True, times=2)
    await scheduler.commit({B: Item(name="b", depends_on=(A,))})
    result = await scheduler.commit({A: Item(name="a")})
    assert not result.ok
    assert scheduler.value_status(A).state is ValueState.RETRYING
    assert scheduler.value_status(B).state is ValueState.PENDING
    await scheduler.settled(timeout=10)
    assert scheduler.value_status(A).state is ValueState.CONFIGURED
    assert scheduler.value_status(B).state is ValueState.CONFIGURED
    retries = [r.result for r in scheduler.history.records() if r.result.kind is TxnKind.RETRY]
    assert len(retries) == 2
    assert all(op.is_retry for r in retries for op in r.operations)
    assert retries[-1].ok


async def test_retries_stop_after_max_attempts_with_back_off(device: MemoryDevice) -> None:
    sched = KVScheduler(verify=True, retry=RetryPolicy(period_s=0.01, max_attempts=3, backoff=2.0))
    sched.register_descriptor(ItemDescriptor(device))
    device.fail("create", A, retriable=True, times=None)
    await sched.commit({A: Item(name="a")})
    await sched.settled(timeout=10)
    status = sched.value_status(A)
    assert status.state is ValueState.FAILED
    assert "injected retriable create failure" in (status.error or "")
    records = sched.history.records()
    assert [r.result.kind for r in records] == [TxnKind.NB] + [TxnKind.RETRY] * 3
    # Doubling back-off: 0.01 s, then 0.02 s, then 0.04 s.
    assert [r.result.description for r in records[1:]] == [
        "retry of 1 value(s) after 0.01 s",
        "retry of 1 value(s) after 0.02 s",
        "retry of 1 value(s) after 0.04 s",
    ]
    await sched.close()


def test_retry_policy_delays_and_bad_settings() -> None:
    policy = RetryPolicy()
    assert (policy.period_s, policy.max_attempts, policy.backoff) == (1.0, 3, 2.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(backoff=0.5)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=-1)


async def test_fatal_failure_is_not_retried(scheduler: KVScheduler, device: MemoryDevice) -> None:
    device.fail("create", A, retriable=False)
    result = await scheduler.commit({A: Item(name="a")})
    assert scheduler.value_status(A).state is ValueState.FAILED
    assert result.errors[A] == f"DeviceError: injected fatal create failure on {A}"
    await scheduler.settled(timeout=5)
    assert len(scheduler.history) == 1
    # A new desired value is a new attempt.
    result = await scheduler.commit({A: Item(name="a")})
    assert result.ok and scheduler.value_status(A).state is ValueState.CONFIGURED


async def test_retry_is_dropped_when_the_value_changed_meanwhile(device: MemoryDevice) -> None:
    sched = KVScheduler(verify=True, retry=RetryPolicy(period_s=0.05, max_attempts=3))
    sched.register_descriptor(ItemDescriptor(device))
    device.fail("create", A, retriable=True)
    await sched.commit({A: Item(name="a")})
    await sched.commit({A: Item(name="a", data="newer")})
    await sched.settled(timeout=5)
    assert [r.result.kind for r in sched.history.records()] == [TxnKind.NB, TxnKind.NB]
    assert device.objects[A].value.data == "newer"
    await sched.close()


async def test_failed_delete_of_a_dependent_keeps_its_dependency(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a"), B: Item(name="b", depends_on=(A,))})
    device.fail("delete", B, retriable=True)
    result = await scheduler.commit({A: None})
    assert A in device.objects and B in device.objects
    assert "could not be removed" in result.errors[A]
    await scheduler.settled(timeout=10)
    assert device.objects == {}
    assert scheduler.value_status(B).state is ValueState.PENDING
    assert scheduler.value_status(A).state is ValueState.NONEXISTENT


async def test_best_effort_keeps_what_succeeded(scheduler: KVScheduler, device: MemoryDevice) -> None:
    device.fail("create", B, retriable=False)
    result = await scheduler.commit({A: Item(name="a"), B: Item(name="b"), C: Item(name="c")})
    assert set(result.errors) == {B}
    assert set(device.objects) == {A, C}
    assert not result.reverted


async def test_revert_on_failure_undoes_the_whole_transaction(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a", data="old")})
    device.log.clear()
    device.fail("create", C, retriable=False)
    result = await scheduler.commit(
        {A: Item(name="a", data="new"), B: Item(name="b"), C: Item(name="c")},
        revert_on_failure=True,
    )
    assert result.reverted
    assert "injected fatal create failure" in result.errors[C]
    assert device.objects[A].value.data == "old"
    assert set(device.objects) == {A}
    # Creates run before updates: B was created, C failed, A was not updated yet.
    assert device.log == [("create", B), ("delete", B)]
    assert [op.is_revert for op in result.operations] == [False, False, True]
    assert scheduler.desired() == {A: Item(name="a", data="old")}
    assert scheduler.value_status(B).state is ValueState.NONEXISTENT


async def test_revert_on_failure_restores_updated_values(scheduler: KVScheduler, device: MemoryDevice) -> None:
    await scheduler.commit({A: Item(name="a", data="old"), C: Item(name="c", data="old")})
    device.log.clear()
    device.fail("update", C, retriable=True)
    result = await scheduler.commit(
        {A: Item(name="a", data="new"), C: Item(name="c", data="new")}, revert_on_failure=True
    )
    assert result.reverted and C in result.errors
    assert device.log == [("update", A), ("update", A)]
    assert device.objects[A].value.data == "old" and device.objects[C].value.data == "old"
    assert scheduler.value_status(A).state is ValueState.CONFIGURED
    assert scheduler.value_status(C).state is ValueState.CONFIGURED


async def test_argument_errors_are_named(scheduler: KVScheduler) -> None:
    with pytest.raises(SchedulerError, match="downstream resync takes no changes"):
        await scheduler.commit({A: Item(name="a")}, resync=ResyncMode.DOWNSTREAM)
    with pytest.raises(SchedulerError, match="revert_on_failure cannot be combined"):
        await scheduler.commit({}, resync=ResyncMode.FULL, revert_on_failure=True)
    with pytest.raises(SchedulerError, match="not a pydantic model"):
        await scheduler.commit({A: {"name": "a"}})  # type: ignore[dict-item]
    await scheduler.close()
    with pytest.raises(SchedulerError, match="closed"):
        await scheduler.commit({A: Item(name="a")})


async def test_transactions_run_one_at_a_time(device: MemoryDevice) -> None:
    class SlowDescriptor(ItemDescriptor):
        active = 0
        peak = 0

        async def create(self, key: str, value: Item) -> object:
            SlowDescriptor.active += 1
            SlowDescriptor.peak = max(SlowDescriptor.peak, SlowDescriptor.active)
            await asyncio.sleep(0.001)
            SlowDescriptor.active -= 1
            return await super().create(key, value)

    sched = KVScheduler()
    sched.register_descriptor(SlowDescriptor(device))
    results = await asyncio.gather(*(sched.commit({item_key(f"x{i}"): Item(name=f"x{i}")}) for i in range(10)))
    assert SlowDescriptor.peak == 1
    assert sorted(r.seq for r in results) == list(range(1, 11))
    await sched.close()
