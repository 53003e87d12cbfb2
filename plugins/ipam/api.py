"""IPAM interface: the node's address plan and pod IP allocation (Contiv's scheme, contiv.md 3.3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Protocol

from plugins.podmanager.api import PodID


class IPAMError(Exception):
    """Base of IPAM errors."""


class PoolExhaustedError(IPAMError):
    """No free pod address is left in this node's pod subnet."""

    def __init__(self, subnet: IPv4Network, capacity: int) -> None:
        super().__init__(
            f"no free pod IP address in node subnet {subnet} "
            f"(all {capacity} assignable addresses are in use)"
        )
        self.subnet = subnet
        self.capacity = capacity


class PodSubnetPendingError(IPAMError):
    """This node has no pod subnet yet (``pod_subnet_source: kubernetes`` and its Node has no
    usable ``spec.podCIDR``): no address can be allocated and no plan of this node given."""


@dataclass(frozen=True, slots=True)
class NodeAddressPlan:
    """Every address derived from one node ID."""

    node_id: int
    #: Pod subnet of this node (default 10.1.<id>.0/24) and its gateway (first address).
    pod_subnet: IPv4Network
    pod_gateway: IPv4Address
    #: Host interconnect (vswitch <-> host stack) subnet of this node and the two ends.
    host_interconnect_subnet: IPv4Network
    host_interconnect_vswitch: IPv4Interface
    host_interconnect_host: IPv4Interface
    #: This node's address in the node interconnect network (192.168.16.<id>/24 by default).
    node_ip: IPv4Interface
    #: This node's VXLAN BVI address (192.168.30.<id>/24 by default).
    vxlan_ip: IPv4Interface
    #: The whole pod, VXLAN and service networks (for routes).
    pod_network: IPv4Network
    vxlan_network: IPv4Network
    service_network: IPv4Network


class IPAMAPI(Protocol):
    """What ipnet and the other handlers use. All methods are synchronous and cheap."""

    def plan(self, node_id: int | None = None) -> NodeAddressPlan:
        """The plan of ``node_id`` (this node's when None).

        With ``pod_subnet_source: kubernetes`` the pod subnet is the Node's ``spec.podCIDR``:
        raises :class:`PodSubnetPendingError` for this node until it has one, and an
        ``AddressPlanError`` (a ``ValueError``) naming the node for another node without a
        usable one.
        """
        ...

    def pod_ip(self, pod: PodID) -> IPv4Address | None:
        """The address allocated to ``pod``, if any."""
        ...

    def allocate_pod_ip(self, pod: PodID, *, defer_save: bool = False) -> IPv4Address:
        """Allocate (next-fit) and persist an address for ``pod``; idempotent per pod.

        Raises :class:`PoolExhaustedError` when the node subnet is full. With ``defer_save``
        the local file is written in the background: the caller must ``await persisted()``
        before the address is handed out (the CNI reply), and treat its error as a failure.
        Without it the call blocks until the file is written (an fsync): only for callers
        outside the event loop; handlers on the loop defer.
        """
        ...

    async def persisted(self) -> None:
        """Wait until every allocation change so far is in the local file (or raise why not)."""
        ...

    def release_pod_ip(self, pod: PodID) -> None:
        """Free the pod's address (no-op when it has none) and persist that in the background
        (never blocks; a failed write is logged and repaired by the next one)."""
        ...

    def allocations(self) -> Mapping[PodID, IPv4Address]:
        """Every allocation on this node."""
        ...
