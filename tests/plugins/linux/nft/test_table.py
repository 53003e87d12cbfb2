"""The nft-table descriptor through the real KV scheduler on real nftables in a namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from plugins.kvscheduler.api import ResyncMode, ValueState
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.descriptors.nfttable import NftTableDescriptor
from plugins.linux.nft.driver import Nft
from plugins.linux.nft.table import NftChain, NftSet, NftTableValue, table_key

pytestmark = pytest.mark.netns

FE = "type ipv4_addr . inet_proto . inet_service : verdict;"
BE = "typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . tcp dport;"


Groups = dict[str, tuple[tuple[str, str, str], ...]]


def table(ns: str, groups: Groups, counts: tuple[int, ...] = (1, 2)) -> NftTableValue:
    chains = {f"lb-{n}": NftChain(rules=(
        f"dnat ip to ip daddr . meta l4proto . th dport . numgen random mod {n} map @be",)) for n in counts}
    chains["pre"] = NftChain(type="nat", hook="prerouting", prio=-100,
                             rules=("ip daddr . meta l4proto . th dport vmap @fe",))
    return NftTableValue(namespace=ns, name="svct", sets={"fe": NftSet(decl=FE), "be": NftSet(decl=BE),
                         "aff": NftSet(decl="type ipv4_addr; flags dynamic,timeout; timeout 1h;", managed=False)},
                         chains=chains, elements=groups)


def svc(vip: str, backends: list[str]) -> tuple[tuple[str, str, str], ...]:
    fe = f"{vip} . tcp . 80"
    return (("fe", fe, f"goto lb-{len(backends)}"),
            *(("be", f"{fe} . {i}", f"{b} . 8080") for i, b in enumerate(backends)))


@pytest.fixture
async def setup(make_netns: Callable[[], str]) -> AsyncIterator[tuple[KVScheduler, NftTableDescriptor, str]]:
    sched = KVScheduler(verify=True)
    desc = NftTableDescriptor()
    sched.register_descriptor(desc)
    try:
        yield sched, desc, make_netns()
    finally:
        await sched.close()


async def test_create_update_only_diffs_and_noop_resync(setup: tuple[KVScheduler, NftTableDescriptor, str]) -> None:
    sched, desc, ns = setup
    key = table_key(ns, "ip", "svct")
    groups = {"a": svc("10.96.0.1", ["10.1.1.2"]), "b": svc("10.96.0.2", ["10.1.1.3", "10.1.2.2"])}
    result = await sched.commit({key: table(ns, groups)})
    assert result.ok, result.errors
    assert desc.writes == 1
    got = Nft(ns).list_table("ip", "svct")
    assert got is not None
    assert got.sets["fe"].elements == {"10.96.0.1 . tcp . 80": "goto lb-1", "10.96.0.2 . tcp . 80": "goto lb-2"}
    handles = {n: [r.handle for r in c.rules] for n, c in got.chains.items()}
    # Scale service a to two backends: one batch, the chains keep their rules (handles).
    groups2 = dict(groups, a=svc("10.96.0.1", ["10.1.1.2", "10.1.2.3"]))
    result = await sched.commit({key: table(ns, groups2)})
    assert result.ok, result.errors
    assert desc.writes == 2
    got = Nft(ns).list_table("ip", "svct")
    assert got is not None
    assert {n: [r.handle for r in c.rules] for n, c in got.chains.items()} == handles
    assert got.sets["be"].elements["10.96.0.1 . tcp . 80 . 1"] == "10.1.2.3 . 8080"
    assert got.sets["fe"].elements["10.96.0.1 . tcp . 80"] == "goto lb-2"
    # A fresh scheduler (an agent restart) with the same desired state writes nothing.
    fresh = KVScheduler(verify=True)
    fresh_desc = NftTableDescriptor()
    fresh.register_descriptor(fresh_desc)
    try:
        result = await fresh.commit({key: table(ns, groups2)}, resync=ResyncMode.FULL)
        assert result.ok and result.operations == [], result.operations
        assert fresh_desc.writes == 0
    finally:
        await fresh.close()


async def test_tampering_is_repaired_by_resync_and_foreign_tables_are_left_alone(
    setup: tuple[KVScheduler, NftTableDescriptor, str],
) -> None:
    sched, _, ns = setup
    key = table_key(ns, "ip", "svct")
    groups = {"a": svc("10.96.0.1", ["10.1.1.2"]), "b": svc("10.96.0.2", ["10.1.1.3", "10.1.2.2"])}
    assert (await sched.commit({key: table(ns, groups)})).ok
    nft = Nft(ns)
    nft.apply("table ip other {\n chain c {\n }\n}\n")
    nft.apply("delete element ip svct be { 10.96.0.2 . tcp . 80 . 1 }\n"
              "add element ip svct fe { 10.96.0.9 . udp . 53 : goto lb-1 }\n"
              "add rule ip svct pre counter\n")
    result = await sched.commit({}, resync=ResyncMode.DOWNSTREAM)
    assert result.ok, result.errors
    assert [op.operation.value for op in result.operations] == ["update"]
    got = nft.list_table("ip", "svct")
    assert got is not None
    assert "10.96.0.9 . udp . 53" not in got.sets["fe"].elements
    assert got.sets["be"].elements["10.96.0.2 . tcp . 80 . 1"] == "10.1.2.2 . 8080"
    assert len(got.chains["pre"].rules) == 1
    assert nft.list_table("ip", "other") is not None
    # Deleting the value removes our table only.
    assert (await sched.commit({key: None})).ok
    assert nft.list_table("ip", "svct") is None and nft.list_table("ip", "other") is not None


async def test_a_foreign_table_with_our_name_is_not_touched(setup: tuple[KVScheduler, NftTableDescriptor, str]) -> None:
    sched, desc, ns = setup
    nft = Nft(ns)
    nft.apply("table ip svct {\n chain mine {\n }\n}\n")
    key = table_key(ns, "ip", "svct")
    result = await sched.commit({key: table(ns, {})}, resync=ResyncMode.FULL)
    assert sched.value_status(key).state is ValueState.FAILED, result
    got = nft.list_table("ip", "svct")
    assert got is not None and set(got.chains) == {"mine"}
    assert desc.writes == 0


def capped(ns: str, size: int, count: int = 2500) -> NftTableValue:
    """A big table (its elements go over netlink) whose set holds at most ``size`` elements."""
    return NftTableValue(namespace=ns, name="capped", family="ip",
                         sets={"ips": NftSet(decl=f"type ipv4_addr; size {size};")},
                         chains={"in": NftChain(type="filter", hook="input", prio=0, rules=("ip saddr @ips accept",))},
                         elements={"all": tuple(("ips", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "")
                                                for i in range(1, count + 1))})


async def test_a_refused_bulk_create_is_retried_and_leaves_no_inert_table(make_netns: Callable[[], str]) -> None:
    """The kernel refuses the elements written over netlink (the set is full): the failure is
    retriable, and the table created without its hooks for them does not stay behind."""
    node = make_netns()
    sched = KVScheduler(verify=True)
    desc = NftTableDescriptor()
    sched.register_descriptor(desc)
    try:
        refused = capped(node, size=100)
        key = table_key(node, "ip", "capped")
        result = await sched.commit({key: refused})
        assert not result.ok
        assert sched.value_status(key).state is ValueState.RETRYING
        assert Nft(node).list_table("ip", "capped") is None  # no inert table left
        # The next attempt (here: a set big enough) creates the whole table.
        fixed = capped(node, size=4096)
        result = await sched.commit({key: fixed})
        assert result.ok, result.errors
        found = Nft(node).list_table("ip", "capped")
        assert found is not None and len(found.sets["ips"].elements) == 2500 and "in" in found.chains
    finally:
        await sched.close()
