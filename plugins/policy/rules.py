"""The configurator: the policies selecting one pod -> the pod's ingress and egress rule sets.

A rule set is a sorted, de-duplicated tuple of :class:`Rule`; ``None`` means the pod is not
isolated in that direction (everything passes), an empty tuple that nothing is allowed. Peers are
referenced by the id of an address-set *definition* (:class:`PeerSetDef`), not by its addresses:
pods coming and going change set elements, not rule sets, so pods with the same policies share
one rule set (Contiv's configurator and renderer cache, contiv.md 3.9) and a rule set only
changes with the policies.

Named ports: on ingress they resolve on the pod itself (the destination) from its container
ports; on egress on each destination pod, through a :class:`NamedPortSetDef` whose elements are
``(address, protocol, port)`` of every peer pod declaring that port name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.naming import short_hash
from plugins.policy.spec import PeerSpec, PolicySpec, RuleSpec

#: Port ``first`` value meaning "every port of the protocol".
ALL_PORTS = 0


@dataclass(frozen=True, order=True, slots=True)
class PortMatch:
    """``protocol`` (lower case) and a port range; ``first`` 0: every port of the protocol."""

    protocol: str
    first: int = ALL_PORTS
    last: int = ALL_PORTS


@dataclass(frozen=True, order=True, slots=True)
class PeerSetDef:
    """Which addresses a rule's peers stand for; ``namespace`` "" when no peer depends on it.

    ``id`` (the set's name) is computed once, from the definition."""

    namespace: str
    peers: tuple[PeerSpec, ...]
    id: str = field(init=False, compare=False, repr=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", "p-" + short_hash(repr(self)))

    @property
    def has_blocks(self) -> bool:
        return any(p.cidr for p in self.peers)


@dataclass(frozen=True, order=True, slots=True)
class NamedPortSetDef:
    """Egress to a named port: ``(address, protocol, port)`` of matching peer pods.

    ``peers`` None: every pod (a rule without ``to``)."""

    peers: PeerSetDef | None
    protocol: str
    name: str
    id: str = field(init=False, compare=False, repr=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", "n-" + short_hash(repr(self)))


@dataclass(frozen=True, order=True, slots=True)
class Rule:
    """Allow traffic from/to ``peers`` (a set id; None: anyone) on ``ports`` (None: any).

    ``named`` (egress only) is a :class:`NamedPortSetDef` id: allow what that set holds."""

    peers: str | None = None
    ports: tuple[PortMatch, ...] | None = None
    named: str | None = None


RuleSet = tuple[Rule, ...]
ALLOW_ALL: RuleSet = (Rule(),)


@dataclass(frozen=True, slots=True)
class PodRules:
    """What one pod may receive and send (None: not isolated on that side)."""

    ingress: RuleSet | None = None
    egress: RuleSet | None = None
    #: Address-set definitions the rule sets reference, by id.
    peer_sets: tuple[PeerSetDef, ...] = ()
    named_sets: tuple[NamedPortSetDef, ...] = ()

    @property
    def isolated(self) -> bool:
        return self.ingress is not None or self.egress is not None


#: A pod's declared container ports: (name, protocol upper case, number).
ContainerPorts = tuple[tuple[str, str, int], ...]


def peer_set_def(namespace: str, peers: Sequence[PeerSpec]) -> PeerSetDef:
    relative = any(p.namespace_relative for p in peers)
    return PeerSetDef(namespace if relative else "", tuple(sorted(set(peers), key=repr)))


class _Side:
    def __init__(self) -> None:
        self.rules: set[Rule] = set()
        self.peer_sets: dict[str, PeerSetDef] = {}
        self.named_sets: dict[str, NamedPortSetDef] = {}

    def result(self) -> RuleSet:
        if Rule() in self.rules:
            return ALLOW_ALL
        return tuple(sorted(self.rules, key=_rule_order))


def _rule_order(rule: Rule) -> tuple[str, str, tuple[PortMatch, ...]]:
    return (rule.peers or "", rule.named or "", rule.ports or ())


def _add_rule(side: _Side, namespace: str, rule: RuleSpec, own_ports: ContainerPorts,
              ingress: bool) -> None:
    peer_def = peer_set_def(namespace, rule.peers) if rule.peers else None
    peer_id = None if peer_def is None else peer_def.id
    if not rule.ports:
        side.rules.add(Rule(peer_id))
        if peer_def is not None:
            side.peer_sets[peer_def.id] = peer_def
        return
    matches: set[PortMatch] = set()
    for port in rule.ports:
        proto = port.protocol.lower()
        if not port.name:
            matches.add(PortMatch(proto, port.port, port.end_port or port.port))
        elif ingress:
            for name, protocol, number in own_ports:
                if name == port.name and protocol == port.protocol:
                    matches.add(PortMatch(proto, number, number))
        else:
            named = NamedPortSetDef(peer_def, proto, port.name)
            side.named_sets[named.id] = named
            side.rules.add(Rule(named=named.id))
    if matches:
        # A protocol allowed on every port makes its single ports redundant.
        whole = {m.protocol for m in matches if m.first == ALL_PORTS}
        kept = tuple(sorted(m for m in matches if m.first == ALL_PORTS or m.protocol not in whole))
        side.rules.add(Rule(peer_id, kept))
        if peer_def is not None:
            side.peer_sets[peer_def.id] = peer_def


def compile_pod_rules(policies: Iterable[PolicySpec], own_ports: ContainerPorts) -> PodRules:
    """The rules of a pod selected by ``policies`` (all of them select it) with ``own_ports``."""
    ingress: _Side | None = None
    egress: _Side | None = None
    for policy in policies:
        if policy.ingress is not None:
            ingress = ingress or _Side()
            for rule in policy.ingress:
                _add_rule(ingress, policy.namespace, rule, own_ports, True)
        if policy.egress is not None:
            egress = egress or _Side()
            for rule in policy.egress:
                _add_rule(egress, policy.namespace, rule, own_ports, False)
    peer_sets: dict[str, PeerSetDef] = {}
    named_sets: dict[str, NamedPortSetDef] = {}
    for side in (ingress, egress):
        if side is not None and side.result() is not ALLOW_ALL:
            peer_sets.update(side.peer_sets)
            named_sets.update(side.named_sets)
    return PodRules(
        ingress=None if ingress is None else ingress.result(),
        egress=None if egress is None else egress.result(),
        peer_sets=tuple(peer_sets[k] for k in sorted(peer_sets)),
        named_sets=tuple(named_sets[k] for k in sorted(named_sets)),
    )
