"""Next-fit allocation inside one node subnet."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.ipam.allocator import PodSubnetAllocator
from plugins.ipam.api import PoolExhaustedError
from plugins.ipam.released import ReleasedPods
from plugins.podmanager.api import PodID

SUBNET = IPv4Network("10.1.3.0/28")


def pod(i: int) -> PodID:
    return PodID(f"pod-{i}", "default")


def test_next_fit_continues_after_the_last_address_and_wraps() -> None:
    alloc = PodSubnetAllocator(SUBNET)
    assert [alloc.allocate(pod(i))[0] for i in range(3)] == [
        IPv4Address("10.1.3.2"), IPv4Address("10.1.3.3"), IPv4Address("10.1.3.4")
    ]
    assert alloc.release(pod(0)) == IPv4Address("10.1.3.2")
    # The freed .2 is not reused while later addresses are free (next-fit, not first-fit).
    assert alloc.allocate(pod(3))[0] == IPv4Address("10.1.3.5")
    for i in range(4, 12):
        alloc.allocate(pod(i))
    assert alloc.ip_of(pod(11)) == IPv4Address("10.1.3.13")
    # End of the range reached: wrap to the start and take the one free address, .2.
    assert alloc.allocate(pod(12))[0] == IPv4Address("10.1.3.2")


def test_allocation_is_idempotent_per_pod() -> None:
    alloc = PodSubnetAllocator(SUBNET)
    first, new = alloc.allocate(pod(1))
    again, new_again = alloc.allocate(pod(1))
    assert (first, new, again, new_again) == (IPv4Address("10.1.3.2"), True, IPv4Address("10.1.3.2"), False)
    assert len(alloc) == 1


def test_exhaustion_of_a_28_names_subnet_and_capacity() -> None:
    alloc = PodSubnetAllocator(SUBNET)
    ips = [alloc.allocate(pod(i))[0] for i in range(12)]
    assert len(set(ips)) == 12
    assert IPv4Address("10.1.3.1") not in ips and IPv4Address("10.1.3.14") not in ips
    with pytest.raises(PoolExhaustedError) as info:
        alloc.allocate(pod(99))
    assert str(info.value) == (
        "no free pod IP address in node subnet 10.1.3.0/28 (all 12 assignable addresses are in use)"
    )
    assert info.value.subnet == SUBNET and info.value.capacity == 12


def test_restore_refuses_conflicts_and_foreign_addresses() -> None:
    alloc = PodSubnetAllocator(SUBNET)
    assert alloc.restore(pod(1), IPv4Address("10.1.3.7")) is None
    assert alloc.restore(pod(1), IPv4Address("10.1.3.7")) is None  # same again: fine
    assert alloc.restore(pod(2), IPv4Address("10.1.3.7")) == "10.1.3.7 is already held by default/pod-1"
    assert alloc.restore(pod(1), IPv4Address("10.1.3.8")) == "default/pod-1 already holds 10.1.3.7"
    assert alloc.restore(pod(3), IPv4Address("10.1.3.1")) == "10.1.3.1 is not a pod address of 10.1.3.0/28"
    assert alloc.restore(pod(3), IPv4Address("10.1.4.5")) == "10.1.4.5 is not a pod address of 10.1.3.0/28"
    assert alloc.holder_of(IPv4Address("10.1.3.7")) == pod(1)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 20)), max_size=80))
def test_random_sequences_never_double_book(ops: list[tuple[bool, int]]) -> None:
    alloc = PodSubnetAllocator(SUBNET)
    model: dict[PodID, IPv4Address] = {}
    for is_alloc, i in ops:
        if is_alloc:
            try:
                ip, _ = alloc.allocate(pod(i))
            except PoolExhaustedError:
                assert len(model) == 12 and pod(i) not in model
                continue
            assert model.setdefault(pod(i), ip) == ip
        else:
            assert alloc.release(pod(i)) == model.pop(pod(i), None)
        assert alloc.allocations() == model
        assert len(set(model.values())) == len(model)
        assert all(IPv4Address("10.1.3.2") <= ip <= IPv4Address("10.1.3.13") for ip in model.values())


def test_released_pods_are_bounded_by_count_and_age() -> None:
    released = ReleasedPods(max_entries=3, max_age_s=10)
    for i in range(5):
        released.add(pod(i), IPv4Address(f"10.1.1.{i + 2}"), now=float(i))
    assert len(released) == 3  # the two oldest went
    assert not released.blocks(pod(0), IPv4Address("10.1.1.2"), now=5.0)
    assert released.blocks(pod(4), IPv4Address("10.1.1.6"), now=5.0)
    assert not released.blocks(pod(4), IPv4Address("10.1.1.7"), now=5.0)  # another address
    assert not released.blocks(pod(4), IPv4Address("10.1.1.6"), now=14.0)  # too old
    assert len(released) == 0
