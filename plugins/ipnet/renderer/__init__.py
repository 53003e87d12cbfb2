"""Renderers turning ipnet intent into one dataplane's KV-scheduler values: :class:`Renderer`
(what the ipnet plugin calls, every method typed) and :func:`make_renderer` (the one way to get
the renderer of ``ipnet.dataplane``: ``linux`` or ``vpp``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import BaseModel

from core.renderer import renderer_module
from plugins.ipnet.config import IPNetConfig
from plugins.ipnet.intent import NodeIntent, PodIntent, RemoteNodeIntent
from plugins.ipnet.stn import StolenNic

#: The module of each dataplane's renderer (imported only when that dataplane is chosen).
MODULES = {"linux": "plugins.ipnet.renderer.linux", "vpp": "plugins.ipnet.renderer.vpp"}


class Renderer(Protocol):
    """Turns intent into KV-scheduler values (key -> value) of one dataplane.

    Every render method is pure: the same intent gives the same keys and values, so ipnet can
    delete exactly what it put by rendering the old intent again. A renderer never touches the
    dataplane itself; the scheduler's descriptors do.
    """

    #: The ``dataplane`` config value that selects this renderer (``linux``, ``vpp``).
    name: str
    #: Whether :meth:`use_stolen_nic` is supported (``ipnet.stn``).
    supports_stn: bool

    def render_node(self, node: NodeIntent) -> Mapping[str, BaseModel]:
        """Values of this node's base config."""
        ...

    def render_pod(self, node: NodeIntent, pod: PodIntent) -> Mapping[str, BaseModel]:
        """Values wiring one pod on this node."""
        ...

    def render_remote_node(self, node: NodeIntent, remote: RemoteNodeIntent) -> Mapping[str, BaseModel]:
        """Values connecting this node to one other node (the node mesh)."""
        ...

    def result_host_interfaces(self, pod: PodIntent) -> list[tuple[str, str]]:
        """Node-side interfaces of ``pod`` for the CNI result: (name, MAC or "") each.

        Listed before the pod interface (no sandbox), as the reference plugins do, so chained
        plugins (``bandwidth``, ``firewall``...) find the host end of the pod's link.
        """
        ...

    def pod_interface_name(self, pod: PodIntent) -> str:
        """The dataplane's interface of ``pod`` on the node side (a VPP interface, a veth end)."""
        ...

    def outbound_interfaces(self, vxlan: bool) -> tuple[str, ...]:
        """The dataplane's interfaces traffic leaves the node by, where a node-wide egress
        filter goes (VPP: main NIC, host interconnect, the VXLAN BVI with ``vxlan``); none on
        Linux, whose policies filter the forward path."""
        ...

    def host_interface(self) -> str:
        """The Linux side of the host interconnect (VPP: ``host_ifname``); "" on Linux."""
        ...

    def use_stolen_nic(self, nic: StolenNic) -> None:
        """STN mode: render the node around the NIC contiv-stn stole (before any resync)."""
        ...


def make_renderer(config: IPNetConfig) -> Renderer:
    """The renderer of ``config.dataplane``; raises :class:`core.renderer.RendererUnavailable`
    naming the dataplane when there is none or it cannot be loaded."""
    module = renderer_module("ipnet", config.dataplane, MODULES)
    renderer: Renderer = module.make(config)
    return renderer
