"""Renderers of service intent: :class:`Renderer` (what the service plugin calls, every method
typed) and :func:`make_renderer` (the one way to get the renderer of ``ipnet.dataplane``:
``nftables`` on ``linux``; on ``vpp`` the one ``service.renderer`` names, ``nat44`` or ``cnat``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import BaseModel

from core.renderer import renderer_module
from plugins.ipam.api import NodeAddressPlan
from plugins.service.config import ServiceConfig
from plugins.service.intent import ServiceIntent

#: The module of each dataplane's renderer (imported only when that dataplane is chosen).
MODULES = {"linux": "plugins.service.renderer.nftables", "vpp": "plugins.service.renderer.nat44"}
#: The VPP renderers by ``service.renderer``.
VPP_MODULES = {"nat44": "plugins.service.renderer.nat44", "cnat": "plugins.service.renderer.cnat"}


class Renderer(Protocol):
    """Turns service intents into the dataplane values of one node."""

    #: What it renders into (``nftables``, ``vpp-nat44``, ``vpp-cnat``).
    name: str

    def set_service(self, key: str, intent: ServiceIntent | None) -> None:
        """Record the new intent of service ``key`` (None: the service is gone)."""
        ...

    def values(self) -> Mapping[str, BaseModel]:
        """Every value the current intents need (the renderer's whole desired state)."""
        ...

    def take_removed(self) -> list[str]:
        """Keys :meth:`values` gave before and no longer gives, since the last call (the caller
        deletes them)."""
        ...


def make_renderer(dataplane: str, config: ServiceConfig, plan: NodeAddressPlan, node_namespace: str,
                  host_ifname: str = "") -> Renderer:
    """The renderer of ``dataplane``; raises :class:`core.renderer.RendererUnavailable` naming the
    dataplane when there is none or it cannot be loaded. ``host_ifname``: the node side of the
    host interconnect (VPP), through which the node itself reaches the services."""
    if dataplane == "vpp":
        module = renderer_module("service", config.renderer, VPP_MODULES, setting="service.renderer")
    else:
        module = renderer_module("service", dataplane, MODULES)
    renderer: Renderer = module.make(config, plan, node_namespace, host_ifname=host_ifname)
    return renderer
