"""What other plugins may ask ipnet (the service and policy plugins, for their renderers)."""

from __future__ import annotations

from typing import Protocol

from plugins.podmanager.api import PodID


class IPNetAPI(Protocol):
    """Implemented by :class:`plugins.ipnet.plugin.IPNetPlugin`."""

    def dataplane(self) -> str:
        """The dataplane pods are wired on (``ipnet.dataplane``: ``linux`` or ``vpp``)."""
        ...

    def node_namespace(self) -> str:
        """The namespace holding the node's side of the dataplane ("" = the agent's own)."""
        ...

    def pod_interface_name(self, pod: PodID) -> str | None:
        """The node-side interface of a pod wired on this node (a VPP interface on ``vpp``, the
        veth end on ``linux``); None while it is not wired here."""
        ...

    def host_interface(self) -> str:
        """The Linux side of the dataplane's host interconnect, through which the node's own
        namespace reaches pods and services (VPP: ``vpp1``; "" on Linux)."""
        ...

    def outbound_interfaces(self) -> tuple[str, ...]:
        """The dataplane's interfaces traffic leaves the node by, where a node-wide egress filter
        goes (VPP: main NIC, host interconnect and, with VXLAN, the BVI; none on Linux)."""
        ...
