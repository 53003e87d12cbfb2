"""The ACL policy renderer: the ACLs and ACL lists for the processor's rules, on the stand-in."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from plugins.kvscheduler.scheduler import KVScheduler
from plugins.policy.processor import Delta, LocalPodRules, SetContent
from plugins.policy.rules import PodRules, PortMatch, Rule
from plugins.vpp import model as m
from plugins.vpp.renderers.acl import REFLECT_ACL, AclPolicyRenderer
from tests.vppstub import VPPStub

P, D, R = m.AclAction.PERMIT, m.AclAction.DENY, m.AclAction.REFLECT
NAT_LOOP = IPv4Address("10.1.1.254")


def renderer() -> AclPolicyRenderer:
    return AclPolicyRenderer(lambda key, ip: "pod-" + key.split("/")[1], NAT_LOOP)


def net(text: str) -> IPv4Network:
    return IPv4Network(text)


def acls(values: dict[str, object]) -> dict[str, m.Acl]:
    return {v.name: v for v in values.values() if isinstance(v, m.Acl)}


def lists(values: dict[str, object]) -> dict[str, m.AclInterface]:
    return {v.interface: v for v in values.values() if isinstance(v, m.AclInterface)}


def test_default_deny_and_allow_from_selector_share_acls() -> None:
    r = renderer()
    deny = PodRules(ingress=())
    r.apply(Delta(pods={"default/a": LocalPodRules("10.1.1.2", deny), "default/b": LocalPodRules("10.1.1.3", deny)}))
    values = dict(r.values())
    (name,) = [n for n in acls(values) if n != REFLECT_ACL.name]
    assert acls(values)[name].rules == (m.AclRule(action=P, src=net("10.1.1.254/32")), m.AclRule(action=D))
    assert lists(values) == {  # one ACL shared by both pods; replies to their own traffic pass
        f"pod-{p}": m.AclInterface(interface=f"pod-{p}", input=(REFLECT_ACL.name,), output=(name,)) for p in "ab"
    }
    allow = PodRules(ingress=(Rule(peers="p-sel", ports=(PortMatch("tcp", 8080, 8080), PortMatch("udp"))),))
    r.apply(Delta(pods={"default/a": LocalPodRules("10.1.1.2", allow)},
                  sets={"p-sel": SetContent("addr", frozenset({"10.1.2.2", "10.1.1.3"}))}))
    values = dict(r.values())
    acl_a = acls(values)[lists(values)["pod-a"].output[0]]
    assert acl_a.rules == (
        m.AclRule(action=P, src=net("10.1.1.3/32"), proto=6, dst_first=8080, dst_last=8080),
        m.AclRule(action=P, src=net("10.1.1.3/32"), proto=17),
        m.AclRule(action=P, src=net("10.1.2.2/32"), proto=6, dst_first=8080, dst_last=8080),
        m.AclRule(action=P, src=net("10.1.2.2/32"), proto=17),
        m.AclRule(action=P, src=net("10.1.1.254/32")),
        m.AclRule(action=D),
    )
    assert r.take_removed() == []  # b keeps the deny ACL
    r.apply(Delta(pods={"default/b": None}))
    left = set(r.values())
    assert m.acl_interface_key("pod-b") in r.take_removed() and m.acl_interface_key("pod-a") in left
    removed_before = set(r.values())
    r.apply(Delta(pods={"default/a": LocalPodRules("10.1.1.2", PodRules())}))  # a: policies gone
    assert dict(r.values()) == {} and set(r.take_removed()) == removed_before


def test_ipblock_except_and_named_ports_egress_reflect() -> None:
    r = renderer()
    rules = PodRules(egress=(Rule(peers="p-blk"), Rule(named="n-web")))
    r.apply(Delta(pods={"default/a": LocalPodRules("10.1.1.2", rules)}, sets={
        # the processor subtracted 10.0.0.0/8 except 10.1.0.0/16 into prefixes
        "p-blk": SetContent("interval", frozenset({"10.0.0.0/16", "10.2.0.0/15"})),
        "n-web": SetContent("named", frozenset({"10.1.2.2 . tcp . 8080"})),
    }))
    values = dict(r.values())
    iface = lists(values)["pod-a"]
    assert iface.output == () and len(iface.input) == 1  # egress only: no output ACL
    assert acls(values)[iface.input[0]].rules == (
        m.AclRule(action=R, dst=net("10.0.0.0/16")),
        m.AclRule(action=R, dst=net("10.2.0.0/15")),
        m.AclRule(action=R, dst=net("10.1.2.2/32"), proto=6, dst_first=8080, dst_last=8080),
        m.AclRule(action=D),
    )


async def test_acls_apply_to_the_stand_in_and_follow_peer_changes(scheduler: KVScheduler, stub: VPPStub) -> None:
    r = renderer()
    base = {m.interface_key(f"pod-{p}"): m.Interface(name=f"pod-{p}", type=m.InterfaceType.LOOPBACK) for p in "ab"}
    allow = PodRules(ingress=(Rule(peers="p-sel"),))
    r.apply(Delta(pods={"default/a": LocalPodRules("10.1.1.2", allow), "default/b": LocalPodRules("10.1.1.3", allow)},
                  sets={"p-sel": SetContent("addr", frozenset({"10.1.1.9"}))}))
    result = await scheduler.commit({**base, **r.values()})
    assert result.ok, result.errors
    assert sorted(tag for tag, _rules in stub.state.acls.values()) == sorted(
        "cv:" + n for n in acls(dict(r.values())))
    before = stub.calls["acl_add_replace"]
    r.apply(Delta(sets={"p-sel": SetContent("addr", frozenset({"10.1.1.9", "10.1.1.10"}))}))  # a pod joins
    changes: dict[str, object] = {**r.values(), **dict.fromkeys(r.take_removed())}
    result = await scheduler.commit(changes)  # type: ignore[arg-type]
    assert result.ok, result.errors
    # the shared ACL was renamed (its rules changed): one new ACL, both lists re-pointed, old one gone
    assert stub.calls["acl_add_replace"] - before == 1 and len(stub.state.acls) == 2  # + pol-reflect
