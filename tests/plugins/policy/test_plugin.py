"""The policy handler's bookkeeping: AddPod/DeletePod in batches, revert of one pod's change,
resync equal to the incremental state, REST view and bad policies."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address
from typing import Any

import pytest
from pydantic import BaseModel

from plugins.controller.events import DBResync, KubeStateChange
from plugins.ksr.convert import convert
from plugins.podmanager.api import AddPod, DeletePod, LocalPod, PodID
from plugins.policy.plugin import PolicyPlugin
from tests.plugins.policy import netpol_cases as nc


class Txn:
    def __init__(self) -> None:
        self.changes: dict[str, BaseModel | None] = {}

    def put(self, key: str, value: BaseModel) -> None:
        self.changes[key] = value

    def delete(self, key: str) -> None:
        self.changes[key] = None

    def get(self, key: str) -> BaseModel | None:
        return self.changes.get(key)

    def values(self) -> Mapping[str, BaseModel | None]:
        return self.changes


class Node:
    """This node's IPAM and pod manager, as far as the policy plugin reads them."""

    def __init__(self) -> None:
        self.ips: dict[PodID, IPv4Address] = {}
        self.pods: dict[PodID, LocalPod] = {}

    def pod_ip(self, pod: PodID) -> IPv4Address | None:
        return self.ips.get(pod)

    def local_pods(self) -> Mapping[PodID, LocalPod]:
        return self.pods


class State:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, BaseModel]] = {"namespace": {}, "pod": {}, "policy": {}}

    def list(self, resource: str) -> Mapping[str, Any]:
        return self.data.get(resource, {})

    def get(self, resource: str, name: str) -> Any | None:
        return self.data.get(resource, {}).get(name)

    def add(self, keyword: str, obj: dict[str, Any]) -> KubeStateChange:
        key, model = convert(keyword, obj)
        suffix = key.split("/", 2)[2]
        prev = self.data[keyword].get(suffix)
        self.data[keyword][suffix] = model
        return KubeStateChange(keyword, suffix, prev, model)


class IPNet:
    """ipnet's API as the policy plugin and its renderers use it (the pods of ``node`` are wired;
    VPP names as ipnet's VPP renderer gives them)."""

    def __init__(self, dataplane: str, node: Node) -> None:
        self._dataplane, self.node = dataplane, node

    def dataplane(self) -> str:
        return self._dataplane

    def node_namespace(self) -> str:
        return ""

    def pod_interface_name(self, pod: PodID) -> str | None:
        return pod_if(pod.name) if pod in self.node.pods else None

    def outbound_interfaces(self) -> tuple[str, ...]:
        from plugins.ipnet.renderer.vpp import VppRenderer, VppRenderSettings

        # TAP mode whatever the host (pod_interface: auto would pick af_packet without vhost-net)
        return VppRenderer(settings=VppRenderSettings(pod_interface="tap")).outbound_interfaces(vxlan=True)


def setup() -> tuple[PolicyPlugin, Node, State]:
    node, state = Node(), State()
    plugin = PolicyPlugin(ipam=node, podmanager=node)  # type: ignore[arg-type]
    for ns in nc.NAMESPACES:
        state.add("namespace", nc.namespace_manifest(ns))
    state.add("policy", nc.policy("x", "deny-in", types=["Ingress"]))
    plugin.resync(DBResync(state.data, {}), state, 1, Txn())
    return plugin, node, state


def add_pod(plugin: PolicyPlugin, node: Node, state: State, name: str, ip: str,
            reflect: bool = True) -> tuple[AddPod, Txn]:
    pid = PodID(name, "x")
    if reflect:
        plugin.update(state.add("pod", nc.pod_manifest("x", name)), Txn())
    node.ips[pid] = IPv4Address(ip)
    node.pods[pid] = LocalPod(name=name, namespace="x", container_id=name, netns_path="/x")
    event = AddPod(node.pods[pid])
    txn = Txn()
    plugin.update(event, txn)
    return event, txn


