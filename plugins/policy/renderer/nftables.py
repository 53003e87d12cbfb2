"""The nftables renderer: local pods' rule sets -> one :class:`NftPolicyTable` value.

Renderer cache after Contiv's (contiv.md 3.9): each distinct rule set is rendered once, as one
chain named after the hash of its rules (``i-<hash>`` ingress, ``e-<hash>`` egress), shared by
every pod that has it; a pod is one element of the ``ingress``/``egress`` verdict maps. A chain
lives while some pod uses it, a peer set while some chain references it. Pods that are not
isolated on a side (or allowed everything) have no element there: their traffic never leaves
the base chain.
"""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

from plugins.linux.netns import namespace_label
from plugins.linux.policytable import (
    BASE_RULES,
    POLICY_TABLE_SPEC,
    NftPolicyTable,
    NftSet,
    named_rule_text,
    rule_text,
)
from plugins.policy.processor import Delta, LocalPodRules, SetContent
from plugins.policy.rules import ALL_PORTS, ALLOW_ALL, RuleSet, short_hash


def ruleset_rules(ruleset: RuleSet, ingress: bool) -> tuple[str, ...]:
    """The chain's rules (nft text) for ``ruleset`` on one side."""
    direction, verdict = ("saddr", "accept") if ingress else ("daddr", "return")
    rules: list[str] = []
    for rule in ruleset:
        if rule.named is not None:
            rules.append(named_rule_text(rule.named, verdict))
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


class NftablesPolicyRenderer:
    """Keeps the rendered table and turns each :class:`Delta` into its next value."""

    name: ClassVar[str] = "nftables"

    def __init__(self, namespace: str = "", table: str = "contiv-policy") -> None:
        self.namespace = namespace
        self.table = table
        self.key = POLICY_TABLE_SPEC.key_prefix + f"{namespace_label(namespace)}/{table}"
        self.reset()

    def reset(self) -> None:
        self.pods: dict[str, LocalPodRules] = {}
        self.chains: dict[str, tuple[str, ...]] = {}
        self.chain_sets: dict[str, set[str]] = {}
        self.chain_refs: dict[str, int] = {}
        self.set_refs: dict[str, int] = {}
        self.contents: dict[str, NftSet] = {}
        self.ingress: dict[str, str] = {}
        self.egress: dict[str, str] = {}
        self._names: dict[tuple[bool, RuleSet], str] = {}

    # ------------------------------------------------------------------ chains

    def _chain(self, ruleset: RuleSet, ingress: bool) -> str:
        memo = (ingress, ruleset)
        name = self._names.get(memo)
        if name is None:
            rules = ruleset_rules(ruleset, ingress)
            name = ("i-" if ingress else "e-") + short_hash("\n".join(rules))
            self._names[memo] = name
            self.chains.setdefault(name, rules)
            self.chain_sets.setdefault(name, _sets_of(ruleset))
        return name

    def _use(self, ruleset: RuleSet | None, ingress: bool) -> str | None:
        if ruleset is None or ruleset == ALLOW_ALL:
            return None
        name = self._chain(ruleset, ingress)
        self.chains.setdefault(name, ruleset_rules(ruleset, ingress))
        self.chain_sets.setdefault(name, _sets_of(ruleset))
        refs = self.chain_refs.get(name, 0)
        self.chain_refs[name] = refs + 1
        if refs == 0:
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
        for s in self.chain_sets.pop(name):
            left = self.set_refs[s] - 1
            if left:
                self.set_refs[s] = left
            else:
                del self.set_refs[s]
        self._names = {k: v for k, v in self._names.items() if v != name}

    # ------------------------------------------------------------------ updates

    def apply(self, delta: Delta) -> None:
        for set_id, content in delta.sets.items():
            if content is None:
                self.contents.pop(set_id, None)
            else:
                self.contents[set_id] = _nft_set(content)
        for key, new in delta.pods.items():
            old = self.pods.pop(key, None)
            if old is not None:
                for side in (self.ingress, self.egress):
                    if side.get(old.ip) is not None:
                        self._unuse(side.pop(old.ip))
            if new is None:
                continue
            self.pods[key] = new
            for side, ruleset, ingress in ((self.ingress, new.rules.ingress, True),
                                           (self.egress, new.rules.egress, False)):
                name = self._use(ruleset, ingress)
                if name is not None:
                    self._unuse(side.pop(new.ip, None))  # two pods claiming one address
                    side[new.ip] = name

    def value(self) -> NftPolicyTable:
        """The table as it should be now (a fresh model; earlier ones stay unchanged)."""
        sets = {s: self.contents.get(s) or NftSet(kind="addr") for s in self.set_refs}
        return NftPolicyTable.model_construct(
            namespace=self.namespace, name=self.table, base=BASE_RULES,
            chains=dict(self.chains), sets=sets, ingress=dict(self.ingress), egress=dict(self.egress),
        )


def _nft_set(content: SetContent) -> NftSet:
    return NftSet.model_construct(kind=content.kind, elements=content.elements)
