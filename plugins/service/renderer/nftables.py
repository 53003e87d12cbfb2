"""The nftables renderer: service intent -> one agent-owned table (``ip contiv-svc``).

Lookups are maps, never rule lists (docs/services.md shows a real dump)::

    map fe      (daddr . l4proto . dport) -> goto lb-<proto>-<N> | goto aff-<id>   frontends
    map be-<proto>  (daddr . l4proto . dport . index) -> backend ip . port  (tcp, udp, sctp)
    set noep    frontends without a usable backend: rejected (TCP reset / ICMP unreachable)
    set masq    frontends whose traffic is SNATed (external traffic policy Cluster): the
                first packet gets mark 0x4000 in ``pre``/``out``, ``post`` masquerades it
    set hairpin (ip . ip) of local backends: a pod reaching itself through a service
    set podnet / nomasq   egress masquerade: from the pod network to anything not in nomasq

    chain pre   nat prerouting  dstnat: daddr . l4proto . dport vmap @fe
    chain out   nat output      dstnat: the same for the node itself
    chain lb-<proto>-N  dnat to (daddr . l4proto . dport . numgen random mod N) map @be-<proto>
    chain post  nat postrouting srcnat: hairpin, @masq, egress masquerade
    chain rej-pre / rej-out   filter, before dstnat: reject @noep

There is one ``lb-<proto>-N`` chain per protocol and backend count in use (a handful), not one
per service.
Services with ``sessionAffinity: ClientIP`` get their own small chains instead (``aff-<id>``
with a dynamic set per backend, timeout = the service's), since affinity is rare.

The table's elements are grouped by service, so a change of one service rewrites only its
elements (see :mod:`plugins.linux.nft.table`). Each UDP/SCTP frontend also gets a sessions value
(its backends), whose descriptor deletes the conntrack entries of backends it lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from ipaddress import IPv4Network
from zlib import crc32

from pydantic import BaseModel

from core.naming import short_hash
from plugins.ipam.api import NodeAddressPlan
from plugins.kvscheduler.removed import RemovedKeys
from plugins.linux.models import Route, Sessions, value_key
from plugins.linux.nft.table import Element, NftChain, NftSet, NftTableValue, note_changes, table_key
from plugins.service.config import ServiceConfig
from plugins.service.intent import Backend, ServiceIntent, ServicePortIntent
from plugins.service.renderer import Renderer

FRONTEND = "ip daddr . meta l4proto . th dport"
#: Packet mark bit of connections to SNAT (kube-proxy's bit: the agent replaces it).
MASQ_MARK = 0x4000
_F3 = "type ipv4_addr . inet_proto . inet_service;"

STATIC_SETS = {
    "fe": NftSet(decl="type ipv4_addr . inet_proto . inet_service : verdict;"),
    # One backend map per protocol: the data's typeof (``ip daddr . udp dport``) makes nft add the
    # protocol match the dnat needs (``th dport`` there breaks nft 1.0.6 in later batches).
    **{f"be-{p}": NftSet(decl=f"typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : "
                             f"ip daddr . {p} dport;") for p in ("tcp", "udp", "sctp")},
    "noep": NftSet(decl=_F3),
    "masq": NftSet(decl=_F3),
    "hairpin": NftSet(decl="type ipv4_addr . ipv4_addr;"),
    "podnet": NftSet(decl="type ipv4_addr; flags interval;"),
    "nomasq": NftSet(decl="type ipv4_addr; flags interval;"),
}


def _static_chains(masquerade_egress: bool) -> dict[str, NftChain]:
    reject = (f"{FRONTEND} @noep meta l4proto tcp reject with tcp reset",
              f"{FRONTEND} @noep reject")
    post = ["ct status dnat ip saddr . ip daddr @hairpin masquerade",
            f"meta mark & {MASQ_MARK:#x} == {MASQ_MARK:#x} masquerade"]
    if masquerade_egress:
        post.append("ip saddr @podnet ip daddr != @nomasq masquerade")
    dnat = (f"{FRONTEND} @masq meta mark set meta mark | {MASQ_MARK:#x}", f"{FRONTEND} vmap @fe")
    return {
        "pre": NftChain(type="nat", hook="prerouting", prio=-100, rules=dnat),
        "out": NftChain(type="nat", hook="output", prio=-100, rules=dnat),
        "post": NftChain(type="nat", hook="postrouting", prio=100, rules=tuple(post)),
        "rej-pre": NftChain(type="filter", hook="prerouting", prio=-110, rules=reject),
        "rej-out": NftChain(type="filter", hook="output", prio=-110, rules=reject),
    }


def lb_chain(protocol: str, count: int) -> NftChain:
    return NftChain(rules=(f"dnat ip to {FRONTEND} . numgen random mod {count} map @be-{protocol}",))


_NO_SETS: dict[str, NftSet] = {}
_NO_CHAINS: dict[str, NftChain] = {}


class _Rendered:
    """What one service contributes to the table (``sets``/``chains``: affinity only)."""

    __slots__ = ("chains", "counts", "elements", "hairpin", "session_keys", "sessions", "sets")

    def __init__(self) -> None:
        self.elements: list[Element] = []
        self.counts: dict[tuple[str, int], int] = {}
        self.hairpin: tuple[str, ...] = ()
        self.sets: dict[str, NftSet] = _NO_SETS
        self.chains: dict[str, NftChain] = _NO_CHAINS
        #: UDP/SCTP frontends: (protocol, ip, port, its backends as ip:port).
        self.sessions: list[tuple[str, str, int, tuple[str, ...]]] = []
        self.session_keys: tuple[str, ...] = ()  # their values' keys, once made


def _affinity(key: str, port: ServicePortIntent, local: bool, backends: tuple[Backend, ...], out: _Rendered) -> str:
    ident = short_hash(f"{key}/{port.name}/{port.protocol}/{local}", 8)
    names = [(b, short_hash(f"{b.ip}:{b.port}", 6)) for b in backends]
    decl = f"type ipv4_addr; flags dynamic,timeout; timeout {port.affinity_timeout_s}s;"
    proto = f"meta l4proto {port.protocol}"
    rules = [f"{proto} ip saddr @a-{ident}-{bid} dnat ip to {b.ip}:{b.port}" for b, bid in names]
    picks = ", ".join(f"{i} : goto ep-{ident}-{bid}" for i, (_, bid) in enumerate(names))
    rules.append(f"numgen random mod {len(names)} vmap {{ {picks} }}")
    if out.chains is _NO_CHAINS:
        out.chains, out.sets = {}, {}
    out.chains[f"aff-{ident}"] = NftChain(rules=tuple(rules))
    for b, bid in names:
        out.sets[f"a-{ident}-{bid}"] = NftSet(decl=decl, managed=False)
        out.chains[f"ep-{ident}-{bid}"] = NftChain(rules=(
            f"{proto} update @a-{ident}-{bid} {{ ip saddr }} dnat ip to {b.ip}:{b.port}",))
    return f"aff-{ident}"


def render_service(intent: ServiceIntent) -> _Rendered:
    out = _Rendered()
    elements = out.elements
    append = elements.append
    counts = out.counts
    hairpin: dict[str, None] = {}
    for port in intent.ports:
        for fe in port.frontends:
            triple = f"{fe.ip} . {fe.protocol} . {fe.port}"
            backends = port.local_backends if fe.local_only else port.backends
            if fe.masquerade:
                append(("masq", triple, ""))
            if fe.protocol != "tcp":  # connectionless: their sessions follow the backends
                out.sessions.append((fe.protocol, fe.ip, fe.port, tuple(f"{b.ip}:{b.port}" for b in backends)))
            if not backends:
                append(("noep", triple, ""))
                continue
            for b in backends:
                if b.local:
                    hairpin[b.ip] = None
            if port.affinity_timeout_s:
                chain = _affinity(intent.key, port, fe.local_only, backends, out)
                append(("fe", triple, f"goto {chain}"))
                continue
            count = (fe.protocol, len(backends))
            counts[count] = counts.get(count, 0) + 1
            append(("fe", triple, f"goto lb-{fe.protocol}-{len(backends)}"))
            be = f"be-{fe.protocol}"
            for i, b in enumerate(backends):
                append((be, f"{triple} . {i}", f"{b.ip} . {b.port}"))
    out.hairpin = tuple(hairpin)
    return out


#: The 64 bucket names (see NftRenderer._put).
_BUCKETS = [f"{i:02d}" for i in range(64)]


def make(config: ServiceConfig, plan: NodeAddressPlan, node_namespace: str, host_ifname: str = "") -> Renderer:
    """The renderer of ``ipnet.dataplane: linux`` (see :func:`plugins.service.renderer.make_renderer`;
    the node's namespace is the dataplane here: no host interface)."""
    return NftRenderer(
        namespace=node_namespace, table=config.table, pod_network=plan.pod_network,
        service_network=plan.service_network, non_masquerade=list(config.non_masquerade_cidrs),
        masquerade_egress=config.masquerade_egress, route_service_network=config.route_service_network)


class NftRenderer:
    """Keeps the rendered form of every service; :meth:`values` is the table, the route of the
    service network, and a sessions value per UDP/SCTP frontend (plugins.linux.models.Sessions:
    their conntrack entries follow the backends); :meth:`take_removed` the sessions that went."""

    name = "nftables"

    def __init__(self, *, namespace: str = "", table: str = "contiv-svc", pod_network: IPv4Network | None = None,
                 service_network: IPv4Network | None = None, non_masquerade: list[IPv4Network] | None = None,
                 masquerade_egress: bool = True, route_service_network: bool = True) -> None:
        self.namespace = namespace
        self.table = table
        self.key = table_key(namespace, "ip", table)
        self.service_network = service_network
        self.route_service_network = route_service_network
        self._chains = _static_chains(masquerade_egress and pod_network is not None)
        cfg: list[Element] = []  # static: podnet and nomasq
        if pod_network is not None:
            cfg.append(("podnet", str(pod_network), ""))
        for net in dict.fromkeys([pod_network, service_network, *(non_masquerade or [])]):
            if net is not None:
                cfg.append(("nomasq", str(net), ""))
        self._services: dict[str, _Rendered] = {}
        #: The sessions value of every UDP/SCTP frontend, by key; keys dropped since the last
        #: take_removed (the caller deletes them).
        self._sessions: dict[str, Sessions] = {}
        self._removed = RemovedKeys()
        self._affinity: dict[str, _Rendered] = {}  # services with their own chains
        #: The table's element groups (one per service, one per hairpin IP), kept up to date in
        #: 64 buckets; a published value copies only the buckets changed since the last one.
        self._buckets: dict[str, dict[str, tuple[Element, ...]]] = {}
        self._cfg = tuple(cfg)
        self._published: dict[str, dict[str, tuple[Element, ...]]] = {}
        self._counts: Counter[tuple[str, int]] = Counter()
        self._hairpin: Counter[str] = Counter()
        self._dirty: set[tuple[str, str]] = set()
        self._last: NftTableValue | None = None

    def _put(self, group: str, elements: tuple[Element, ...] | None) -> None:
        bucket = _BUCKETS[crc32(group.encode()) & 63]
        groups = self._buckets.get(bucket)
        if groups is None:
            groups = self._buckets[bucket] = {}
        if elements:
            groups[group] = elements
        else:
            groups.pop(group, None)
        self._dirty.add((bucket, group))

    def set_service(self, key: str, intent: ServiceIntent | None) -> None:
        old = self._services.pop(key, None)
        self._affinity.pop(key, None)
        counts = self._counts
        if old is not None:
            for count, n in old.counts.items():
                counts[count] -= n
            self._hairpin_refs(old.hairpin, -1)
            for session_key in old.session_keys:
                self._sessions.pop(session_key, None)
                self._removed.gone((session_key,))
        if intent is None:
            self._put(key, None)
            return
        new = render_service(intent)
        self._services[key] = new
        keys = []
        for protocol, ip, port, backends in new.sessions:
            value = Sessions(namespace=self.namespace, protocol=protocol, ip=ip, port=port, backends=backends)
            keys.append(value_key(value))
            self._sessions[keys[-1]] = value
            self._removed.back((keys[-1],))
        new.session_keys, new.sessions = tuple(keys), []
        if new.chains:
            self._affinity[key] = new
        for count, n in new.counts.items():
            counts[count] += n
        self._hairpin_refs(new.hairpin, +1)
        self._put(key, tuple(new.elements))
        new.elements = []  # the bucket holds them now

    def _hairpin_refs(self, ips: tuple[str, ...], delta: int) -> None:
        refs = self._hairpin
        for ip in ips:
            now = refs[ip] + delta
            if now == 0:
                del refs[ip]
                self._put(f"~hp/{ip}", None)
            else:
                refs[ip] = now
                if now == 1 and delta > 0:
                    self._put(f"~hp/{ip}", (("hairpin", f"{ip} . {ip}", ""),))

    def table_value(self) -> NftTableValue:
        chains = dict(self._chains)
        sets = dict(STATIC_SETS)
        chains.update({f"lb-{p}-{n}": lb_chain(p, n) for (p, n), c in sorted(self._counts.items()) if c > 0})
        for rendered in self._affinity.values():
            chains.update(rendered.chains)
            sets.update(rendered.sets)
        published = dict(self._published)
        for bucket in {b for b, _ in self._dirty}:
            groups = self._buckets.get(bucket)
            if groups:
                published[bucket] = dict(groups)
            else:
                published.pop(bucket, None)
        static = {"~cfg": self._cfg} if self._cfg else {}  # an empty group reads back as none
        value = NftTableValue.model_construct(namespace=self.namespace, family="ip", name=self.table,
                                              sets=sets, chains=chains, elements=static, buckets=published)
        if self._last is not None:
            note_changes(self._last, value, self._dirty)
        self._last, self._dirty, self._published = value, set(), published
        return value

    def take_removed(self) -> list[str]:
        """Keys of sessions values dropped since the last call (the caller deletes them)."""
        return self._removed.take()

    def values(self) -> Mapping[str, BaseModel]:
        values: dict[str, BaseModel] = {self.key: self.table_value()}
        if self.route_service_network and self.service_network is not None:
            route = Route(namespace=self.namespace, dst=self.service_network, dev="lo", dev_is_ours=False)
            values[route_key(route)] = route
        values.update(self._sessions)
        return values


def route_key(route: Route) -> str:
    """The route's key (derived from the model, the linux-route descriptor's naming)."""
    return value_key(route)