async def test_batched_adds_and_revert_of_one() -> None:
    plugin, node, state = setup()
    for name in ("a", "b"):  # KSR has both pods; then their AddPods come as one batch
        plugin.update(state.add("pod", nc.pod_manifest("x", name)), Txn())
    first, _ = add_pod(plugin, node, state, "a", "10.1.1.2", reflect=False)
    second, txn = add_pod(plugin, node, state, "b", "10.1.1.3", reflect=False)
    table = txn.changes[plugin.renderer.key]
    assert {e[1] for g in table.elements.values() for e in g if e[0] == "ingress"} == {"10.1.1.2", "10.1.1.3"}  # type: ignore[union-attr]
    plugin.revert(first)  # the batch failed: undo a's change only, in any order
    assert set(plugin.renderer.pods) == {"x/b"}
    plugin.revert(second)
    assert plugin.renderer.pods == {}


async def test_delete_and_its_revert() -> None:
    plugin, node, state = setup()
    add_pod(plugin, node, state, "a", "10.1.1.2")
    pid = PodID("a", "x")
    event = DeletePod(node.pods[pid])
    plugin.update(event, Txn())
    assert plugin.renderer.pods == {}
    plugin.revert(event)
    assert set(plugin.renderer.pods) == {"x/a"}


async def test_resync_gives_the_incremental_state() -> None:
    plugin, node, state = setup()
    add_pod(plugin, node, state, "a", "10.1.1.2")
    _, txn = add_pod(plugin, node, state, "b", "10.1.1.3")
    plugin.update(state.add("policy", nc.policy("x", "from-b", nc.pod_sel("a"),
                                                ingress=[{"from": [{"podSelector": nc.pod_sel("b")}]}])), txn)
    incremental, described = txn.changes[plugin.renderer.key], plugin.describe_internal_state()
    fresh = Txn()
    plugin.resync(DBResync(state.data, {}), state, 2, fresh)
    assert fresh.changes[plugin.renderer.key] == incremental
    assert plugin.describe_internal_state() == described
    view = plugin.describe()
    a = next(p for p in view["pods"] if p["pod"] == "x/a")
    assert a["policies"] == ["x/deny-in", "x/from-b"] and a["ingress"]["rules"][-1] == "drop"


async def test_pod_with_unknown_labels_is_denied_until_reflected() -> None:
    plugin, node, _ = setup()
    pid = PodID("new", "x")
    node.ips[pid] = IPv4Address("10.1.1.9")
    node.pods[pid] = LocalPod(name="new", namespace="x", container_id="n", netns_path="/x")
    txn = Txn()
    plugin.update(AddPod(node.pods[pid]), txn)
    rendered = plugin.renderer.pods["x/new"]
    assert rendered.rules.ingress == () and rendered.rules.egress == ()


async def test_bad_policy_is_reported_and_skipped() -> None:
    plugin, _, state = setup()
    plugin.update(state.add("policy", nc.policy("y", "bad", ingress=[{"from": [{"ipBlock": {"cidr": "nope/8"}}]}])),
                  Txn())
    assert "not a CIDR" in plugin.describe()["bad_policies"]["y/bad"]
    assert "y/bad" not in plugin.describe()["policies"]


@pytest.mark.parametrize(("dataplane", "setting", "chosen"), [
    ("linux", "auto", "nftables"),
    ("vpp", "auto", "vpp-acl"),
    (None, "auto", "nftables"),
    ("vpp", "nftables", "nftables"),
])
def test_auto_renderer_follows_ipnets_dataplane(dataplane: str | None, setting: str, chosen: str) -> None:
    from plugins.policy.config import PolicyConfig

    node = Node()
    ipnet = None if dataplane is None else IPNet(dataplane, node)
    plugin = PolicyPlugin(PolicyConfig(renderer=setting), ipam=node, podmanager=node,  # type: ignore[arg-type]
                          ipnet=ipnet)  # type: ignore[arg-type]
    assert plugin.renderer_name == chosen
    assert (type(plugin.renderer).__name__ == "AclPolicyRenderer") == (chosen == "vpp-acl")


