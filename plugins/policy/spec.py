"""A NetworkPolicy checked and in canonical form: what the processor computes with.

:func:`policy_spec` turns KSR's :class:`~plugins.ksr.model.Policy` into a :class:`PolicySpec`,
or raises :class:`BadPolicyError` naming what the API server would have rejected (a bad CIDR,
an ``except`` outside its block, an unknown protocol, a bad port range, an empty peer...).

``policyTypes`` follow the API's defaulting, which Contiv got wrong: a policy without
``policyTypes`` affects Ingress, plus Egress when it has egress rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network

from plugins.ksr.model import Policy, PolicyPeer, PolicyPort, PolicyType, PortRefType
from plugins.policy.selectors import BadPolicyError, Selector, compile_selector

PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, order=True, slots=True)
class PortSpec:
    """One ``ports[]`` entry: ``port`` 0 is every port; ``name`` set for a named port."""

    protocol: str
    port: int = 0
    end_port: int = 0
    name: str = ""


@dataclass(frozen=True, order=True, slots=True)
class PeerSpec:
    """One ``from[]``/``to[]`` entry: selectors (ANDed) or an IP block with exceptions."""

    pods: Selector | None = None
    namespaces: Selector | None = None
    cidr: str = ""
    excepts: tuple[str, ...] = ()

    @property
    def namespace_relative(self) -> bool:
        """True when the peer means pods of the policy's own namespace."""
        return self.pods is not None and self.namespaces is None


@dataclass(frozen=True, order=True, slots=True)
class RuleSpec:
    """An ingress or egress rule: empty ``peers`` is everyone, empty ``ports`` every port."""

    peers: tuple[PeerSpec, ...] = ()
    ports: tuple[PortSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A valid policy; ``ingress``/``egress`` None when the policy does not affect that side."""

    namespace: str
    name: str
    selector: Selector
    ingress: tuple[RuleSpec, ...] | None
    egress: tuple[RuleSpec, ...] | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _port(port: PolicyPort, where: str) -> PortSpec:
    protocol = str(port.protocol).upper()
    if protocol not in PROTOCOLS:
        raise BadPolicyError(f"{where}: unknown protocol {port.protocol!r} (TCP, UDP or SCTP)")
    if port.port is None:
        if port.end_port:
            raise BadPolicyError(f"{where}: endPort {port.end_port} needs a port")
        return PortSpec(protocol)
    if port.port.type == PortRefType.NAME:
        if not port.port.name:
            raise BadPolicyError(f"{where}: empty port name")
        if port.end_port:
            raise BadPolicyError(f"{where}: endPort needs a numeric port, not {port.port.name!r}")
        return PortSpec(protocol, name=port.port.name)
    number = port.port.number
    if not 1 <= number <= 65535:
        raise BadPolicyError(f"{where}: port {number} is not in 1-65535")
    if port.end_port and not number <= port.end_port <= 65535:
        raise BadPolicyError(f"{where}: endPort {port.end_port} must be in {number}-65535")
    return PortSpec(protocol, number, port.end_port if port.end_port != number else 0)


def _network(text: str, where: str) -> IPv4Network | IPv6Network:
    try:
        return ip_network(text, strict=False)
    except ValueError:
        raise BadPolicyError(f"{where}: {text!r} is not a CIDR") from None


def _peer(peer: PolicyPeer, where: str) -> PeerSpec:
    if peer.ip_block is not None:
        if peer.pods is not None or peer.namespaces is not None:
            raise BadPolicyError(f"{where}: ipBlock cannot be combined with selectors")
        if "/" not in peer.ip_block.cidr:
            raise BadPolicyError(f"{where}: {peer.ip_block.cidr!r} is not a CIDR (no prefix length)")
        block = _network(peer.ip_block.cidr, f"{where}.ipBlock.cidr")
        excepts = []
        for text in peer.ip_block.except_:
            ex = _network(text, f"{where}.ipBlock.except")
            if ex.version != block.version or not ex.subnet_of(block) or ex == block:  # type: ignore[arg-type]
                raise BadPolicyError(f"{where}: except {text} is not inside {block}")
            excepts.append(str(ex))
        return PeerSpec(cidr=str(block), excepts=tuple(sorted(set(excepts))))
    if peer.pods is None and peer.namespaces is None:
        raise BadPolicyError(f"{where}: a peer needs podSelector, namespaceSelector or ipBlock")
    return PeerSpec(
        pods=None if peer.pods is None else compile_selector(peer.pods, f"{where}.podSelector"),
        namespaces=None
        if peer.namespaces is None
        else compile_selector(peer.namespaces, f"{where}.namespaceSelector"),
    )


def _rules(rules: list[tuple[list[PolicyPort], list[PolicyPeer]]], side: str) -> tuple[RuleSpec, ...]:
    out = []
    for i, (ports, peers) in enumerate(rules):
        where = f"{side}[{i}]"
        out.append(RuleSpec(
            peers=tuple(_peer(p, f"{where}.{'from' if side == 'ingress' else 'to'}[{j}]")
                        for j, p in enumerate(peers)),
            ports=tuple(_port(p, f"{where}.ports[{j}]") for j, p in enumerate(ports)),
        ))
    return tuple(out)


def policy_spec(policy: Policy) -> PolicySpec:
    """The canonical form of ``policy``; :class:`BadPolicyError` when it is invalid."""
    ingress = _rules([(r.ports, r.from_) for r in policy.ingress_rules], "ingress")
    egress = _rules([(r.ports, r.to) for r in policy.egress_rules], "egress")
    kind = policy.policy_type
    has_ingress = kind in (PolicyType.DEFAULT, PolicyType.INGRESS, PolicyType.INGRESS_AND_EGRESS)
    has_egress = kind in (PolicyType.EGRESS, PolicyType.INGRESS_AND_EGRESS) or (
        kind == PolicyType.DEFAULT and bool(policy.egress_rules)
    )
    return PolicySpec(
        namespace=policy.namespace,
        name=policy.name,
        selector=compile_selector(policy.pods, "spec.podSelector"),
        ingress=ingress if has_ingress else None,
        egress=egress if has_egress else None,
    )
