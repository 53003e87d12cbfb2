"""A descriptor whose ``equivalent`` or ``update_needs_recreate`` raises fails the value with
the error recorded; it never silently becomes an in-place update (defect 9 of issue 11)."""

from __future__ import annotations

import pytest

from plugins.kvscheduler.api import ValueState
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.kvscheduler.testing import Item, ItemDescriptor, MemoryDevice, item_key

KEY = item_key("a")


class Raising(ItemDescriptor):
    def __init__(self, device: MemoryDevice) -> None:
        super().__init__(device)
        self.raise_in: str | None = None

    def equivalent(self, key: str, old: Item, new: Item) -> bool:
        if self.raise_in == "equivalent":
            raise RuntimeError("comparator broke")
        return super().equivalent(key, old, new)

    def update_needs_recreate(self, key: str, old: Item, new: Item) -> bool:
        if self.raise_in == "update_needs_recreate":
            raise RuntimeError("recreate check broke")
        return super().update_needs_recreate(key, old, new)


@pytest.mark.parametrize("method", ["equivalent", "update_needs_recreate"])
async def test_a_raising_check_fails_the_value(method: str) -> None:
    device = MemoryDevice()
    descriptor = Raising(device)
    scheduler = KVScheduler(verify=True)
    scheduler.register_descriptor(descriptor)
    try:
        assert (await scheduler.commit({KEY: Item(name="a", data="1")})).ok
        descriptor.raise_in = method
        result = await scheduler.commit({KEY: Item(name="a", data="2")})
        assert not result.ok
        assert f"{method}() raised RuntimeError" in result.errors[KEY]
        status = scheduler.value_status(KEY)
        assert status.state is ValueState.FAILED
        assert device.objects[KEY].value == Item(name="a", data="1")  # no update in place
        assert ("update", KEY) not in device.log
        descriptor.raise_in = None
        assert (await scheduler.commit({KEY: Item(name="a", data="2")})).ok
        assert device.objects[KEY].value == Item(name="a", data="2")
    finally:
        await scheduler.close()
