"""Settings of the service plugin (YAML section ``service``)."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from pydantic import Field, field_validator

from core.plugin import PluginConfig

#: The VPP service renderers (``service.renderer``).
VPP_RENDERERS = ("nat44", "cnat")


class ServiceConfig(PluginConfig):
    """How services are rendered on the Linux dataplane (nftables)."""

    table: str = Field(default="contiv-svc", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """Name of the agent-owned nftables table (family ``ip``) in the node namespace. The agent
    never touches any other table."""

    masquerade_egress: bool = True
    """SNAT traffic from pods to destinations outside the cluster to the node's address."""

    non_masquerade_cidrs: list[IPv4Network] = []
    """Destinations pods reach with their own address besides the pod and service networks
    (e.g. a corporate network that routes back to the pod network)."""

    renderer: str = "nat44"
    """The VPP dataplane's service renderer: ``nat44`` (NAT44-ED static and load-balanced
    mappings, Contiv's) or ``cnat`` (cnat translations, Calico/VPP's; IPv4 and IPv6). Ignored on
    the Linux dataplane (nftables). docs/vpp.md compares them."""

    @field_validator("renderer", mode="before")
    @classmethod
    def _renderer(cls, value: Any) -> str:
        if value not in VPP_RENDERERS:
            raise ValueError(f"service.renderer {value!r} is not one of {', '.join(VPP_RENDERERS)} "
                             "(the VPP dataplane's service renderer)")
        return str(value)

    route_service_network: bool = True
    """Route the service network to ``lo`` in the node namespace, so the node itself (and
    hostNetwork pods) can connect to ClusterIPs without a default route; the connection is
    NATed to a backend (or rejected) before the route matters. On VPP: the node reaches the
    services through VPP (service network and ExternalIPs routed via the host interconnect,
    NodePorts DNATed into VPP by the ``table``; docs/vpp.md); false leaves the node out."""
