"""A value whose dependencies change in the same transaction as a deletion: deletes follow what is
in the dataplane, not what the next forms will need (a case hypothesis found)."""

from __future__ import annotations

from plugins.kvscheduler.api import Operation, ValueState
from plugins.kvscheduler.scheduler import KVScheduler, RetryPolicy
from plugins.kvscheduler.testing import Item, MemoryDevice
from tests.plugins.kvscheduler.test_properties import CheckedDescriptor

N2, N3 = "config/test/v1/item/n2", "config/test/v1/item/n3"


async def test_delete_before_the_property_it_needs_when_the_other_value_now_needs_it() -> None:
    device = MemoryDevice()
    desc = CheckedDescriptor(device)
    sched = KVScheduler(verify=True, retry=RetryPolicy(max_attempts=0))
    sched.register_descriptor(desc)
    # n2 needs a property derived from n3.
    first = await sched.commit({N2: Item(name="n2", depends_on_any=(("prop/n3/",),)),
                                N3: Item(name="n3", derived=(("prop/n3/up", ""),))})
    assert first.ok
    # n2 goes away; n3's next form drops the property and needs n2 instead.
    second = await sched.commit({N2: None, N3: Item(name="n3", depends_on_any=((N2,),))})
    assert second.ok, second.errors
    assert desc.violations == []
    deletes = [op.key for op in second.operations if op.operation is Operation.DELETE]
    assert deletes.index(N2) < deletes.index(N3)  # n2 left while the property it needed existed
    assert sched.value_status(N3).state is ValueState.PENDING
    assert second.values[N2].state is ValueState.REMOVED
    await sched.close()
