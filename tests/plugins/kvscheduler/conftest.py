"""Fixtures: a standalone scheduler in verification mode on the in-memory test device."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from plugins.kvscheduler.scheduler import KVScheduler, RetryPolicy
from plugins.kvscheduler.testing import ItemDescriptor, MemoryDevice

#: Fast retries so retry tests finish quickly (the production default is 1 s, 3, doubling).
FAST_RETRY = RetryPolicy(period_s=0.005, max_attempts=3, backoff=2.0)


@pytest.fixture
def device() -> MemoryDevice:
    return MemoryDevice()


@pytest.fixture
async def scheduler(device: MemoryDevice) -> AsyncIterator[KVScheduler]:
    sched = KVScheduler(verify=True, retry=FAST_RETRY)
    sched.register_descriptor(ItemDescriptor(device))
    try:
        yield sched
    finally:
        await sched.close()
