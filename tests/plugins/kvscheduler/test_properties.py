"""Property tests: random dependency graphs, random transactions, arbitrary dataplane states.

The device checks, after every operation, that no object exists whose dependencies do not
(nothing created before its dependencies, nothing left behind after them). The final
dataplane must equal the model: the least fixed point of "desired values whose dependencies
are available", where a property ``prop/<name>/up`` is available while its base derives it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.kvscheduler.api import ResyncMode, ValueState
from plugins.kvscheduler.scheduler import KVScheduler, RetryPolicy
from plugins.kvscheduler.testing import (
    DeviceObject,
    Item,
    ItemDescriptor,
    MemoryDevice,
    item_key,
)

NAMES = [f"n{i}" for i in range(6)]
KEYS = [item_key(n) for n in NAMES]
PROPS = [f"prop/{n}/up" for n in NAMES]
FOREIGN = [item_key(f"f{i}") for i in range(2)]
ANY_PREFIXES = [item_key("n1"), item_key("n2"), "prop/n3/", item_key("f")]

#: More examples for a deeper search: KVS_PROPERTY_EXAMPLES=1000 pytest ...
SETTINGS = settings(
    max_examples=int(os.environ.get("KVS_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def item_for(name: str) -> st.SearchStrategy[Item]:
    return st.builds(
        lambda deps, group, prop, data, kind: Item(
            name=name,
            data=data,
            kind=kind,
            depends_on=tuple(deps),
            depends_on_any=(tuple(group),) if group else (),
            derived=((f"prop/{name}/up", ""),) if prop else (),
        ),
        st.lists(st.sampled_from(KEYS + PROPS + FOREIGN), max_size=2, unique=True),
        st.lists(st.sampled_from(ANY_PREFIXES), max_size=2, unique=True),
        st.booleans(),
        st.sampled_from(["", "x"]),
        st.sampled_from(["", "k"]),
    )


def change() -> st.SearchStrategy[tuple[str, Item | None]]:
    return st.sampled_from(NAMES).flatmap(lambda n: st.tuples(st.just(item_key(n)), st.one_of(st.none(), item_for(n))))


def available_keys(objects: dict[str, Item]) -> set[str]:
    present = set(objects)
    for value in objects.values():
        present.update(k for k, _ in value.derived)
    return present


def satisfied(key: str, value: Item, present: set[str]) -> bool:
    """Whether ``value``'s dependencies are met by ``present``, never by itself or by what it
    derives (a value cannot hold itself up)."""
    own = {key, *(k for k, _ in value.derived)}
    others = present - own
    return all(k in others for k in value.depends_on) and all(
        any(p.startswith(prefix) for p in others for prefix in group) for group in value.depends_on_any
    )


def check_model(desired: dict[str, Item], applied: dict[str, Item], foreign: dict[str, Item]) -> None:
    """The applied state is exactly the desired values whose dependencies are satisfied."""
    present = available_keys({**foreign, **applied})
    for key, value in desired.items():
        if key in applied:
            assert applied[key] == value, key
            assert satisfied(key, value, present), f"{key} applied without its dependencies"
        else:
            assert not satisfied(key, value, present), f"{key} satisfied but not applied"
    assert set(applied) <= set(desired), "obsolete values left behind"


def needs(value: Item, key: str) -> bool:
    """Whether ``value`` depends on ``key`` directly (by key or by an any-of prefix)."""
    return key in value.depends_on or any(key.startswith(p) for group in value.depends_on_any for p in group)


class CheckedDescriptor(ItemDescriptor):
    """Records every moment the device holds an object whose dependencies are missing."""

    def __init__(self, device: MemoryDevice, *, check_all: bool = True) -> None:
        super().__init__(device)
        self.violations: list[str] = []
        self.check_all = check_all

    def _objects(self) -> dict[str, Item]:
        return {k: o.value for k, o in self.device.objects.items() if isinstance(o.value, Item)}

    def _check(self, op: str, key: str, cycle_with: Item | None = None) -> None:
        objects = self._objects()
        present = available_keys(objects)
        targets = objects if self.check_all else {key: objects[key]} if key in objects else {}
        for k, value in targets.items():
            if cycle_with is not None and needs(cycle_with, k):
                continue  # a dependency cycle: whichever goes first leaves the other lacking
            if not satisfied(k, value, present):
                self.violations.append(f"after {op} {key}: {k} lacks a dependency")

    async def create(self, key: str, value: Item) -> Any:
        metadata = await super().create(key, value)
        self._check("create", key)
        return metadata

    async def update(self, key: str, old: Item, new: Item, metadata: Any) -> Any:
        metadata = await super().update(key, old, new, metadata)
        self._check("update", key)
        return metadata

    async def delete(self, key: str, value: Item, metadata: Any) -> None:
        await super().delete(key, value, metadata)
        self._check("delete", key, cycle_with=value)


def check_converged(
    sched: KVScheduler, device: MemoryDevice, desired: dict[str, Item], foreign: dict[str, Item]
) -> None:
    applied = device.owned()
    check_model(desired, {k: v for k, v in applied.items() if isinstance(v, Item)}, foreign)
    assert dict(sched.desired()) == desired
    for key in desired:
        status = sched.value_status(key)
        if key in applied:
            assert status.state is ValueState.CONFIGURED, (key, status)
        else:
            assert status.state is ValueState.PENDING, (key, status)
            assert status.waiting_for, key


@SETTINGS
@given(txns=st.lists(st.lists(change(), min_size=1, max_size=5).map(dict), min_size=1, max_size=6))
def test_random_transactions_keep_dependencies_and_converge(
    txns: list[dict[str, Item | None]],
) -> None:
    async def run() -> None:
        device = MemoryDevice()
        desc = CheckedDescriptor(device)
        sched = KVScheduler(verify=True)
        sched.register_descriptor(desc)
        desired: dict[str, Item] = {}
        for txn in txns:
            result = await sched.commit(txn)
            assert result.ok, result.errors
            for key, value in txn.items():
                if value is None:
                    desired.pop(key, None)
                else:
                    desired[key] = value
            assert desc.violations == []
            check_converged(sched, device, desired, {})
        await sched.close()

    asyncio.run(run())


@SETTINGS
@given(
    existing=st.dictionaries(st.sampled_from(NAMES), st.booleans(), max_size=6),
    foreign=st.sets(st.sampled_from(FOREIGN)),
    wanted=st.lists(change(), max_size=6).map(dict),
    data=st.data(),
)
def test_full_resync_converges_from_any_dataplane_state(
    existing: dict[str, bool],
    foreign: set[str],
    wanted: dict[str, Item | None],
    data: st.DataObject,
) -> None:
    async def run() -> None:
        device = MemoryDevice()
        for name, same_as_wanted in existing.items():
            key = item_key(name)
            value = wanted.get(key) if same_as_wanted else None
            if value is None:
                value = data.draw(item_for(name))
            device.objects[key] = DeviceObject(value)
        foreign_values = {k: Item(name=k.rsplit("/", 1)[-1]) for k in foreign}
        for key, value in foreign_values.items():
            device.put_foreign(key, value)
        desc = CheckedDescriptor(device, check_all=False)  # the start state may be inconsistent
        sched = KVScheduler(verify=True)
        sched.register_descriptor(desc)
        desired = {k: v for k, v in wanted.items() if v is not None}
        result = await sched.commit(desired, resync=ResyncMode.FULL)
        assert result.ok, result.errors
        assert desc.violations == []
        check_converged(sched, device, desired, foreign_values)
        for key, value in foreign_values.items():
            assert device.objects[key] == DeviceObject(value, owned=False)
        again = await sched.commit(desired, resync=ResyncMode.FULL)
        assert again.ok and again.operations == []
        await sched.close()

    asyncio.run(run())


@SETTINGS
@given(
    txns=st.lists(st.lists(change(), min_size=1, max_size=5).map(dict), min_size=1, max_size=4),
    failures=st.lists(
        st.tuples(
            st.sampled_from(["create", "update", "delete"]),
            st.sampled_from(KEYS),
            st.integers(min_value=1, max_value=2),
        ),
        max_size=4,
    ),
)
def test_retriable_failures_converge_after_retries(
    txns: list[dict[str, Item | None]], failures: list[tuple[str, str, int]]
) -> None:
    async def run() -> None:
        device = MemoryDevice()
        for op, key, times in failures:
            device.fail(op, key, retriable=True, times=times)
        desc = CheckedDescriptor(device)
        sched = KVScheduler(verify=True, retry=RetryPolicy(period_s=0.001, max_attempts=10))
        sched.register_descriptor(desc)
        desired: dict[str, Item] = {}
        for txn in txns:
            await sched.commit(txn)
            for key, value in txn.items():
                if value is None:
                    desired.pop(key, None)
                else:
                    desired[key] = value
            assert desc.violations == []
        await sched.settled(timeout=30)
        assert desc.violations == []
        check_converged(sched, device, desired, {})
        await sched.close()

    asyncio.run(run())


@SETTINGS
@given(
    txns=st.lists(
        st.tuples(
            st.lists(change(), min_size=1, max_size=5).map(dict),
            st.one_of(
                st.none(),
                st.tuples(st.sampled_from(["create", "update", "delete"]), st.sampled_from(KEYS)),
            ),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_revert_on_failure_restores_the_previous_state(
    txns: list[tuple[dict[str, Item | None], tuple[str, str] | None]],
) -> None:
    async def run() -> None:
        device = MemoryDevice()
        desc = CheckedDescriptor(device)
        sched = KVScheduler(verify=True, retry=RetryPolicy(max_attempts=0))
        sched.register_descriptor(desc)
        desired: dict[str, Item] = {}
        for txn, failure in txns:
            if failure is not None:
                device.fail(failure[0], failure[1], retriable=False, times=1)
            result = await sched.commit(txn, revert_on_failure=True)
            device.clear_failures()
            # Reverted exactly when the injected failure was hit.
            assert result.reverted == bool(device.failures)
            if not result.reverted:
                assert result.ok, result.errors
                for key, value in txn.items():
                    if value is None:
                        desired.pop(key, None)
                    else:
                        desired[key] = value
            device.failures.clear()
            assert desc.violations == []
            check_converged(sched, device, desired, {})
        await sched.close()

    asyncio.run(run())
