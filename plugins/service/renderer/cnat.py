"""Service intent -> VPP cnat translations (the NAT Calico/VPP uses for Services).

One :class:`plugins.vpp.cnat.CnatTranslation` per frontend (service address, protocol, port):
the ClusterIP, every ExternalIP/LoadBalancer IP and the NodePort on every node address, IPv4 or
IPv6 (the renderer is family-agnostic: a frontend's backends of its own family; a frontend
without such a backend gets nothing). Its backends are the frontend's (``externalTrafficPolicy``
/ ``internalTrafficPolicy: Local`` frontends: the local ones only, the processor's
``backends_for``); VPP balances evenly (cnat has no weights: ``local_weight`` is NAT44's).
``sessionAffinity: ClientIP``: Maglev over the client's address only, so a client keeps its
backend while the backend set stays (cnat has no affinity timeout). SCTP is not translated.

What NAT44-ED did around the mappings stays the node's NAT (ipnet's VPP renderer): SNAT of
traffic leaving the node and the hairpin of a pod reaching itself through its service. Each
translation is one scheduler value; a backend change updates it in place (same translation).
With a host side (:mod:`plugins.service.renderer.vpphost`) the node's own namespace reaches the
services through VPP as with NAT44: a host frontend translation per own NodePort.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_address

from plugins.ipam.api import NodeAddressPlan
from plugins.service.config import ServiceConfig
from plugins.service.intent import Backend, Frontend, ServiceIntent, ServicePortIntent
from plugins.service.renderer import Renderer
from plugins.service.renderer.nat44 import host_side
from plugins.service.renderer.vpphost import HostSide, TranslationRenderer, is_own_node_port
from plugins.vpp.cnat import PROTOCOLS, CnatBackend, CnatTranslation, cnat_translation_key

MAX_LABEL = 60


def make(config: ServiceConfig, plan: NodeAddressPlan, node_namespace: str, host_ifname: str = "") -> Renderer:
    """The cnat renderer (``service.renderer: cnat`` on ``ipnet.dataplane: vpp``)."""
    return CnatServiceRenderer(host=host_side(config, plan, node_namespace, host_ifname))


class CnatServiceRenderer(TranslationRenderer):
    """Keeps the translations of every service (see the module docstring)."""

    name = "vpp-cnat"

    def __init__(self, host: HostSide | None = None) -> None:
        super().__init__(host)

    def render(self, intent: ServiceIntent) -> dict[str, CnatTranslation]:
        out: dict[str, CnatTranslation] = {}
        label = intent.key[:MAX_LABEL]
        for port in intent.ports:
            for frontend in port.frontends:
                translation = self._translation(label, port, frontend)
                if translation is None:
                    continue
                out[cnat_translation_key(translation.vip, translation.protocol, translation.port)] = translation
                if self.host is not None and is_own_node_port(frontend) and translation.vip.version == 4:
                    host = translation.model_copy(update={"vip": self.host.vswitch_ip})
                    out[cnat_translation_key(host.vip, host.protocol, host.port)] = host
        return out

    def translates(self, port: ServicePortIntent, frontend: Frontend) -> bool:
        return self._translation("", port, frontend) is not None

    def _translation(self, label: str, port: ServicePortIntent, frontend: Frontend) -> CnatTranslation | None:
        protocol = frontend.protocol.lower()
        if protocol not in PROTOCOLS:
            return None  # SCTP
        vip = ip_address(frontend.ip)
        backends = _backends(port.backends_for(frontend), vip.version)
        if not backends:
            return None
        return CnatTranslation(vip=vip, protocol=protocol, port=frontend.port, backends=backends,
                               affinity=port.affinity_timeout_s > 0 and len(backends) > 1, label=label)


def _backends(backends: Sequence[Backend], version: int) -> tuple[CnatBackend, ...]:
    found: dict[tuple[str, int], CnatBackend] = {}
    for b in backends:
        ip = ip_address(b.ip)
        if ip.version == version and (b.ip, b.port) not in found:
            found[(b.ip, b.port)] = CnatBackend(ip=ip, port=b.port)
    return tuple(found.values())
