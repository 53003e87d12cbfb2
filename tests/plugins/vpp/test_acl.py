"""ACLs and interface ACL lists through the scheduler against the stand-in."""

from __future__ import annotations

from ipaddress import IPv4Network

from plugins.kvscheduler.api import ResyncMode, ValueState
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.vpp import model as m
from plugins.vpp.connection import VPPConnection
from tests.plugins.vpp.conftest import make_scheduler
from tests.vppstub import VPPStub

LOOP = m.Interface(name="acl-if", type=m.InterfaceType.LOOPBACK)
WEB = m.Acl(
    name="web",
    rules=(
        m.AclRule(action=m.AclAction.PERMIT, dst=IPv4Network("10.1.1.0/24"), proto=6, dst_first=80, dst_last=80),
        m.AclRule(action=m.AclAction.DENY),
    ),
)
OUT = m.Acl(name="out", rules=(m.AclRule(action=m.AclAction.REFLECT),))
APPLIED = m.AclInterface(interface="acl-if", input=("web",), output=("out",))
VALUES = {
    m.interface_key("acl-if"): LOOP,
    m.acl_key("web"): WEB,
    m.acl_key("out"): OUT,
    m.acl_interface_key("acl-if"): APPLIED,
}


def acls_in(stub: VPPStub) -> dict[str, list[tuple[int, str, str, int, int]]]:
    return {
        tag: [
            (r["is_permit"], r["src_prefix"], r["dst_prefix"], r["proto"], r["dstport_or_icmpcode_first"])
            for r in rules
        ]
        for tag, rules in stub.state.acls.values()
    }


async def test_acls_created_applied_replaced_and_removed(scheduler: KVScheduler, stub: VPPStub) -> None:
    result = await scheduler.commit(VALUES)
    assert result.ok, result.errors
    assert acls_in(stub) == {
        "cv:web": [(1, "0.0.0.0/0", "10.1.1.0/24", 6, 80), (0, "0.0.0.0/0", "0.0.0.0/0", 0, 0)],
        "cv:out": [(2, "0.0.0.0/0", "0.0.0.0/0", 0, 0)],
    }
    index = {tag: i for i, (tag, _r) in stub.state.acls.items()}
    sw_if_index = next(i.sw_if_index for i in stub.state.interfaces.values() if i.tag == "cv:acl-if")
    assert stub.state.acl_lists[sw_if_index] == ([index["cv:web"]], [index["cv:out"]])

    # new rules replace the old ones in place: same acl_index, the interface list untouched
    narrower = WEB.model_copy(update={"rules": WEB.rules[:1]})
    result = await scheduler.commit({m.acl_key("web"): narrower})
    assert result.ok, result.errors
    assert {tag: i for i, (tag, _r) in stub.state.acls.items()} == index
    assert len(stub.state.acls[index["cv:web"]][1]) == 1

    # deleting an ACL that is applied first takes it off the interface (VPP refuses otherwise)
    result = await scheduler.commit({m.acl_key("out"): None})
    assert result.ok, result.errors
    assert sw_if_index not in stub.state.acl_lists
    assert scheduler.value_status(m.acl_interface_key("acl-if")).state is ValueState.PENDING
    result = await scheduler.commit(dict.fromkeys(VALUES))
    assert result.ok, result.errors
    assert stub.state.acls == {} and stub.state.acl_lists == {}


async def test_acls_survive_an_agent_restart_untouched(
    scheduler: KVScheduler, connection: VPPConnection, stub: VPPStub
) -> None:
    assert (await scheduler.commit(VALUES)).ok
    foreign = await connection.call("acl_add_replace", acl_index=m.NO_INDEX, tag="someone-else", count=0, r=[])
    calls = stub.mutating_calls()
    again = make_scheduler(connection)
    try:
        result = await again.commit(VALUES, resync=ResyncMode.FULL)
        assert result.ok, result.errors
        assert result.operations == []
    finally:
        await again.close()
    assert stub.mutating_calls() == calls
    assert foreign.acl_index in stub.state.acls
