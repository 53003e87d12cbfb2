"""Garbage collection is paused for a transaction's planning only, never while the
transaction's task is suspended in a descriptor call (defect 2 of issue 11)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from plugins.kvscheduler.scheduler import KVScheduler
from plugins.kvscheduler.testing import Item, ItemDescriptor, MemoryDevice, item_key


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
