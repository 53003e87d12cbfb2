"""Garbage collection is paused for a transaction's planning only, never while the
transaction's task is suspended in a descriptor call (defect 2 of issue 11); and only when the
app's policy asks for it (core.tuning)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from core import tuning
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.kvscheduler.testing import Item, ItemDescriptor, MemoryDevice, item_key


@pytest.fixture(autouse=True)
def agent_policy() -> Iterator[None]:
    """The agent's policy (apps/vswitch/process.py) for these tests; none again afterwards."""
    tuning.configure(tuning.ProcessTuning(gc_pause=True, heap_trim=True))
    try:
        yield
    finally:
        tuning.configure(tuning.ProcessTuning())


def test_without_a_policy_nothing_process_wide_happens() -> None:
    tuning.configure(tuning.ProcessTuning())
    with tuning.gc_paused():
        assert gc.isenabled()
    assert not tuning.trim_heap(1 << 30)
    tuning.configure(tuning.ProcessTuning(gc_pause=True, heap_trim=True))
    with tuning.gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    assert tuning.trim_heap(1 << 30) and not tuning.trim_heap(10)


class SlowDescriptor(ItemDescriptor):
    """``create`` waits for the test (a hung dataplane call); ``validate`` notes the GC switch."""

    def __init__(self, device: MemoryDevice) -> None:
        super().__init__(device)
        self.hold = True
        #: One gate per create call that waits; the test opens it.
        self.gates: asyncio.Queue[asyncio.Event] = asyncio.Queue()
        self.gc_during_validate: list[bool] = []

    def validate(self, key: str, value: Item) -> None:
        self.gc_during_validate.append(gc.isenabled())
        super().validate(key, value)

    async def create(self, key: str, value: Item) -> Any:
        if self.hold:
            gate = asyncio.Event()
            self.gates.put_nowait(gate)
            await gate.wait()
        return await super().create(key, value)


async def test_other_tasks_never_see_collection_off_during_a_slow_commit() -> None:
    assert gc.isenabled()
    descriptor = SlowDescriptor(MemoryDevice())
    scheduler = KVScheduler()
    scheduler.register_descriptor(descriptor)
    try:
        commit = asyncio.create_task(scheduler.commit({item_key(f"v{i}"): Item(name=f"v{i}") for i in range(5)}))
        seen: list[bool] = []
        for _ in range(5):
            gate = await descriptor.gates.get()
            # The transaction's task is suspended in a dataplane call: others run now.
            seen.append(gc.isenabled())
            gate.set()
        result = await commit
        assert result.ok, result.errors
        assert seen == [True] * 5
        assert gc.isenabled()
        # Planning (validation) still runs with automatic collection paused.
        assert descriptor.gc_during_validate and not any(descriptor.gc_during_validate)
    finally:
        await scheduler.close()


async def test_a_collection_switched_off_elsewhere_stays_off() -> None:
    descriptor = SlowDescriptor(MemoryDevice())
    descriptor.hold = False
    scheduler = KVScheduler()
    scheduler.register_descriptor(descriptor)
    gc.disable()
    try:
        assert (await scheduler.commit({item_key("a"): Item(name="a")})).ok
        assert not gc.isenabled()
    finally:
        gc.enable()
        await scheduler.close()


class _Node:
    """A GC-tracked object that can be part of a reference cycle."""

    def __init__(self) -> None:
        self.other: object = None


def test_a_pause_that_built_much_moves_it_to_the_oldest_generation_and_cycles_still_go() -> None:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.collect()
    with tuning.gc_paused():
        built = [[i] for i in range(tuning.PROMOTE_AFTER + 10_000)]  # what a big resync leaves
        cycle, partner = _Node(), _Node()
        cycle.other, partner.other = partner, cycle
        gone = weakref.ref(cycle)
        del cycle, partner
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # promoted, not left frozen
    assert gc.get_count()[0] < tuning.PROMOTE_AFTER  # no scan of the young objects pending
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert id(built[-1]) in oldest and id(built) in oldest
    assert gone() is not None  # garbage cycles wait for a full collection ...
    gc.collect()
    assert gone() is None  # ... which frees them


def test_objects_frozen_by_someone_else_stay_frozen() -> None:
    gc.collect()
    theirs = [[i] for i in range(10)]
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with tuning.gc_paused():
            built = [[i] for i in range(tuning.PROMOTE_AFTER + 10_000)]
        assert gc.isenabled() and len(built) > tuning.PROMOTE_AFTER
        # Their freeze untouched (an unfreeze would empty it), ours not done (it would add what
        # was built); frozen objects that died meanwhile (other tests' leftovers) may leave it.
        assert 0 < gc.get_freeze_count() <= frozen
        assert theirs
    finally:
        gc.unfreeze()
