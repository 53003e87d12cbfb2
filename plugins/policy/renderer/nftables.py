"""The nftables renderer: local pods' rule sets -> the node's policy table (one scheduler value).

The table (family ``inet``, default name ``contiv-policy``) is an agent-owned
:class:`~plugins.linux.nft.table.NftTableValue`, applied by the Linux dataplane's table
descriptor: each change is ONE nft batch holding only what differs, and read-back repairs only
what was touched. Layout::

    map ingress { type ipv4_addr : verdict }     local pod address -> jump i-<ruleset>
    map egress  { type ipv4_addr : verdict }     local pod address -> jump e-<ruleset>
    set p-<def> { type ipv4_addr [; flags interval] }            peer addresses
    set n-<def> { type ipv4_addr . inet_proto . inet_service }  egress to named ports
    chain i-<ruleset> { ... accept; drop }       one chain per distinct rule set, shared
    chain e-<ruleset> { ... return; drop }
    chain forward { type filter hook forward priority 0; policy accept;
                    ct state established,related accept
                    ip saddr vmap @egress
                    ip daddr vmap @ingress }
    chain input   { type filter hook input priority 0; policy accept;
                    ct state established,related accept
                    ip saddr vmap @egress }

Renderer cache after Contiv's (contiv.md 3.9): each distinct rule set is rendered once, as one
chain named after the hash of its rules, shared by every pod that has it; a chain lives while
some pod uses it, a peer set while some chain references it. Pods not isolated on a side (or
allowed everything there) have no element in that side's map. Egress chains ``return`` on a
match so the destination's ingress lookup still runs. The forward hook sees addresses after
the services' DNAT (prerouting), and traffic from the node itself (output path) never crosses
it: probes from the pod's own node always pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from core.naming import short_hash
from plugins.controller.api import Transaction
from plugins.ipam.api import IPAMAPI
from plugins.ipnet.api import IPNetAPI
from plugins.linux.nft.table import Element, NftChain, NftSet, NftTableValue, table_key
from plugins.policy.config import PolicyConfig
from plugins.policy.processor import Delta, LocalPodRules, SetContent
from plugins.policy.renderer import RenderedRules, Renderer
from plugins.policy.rules import ALL_PORTS, ALLOW_ALL, RuleSet

FAMILY = "inet"
BASE_CHAIN = "forward"
BASE_RULES = (
    "ct state established,related accept",
    "ip saddr vmap @egress",
    "ip daddr vmap @ingress",
)
#: Pods to their own node: only the egress side (ingress from the node is always allowed).
INPUT_CHAIN = "input"
INPUT_RULES = (
    "ct state established,related accept",
    "ip saddr vmap @egress",
)
MAP_DECL = "type ipv4_addr : verdict;"
SET_DECLS = {
    "addr": "type ipv4_addr;",
    "interval": "type ipv4_addr; flags interval;",
    "named": "type ipv4_addr . inet_proto . inet_service;",
}


_MAP = NftSet(decl=MAP_DECL)
_INPUT = NftChain(type="filter", hook="input", prio=0, policy="accept", rules=INPUT_RULES)
_SETS = {kind: NftSet(decl=decl) for kind, decl in SET_DECLS.items()}


def port_text(ranges: Iterable[tuple[int, int]]) -> str:
    """Ports in nft syntax: adjacent ranges merged, a set only for several."""
    merged: list[list[int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in merged]
    return parts[0] if len(parts) == 1 else "{ " + ", ".join(parts) + " }"


def rule_text(peer: str | None, direction: str, protocol: str | None,
              ports: Sequence[tuple[int, int]] | None, verdict: str) -> str:
    """One rule: ``peer`` set (None: any), ``direction`` saddr/daddr, ``protocol`` with
    ``ports`` (None: every port of it), ``verdict`` accept/return."""
    parts = []
    if peer is not None:
        parts.append(f"ip {direction} @{peer}")
    if protocol is not None:
        parts.append(f"{protocol} dport {port_text(ports)}" if ports else f"meta l4proto {protocol}")
    parts.append(verdict)
    return " ".join(parts)


def ruleset_rules(ruleset: RuleSet, ingress: bool) -> tuple[str, ...]:
    """The chain's rules (nft text) for ``ruleset`` on one side; the last one drops."""
    direction, verdict = ("saddr", "accept") if ingress else ("daddr", "return")
    rules: list[str] = []
    for rule in ruleset:
        if rule.named is not None:
            rules.append(f"ip daddr . meta l4proto . th dport @{rule.named} {verdict}")
        elif rule.ports is None:
            rules.append(rule_text(rule.peers, direction, None, None, verdict))
        else:
            by_proto: dict[str, list[tuple[int, int]]] = defaultdict(list)
            whole: set[str] = set()
            for port in rule.ports:
                if port.first == ALL_PORTS:
                    whole.add(port.protocol)
                else:
                    by_proto[port.protocol].append((port.first, port.last))
            for proto in sorted(whole | set(by_proto)):
                ranges = None if proto in whole else by_proto[proto]
                rules.append(rule_text(rule.peers, direction, proto, ranges, verdict))
    rules.append("drop")
    return tuple(rules)


def _sets_of(ruleset: RuleSet) -> set[str]:
    return {s for rule in ruleset for s in (rule.peers, rule.named) if s is not None}


def make(config: PolicyConfig, ipam: IPAMAPI, ipnet: IPNetAPI | None) -> Renderer:
    """The ``nftables`` renderer (see :func:`plugins.policy.renderer.make_renderer`)."""
    return NftablesPolicyRenderer(config.namespace, config.table)


