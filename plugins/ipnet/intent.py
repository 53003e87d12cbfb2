"""Dataplane-neutral connectivity intent: what ipnet wants, before any dataplane is chosen.

ipnet computes these models from the address plan (ipam), the node table (nodesync) and the local
pods (podmanager); a *renderer* turns them into KV-scheduler values of one dataplane. The
``linux`` renderer (``plugins/ipnet/renderer/linux.py``) wires pods with veth pairs and routes
in the node's kernel; a ``vpp`` renderer realises the same intent with TAPs, VRFs and a VXLAN
bridge domain (contiv.md section 3.7).

Three kinds of intent:

* :class:`NodeIntent` - this node's base config (pod subnet and gateway, forwarding, the overlay
  endpoint for the node mesh).
* :class:`PodIntent` - one pod's interface: ``eth0`` with the pod IP as /32, a link-scope route
  to the gateway and the default route via it, a static neighbour for the gateway, and the route
  from the node to the pod.
* :class:`RemoteNodeIntent` - one other node of the cluster: how to reach it (VXLAN VNI 10 or,
  with ``nooverlay``, plain routes via its node IP) and which networks live behind it.

All models are frozen and hashable; equal inputs give equal intents (renderers may rely on that
to produce stable keys).
"""

from __future__ import annotations

import enum
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: VXLAN network identifier of the default pod network (Contiv's fixed VNI).
DEFAULT_VNI = 10
#: MTU of pod interfaces when the config does not say otherwise (Contiv's default).
DEFAULT_MTU = 1450


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Transport(enum.StrEnum):
    """How pod traffic crosses between nodes."""

    #: Encapsulated in VXLAN (VNI 10) between the nodes' interconnect addresses.
    VXLAN = "vxlan"
    #: Plain routes via the other node's interconnect address (nodes share an L2 segment).
    NOOVERLAY = "nooverlay"


class RouteIntent(_Frozen):
    """A route wanted on one side (pod or node)."""

    dst: IPv4Network
    #: Next hop; None for a link-scope (directly connected) route.
    gateway: IPv4Address | None = None

    @property
    def link_scope(self) -> bool:
        return self.gateway is None


class NeighbourIntent(_Frozen):
    """A static IP -> MAC entry (so the pod never has to ARP for its gateway)."""

    ip: IPv4Address
    mac: str


class PodIntent(_Frozen):
    """Everything one pod needs from the dataplane."""

    pod_name: str
    pod_namespace: str
    container_id: str
    #: Network namespace of the pod sandbox: a path (``/proc/<pid>/ns/net``, ``/var/run/netns/x``).
    netns_path: str
    #: Interface name inside the pod (``eth0``).
    interface_name: str = "eth0"
    #: The pod's address, always a /32.
    ip_address: IPv4Interface
    #: The pod gateway (first address of the node's pod subnet).
    gateway: IPv4Address
    #: MAC of the pod-side interface and of the node-side end that answers for the gateway;
    #: both deterministic, derived from the container ID (contiv.md 3.7).
    pod_mac: str
    gateway_mac: str
    mtu: int = Field(default=DEFAULT_MTU, ge=576, le=65535)
    #: Routes inside the pod: ``gateway/32`` link-scope, then ``0.0.0.0/0`` via the gateway.
    pod_routes: tuple[RouteIntent, ...]
    #: Static neighbours inside the pod (the gateway).
    pod_neighbours: tuple[NeighbourIntent, ...]
    #: Route on the node towards the pod (``pod_ip/32``, link-scope on the node-side end).
    node_route: RouteIntent

    @field_validator("ip_address")
    @classmethod
    def _host_prefix(cls, value: IPv4Interface) -> IPv4Interface:
        if value.network.prefixlen != 32:
            raise ValueError(f"pod address must be a /32, got {value}")
        return value

    @property
    def pod_key(self) -> str:
        """``namespace/name``, unique per pod on a node."""
        return f"{self.pod_namespace}/{self.pod_name}"


class NodeIntent(_Frozen):
    """This node's base configuration."""

    node_id: int = Field(ge=1)
    node_name: str
    pod_subnet: IPv4Network
    pod_gateway: IPv4Address
    #: The whole cluster pod network (all nodes' pod subnets).
    pod_network: IPv4Network
    host_interconnect_subnet: IPv4Network
    #: This node's interconnect (underlay) address, the VXLAN tunnel source.
    node_ip: IPv4Interface
    #: This node's address and MAC on the VXLAN overlay (192.168.30.<id>/24, 12:2b:<id>).
    vxlan_ip: IPv4Interface
    vxlan_mac: str
    vni: int = Field(default=DEFAULT_VNI, ge=1, lt=1 << 24)
    transport: Transport = Transport.VXLAN
    mtu: int = Field(default=DEFAULT_MTU, ge=576, le=65535)


class RemoteNodeIntent(_Frozen):
    """How to reach one other node and what lives behind it."""

    node_id: int = Field(ge=1)
    node_name: str
    #: The other node's interconnect (underlay) address: the VXLAN destination or next hop.
    node_ip: IPv4Address
    #: Its VXLAN overlay address and MAC (static neighbour + forwarding entry).
    vxlan_ip: IPv4Address
    vxlan_mac: str
    vni: int = Field(default=DEFAULT_VNI, ge=1, lt=1 << 24)
    transport: Transport = Transport.VXLAN
    #: Networks routed to that node: its pod subnet, host subnet, management addresses (/32).
    networks: tuple[IPv4Network, ...]
