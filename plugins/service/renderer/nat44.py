"""Service intent -> NAT44-ED mappings (Contiv's NAT44 renderer, contiv.md 3.8).

One mapping per frontend (service address, protocol, port): the ClusterIP, every
ExternalIP/LoadBalancer IP, and a NodePort on every node address. Its locals are the frontend's
backends (``externalTrafficPolicy: Local`` frontends get local backends only: the processor's
``backends_for``); a local backend weighs ``local_weight``, a remote one 1; a single backend
makes a plain static mapping, several a load-balanced one (with session affinity when the
service has ``sessionAffinity: ClientIP``). Twice-NAT: ``self`` for every mapping (a pod
reaching itself through its service is SNATed to the NAT loopback address), full twice-NAT
for the ExternalIPs of cluster-wide services. A backend inside the pod network is reached in
the pod VRF, anything else (host-network endpoints) in the main VRF. SCTP is not NATed by VPP:
such frontends are left out. A frontend without backends gets no mapping.

The node's own NAT (plugin, pools, identities, interface features) comes from the ipnet VPP
renderer, which knows the interfaces. With a host side (:mod:`plugins.service.renderer.vpphost`)
the node's own namespace reaches the services through VPP too: routes and the NodePort table
there, and a host frontend mapping (VPP's interconnect address, the NodePort) per own
NodePort. Each mapping is one scheduler value keyed by its frontend: a change touches only the
mappings it changes, and backend changes of a load-balanced mapping are made in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address

from plugins.ipam.api import NodeAddressPlan
from plugins.service.config import ServiceConfig
from plugins.service.intent import Backend, Frontend, ServiceIntent, ServicePortIntent
from plugins.service.renderer import Renderer
from plugins.service.renderer.vpphost import HostSide, TranslationRenderer, is_own_node_port
from plugins.vpp.nat import PROTOCOLS, Nat44Mapping, NatLocal, TwiceNat, nat_mapping_key

#: Frontend kinds that are external addresses (full twice-NAT when cluster-wide).
EXTERNAL_KINDS = frozenset({"external-ip", "load-balancer"})
MAX_LABEL = 60


def host_side(config: ServiceConfig, plan: NodeAddressPlan, node_namespace: str, host_ifname: str) -> HostSide | None:
    """The node namespace's side of the VPP service renderers (None without a host interface or
    with ``route_service_network: false``)."""
    if not host_ifname or not config.route_service_network:
        return None
    return HostSide(namespace=node_namespace, ifname=host_ifname, vswitch=plan.host_interconnect_vswitch,
                    host=plan.host_interconnect_host, service_network=plan.service_network, table_name=config.table)


def make(config: ServiceConfig, plan: NodeAddressPlan, node_namespace: str, host_ifname: str = "") -> Renderer:
    """The renderer of ``ipnet.dataplane: vpp`` (see :func:`plugins.service.renderer.make_renderer`)."""
    return Nat44ServiceRenderer(Nat44RenderSettings(pod_network=plan.pod_network),
                                host=host_side(config, plan, node_namespace, host_ifname))


@dataclass(frozen=True)
class Nat44RenderSettings:
    pod_network: IPv4Network
    pod_vrf: int = 1
    main_vrf: int = 0
    local_weight: int = 1
    """Weight of a local backend against 1 for a remote one (Contiv's ``serviceLocalEndpointWeight``)."""


class Nat44ServiceRenderer(TranslationRenderer):
    """Keeps the mappings of every service; ``values()`` is the whole desired state, and
    ``take_removed()`` the keys of mappings no service needs any more (to delete)."""

    name = "vpp-nat44"

    def __init__(self, settings: Nat44RenderSettings, host: HostSide | None = None) -> None:
        super().__init__(host)
        self.settings = settings

    # ------------------------------------------------------------------------------ rendering

    def render(self, intent: ServiceIntent) -> dict[str, Nat44Mapping]:
        out: dict[str, Nat44Mapping] = {}
        label = intent.key[:MAX_LABEL]
        for port in intent.ports:
            for frontend in port.frontends:
                mapping = self._mapping(label, port, frontend)
                if mapping is None:
                    continue
                out[nat_mapping_key(mapping.external_ip, mapping.protocol, mapping.external_port)] = mapping
                if self.host is not None and is_own_node_port(frontend):
                    # the node's own NodePort, DNATed by the node namespace to VPP's interconnect address
                    host = mapping.model_copy(update={"external_ip": self.host.vswitch_ip})
                    out[nat_mapping_key(host.external_ip, host.protocol, host.external_port)] = host
        return out

    def translates(self, port: ServicePortIntent, frontend: Frontend) -> bool:
        """Whether the frontend gets a mapping (see :meth:`_mapping`)."""
        return self._mapping("", port, frontend) is not None

    def _mapping(self, label: str, port: ServicePortIntent, frontend: Frontend) -> Nat44Mapping | None:
        protocol = frontend.protocol.lower()
        if protocol not in PROTOCOLS or not protocol or ip_address(frontend.ip).version != 4:
            return None  # SCTP (VPP's NAT has none) and IPv6 are not rendered
        locals_ = self._locals(port.backends_for(frontend))
        if not locals_:
            return None
        external = str(frontend.kind) in EXTERNAL_KINDS and not frontend.local_only
        return Nat44Mapping(
            external_ip=IPv4Address(frontend.ip), protocol=protocol, external_port=frontend.port,
            locals=locals_, twice_nat=TwiceNat.ENABLED if external else TwiceNat.SELF,
            affinity=port.affinity_timeout_s if len(locals_) > 1 else 0, label=label,
        )

    def _locals(self, backends: Sequence[Backend]) -> tuple[NatLocal, ...]:
        s = self.settings
        found: dict[tuple[str, int], NatLocal] = {}
        for b in backends:
            ip = ip_address(b.ip)
            if ip.version != 4 or (b.ip, b.port) in found:
                continue
            vrf = s.pod_vrf if ip in s.pod_network else s.main_vrf
            found[(b.ip, b.port)] = NatLocal(
                ip=IPv4Address(b.ip), port=b.port, probability=s.local_weight if b.local else 1, vrf=vrf
            )
        locals_ = tuple(found.values())
        if len(locals_) == 1:  # one backend: a plain static mapping, no weight
            locals_ = (locals_[0].model_copy(update={"probability": 0}),)
        return locals_