class NftablesPolicyRenderer:
    """Keeps the rendered table and turns each :class:`Delta` into its next value."""

    name = "nftables"

    def __init__(self, namespace: str = "", table: str = "contiv-policy") -> None:
        self.namespace = namespace
        self.table = table
        self.key = table_key(namespace, FAMILY, table)
        self.reset()

    def reset(self) -> None:
        self.pods: dict[str, LocalPodRules] = {}
        self.chains: dict[str, tuple[str, ...]] = {}
        self.chain_sets: dict[str, set[str]] = {}
        self.chain_refs: dict[str, int] = {}
        self.set_refs: dict[str, int] = {}
        self.contents: dict[str, SetContent] = {}
        self.ingress: dict[str, str] = {}
        self.egress: dict[str, str] = {}
        # Element groups handed to the table value (kept as the same tuples while unchanged,
        # so the table descriptor compares them by identity).
        self._set_groups: dict[str, tuple[Element, ...]] = {}
        self._pod_groups: dict[str, tuple[Element, ...]] = {}
        self._chain_values: dict[str, NftChain] = {}
        self._names: dict[tuple[bool, RuleSet], str] = {}

    # ------------------------------------------------------------------ chains

    def _use(self, ruleset: RuleSet | None, ingress: bool) -> str | None:
        if ruleset is None or ruleset == ALLOW_ALL:
            return None
        memo = (ingress, ruleset)
        name = self._names.get(memo)
        if name is None:
            rules = ruleset_rules(ruleset, ingress)
            name = self._names[memo] = ("i-" if ingress else "e-") + short_hash("\n".join(rules))
            if name not in self.chains:
                self.chains[name] = rules
                self.chain_sets[name] = _sets_of(ruleset)
        refs = self.chain_refs.get(name, 0)
        self.chain_refs[name] = refs + 1
        if refs == 0:
            self.chains.setdefault(name, ruleset_rules(ruleset, ingress))
            self.chain_sets.setdefault(name, _sets_of(ruleset))
            for s in self.chain_sets[name]:
                self.set_refs[s] = self.set_refs.get(s, 0) + 1
        return name

    def _unuse(self, name: str | None) -> None:
        if name is None:
            return
        refs = self.chain_refs[name] - 1
        if refs > 0:
            self.chain_refs[name] = refs
            return
        del self.chain_refs[name]
        del self.chains[name]
        self._chain_values.pop(name, None)
        for s in self.chain_sets.pop(name):
            left = self.set_refs[s] - 1
            if left:
                self.set_refs[s] = left
            else:
                del self.set_refs[s]
        self._names = {k: v for k, v in self._names.items() if v != name}

    # ------------------------------------------------------------------ updates

    def set_local_pods(self, local: Mapping[str, str]) -> bool:
        """Every local pod's address; nothing to do here (only selected pods get chains), so
        False. The VPP ACL renderer needs them: an unselected pod may need a local table."""
        return False

    def apply(self, delta: Delta) -> None:
        """Take the processor's changes (pods' rules and addresses, set contents)."""
        for set_id, content in delta.sets.items():
            if content is None:
                self.contents.pop(set_id, None)
                self._set_groups.pop(set_id, None)
            else:
                self.contents[set_id] = content
                self._set_groups[set_id] = tuple((set_id, e, "") for e in sorted(content.elements))
        for key, new in delta.pods.items():
            old = self.pods.pop(key, None)
            self._pod_groups.pop(key, None)
            if old is not None:
                for side in (self.ingress, self.egress):
                    if old.ip in side:
                        self._unuse(side.pop(old.ip))
            if new is None:
                continue
            self.pods[key] = new
            group: list[Element] = []
            for side, ruleset, ingress in ((self.ingress, new.rules.ingress, True),
                                           (self.egress, new.rules.egress, False)):
                name = self._use(ruleset, ingress)
                if name is not None:
                    self._unuse(side.pop(new.ip, None))  # two pods claiming one address
                    side[new.ip] = name
                    group.append(("ingress" if ingress else "egress", new.ip, f"jump {name}"))
            if group:
                self._pod_groups[key] = tuple(group)

    def put_into(self, txn: Transaction) -> None:
        """The table is one value, always put (the descriptor writes only its difference)."""
        txn.put(self.key, self.value())

    def forget_written(self) -> None:
        """Nothing to forget: the table is put whole every time."""

    def rendered(self) -> RenderedRules:
        """The chains are the rule tables."""
        return RenderedRules(pods=self.pods, ingress=self.ingress, egress=self.egress, tables=self.chains,
                             peer_sets={s: self.contents.get(s) for s in self.set_refs})

    def value(self) -> NftTableValue:
        """The table as it should be now (a fresh model; earlier ones stay unchanged)."""
        sets = {"ingress": _MAP, "egress": _MAP}
        for s in self.set_refs:
            content = self.contents.get(s)
            sets[s] = _SETS[content.kind if content is not None else "addr"]
        chains = {BASE_CHAIN: NftChain(type="filter", hook="forward", prio=0, policy="accept",
                                       rules=BASE_RULES),
                  INPUT_CHAIN: _INPUT}
        for name, rules in self.chains.items():
            chain = self._chain_values.get(name)
            if chain is None:
                chain = self._chain_values[name] = NftChain(rules=rules)
            chains[name] = chain
        elements: dict[str, tuple[Element, ...]] = {
            f"set/{s}": self._set_groups[s] for s in self.set_refs if s in self._set_groups}
        # Only the pod's current address: another pod may have claimed it.
        for key, group in self._pod_groups.items():
            kept = tuple(e for e in group if (self.ingress if e[0] == "ingress" else self.egress).get(e[1])
                         == e[2][len("jump "):])
            if kept:
                elements[f"pod/{key}"] = group if len(kept) == len(group) else kept
        return NftTableValue.model_construct(
            namespace=self.namespace, family=FAMILY, name=self.table, sets=sets, chains=chains,
            elements=elements)
