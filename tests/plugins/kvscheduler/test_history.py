"""Transaction history: bounded by size and age, per-key timelines, disabled recording."""

from __future__ import annotations

import time

import pytest

from plugins.kvscheduler.api import TxnKind, TxnResult
from plugins.kvscheduler.history import TxnHistory, TxnRecord
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.kvscheduler.testing import Item, ItemDescriptor, MemoryDevice, item_key


def record(seq: int, started: float) -> TxnRecord:
    return TxnRecord(TxnResult(seq, TxnKind.NB, None, f"txn {seq}"), started)


def test_history_keeps_the_last_records_within_size_and_age() -> None:
    history = TxnHistory(max_records=3, max_age_s=100.0)
    base = time.time()
    for seq in range(1, 6):
        history.append(record(seq, started=base + seq))
    assert [r.result.seq for r in history.records()] == [3, 4, 5]
    history.trim(now=base + 104.5)
    assert [r.result.seq for r in history.records()] == [5]
    assert history.get(5) is not None and history.get(3) is None


def test_history_filters_by_time_and_rejects_bad_limits() -> None:
    history = TxnHistory(max_records=10, max_age_s=1000.0)
    base = time.time()
    for seq in range(1, 5):
        history.append(record(seq, started=base + seq * 10))
    assert [r.result.seq for r in history.records(since=base + 20, until=base + 30)] == [2, 3]
    with pytest.raises(ValueError, match="history size"):
        TxnHistory(max_records=0)
    with pytest.raises(ValueError, match="history age"):
        TxnHistory(max_age_s=0)


async def test_timeline_lists_every_transaction_that_touched_a_key() -> None:
    device = MemoryDevice()
    sched = KVScheduler(verify=True)
    sched.register_descriptor(ItemDescriptor(device))
    a, b = item_key("a"), item_key("b")
    await sched.commit({b: Item(name="b", depends_on=(a,))})
    await sched.commit({a: Item(name="a")})
    await sched.commit({a: None})
    timeline = sched.history.timeline(b)
    assert [(e.seq, e.status.state.value if e.status else None) for e in timeline] == [
        (1, "pending"),
        (2, "configured"),
        (3, "pending"),
    ]
    assert [[op.operation.value for op in e.operations] for e in timeline] == [
        [],
        ["create"],
        ["delete"],
    ]
    assert sched.history.get(1) is not None
    assert sched.history.get(1).changes == {b: Item(name="b", depends_on=(a,))}  # type: ignore[union-attr]
    await sched.close()


async def test_recording_can_be_disabled() -> None:
    sched = KVScheduler(record_history=False)
    sched.register_descriptor(ItemDescriptor(MemoryDevice()))
    result = await sched.commit({item_key("a"): Item(name="a")})
    assert result.ok and len(sched.history) == 0
    await sched.close()
