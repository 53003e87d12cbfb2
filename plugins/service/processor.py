"""The service processor: joins each Service with its EndpointSlices into a :class:`ServiceIntent`.

Kubernetes semantics applied here (the renderer gets only their result):

* frontends: ClusterIP(s); NodePort on this node's own addresses, and on the other nodes'
  addresses only for ``externalTrafficPolicy: Cluster`` (a shortcut for this node's pods that
  cannot change the answer: any backend may answer either way; with ``Local`` only the
  addressed node's backends may, so such a connection must reach that node, as kube-proxy's
  ``addrtype LOCAL`` match does);
  ExternalIPs; LoadBalancer ingress IPs. Headless (``clusterIP: None``) and ExternalName
  services configure nothing, and neither do services labelled
  ``service.kubernetes.io/headless`` or ``service.kubernetes.io/service-proxy-name`` (another
  proxy's), which kube-proxy leaves alone too. TCP, UDP and SCTP.
* backends: the endpoints of every slice of the service, the port taken per slice from the
  slice port named like the service port (that is where a named ``targetPort`` is resolved per
  endpoint); ready endpoints, or when a port has none, serving+terminating ones (KEP-1669).
* ``externalTrafficPolicy: Local``: NodePorts on this node's addresses, ExternalIPs and LB IPs
  balance over local backends only, without SNAT; ``internalTrafficPolicy: Local`` does the
  same for ClusterIPs. NodePorts on other nodes' addresses (``Cluster`` services only, reached
  from this node's pods) use every backend.
* ``sessionAffinity: ClientIP`` with its timeout (default 10800 s).

Bad input (an unparsable address or port, an unknown protocol) skips that service with the
reason in :attr:`ServiceProcessor.errors`; a frontend already used by another service (a port
clash) is dropped from the later one only. Nothing else is lost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address
from socket import AF_INET as _AF_INET
from socket import inet_pton as _inet_pton

from plugins.ksr.model import EndpointSlice, Service, ServicePort
from plugins.service.intent import Backend, Frontend, FrontendKind, ServiceIntent, ServicePortIntent

DEFAULT_AFFINITY_TIMEOUT_S = 10800
#: Services with these labels are not ours to proxy (kube-proxy skips them the same way).
HEADLESS_LABEL = "service.kubernetes.io/headless"
PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
_NO_SLICES: dict[str, EndpointSlice] = {}
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


class ServiceError(ValueError):
    """A Service (or its slices) cannot be turned into intent; the message says why."""


@dataclass(frozen=True)
class NodeAddresses:
    """This node's name and addresses, and every other node's addresses (for NodePorts)."""

    node_name: str
    own: tuple[str, ...] = ()
    others: tuple[str, ...] = ()


def _ipv4(value: str, what: str, where: str = "") -> str | None:
    """The address as text; None for IPv6 (not rendered); ServiceError when unparsable
    (the message names ``what`` and ``where``: a name built only then)."""
    text = value.split("/")[0] if "/" in value else value
    try:  # the C parser first (it refuses leading zeros: what it accepts is canonical)
        _inet_pton(_AF_INET, text)
        return text
    except OSError:
        pass
    try:
        parsed = ip_address(text)
    except ValueError:
        raise ServiceError(f"{what.format(where)} {value!r} is not an IP address") from None
    return str(parsed) if isinstance(parsed, IPv4Address) else None


def _port(value: int, what: str, where: str = "") -> int:
    if value.__class__ is not int or not 0 < value < 65536:
        raise ServiceError(f"{what.format(where)} {value!r} is not a port number (1-65535)")
    return value


def _usable(backends: list[Backend]) -> tuple[Backend, ...]:
    ready = [b for b in backends if b.ready]
    if len(ready) == len(backends):
        return tuple(backends)
    if ready:
        return tuple(ready)
    return tuple(b for b in backends if b.terminating)  # only serving ones are collected


#: One usable endpoint address of a slice: (ip, node, ready, terminating, pod).
_Endpoint = tuple[str, str, bool, bool, str]
SlicePorts = list[tuple[str, dict[tuple[str, str], int], list[_Endpoint]]]


def _slice_ports(slices: Collection[EndpointSlice]) -> SlicePorts:
    """Each IPv4 slice (by name): its name, (port name, protocol) -> port number, and its usable
    endpoint addresses (parsed once, whatever the number of ports)."""
    out: SlicePorts = []
    for eps in sorted(slices, key=_name) if len(slices) > 1 else slices:
        if eps.address_type != "IPv4":
            continue
        endpoints: list[_Endpoint] = []
        for ep in eps.endpoints:
            ready = ep.ready
            if not (ready or (ep.serving and ep.terminating)):
                continue
            ref = ep.target_ref
            pod = f"{ref.namespace}/{ref.name}" if ref is not None and ref.name else ""
            for addr in ep.addresses:
                ip = _ipv4(addr, "slice {} address", eps.name)
                if ip is not None:
                    endpoints.append((ip, ep.node_name, ready, ep.terminating, pod))
        # Protocol is a StrEnum: its members are the strings the table is keyed by.
        numbers = {(p.name, _PROTOCOLS.get(p.protocol, "")): p.port for p in eps.ports}
        out.append((eps.name, numbers, endpoints))
    return out


def _name(eps: EndpointSlice) -> str:
    return eps.name


def _order(backend: Backend) -> tuple[str, int]:
    return (backend.ip, backend.port)


def _backends(port: ServicePort, protocol: str, slices: SlicePorts, node: str) -> list[Backend]:
    found: dict[tuple[str, int], Backend] = {}
    for name, numbers, endpoints in slices:
        number = numbers.get((port.name, protocol), 0)
        if not number:
            continue
        _port(number, "slice {} port " + (port.name or "(unnamed)").replace("{", "{{").replace("}", "}}"), name)
        for ip, ep_node, ready, terminating, pod in endpoints:
            if (ip, number) not in found:
                found[(ip, number)] = Backend(ip, number, ep_node, ep_node == node, ready, terminating, pod)
    if len(found) < 2:
        return list(found.values())
    return sorted(found.values(), key=_order)


def _frontends(port: ServicePort, protocol: str, number: int, svc: Service, nodes: NodeAddresses,
               addresses: tuple[list[str], list[str], list[str]]) -> tuple[Frontend, ...]:
    """Every frontend of one service port (see the module docstring for who gets which)."""
    vips, externals, lbs = addresses
    itp_local = svc.internal_traffic_policy == "Local"
    if not externals and not lbs and svc.service_type == "ClusterIP":  # the common case
        fast = tuple(Frontend(v, protocol, number, FrontendKind.CLUSTER_IP, itp_local, False) for v in vips)
        return fast if len(fast) < 2 else tuple(dict.fromkeys(fast))
    etp_local = svc.external_traffic_policy == "Local"
    masq = not etp_local
    fronts = [Frontend(v, protocol, number, FrontendKind.CLUSTER_IP, itp_local, False) for v in vips]
    fronts += [Frontend(v, protocol, number, FrontendKind.EXTERNAL_IP, etp_local, masq) for v in externals]
    fronts += [Frontend(v, protocol, number, FrontendKind.LOAD_BALANCER, etp_local, masq) for v in lbs]
    if svc.service_type in ("NodePort", "LoadBalancer") and port.node_port:
        np = _port(port.node_port, "nodePort of port {}", str(port.name or port.port))
        fronts += [Frontend(a, protocol, np, FrontendKind.NODE_PORT, etp_local, masq) for a in nodes.own]
        if not etp_local:  # another node's NodePort answered here: only where it cannot change the answer
            fronts += [Frontend(a, protocol, np, FrontendKind.NODE_PORT, False, False)
                       for a in nodes.others if a not in nodes.own]
    return tuple(dict.fromkeys(fronts))


def service_intent(svc: Service, slices: Collection[EndpointSlice], nodes: NodeAddresses) -> ServiceIntent:
    """The intent of one service (no clash check: see :class:`ServiceProcessor`)."""
    if svc.service_type == "ExternalName":
        return ServiceIntent(svc.namespace, svc.name, (), "ExternalName service")
    if HEADLESS_LABEL in svc.labels:
        return ServiceIntent(svc.namespace, svc.name, (), f"labelled {HEADLESS_LABEL} (left alone, as kube-proxy does)")
    if PROXY_NAME_LABEL in svc.labels:
        return ServiceIntent(svc.namespace, svc.name, (),
                             f"labelled {PROXY_NAME_LABEL}={svc.labels[PROXY_NAME_LABEL]} (meant for another proxy)")
    cluster_ips = [ip for ip in (svc.cluster_ips or [svc.cluster_ip]) if ip]
    if not cluster_ips or "None" in cluster_ips:
        return ServiceIntent(svc.namespace, svc.name, (), "headless service (no ClusterIP)")
    vips = [v for v in (_ipv4(ip, "clusterIP") for ip in cluster_ips) if v]
    externals = [v for v in (_ipv4(ip, "externalIP") for ip in svc.external_ips) if v]
    lbs = [v for v in (_ipv4(ip, "load-balancer IP") for ip in svc.lb_ingress_ips) if v]
    affinity = (svc.session_affinity_timeout or DEFAULT_AFFINITY_TIMEOUT_S) if svc.session_affinity == "ClientIP" else 0
    slice_ports = _slice_ports(slices)
    ports = []
    for port in svc.ports:
        protocol = _PROTOCOLS.get(port.protocol)
        if protocol is None:
            raise ServiceError(f"port {port.name or port.port}: protocol {port.protocol!r} is not TCP, UDP or SCTP")
        number = _port(port.port, "port {}", port.name or "(unnamed)")
        everything = _backends(port, protocol, slice_ports, nodes.node_name)
        usable = _usable(everything)
        local = [b for b in everything if b.local]
        ports.append(ServicePortIntent(
            port.name, protocol, _frontends(port, protocol, number, svc, nodes, (vips, externals, lbs)),
            usable, usable if len(local) == len(everything) else _usable(local), affinity))
    return ServiceIntent(svc.namespace, svc.name, tuple(ports), "")


@dataclass
class ServiceProcessor:
    """The reflected Services and EndpointSlices, and the intent of every service.

    Update methods return the keys (``namespace/name``) of the services whose intent changed.
    """

    nodes: NodeAddresses
    services: dict[str, Service] = field(default_factory=dict)
    slices: dict[str, dict[str, EndpointSlice]] = field(default_factory=dict)  # by service key
    intents: dict[str, ServiceIntent] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    owners: dict[tuple[str, str, int], str] = field(default_factory=dict)
    owned: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)  # by service key

    def resync(self, services: Iterable[Service], slices: Iterable[EndpointSlice], nodes: NodeAddresses) -> None:
        self.nodes = nodes
        self.services = {f"{s.namespace}/{s.name}": s for s in services}
        self.slices = {}
        for eps in slices:
            self.slices.setdefault(f"{eps.namespace}/{eps.service_name}", {})[eps.name] = eps
        self.intents, self.errors, self.owners, self.owned = {}, {}, {}, {}
        for key in sorted(self.services):
            self._compute(key)

    def set_service(self, svc: Service | None, prev: Service | None = None) -> set[str]:
        ref = svc or prev
        if ref is None:
            return set()
        key = f"{ref.namespace}/{ref.name}"
        if svc is None:
            self.services.pop(key, None)
        else:
            self.services[key] = svc
        return self._recompute(key)

    def set_slice(self, eps: EndpointSlice | None, prev: EndpointSlice | None = None) -> set[str]:
        changed: set[str] = set()
        if prev is not None and (eps is None or prev.service_name != eps.service_name):
            old_key = f"{prev.namespace}/{prev.service_name}"
            self.slices.get(old_key, {}).pop(prev.name, None)
            changed |= self._recompute(old_key)
        if eps is not None:
            key = f"{eps.namespace}/{eps.service_name}"
            self.slices.setdefault(key, {})[eps.name] = eps
            changed |= self._recompute(key)
        return changed

    def set_nodes(self, nodes: NodeAddresses) -> set[str]:
        if nodes == self.nodes:
            return set()
        self.nodes = nodes
        changed: set[str] = set()
        for key in sorted(self.services):
            changed |= self._recompute(key)
        return changed

    def _recompute(self, key: str) -> set[str]:
        before = self.intents.get(key)
        clashing = sorted(k for k, e in self.errors.items() if "clash" in e and k != key)
        self._release(key)
        if key in self.services:
            self._compute(key)
        else:
            self.intents.pop(key, None)
            self.errors.pop(key, None)
        changed = {key} if self.intents.get(key) != before else set()
        for other in clashing:  # a freed frontend may now go to a service that clashed
            previous = self.intents.get(other)
            self._release(other)
            self._compute(other)
            if self.intents.get(other) != previous:
                changed.add(other)
        return changed

    def _release(self, key: str) -> None:
        for triple in self.owned.pop(key, ()):
            if self.owners.get(triple) == key:
                del self.owners[triple]

    def _compute(self, key: str) -> None:
        svc = self.services[key]
        self.errors.pop(key, None)
        try:
            intent = service_intent(svc, self.slices.get(key, _NO_SLICES).values(), self.nodes)
        except ServiceError as exc:
            self.errors[key] = str(exc)
            self.intents[key] = ServiceIntent(namespace=svc.namespace, name=svc.name, skipped=str(exc))
            return
        clashes: list[str] = []
        owners = self.owners
        mine = self.owned.setdefault(key, [])
        for port in intent.ports:
            for fe in port.frontends:
                triple = (fe.ip, fe.protocol, fe.port)
                owner = owners.setdefault(triple, key)
                if owner == key:
                    mine.append(triple)
                else:
                    clashes.append(f"{fe.ip}:{fe.port}/{fe.protocol} (used by {owner})")
        if clashes:
            self.errors[key] = "port clash, frontends left out: " + ", ".join(clashes)
            intent = dataclasses.replace(intent, ports=tuple(
                dataclasses.replace(p, frontends=tuple(f for f in p.frontends
                                                       if owners[(f.ip, f.protocol, f.port)] == key))
                for p in intent.ports))
        self.intents[key] = intent


def node_addresses(node_name: str, nodes: Mapping[str, tuple[list[str], list[str]]]) -> NodeAddresses:
    """:class:`NodeAddresses` from ``name -> (dataplane addresses, management addresses)``."""
    def clean(values: Iterable[str]) -> list[str]:
        out = []
        for value in values:
            try:
                ip = _ipv4(str(value), "node address")
            except ServiceError:
                continue
            if ip:
                out.append(ip)
        return out

    own: list[str] = []
    others: list[str] = []
    for name, (dataplane, mgmt) in sorted(nodes.items()):
        (own if name == node_name else others).extend(clean([*dataplane, *mgmt]))
    return NodeAddresses(node_name, tuple(dict.fromkeys(own)), tuple(dict.fromkeys(others)))
