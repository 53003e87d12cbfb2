"""Rule sets -> the rule lists of the ACL renderer's tables (Contiv's renderer cache, contiv.md 3.9).

Pure functions over one snapshot of the local pods' rules and the peer sets' contents:

* :meth:`Tables.local` -- the **local table** of a pod, applied on the output of its interface
  (traffic *to* the pod): one block per other local egress-isolated pod Q whose egress rules
  towards this pod allow less than this pod's ingress rules accept from Q (Contiv's
  CombineRules): PERMIT ``src=Q`` for the intersection, then DENY ``src=Q``; then the pod's
  own ingress rules (PERMIT per peer x port, PERMIT from the NAT loopback and from the node's
  own stack, DENY all), or PERMIT all when the pod is not isolated on ingress.
* :meth:`Tables.global_rules` -- the **node-global table**, applied on the output of the node's
  outbound interfaces: per local egress-isolated pod Q its egress rules with ``src=Q/32``, then
  DENY ``src=Q/32``; the table ends with PERMIT all.

A traffic class is a :data:`Ports` value: None for all traffic, else a set of
``(protocol, first port, last port)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from typing import Any

from plugins.linux.protocols import IP_PROTOCOLS
from plugins.vpp.model import AclAction, AclRule

ANY = IPv4Network("0.0.0.0/0")
DENY_ALL = AclRule(action=AclAction.DENY)
PERMIT_ALL = AclRule(action=AclAction.PERMIT)

Ports = frozenset[tuple[int, int, int]] | None
NOTHING: Ports = frozenset()
#: (pod ip, its ingress rule set, sender ip, the sender's egress rule set) -> the sender's block.
SenderBlock = Callable[[str, Any, str, Any], tuple[AclRule, ...]]


def restricts(ruleset: Any) -> bool:
    """A direction is isolated and does not allow everything (None and ALLOW_ALL do not)."""
    if ruleset is None:
        return False
    return not (len(ruleset) == 1 and ruleset[0].peers is None and ruleset[0].ports is None
                and ruleset[0].named is None)


def port_ranges(ports: Any) -> Ports:
    """A rule's ``ports`` (None: every protocol and port) as a traffic class."""
    if ports is None:
        return None
    out = set()
    for match in ports:
        first, last = (0, 65535) if match.first == 0 else (match.first, match.last or match.first)
        out.add((IP_PROTOCOLS.get(match.protocol, 0), first, last))
    return frozenset(out)


def union(a: Ports, b: Ports) -> Ports:
    return None if a is None or b is None else a | b


def intersect(a: Ports, b: Ports) -> Ports:
    if a is None:
        return b
    if b is None:
        return a
    out = set()
    for pa, fa, la in a:
        for pb, fb, lb in b:
            if pa == pb and max(fa, fb) <= min(la, lb):
                out.add((pa, max(fa, fb), min(la, lb)))
    return frozenset(out)


def covers(big: Ports, small: Ports) -> bool:
    """Everything in ``small`` is in ``big`` (range by range; a split cover counts as not)."""
    if big is None:
        return True
    if small is None:
        return False
    return all(any(p == q and f <= g and h <= last for q, f, last in big) for p, g, h in small)


def _rules(action: AclAction, ports: Ports, src: IPv4Network = ANY, dst: IPv4Network = ANY) -> list[AclRule]:
    return list(_cached_rules(action, ports, src, dst))


@functools.lru_cache(maxsize=65536)
def _cached_rules(action: AclAction, ports: Ports, src: IPv4Network, dst: IPv4Network) -> tuple[AclRule, ...]:
    if ports is None:
        return (AclRule(action=action, src=src, dst=dst),)
    return tuple(AclRule(action=action, src=src, dst=dst, proto=p, dst_first=f, dst_last=last)
                 for p, f, last in sorted(ports))


@functools.lru_cache(maxsize=65536)
def rule_text(rule: AclRule) -> str:
    """A rule as JSON (what ACL names hash and the policy REST shows), computed once per rule."""
    return rule.model_dump_json()


def named_element(element: str) -> tuple[str, str, int]:
    """``10.1.1.2 . tcp . 8080`` -> (address, protocol, port)."""
    addr, proto, port = (part.strip() for part in element.split(" . "))
    return addr, proto, int(port)


