"""The processor: which local pods a change can affect, and their recomputed rules and peer sets.

Contiv's processor (contiv.md 3.9): a changed policy affects the local pods it selects before
or after; a changed pod affects its own rules (its labels choose its policies, its named ports
resolve its ingress ports) and the peer sets it is a member of; a changed namespace only the
peer sets that select by namespace. Nothing else is recomputed.

Peer sets are maintained only while some local pod's rules reference them ("active"); their
members are updated pod by pod. :meth:`PolicyProcessor.flush` returns what changed since the
last flush: pods (address and rules, or None when gone) and set contents (or None when
unused), which is what the renderer needs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, collapse_addresses, ip_address, ip_network
from typing import Literal

from plugins.policy.cache import PodInfo, PolicyCache
from plugins.policy.rules import (
    NamedPortSetDef,
    PeerSetDef,
    PodRules,
    compile_pod_rules,
)
from plugins.policy.spec import PeerSpec, PolicySpec

SetKind = Literal["addr", "interval", "named"]

#: A pod whose labels are not known yet, in a namespace with policies: nothing passes until
#: KSR reflects it (no window of open traffic for a pod a policy will select).
DENY_ALL = PodRules(ingress=(), egress=())


@dataclass(frozen=True, slots=True)
class SetContent:
    """A set's elements: ``kind`` ``addr`` (addresses), ``interval`` (prefixes) or ``named``
    (``address . protocol . port``)."""

    kind: SetKind
    elements: frozenset[str]


@dataclass(frozen=True, slots=True)
class LocalPodRules:
    ip: str
    rules: PodRules


@dataclass(slots=True)
class Delta:
    pods: dict[str, LocalPodRules | None] = field(default_factory=dict)
    sets: dict[str, SetContent | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.pods or self.sets)


def _in_ns(peer: PeerSpec, policy_ns: str, pod: PodInfo, ns_labels: Mapping[str, str]) -> bool:
    if peer.namespaces is None:
        ns_ok = pod.namespace == policy_ns
    else:
        ns_ok = peer.namespaces.matches(ns_labels)
    return ns_ok and (peer.pods is None or peer.pods.matches(pod.labels))


def _in_block(peer: PeerSpec, ip: str) -> bool:
    addr = ip_address(ip)
    block = ip_network(peer.cidr)
    if addr.version != block.version or addr not in block:
        return False
    return not any(addr in ip_network(e) for e in peer.excepts)


@functools.lru_cache(maxsize=4096)
def block_networks(peer: PeerSpec) -> list[IPv4Network]:
    """An IPv4 block minus its exceptions, as prefixes (IPv6 blocks: none)."""
    block = ip_network(peer.cidr)
    if not isinstance(block, IPv4Network):
        return []
    parts = [block]
    for text in peer.excepts:
        ex = ip_network(text)
        nxt: list[IPv4Network] = []
        for part in parts:
            if isinstance(ex, IPv4Network) and ex.subnet_of(part):
                nxt.extend(part.address_exclude(ex))
            elif isinstance(ex, IPv4Network) and part.subnet_of(ex):
                continue
            else:
                nxt.append(part)
        parts = nxt
    return parts


def element_text(net: IPv4Network) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def _set_defs(rules: PodRules) -> list[PeerSetDef | NamedPortSetDef]:
    return [*rules.peer_sets, *rules.named_sets]


class _ActiveSet:
    """An active set definition: its member pods (key -> element text) and reference count."""

    __slots__ = ("definition", "dirty", "members", "refs")

    def __init__(self, definition: PeerSetDef | NamedPortSetDef) -> None:
        self.definition = definition
        self.members: dict[str, tuple[str, ...]] = {}
        self.refs = 0
        self.dirty = True


class PolicyProcessor:
    """Keeps every local pod's :class:`PodRules` and the contents of the sets they use."""

    def __init__(self, cache: PolicyCache | None = None) -> None:
        self.cache = cache or PolicyCache()
        #: Local pods (wired here): key -> address.
        self.local: dict[str, str] = {}
        self.rules: dict[str, LocalPodRules] = {}
        self.sets: dict[str, _ActiveSet] = {}
        self.emitted_sets: dict[str, SetContent] = {}
        self._dirty_pods: set[str] = set()
        self._compiled: dict[tuple[object, ...], PodRules] = {}

    # ------------------------------------------------------------------ inputs

    def set_local(self, key: str, ip: str | None) -> None:
        """A pod wired on this node (with its address), or un-wired (None)."""
        if ip is None:
            if self.local.pop(key, None) is not None:
                self._dirty_pods.add(key)
        elif self.local.get(key) != ip:
            self.local[key] = ip
            self._dirty_pods.add(key)
        self._refresh_member(key)

    def pod_changed(self, key: str, info: PodInfo | None) -> None:
        old = self.cache.set_pod(key, info)
        if key in self.local and (old is None or info is None or old.labels != info.labels
                                  or old.ports != info.ports or old.namespace != info.namespace):
            self._dirty_pods.add(key)
        self._refresh_member(key)

    def namespace_changed(self, name: str, labels_before: Mapping[str, str]) -> None:
        """Call after the cache's namespace changed; ``labels_before`` its old labels."""
        if dict(labels_before) == dict(self.cache.ns_labels(name)):
            return
        for key in self.cache.pods_by_ns.get(name, ()):
            self._refresh_member(key, namespace_only=True)

    def policy_changed(self, namespace: str) -> None:
        """Call after the cache's policies of ``namespace`` changed."""
        self._compiled.clear()
        for key in self.local:
            if key.split("/", 1)[0] == namespace:
                self._dirty_pods.add(key)

    def mark_all(self) -> None:
        self._compiled.clear()
        self._dirty_pods.update(self.local)
        self._dirty_pods.update(self.rules)

    # ------------------------------------------------------------------ membership

    def _pod(self, key: str) -> PodInfo | None:
        info = self.cache.pods.get(key)
        local_ip = self.local.get(key)
        if info is None or local_ip is None or info.ip == local_ip:
            return info
        return PodInfo(info.namespace, info.name, info.labels, local_ip, info.ports)

    def _elements_of(self, definition: PeerSetDef | NamedPortSetDef, pod: PodInfo) -> tuple[str, ...]:
        if not pod.ip:
            return ()
        ns_labels = self.cache.ns_labels(pod.namespace)
        if isinstance(definition, PeerSetDef):
            inside = any(not p.cidr and _in_ns(p, definition.namespace, pod, ns_labels)
                         for p in definition.peers)
            return (pod.ip,) if inside else ()
        peers = definition.peers
        if peers is not None and not any(
            _in_block(p, pod.ip) if p.cidr else _in_ns(p, peers.namespace, pod, ns_labels)
            for p in peers.peers
        ):
            return ()
        proto = definition.protocol.upper()
        return tuple(f"{pod.ip} . {definition.protocol} . {number}"
                     for name, protocol, number in pod.ports
                     if name == definition.name and protocol == proto)

    def _refresh_member(self, key: str, namespace_only: bool = False) -> None:
        pod = self._pod(key)
        for active in self.sets.values():
            definition = active.definition
            if namespace_only and isinstance(definition, PeerSetDef) and not any(
                    p.namespaces is not None for p in definition.peers):
                continue
            elems = () if pod is None else self._elements_of(definition, pod)
            if active.members.get(key, ()) != elems:
                if elems:
                    active.members[key] = elems
                else:
                    active.members.pop(key, None)
                active.dirty = True

    def _candidates(self, definition: PeerSetDef | NamedPortSetDef) -> Iterable[str]:
        """Pods that may be members: those of the namespaces the peers can match."""
        peers = definition if isinstance(definition, PeerSetDef) else definition.peers
        if peers is None or (isinstance(definition, NamedPortSetDef) and any(p.cidr for p in peers.peers)):
            return self.cache.pods
        namespaces: set[str] = set()
        known = set(self.cache.namespaces) | set(self.cache.pods_by_ns)
        for peer in peers.peers:
            if peer.cidr:
                continue
            if peer.namespaces is None:
                namespaces.add(peers.namespace)
            else:
                namespaces.update(n for n in known if peer.namespaces.matches(self.cache.ns_labels(n)))
        return [k for n in sorted(namespaces) for k in self.cache.pods_by_ns.get(n, ())]

    def _activate(self, definition: PeerSetDef | NamedPortSetDef) -> None:
        active = self.sets.get(definition.id)
        if active is None:
            active = self.sets[definition.id] = _ActiveSet(definition)
            for key in self._candidates(definition):
                pod = self._pod(key)
                elems = () if pod is None else self._elements_of(definition, pod)
                if elems:
                    active.members[key] = elems
        active.refs += 1

    def _release(self, set_id: str) -> None:
        active = self.sets[set_id]
        active.refs -= 1
        active.dirty = True

    # ------------------------------------------------------------------ output

    def _compute(self, key: str, selected: dict[tuple[object, ...], list[PolicySpec]]) -> PodRules | None:
        info = self.cache.pods.get(key)
        if info is None:
            namespace = key.split("/", 1)[0]
            return DENY_ALL if self.cache.has_policies(namespace) else None
        # Pods of one namespace mostly share their labels (replicas): select once per flush.
        labels = (info.namespace, tuple(sorted(info.labels.items())))
        policies = selected.get(labels)
        if policies is None:
            policies = selected[labels] = self.cache.selecting(info)
        if not policies:
            return None
        memo = (tuple(p.key for p in policies), info.ports)
        rules = self._compiled.get(memo)
        if rules is None:
            rules = self._compiled[memo] = compile_pod_rules(policies, info.ports)
        return rules

    def flush(self) -> Delta:
        """Recompute what the changes since the last flush affect; return what changed."""
        delta = Delta()
        selected: dict[tuple[object, ...], list[PolicySpec]] = {}
        for key in sorted(self._dirty_pods):
            ip = self.local.get(key)
            rules = None if ip is None else self._compute(key, selected)
            new = None if rules is None or ip is None else LocalPodRules(ip, rules)
            old = self.rules.get(key)
            if new == old:
                continue
            if new is not None:
                self.rules[key] = new
            else:
                del self.rules[key]
            # Pods mostly keep their peer sets (same policies): touch only what differs.
            before = {} if old is None else {d.id: d for d in _set_defs(old.rules)}
            after = {} if new is None else {d.id: d for d in _set_defs(new.rules)}
            for set_id, d in after.items():
                if set_id not in before:
                    self._activate(d)
            for set_id in before:
                if set_id not in after:
                    self._release(set_id)
            delta.pods[key] = new
        self._dirty_pods.clear()
        for set_id, active in list(self.sets.items()):
            if not active.dirty:
                continue
            active.dirty = False
            if active.refs <= 0:
                del self.sets[set_id]
                if self.emitted_sets.pop(set_id, None) is not None:
                    delta.sets[set_id] = None
                continue
            content = self._content(active)
            if self.emitted_sets.get(set_id) != content:
                self.emitted_sets[set_id] = content
                delta.sets[set_id] = content
        return delta

    def _content(self, active: _ActiveSet) -> SetContent:
        definition = active.definition
        if isinstance(definition, NamedPortSetDef):
            return SetContent("named", frozenset(e for el in active.members.values() for e in el))
        if not definition.has_blocks:
            return SetContent("addr", frozenset(e for el in active.members.values() for e in el))
        nets: list[IPv4Network] = [n for p in definition.peers if p.cidr for n in block_networks(p)]
        nets += [IPv4Network(f"{IPv4Address(e)}/32") for el in active.members.values() for e in el]
        return SetContent("interval", frozenset(element_text(n) for n in collapse_addresses(nets)))

    def set_content(self, set_id: str) -> SetContent | None:
        return self.emitted_sets.get(set_id)
