"""Policy rules -> VPP ACLs, Contiv's ACL renderer (contiv.md 3.9): every rule on VPP's output side.

Input: the policy processor's changes (``Delta``: each local pod's address and rule sets, the
contents of the peer sets the rule sets reference), read structurally. Rules sit where VPP
*sends* packets, after the services' NAT44-ED DNAT, so policies see the real backend address
of a service and services and policies compose. The tables (built by :mod:`.acl_tables`):

* a **local table** per local pod that needs one, the **output** ACL of its interface (traffic
  to the pod, same node or remote): its own ingress rules (PERMIT per peer x port, PERMIT from
  the NAT loopback address, DENY all; PERMIT all when it is not isolated on ingress), combined
  with the egress rules of the other *local* egress-isolated pods towards it (traffic from such
  a pod Q passes only what Q's egress allows towards this pod and this pod's ingress accepts
  from Q, then DENY from Q);
* the **node-global table** ``pol-NODE-GLOBAL`` on the **output** of the node's outbound
  interfaces (main NIC, host interconnect, VXLAN BVI: ``outbound()``): each local
  egress-isolated pod's egress rules with its address as source, DENY from it, finally PERMIT
  all; absent (and detached) while no local pod restricts its egress;
  The host interconnect is one of them, so traffic from a pod to its own node's stack (etcd,
  the agent's REST, the kubelet) passes this table too: an egress-isolated pod reaches its node
  only where its egress rules allow the node's address (docs/security.md,
  tests/security/test_host_vpp.py);
* the **reflective ACL** ``pol-reflect`` (PERMIT+REFLECT any) on the **input** of every pod with
  rules or a local table, and of the outbound interfaces while the global table exists, so the
  replies of allowed connections pass the output tables.

Rules are the processor's: an ipBlock's ``except`` is already subtracted into prefixes, a
named port is resolved per peer (``address . protocol . port``); policies without
``policyTypes`` follow the API's defaulting there. Local tables are shared: the name is a hash
of the rules, so pods with the same rules use one ACL, an unchanged ACL is never re-sent, and a
pod joining a peer set changes only the ACLs whose rules list it. The global table keeps its
name (its rules are replaced in place, the interfaces keep their lists).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address
from typing import Any

from pydantic import BaseModel

from core.naming import short_hash
from core.renderer import RendererUnavailable
from plugins.controller.api import Transaction
from plugins.ipam.api import IPAMAPI
from plugins.ipnet.api import IPNetAPI
from plugins.kvscheduler.removed import RemovedKeys
from plugins.podmanager.api import PodID
from plugins.policy.config import PolicyConfig
from plugins.policy.processor import Delta, LocalPodRules, SetContent
from plugins.policy.renderer import RenderedRules, Renderer
from plugins.policy.renderer.acl_tables import SenderBlock, Tables, restricts, rule_text
from plugins.policy.rules import PodRules
from plugins.vpp.model import Acl, AclAction, AclInterface, AclRule, acl_interface_key, acl_key

REFLECT_ACL = Acl(name="pol-reflect", rules=(AclRule(action=AclAction.REFLECT),))
GLOBAL_ACL_NAME = "pol-NODE-GLOBAL"


def _acl_name(rules: tuple[AclRule, ...]) -> str:
    text = "\n".join(map(rule_text, rules))
    return "pol-" + short_hash(text, 16)


class _Open:
    """A local pod no policy selects (not isolated)."""

    rules = PodRules()

    def __init__(self, ip: str) -> None:
        self.ip = ip


def make(config: PolicyConfig, ipam: IPAMAPI, ipnet: IPNetAPI | None) -> Renderer:
    """The ``vpp-acl`` renderer (see :func:`plugins.policy.renderer.make_renderer`): each pod's VPP
    interface and the node's outbound interfaces come from ipnet's API, the twice-NAT address
    from the address plan."""
    if ipnet is None:
        raise RendererUnavailable("policy: the vpp-acl renderer needs the ipnet plugin (the pods' VPP interfaces)")
    api = ipnet

    def interface_of(key: str, ip: str) -> str | None:
        namespace, _, name = key.partition("/")
        return api.pod_interface_name(PodID(name, namespace))

    def nat_loopback() -> IPv4Address:  # ipnet's twice-NAT address: a pod may reach itself via a service
        return IPv4Address(int(ipam.plan().pod_subnet.broadcast_address) - 1)

    def node_host() -> IPv4Address:  # the node's own stack (kubelet probes) behind the host interconnect
        return ipam.plan().host_interconnect_host.ip

    return AclPolicyRenderer(interface_of, nat_loopback, api.outbound_interfaces, node_host=node_host)


class AclPolicyRenderer:
    """Keeps the local pods' rules and the peer sets' contents; renders the ACLs and ACL lists.

    ``interface_of(pod_key, ip)`` names the pod's VPP interface (None: not wired, skipped);
    ``nat_loopback`` the twice-NAT address (or a callable giving it); ``outbound`` the node's
    outbound interfaces carrying the global table (or a callable giving them); ``node_host`` the
    node's own address on the host interconnect (or a callable giving it), from which an
    ingress-isolated pod is always reached (the kubelet's probes), as on the nftables dataplane.
    """

    name = "vpp-acl"

    def __init__(
        self,
        interface_of: Callable[[str, str], str | None],
        nat_loopback: IPv4Address | Callable[[], IPv4Address | None] | None = None,
        outbound: Sequence[str] | Callable[[], Sequence[str]] = (),
        *,
        node_host: IPv4Address | Callable[[], IPv4Address | None] | None = None,
    ) -> None:
        self.interface_of = interface_of
        self._nat_loopback = nat_loopback
        self._node_host = node_host
        self._outbound = outbound
        self.pods: dict[str, LocalPodRules] = {}
        self.contents: dict[str, SetContent] = {}
        #: Every local pod's address, isolated or not (any may need a local table).
        self.local: dict[str, str] = {}
        self._keys: set[str] = set()
        self._removed = RemovedKeys()
        #: Pod IP -> its local table (the output ACL of its interface), for pods isolated on ingress.
        self.local_table: dict[str, str] = {}
        #: Pod IP -> the global table holding its egress rules, for pods isolated on egress.
        self.global_table: dict[str, str] = {}
        #: Peer set -> how many rendered rules use it.
        self.peer_set_uses: dict[str, int] = {}
        #: Sender blocks of the local tables, by what they derive from (kept while in use), so an
        #: event recomputes only the blocks whose pods' rules or peer sets changed. Keyed by the
        #: rule sets' identities; the entry keeps the rule sets, and a hit must be them.
        self._blocks: dict[tuple[Any, ...], tuple[Any, Any, tuple[AclRule, ...]]] = {}
        self._blocks_used: set[tuple[Any, ...]] = set()
        #: What the last :meth:`put_into` put, so the next one puts only what changed.
        self._put: dict[str, BaseModel] = {}
        self._put_all = True
        self._rendered: dict[str, BaseModel] = {}

    def reset(self) -> None:
        self.pods.clear()
        self.contents.clear()
        self.values()  # everything not wanted any more becomes a removal
        self._put_all = True  # a resync's transaction holds the whole desired state

    def apply(self, delta: Delta) -> None:
        """Take the processor's changes (pods' rules and addresses, set contents)."""
        for set_id, content in delta.sets.items():
            if content is None:
                self.contents.pop(set_id, None)
            else:
                self.contents[set_id] = content
        for key, pod in delta.pods.items():
            if pod is None:
                self.pods.pop(key, None)
            else:
                self.pods[key] = pod

    def set_local_pods(self, local: Mapping[str, str]) -> bool:
        """Take every local pod's address (pod key -> IP); True when that changed anything.

        The processor's changes only carry pods some policy selects; a pod no policy selects
        still gets a local table while another local pod restricts its egress."""
        if dict(local) == self.local:
            return False
        # (No block goes stale: a block depends on whether its two pods are in a peer set, which
        # only the set's content decides, both being local pods.)
        self.local = dict(local)
        return True

    def put_into(self, txn: Transaction) -> None:
        """Put the ACLs and ACL lists that changed since the last call (all of them after a
        reset) into a controller transaction, delete those no longer rendered."""
        values = self.values()
        for key, value in values.items():
            last = self._put.get(key)
            if self._put_all or (last is not value and last != value):
                txn.put(key, value)
        for key in self.take_removed():
            txn.delete(key)
        self._put, self._put_all = dict(values), False

    def forget_written(self) -> None:
        self._put_all = True

    def rendered(self) -> RenderedRules:
        """The ACLs are the rule tables: a pod's local table (ingress), the global one (egress)."""
        acls = {v.name: tuple(map(rule_text, v.rules)) for v in self._rendered.values() if isinstance(v, Acl)}
        return RenderedRules(pods=self.pods, ingress=self.local_table, egress=self.global_table, tables=acls,
                             peer_sets={s: self.contents.get(s) for s in self.peer_set_uses})

    def outbound(self) -> list[str]:
        """The node's outbound interfaces (the global table's)."""
        names = self._outbound() if callable(self._outbound) else self._outbound
        return sorted(set(names))

    def values(self) -> Mapping[str, BaseModel]:
        """Every ACL in use and every ACL list (the renderer's desired state)."""
        out: dict[str, BaseModel] = {}
        self.local_table, self.global_table, self.peer_set_uses = {}, {}, {}
        loopback = self._nat_loopback() if callable(self._nat_loopback) else self._nat_loopback
        node_host = self._node_host() if callable(self._node_host) else self._node_host
        pods: dict[str, LocalPodRules | _Open] = {key: _Open(ip) for key, ip in self.local.items()}
        pods.update(self.pods)
        tables = Tables(self.contents, {p.ip for p in pods.values()}, loopback, node_host)
        wired = {key: iface for key, pod in sorted(pods.items())
                 if (iface := self.interface_of(key, pod.ip)) is not None}
        senders = sorted({(pod.ip, pod.rules.egress) for key, pod in pods.items()
                          if key in wired and restricts(pod.rules.egress)}, key=lambda s: s[0])
        self._blocks_used = set()
        block = self._memoised_block(tables)
        for key, iface in wired.items():
            pod = pods[key]
            ingress = pod.rules.ingress
            local = tables.local(pod.ip, ingress, senders, block)
            outputs: tuple[str, ...] = ()
            if local is not None:
                acl = self._put_acl(out, local)
                outputs = (acl.name,)
                if restricts(ingress):
                    self.local_table[pod.ip] = acl.name
            if outputs or restricts(ingress) or restricts(pod.rules.egress):
                self._put_acl(out, REFLECT_ACL.rules, REFLECT_ACL.name)
                out[acl_interface_key(iface)] = AclInterface(interface=iface, input=(REFLECT_ACL.name,),
                                                              output=outputs)
            for rule in (*(ingress or ()), *(pod.rules.egress or ())):
                for ref in (rule.peers, rule.named):
                    if ref is not None:
                        self.peer_set_uses[ref] = self.peer_set_uses.get(ref, 0) + 1
        global_rules = tables.global_rules(senders)
        if global_rules is not None:
            self._put_acl(out, global_rules, GLOBAL_ACL_NAME)
            self._put_acl(out, REFLECT_ACL.rules, REFLECT_ACL.name)
            self.global_table = {ip: GLOBAL_ACL_NAME for ip, _ in senders}
            for iface in self.outbound():
                out[acl_interface_key(iface)] = AclInterface(interface=iface, input=(REFLECT_ACL.name,),
                                                              output=(GLOBAL_ACL_NAME,))
        if len(self._blocks) > 2 * len(self._blocks_used) + 1024:  # drop those no longer in use
            self._blocks = {k: v for k, v in self._blocks.items() if k in self._blocks_used}
        self._removed.replaced(self._keys, out)
        self._keys = set(out)
        self._rendered = out
        return out

    def _memoised_block(self, tables: Tables) -> SenderBlock:
        """:meth:`Tables.sender_block`, reused while what it derives from is the same: both pods'
        rule sets (the same objects) and, of the peer sets they reference, whether each pod is in
        them and the named ports of the receiving pod. A pod joining a set changes only the
        blocks of that pod."""
        refs_of = _RefsOf()

        def block(ip: str, ingress: Any, q_ip: str, q_egress: Any) -> tuple[AclRule, ...]:
            peers_in, named_in = refs_of(ingress), refs_of(q_egress)
            key = (ip, id(ingress), q_ip, id(q_egress),
                   tuple(q_ip in tables.members(s) for s in peers_in[0]),
                   tuple(ip in tables.members(s) for s in named_in[0]),
                   tuple(tables.named_for(s, ip) for s in named_in[1]))
            self._blocks_used.add(key)
            found = self._blocks.get(key)
            if found is not None and found[0] is ingress and found[1] is q_egress:
                return found[2]
            rules = tables.sender_block(ip, ingress, q_ip, q_egress)
            self._blocks[key] = (ingress, q_egress, rules)
            return rules

        return block

    def take_removed(self) -> list[str]:
        """Keys :meth:`values` no longer renders since the last call (the caller deletes them)."""
        return self._removed.take()

    @staticmethod
    def _put_acl(out: dict[str, BaseModel], rules: tuple[AclRule, ...], name: str = "") -> Acl:
        acl = Acl(name=name or _acl_name(rules), rules=rules)
        out[acl_key(acl.name)] = acl
        return acl


class _RefsOf:
    """The peer sets a rule set references (sorted), and its named-port sets, computed once per
    rule set object (one render)."""

    def __init__(self) -> None:
        self._found: dict[int, tuple[Any, tuple[tuple[str, ...], tuple[str, ...]]]] = {}

    def __call__(self, ruleset: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
        found = self._found.get(id(ruleset))
        if found is None or found[0] is not ruleset:
            rules = ruleset or ()
            refs = (tuple(sorted({r.peers for r in rules if r.peers is not None})),
                    tuple(sorted({r.named for r in rules if r.named is not None})))
            found = self._found[id(ruleset)] = (ruleset, refs)
        return found[1]
