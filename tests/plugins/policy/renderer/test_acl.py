"""The ACL policy renderer: the ACLs and ACL lists for the processor's rules, on the stand-in."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from plugins.kvscheduler.scheduler import KVScheduler
from plugins.policy.processor import Delta, LocalPodRules, SetContent
from plugins.policy.renderer.acl import GLOBAL_ACL_NAME, REFLECT_ACL, AclPolicyRenderer
from plugins.policy.rules import PodRules, PortMatch, Rule
from plugins.vpp import model as m
from tests.vppstub import VPPStub

P, D, R = m.AclAction.PERMIT, m.AclAction.DENY, m.AclAction.REFLECT
NAT_LOOP = IPv4Address("10.1.1.254")
OUTBOUND = ("main-nic", "afpacket-vpp2", "vxlanBVI")


def renderer() -> AclPolicyRenderer:
    return AclPolicyRenderer(lambda key, ip: "pod-" + key.split("/")[1], NAT_LOOP, lambda: OUTBOUND)


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


def test_an_ingress_isolated_pod_is_always_reached_from_its_own_node() -> None:
    """The node's stack behind the host interconnect (the kubelet's probes) passes a deny-all
    ingress, as on the nftables dataplane; another node does not."""
    r = AclPolicyRenderer(lambda key, ip: "pod-" + key.split("/")[1], NAT_LOOP, lambda: OUTBOUND,
                          node_host=lambda: IPv4Address("172.30.1.2"))
    r.apply(Delta(pods={"default/a": LocalPodRules("10.1.1.2", PodRules(ingress=()))}))
    values = dict(r.values())
    assert acls(values)[lists(values)["pod-a"].output[0]].rules == (
        m.AclRule(action=P, src=net("10.1.1.254/32")), m.AclRule(action=P, src=net("172.30.1.2/32")),
        m.AclRule(action=D))


def test_egress_goes_to_the_global_table_on_the_outbound_interfaces_with_ipblock_except_and_named_ports() -> None:
    r = renderer()
    rules = PodRules(egress=(Rule(peers="p-blk"), Rule(named="n-web")))
    r.apply(Delta(pods={"default/a": LocalPodRules("10.1.1.2", rules)}, sets={
        # the processor subtracted 10.0.0.0/8 except 10.1.0.0/16 into prefixes
        "p-blk": SetContent("interval", frozenset({"10.0.0.0/16", "10.2.0.0/15"})),
        "n-web": SetContent("named", frozenset({"10.1.2.2 . tcp . 8080"})),
    }))
    values = dict(r.values())
    a = net("10.1.1.2/32")
    assert acls(values)[GLOBAL_ACL_NAME].rules == (
        m.AclRule(action=P, src=a, dst=net("10.0.0.0/16")),
        m.AclRule(action=P, src=a, dst=net("10.2.0.0/15")),
        m.AclRule(action=P, src=a, dst=net("10.1.2.2/32"), proto=6, dst_first=8080, dst_last=8080),
        m.AclRule(action=D, src=a),
        m.AclRule(action=P),
    )
    assert lists(values) == {  # egress only: the pod has no output table, replies pass by reflection
        "pod-a": m.AclInterface(interface="pod-a", input=(REFLECT_ACL.name,)),
        **{i: m.AclInterface(interface=i, input=(REFLECT_ACL.name,), output=(GLOBAL_ACL_NAME,)) for i in OUTBOUND},
    }
    assert r.global_table == {"10.1.1.2": GLOBAL_ACL_NAME} and r.local_table == {}
    r.apply(Delta(pods={"default/a": LocalPodRules("10.1.1.2", PodRules(ingress=()))}))  # egress isolation gone
    values = dict(r.values())
    removed = set(r.take_removed())
    assert {m.acl_key(GLOBAL_ACL_NAME), *(m.acl_interface_key(i) for i in OUTBOUND)} == removed
    assert set(lists(values)) == {"pod-a"}


def test_local_tables_combine_the_egress_of_other_local_pods_and_are_shared() -> None:
    r = renderer()
    web80 = (PortMatch("tcp", 80, 80),)
    r.apply(Delta(pods={
        # a may only send TCP 80 to the web pods (b, e, f and a remote one)
        "default/a": LocalPodRules("10.1.1.2", PodRules(egress=(Rule(peers="p-web", ports=web80),))),
        "default/c": LocalPodRules("10.1.1.4", PodRules(ingress=(Rule(ports=(*web80, PortMatch("tcp", 443, 443))),))),
        "default/e": LocalPodRules("10.1.1.5", PodRules(ingress=(Rule(peers="p-a", ports=web80),))),
        "default/f": LocalPodRules("10.1.1.6", PodRules(ingress=(Rule(peers="p-a", ports=web80),))),
    }, sets={
        "p-web": SetContent("addr", frozenset({"10.1.1.3", "10.1.1.5", "10.1.1.6", "10.1.2.2"})),
        "p-a": SetContent("addr", frozenset({"10.1.1.2"})),
    }))
    # b: a local pod no policy selects (the processor's changes do not list it; the plugin names
    # every local pod)
    local = {"default/a": "10.1.1.2", "default/b": "10.1.1.3", "default/c": "10.1.1.4",
             "default/e": "10.1.1.5", "default/f": "10.1.1.6"}
    assert r.set_local_pods(local) and not r.set_local_pods(local)
    values = dict(r.values())
    a, loop = net("10.1.1.2/32"), m.AclRule(action=P, src=net("10.1.1.254/32"))
    tcp80 = {"proto": 6, "dst_first": 80, "dst_last": 80}
    table = {i.interface: acls(values)[i.output[0]].rules for i in lists(values).values() if i.output}
    assert table["pod-b"] == (  # b gets a table only because of a: a's TCP 80, nothing else from a
        m.AclRule(action=P, src=a, **tcp80), m.AclRule(action=D, src=a), m.AclRule(action=P))
    assert table["pod-c"] == (  # c accepts 80 and 443 from anyone, but a may send it nothing
        m.AclRule(action=D, src=a),
        m.AclRule(action=P, **tcp80), m.AclRule(action=P, proto=6, dst_first=443, dst_last=443), loop,
        m.AclRule(action=D))
    # e and f accept only what a may send them: their own rules say it all, one shared ACL
    assert table["pod-e"] == table["pod-f"] == (m.AclRule(action=P, src=a, **tcp80), loop, m.AclRule(action=D))
    assert lists(values)["pod-e"].output == lists(values)["pod-f"].output
    assert "pod-a" not in table and lists(values)["pod-a"].input == (REFLECT_ACL.name,)
    assert all(i.input == (REFLECT_ACL.name,) for i in lists(values).values())  # replies of every pod pass
    assert acls(values)[GLOBAL_ACL_NAME].rules == (
        *(m.AclRule(action=P, src=a, dst=net(f"{ip}/32"), **tcp80) for ip in ("10.1.1.3", "10.1.1.5", "10.1.1.6",
                                                                             "10.1.2.2")),
        m.AclRule(action=D, src=a), m.AclRule(action=P))
    assert len(acls(values)) == 5  # b, c, e+f, global, reflect


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


async def test_global_table_changes_in_place_and_goes_away_with_minimal_calls(
        scheduler: KVScheduler, stub: VPPStub) -> None:
    r = renderer()
    names = ("pod-a", "pod-b", *OUTBOUND)
    base = {m.interface_key(i): m.Interface(name=i, type=m.InterfaceType.LOOPBACK) for i in names}
    egress = PodRules(egress=(Rule(peers="p-web", ports=(PortMatch("tcp", 80, 80),)),))
    r.apply(Delta(pods={"default/a": LocalPodRules("10.1.1.2", egress),
                },
                  sets={"p-web": SetContent("addr", frozenset({"10.1.2.2"}))}))

    async def commit() -> dict[str, int]:
        before = dict(stub.calls)
        result = await scheduler.commit({**r.values(), **dict.fromkeys(r.take_removed())})  # type: ignore[arg-type]
        assert result.ok, result.errors
        return {k: n - before.get(k, 0) for k, n in stub.calls.items()
                if k.startswith("acl_") and not k.endswith("dump") and n != before.get(k, 0)}

    r.set_local_pods({"default/a": "10.1.1.2", "default/b": "10.1.1.3"})
    result = await scheduler.commit(base)
    assert result.ok, result.errors
    calls = await commit()
    # a may send b nothing (b is not a web pod): b gets a table (DENY from a) and a reflective input
    assert calls == {"acl_add_replace": 3, "acl_interface_set_acl_list": 5}  # reflect, global, b's table
    tags = sorted(tag for tag, _ in stub.state.acls.values())
    assert "cv:" + GLOBAL_ACL_NAME in tags and "cv:" + REFLECT_ACL.name in tags
    # a remote pod joins the web pods: only the global table changes, replaced in place
    r.apply(Delta(sets={"p-web": SetContent("addr", frozenset({"10.1.2.2", "10.1.2.3"}))}))
    assert await commit() == {"acl_add_replace": 1}
    # nothing changed: nothing sent
    assert await commit() == {}
    # a's egress isolation ends: the global table and b's table go, the outbound lists are cleared
    r.apply(Delta(pods={"default/a": LocalPodRules("10.1.1.2", PodRules())}))
    calls = await commit()
    assert calls == {"acl_del": 3, "acl_interface_set_acl_list": 5}
    assert stub.state.acls == {}
