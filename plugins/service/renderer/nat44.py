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
renderer, which knows the interfaces. Each mapping is one scheduler value keyed by its
frontend: a change touches only the mappings it changes, and backend changes of a
load-balanced mapping are made in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address

from pydantic import BaseModel

from plugins.ipam.api import NodeAddressPlan
from plugins.kvscheduler.removed import RemovedKeys
from plugins.service.config import ServiceConfig
from plugins.service.intent import Backend, Frontend, ServiceIntent, ServicePortIntent
from plugins.service.renderer import Renderer
from plugins.vpp.nat import PROTOCOLS, Nat44Mapping, NatLocal, TwiceNat, nat_mapping_key

#: Frontend kinds that are external addresses (full twice-NAT when cluster-wide).
EXTERNAL_KINDS = frozenset({"external-ip", "load-balancer"})
MAX_LABEL = 60


def make(config: ServiceConfig, plan: NodeAddressPlan, node_namespace: str) -> Renderer:
    """The renderer of ``ipnet.dataplane: vpp`` (see :func:`plugins.service.renderer.make_renderer`)."""
    return Nat44ServiceRenderer(Nat44RenderSettings(pod_network=plan.pod_network))


@dataclass(frozen=True)
class Nat44RenderSettings:
    pod_network: IPv4Network
    pod_vrf: int = 1
    main_vrf: int = 0
    local_weight: int = 1
    """Weight of a local backend against 1 for a remote one (Contiv's ``serviceLocalEndpointWeight``)."""


class Nat44ServiceRenderer:
    """Keeps the mappings of every service; ``values()`` is the whole desired state, and
    ``take_removed()`` the keys of mappings no service needs any more (to delete)."""

    name = "vpp-nat44"

    def __init__(self, settings: Nat44RenderSettings) -> None:
        self.settings = settings
        self._by_service: dict[str, dict[str, Nat44Mapping]] = {}
        self._removed = RemovedKeys()

    def set_service(self, key: str, intent: ServiceIntent | None) -> None:
        old = self._by_service.pop(key, {})
        new = self.render(intent) if intent is not None else {}
        if new:
            self._by_service[key] = new
        still = {k for mappings in self._by_service.values() for k in mappings}
        self._removed.replaced(old, still)

    def values(self) -> Mapping[str, BaseModel]:
        out: dict[str, BaseModel] = {}
        for mappings in self._by_service.values():
            out.update(mappings)
        return out

    def take_removed(self) -> list[str]:
        """Keys of mappings dropped since the last call (the caller deletes them)."""
        return self._removed.take()

    # ------------------------------------------------------------------------------ rendering

    def render(self, intent: ServiceIntent) -> dict[str, Nat44Mapping]:
        out: dict[str, Nat44Mapping] = {}
        label = intent.key[:MAX_LABEL]
        for port in intent.ports:
            for frontend in port.frontends:
                mapping = self._mapping(label, port, frontend)
                if mapping is not None:
                    out[nat_mapping_key(mapping.external_ip, mapping.protocol, mapping.external_port)] = mapping
        return out

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
