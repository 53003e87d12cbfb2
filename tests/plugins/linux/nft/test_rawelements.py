"""Elements written over nf_tables netlink (plugins.linux.nft.rawelements) against nft's own writes.

The kernel and nft are the judges: a table created through the netlink path must list exactly
like the same table created from nft text, read back as unchanged (no write on resync), and a
refused batch must leave an inert table and name the set.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from plugins.kvscheduler.api import ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.descriptors.nfttable import NftTableDescriptor
from plugins.linux.nft import rawelements as nftraw
from plugins.linux.nft.driver import Nft, NftError
from plugins.linux.nft.table import NftChain, NftSet, NftTableValue, table_key

FE = "type ipv4_addr . inet_proto . inet_service : verdict;"
BE = "typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . tcp dport;"
TRIPLE = "type ipv4_addr . inet_proto . inet_service;"


def test_layouts_of_the_declarations_the_agent_writes() -> None:
    assert nftraw.layout(FE) == nftraw.Layout("aps", "v")
    assert nftraw.layout(BE) == nftraw.Layout("apsi", "as")
    assert nftraw.layout(TRIPLE) == nftraw.Layout("aps", "")
    assert nftraw.layout("type ipv4_addr . ipv4_addr;") == nftraw.Layout("aa", "")
    assert nftraw.layout("type ipv4_addr : verdict;") == nftraw.Layout("a", "v")
    assert nftraw.layout("type mark; size 100;") == nftraw.Layout("i", "")
    # Left to nft: intervals, timeouts, IPv6, expressions not known here.
    for decl in ("type ipv4_addr; flags interval;", "type ipv4_addr; flags dynamic,timeout; timeout 10s;",
                 "type ipv6_addr;", "typeof ip dscp;", "typeof ip daddr . ip6 daddr;", "counter;", ""):
        assert nftraw.layout(decl) is None, decl


def test_an_element_that_does_not_parse_leaves_the_set_to_nft() -> None:
    spec = nftraw.Layout("aps", "v")
    assert nftraw.encode(spec, [("10.0.0.1 . tcp . 80", "goto x")]) is not None
    for key, data in (("10.0.0.0/8 . tcp . 80", "goto x"), ("10.0.0.1 . tcp . http", "goto x"),
                      ("10.0.0.1 . tcp . 70000", "goto x"), ("10.0.0.1 . tcp", "goto x"),
                      ("10.0.0.1 . tcp . 80 . 1", "goto x"), ("10.0.0.1 . tcp . 80", "goto"),
                      ("10.0.0.1 . tcp . 80", "teleport x")):
        assert nftraw.encode(spec, [("10.0.0.1 . tcp . 80", "goto x"), (key, data)]) is None, key


def _value(ns: str, extra: dict[str, tuple[tuple[str, str, str], ...]] | None = None) -> NftTableValue:
    """A table using every kind of field the netlink path encodes, and one interval set it leaves
    to nft."""
    groups: dict[str, tuple[tuple[str, str, str], ...]] = {}
    for i in range(40):
        vip, fe = f"10.96.1.{i}", f"10.96.1.{i} . {('tcp', 'udp', 'sctp')[i % 3]} . {80 + i}"
        backends = [f"10.1.{i}.{j}" for j in range(1 + i % 3)]
        groups[vip] = (("fe", fe, f"goto lb-{len(backends)}"),
                       *(("be", f"{fe} . {j}", f"{b} . {8000 + j}") for j, b in enumerate(backends)),
                       ("hairpin", f"{backends[0]} . {backends[0]}", ""),
                       ("noep" if i % 5 == 0 else "masq", fe, ""),
                       ("pol", f"10.2.0.{i}", ("accept", "drop", "jump allow", "goto allow")[i % 4]),
                       ("marks", str(0x4000 + i), ""),
                       ("cidrs", f"10.{100 + i}.0.0/16", ""))
    groups.update(extra or {})
    chains = {f"lb-{n}": NftChain(rules=(
        f"dnat ip to ip daddr . meta l4proto . th dport . numgen random mod {n} map @be",)) for n in (1, 2, 3)}
    chains["allow"] = NftChain(rules=("accept",))
    chains["pre"] = NftChain(type="nat", hook="prerouting", prio=-100, rules=(
        "ip daddr . meta l4proto . th dport vmap @fe",))
    chains["filter"] = NftChain(type="filter", hook="forward", prio=0, rules=("ip saddr vmap @pol",))
    return NftTableValue(namespace=ns, name="rawt", sets={
        "fe": NftSet(decl=FE), "be": NftSet(decl=BE), "hairpin": NftSet(decl="type ipv4_addr . ipv4_addr;"),
        "noep": NftSet(decl=TRIPLE), "masq": NftSet(decl=TRIPLE), "pol": NftSet(decl="type ipv4_addr : verdict;"),
        "marks": NftSet(decl="type mark;"), "cidrs": NftSet(decl="type ipv4_addr; flags interval;"),
    }, chains=chains, elements=groups)


def _listing(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "ip", "rawt"], check=True,
                          capture_output=True, text=True).stdout


@pytest.mark.netns
async def test_a_table_created_over_netlink_lists_as_nft_writes_it(make_netns: Callable[[], str]) -> None:
    by_text, by_netlink = make_netns(), make_netns()
    text_desc, raw_desc = NftTableDescriptor(bulk_min=None), NftTableDescriptor(bulk_min=0)
    await text_desc.create("k", _value(by_text))
    await raw_desc.create("k", _value(by_netlink))
    assert (text_desc.writes, raw_desc.writes) == (1, 3)  # one nft batch / table, elements, hooks
    listing = _listing(by_netlink)
    assert listing == _listing(by_text)
    assert "10.96.1.4 . udp . 84 . 1 : 10.1.4.1 . 8001" in listing
    assert "10.2.0.2 : jump allow" in listing
    # An agent restart reads it back as it wants it: nothing is written.
    sched = KVScheduler(verify=True)
    fresh = NftTableDescriptor(bulk_min=0)
    sched.register_descriptor(fresh)
    try:
        result = await sched.commit({table_key(by_netlink, "ip", "rawt"): _value(by_netlink)},
                                    resync=ResyncMode.FULL)
        assert result.ok and result.operations == [], result.operations
        assert fresh.writes == 0
    finally:
        await sched.close()


@pytest.mark.netns
async def test_a_refused_element_batch_names_the_set_is_retriable_and_leaves_no_table(
    make_netns: Callable[[], str],
) -> None:
    ns = make_netns()
    desc = NftTableDescriptor(bulk_min=0)
    bad = _value(ns, {"bad": (("fe", "10.96.9.9 . tcp . 80", "goto no-such-chain"),)})
    with pytest.raises(NftError, match="refused the elements of set fe: No such file or directory") as refused:
        await desc.create("k", bad)
    assert desc.is_retriable(refused.value)
    assert Nft(ns).list_table("ip", "rawt") is None  # the inert table went with the failure
    # The next create (the scheduler's retry) creates the whole table.
    await desc.create("k", _value(ns))
    assert Nft(ns).list_table("ip", "rawt") is not None
    assert "10.96.1.4 . udp . 84 . 1 : 10.1.4.1 . 8001" in _listing(ns)


@pytest.mark.netns
async def test_an_existing_table_is_replaced_in_one_transaction(make_netns: Callable[[], str]) -> None:
    ns = make_netns()
    Nft(ns).apply("add table ip rawt\nadd chain ip rawt pre { type nat hook prerouting priority -100; }\n")
    desc = NftTableDescriptor(bulk_min=0)
    await desc.create("k", _value(ns))
    assert desc.writes == 1
    reference = make_netns()
    await NftTableDescriptor(bulk_min=None).create("k", _value(reference))
    assert _listing(ns) == _listing(reference)


def _changed(ns: str) -> NftTableValue:
    """``_value`` with one service's backends changed (one replaced, one added: a data change
    under an existing key too), one service gone and one new: elements only."""
    value = _value(ns)
    groups = dict(value.elements)
    groups["10.96.1.7"] = (("cidrs", "10.107.0.0/16", ""),)  # the interval set's element stays
    groups["10.96.1.5"] = (("fe", "10.96.1.5 . udp . 85", "goto lb-3"),
                           ("be", "10.96.1.5 . udp . 85 . 0", "10.1.5.9 . 8000"),
                           ("be", "10.96.1.5 . udp . 85 . 1", "10.1.5.1 . 8001"),
                           ("be", "10.96.1.5 . udp . 85 . 2", "10.1.5.2 . 8002"),
                           ("hairpin", "10.1.5.9 . 10.1.5.9", ""), ("masq", "10.96.1.5 . udp . 85", ""),
                           ("pol", "10.2.0.5", "jump allow"), ("marks", str(0x4000 + 5), ""),
                           ("cidrs", "10.105.0.0/16", ""))
    groups["10.96.2.1"] = (("fe", "10.96.2.1 . tcp . 443", "goto lb-1"),
                           ("be", "10.96.2.1 . tcp . 443 . 0", "10.1.9.9 . 8443"))
    return value.model_copy(update={"elements": groups})


@pytest.mark.netns
async def test_an_element_change_goes_over_netlink_and_lists_as_nft_writes_it(
    make_netns: Callable[[], str],
) -> None:
    by_text, by_netlink = make_netns(), make_netns()
    text_desc, raw_desc = NftTableDescriptor(bulk_min=None), NftTableDescriptor(bulk_min=0)
    for ns, desc in ((by_text, text_desc), (by_netlink, raw_desc)):
        await desc.create("k", _value(ns))
        writes = desc.writes, desc.netlink_writes
        await desc.update("k", _value(ns), _changed(ns), None)
        assert (desc.writes, desc.netlink_writes) == (writes[0] + 1, writes[1] + (desc is raw_desc))
    assert _listing(by_netlink) == _listing(by_text)
    listing = _listing(by_netlink)
    assert "10.96.1.5 . udp . 85 . 0 : 10.1.5.9 . 8000" in listing and "10.1.5.0 . 8000" not in listing
    assert "10.96.2.1 . tcp . 443 : goto lb-1" in listing and "10.96.1.7 ." not in listing
    # The interval set is left to nft: a change there makes the whole update nft text.
    value = _changed(by_netlink)
    more = dict(value.elements, extra=(("cidrs", "10.250.0.0/16", ""),))
    netlink_writes = raw_desc.netlink_writes
    await raw_desc.update("k", value, value.model_copy(update={"elements": more}), None)
    assert "10.250.0.0/16" in _listing(by_netlink) and raw_desc.netlink_writes == netlink_writes


@pytest.mark.netns
async def test_a_refused_element_change_applies_nothing_and_is_retriable(make_netns: Callable[[], str]) -> None:
    ns = make_netns()
    desc = NftTableDescriptor(bulk_min=0)
    await desc.create("k", _value(ns))
    before = _listing(ns)
    changed = _changed(ns)
    bad = changed.model_copy(update={"elements": dict(changed.elements, bad=(("fe", "10.96.9.9 . tcp . 80",
                                                                               "goto no-such-chain"),))})
    with pytest.raises(NftError, match="refused the elements of set fe: No such file") as refused:
        await desc.update("k", _value(ns), bad, None)
    assert desc.is_retriable(refused.value)
    assert _listing(ns) == before  # the deletes of the same transaction did not happen either