async def test_vpp_acl_renderer_tables_a_pod_no_policy_selects_against_a_local_egress_isolated_one() -> None:
    """On VPP, every local pod may need a local table: the plugin hands the renderer all of them,
    and re-renders on an AddPod that changes no rule set (contiv.md 3.9, CombineRules)."""
    from ipaddress import IPv4Interface, IPv4Network
    from types import SimpleNamespace

    from plugins.policy.config import PolicyConfig
    from plugins.vpp import model as m

    class VppNode(Node):
        def plan(self) -> Any:
            return SimpleNamespace(pod_subnet=IPv4Network("10.1.1.0/24"),
                                   host_interconnect_host=IPv4Interface("172.30.1.2/24"))

    node, state = VppNode(), State()
    ipnet = IPNet("vpp", node)
    plugin = PolicyPlugin(PolicyConfig(), ipam=node, podmanager=node, ipnet=ipnet)  # type: ignore[arg-type]
    for ns in nc.NAMESPACES:
        state.add("namespace", nc.namespace_manifest(ns))
    state.add("policy", nc.policy("x", "a-out", nc.pod_sel("a"), types=["Egress"],
                                  egress=[{"to": [{"ipBlock": {"cidr": "192.168.0.0/16"}}]}]))
    desired: dict[str, Any] = {}  # what the scheduler desires after each transaction

    def commit(txn: Txn) -> Txn:
        for key, value in txn.changes.items():
            if value is None:
                desired.pop(key, None)
            else:
                desired[key] = value
        return txn

    commit(resynced := Txn())
    plugin.resync(DBResync(state.data, {}), state, 1, resynced)
    commit(add_pod(plugin, node, state, "a", "10.1.1.2")[1])
    txn = commit(add_pod(plugin, node, state, "b", "10.1.1.3")[1])
    a = IPv4Network("10.1.1.2/32")

    # b's AddPod changed no rule set, yet its commit gave b a table: what a may send b (nothing)
    listed = txn.changes[m.acl_interface_key(pod_if("b"))]
    assert isinstance(listed, m.AclInterface) and listed.input == ("pol-reflect",)
    table = txn.changes[m.acl_key(listed.output[0])]
    assert isinstance(table, m.Acl)
    assert table.rules == (m.AclRule(action=m.AclAction.DENY, src=a), m.AclRule(action=m.AclAction.PERMIT))
    # a's egress rules: the global table on the node's outbound interfaces (ipnet's VPP renderer names them)
    assert {k for k, v in desired.items() if isinstance(v, m.AclInterface)} == {
        m.acl_interface_key(i) for i in (pod_if("a"), pod_if("b"), "loopbackNIC", "tap-vpp2", "vxlanBVI")}
    # b's transaction carries only what changed: b's list and table (a's and the global are as they were)
    assert {k for k, v in txn.changes.items() if isinstance(v, m.AclInterface)} == {m.acl_interface_key(pod_if("b"))}
    global_table = desired[m.acl_key("pol-NODE-GLOBAL")]
    assert isinstance(global_table, m.Acl)
    assert global_table.rules[0] == m.AclRule(action=m.AclAction.PERMIT, src=a, dst=IPv4Network("192.168.0.0/16"))


def pod_if(name: str) -> str:
    from plugins.ipnet.renderer.vpp import pod_interface_name

    return pod_interface_name(name)


def test_an_unknown_renderer_or_one_without_what_it_needs_stops_the_start() -> None:
    from core.renderer import RendererUnavailable
    from plugins.policy.config import PolicyConfig
    from plugins.policy.renderer import make_renderer

    node = Node()
    with pytest.raises(RendererUnavailable, match=r"policy: no renderer for policy\.renderer 'ebpf'"):
        make_renderer("ebpf", PolicyConfig(), node, None)  # type: ignore[arg-type]
    with pytest.raises(RendererUnavailable, match="vpp-acl renderer needs the ipnet plugin"):
        PolicyPlugin(PolicyConfig(renderer="vpp-acl"), ipam=node, podmanager=node)  # type: ignore[arg-type]