@functools.lru_cache(maxsize=65536)
def _host(ip: str) -> IPv4Network:
    return IPv4Network(f"{ip}/32")


class Tables:
    """One snapshot: ``contents`` (set id -> processor ``SetContent``), the local pods' addresses."""

    def __init__(self, contents: Mapping[str, Any], local_ips: Iterable[str],
                 nat_loopback: IPv4Address | None, node_host: IPv4Address | None = None) -> None:
        self.contents = contents
        self.local_ips = frozenset(local_ips)
        self.nat_loopback = nat_loopback
        self.node_host = node_host
        self._nets: dict[str, list[IPv4Network]] = {}
        self._members: dict[str, frozenset[str]] = {}
        #: id(rule set) -> (_by_peer result); rule sets live as long as the snapshot.
        self._maps: dict[tuple[int, bool], tuple[Ports, dict[str, Ports]]] = {}
        self._ingress: dict[int, tuple[AclRule, ...]] = {}
        self._named: dict[str, dict[str, tuple[str, ...]]] = {}

    def peers(self, set_id: str | None) -> list[IPv4Network]:
        """The prefixes a peer set stands for (None: anyone; an unknown set: nobody)."""
        if set_id is None:
            return [ANY]
        nets = self._nets.get(set_id)
        if nets is None:
            content = self.contents.get(set_id)
            elements = content.elements if content is not None else ()
            nets = sorted({n for n in map(ip_network, elements) if n.version == 4})
            self._nets[set_id] = nets
        return nets

    def members(self, set_id: str) -> frozenset[str]:
        """The local pods' addresses inside a peer set."""
        found = self._members.get(set_id)
        if found is None:
            content = self.contents.get(set_id)
            if content is None:
                found = frozenset()
            elif content.kind == "addr":
                found = self.local_ips & content.elements
            else:
                nets = self.peers(set_id)
                found = frozenset(ip for ip in self.local_ips if any(ip_address(ip) in n for n in nets))
            self._members[set_id] = found
        return found

    def named_for(self, set_id: str, addr: str) -> tuple[str, ...]:
        """The elements of a named-port set for the address ``addr`` (sorted)."""
        by_addr = self._named.get(set_id)
        if by_addr is None:
            content = self.contents.get(set_id)
            grouped: dict[str, list[str]] = {}
            for element in content.elements if content is not None else ():
                grouped.setdefault(named_element(element)[0], []).append(element)
            by_addr = self._named[set_id] = {a: tuple(sorted(e)) for a, e in grouped.items()}
        return by_addr.get(addr, ())

    # ------------------------------------------------------------------------------ classes

    def _by_peer(self, ruleset: Any, named: bool) -> tuple[Ports, dict[str, Ports]]:
        """A rule set as (what it allows towards/from anyone, what it allows per local pod)."""
        cached = self._maps.get((id(ruleset), named))
        if cached is not None:
            return cached
        anyone: Ports = NOTHING
        per_ip: dict[str, Ports] = {}
        for rule in ruleset:
            if named and rule.named is not None:
                content = self.contents.get(rule.named)
                for element in content.elements if content is not None else ():
                    addr, proto, port = named_element(element)
                    if addr in self.local_ips:
                        ports: Ports = frozenset({(IP_PROTOCOLS.get(proto, 0), port, port)})
                        per_ip[addr] = union(per_ip.get(addr, NOTHING), ports)
            elif rule.peers is None:
                anyone = union(anyone, port_ranges(rule.ports))
            else:
                ports = port_ranges(rule.ports)
                for ip in self.members(rule.peers):
                    per_ip[ip] = union(per_ip.get(ip, NOTHING), ports)
        self._maps[(id(ruleset), named)] = (anyone, per_ip)
        return anyone, per_ip

    def ingress_from(self, ruleset: Any, src: str) -> Ports:
        """What a pod with ingress ``ruleset`` accepts from the local pod ``src``."""
        if not restricts(ruleset):
            return None
        anyone, per_ip = self._by_peer(ruleset, named=False)
        return union(anyone, per_ip.get(src, NOTHING))

    def egress_to(self, ruleset: Any, dst: str) -> Ports:
        """What a pod with egress ``ruleset`` may send to the local pod ``dst``."""
        if not restricts(ruleset):
            return None
        anyone, per_ip = self._by_peer(ruleset, named=True)
        return union(anyone, per_ip.get(dst, NOTHING))

    # ------------------------------------------------------------------------------ tables

    def local(self, ip: str, ingress: Any, egress_isolated: Iterable[tuple[str, Any]],
              block: SenderBlock | None = None) -> tuple[AclRule, ...] | None:
        """The local table of the pod ``ip`` (None: it needs none); ``egress_isolated``: the other
        local pods' (address, egress rule set) that restrict their egress, in address order.
        ``block`` computes one sender's block (default :meth:`sender_block`; the renderer passes
        a memoised one)."""
        block = block if block is not None else self.sender_block
        blocks: list[AclRule] = []
        accepted: dict[str, Ports] | None = None  # None: any sender may be accepted something
        if restricts(ingress):
            anyone, per_ip = self._by_peer(ingress, named=False)
            accepted = None if anyone else per_ip
        for q_ip, q_egress in egress_isolated:
            if q_ip == ip or (accepted is not None and q_ip not in accepted):
                continue  # (accepted nothing from q: the pod's own final DENY covers q)
            blocks += block(ip, ingress, q_ip, q_egress)
        if restricts(ingress):
            return (*blocks, *self.ingress_rules(ingress))
        return (*blocks, PERMIT_ALL) if blocks else None

    def sender_block(self, ip: str, ingress: Any, q_ip: str, q_egress: Any) -> tuple[AclRule, ...]:
        """What the local table of pod ``ip`` says about traffic from the local egress-isolated
        pod ``q_ip``: PERMIT what both allow, then DENY from it; nothing when the pod's own
        ingress rules already say it all."""
        sends, accepts = self.egress_to(q_egress, ip), self.ingress_from(ingress, q_ip)
        if covers(sends, accepts):
            return ()
        return (*_rules(AclAction.PERMIT, intersect(sends, accepts), src=_host(q_ip)),
                AclRule(action=AclAction.DENY, src=_host(q_ip)))

    def ingress_rules(self, ruleset: Any) -> tuple[AclRule, ...]:
        """A pod's own ingress rules: PERMIT per peer x port, from the NAT loopback and from its
        own node's stack, then DENY all."""
        cached = self._ingress.get(id(ruleset))
        if cached is not None:
            return cached
        rules: list[AclRule] = []
        for rule in ruleset:
            ports = port_ranges(rule.ports)
            for net in self.peers(rule.peers):
                rules += _rules(AclAction.PERMIT, ports, src=net)
        if self.nat_loopback is not None:  # a pod always reaches itself through a service
            rules.append(AclRule(action=AclAction.PERMIT, src=_host(str(self.nat_loopback))))
        if self.node_host is not None:  # its own node always reaches it (the kubelet's probes)
            rules.append(AclRule(action=AclAction.PERMIT, src=_host(str(self.node_host))))
        self._ingress[id(ruleset)] = out = (*dict.fromkeys(rules), DENY_ALL)
        return out

    def egress_rules(self, ip: str, ruleset: Iterable[Any]) -> list[AclRule]:
        """A pod's egress rules with ``src`` its address, then DENY from it (global table part)."""
        src = _host(ip)
        rules: list[AclRule] = []
        for rule in ruleset:
            if rule.named is not None:
                content = self.contents.get(rule.named)
                for element in sorted(content.elements if content is not None else ()):
                    addr, proto, port = named_element(element)
                    rules.append(AclRule(action=AclAction.PERMIT, src=src, dst=_host(addr),
                                         proto=IP_PROTOCOLS.get(proto, 0), dst_first=port, dst_last=port))
                continue
            ports = port_ranges(rule.ports)
            for net in self.peers(rule.peers):
                rules += _rules(AclAction.PERMIT, ports, src=src, dst=net)
        return [*dict.fromkeys(rules), AclRule(action=AclAction.DENY, src=src)]

    def global_rules(self, egress_isolated: Iterable[tuple[str, Any]]) -> tuple[AclRule, ...] | None:
        """The node-global table (None: no local pod restricts its egress)."""
        rules: list[AclRule] = []
        for ip, egress in egress_isolated:
            rules += self.egress_rules(ip, egress)
        return (*rules, PERMIT_ALL) if rules else None
