"""The ``linux`` renderer: intent -> Linux descriptor values (veth per pod, kernel routing).

Per pod: a veth pair, ``eth0`` in the pod namespace (pod IP /32, link route to the gateway,
default route via it, static neighbour for the gateway) and a ``cv<hash>`` end in the node
namespace that holds the gateway address /32, the /32 route to the pod and a static neighbour
for it. The node forwards between its pods (``net.ipv4.ip_forward=1``).

Node mesh: with VXLAN one ``contiv-vxlan`` device (VNI 10, overlay address 192.168.30.<id>/24);
per other node a static neighbour and FDB entry for its overlay MAC and routes to its networks
via its overlay address. With ``nooverlay`` plain routes via the other node's address.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Interface

from pydantic import BaseModel

from core.naming import short_hash
from plugins.ipnet.config import IPNetConfig
from plugins.ipnet.intent import NodeIntent, PodIntent, RemoteNodeIntent, Transport
from plugins.ipnet.renderer import Renderer
from plugins.ipnet.stn import StolenNic
from plugins.linux.models import (
    FdbEntry,
    InterfaceAddress,
    Neighbour,
    Route,
    Sysctl,
    Veth,
    VethEnd,
    Vxlan,
    value_key,
)

VXLAN_IFNAME = "contiv-vxlan"


def _keyed(values: list[BaseModel]) -> dict[str, BaseModel]:
    result: dict[str, BaseModel] = {}
    for value in values:
        key = value_key(value)  # derived from the model: no descriptor needed
        if key in result and result[key] != value:
            raise ValueError(f"two different values rendered under {key}")
        result[key] = value
    return result


def host_ifname(pod: PodIntent) -> str:
    """Name of the node-side veth end: ``cv`` + 12 hex digits of the container's hash."""
    return "cv" + short_hash(f"{pod.container_id}/{pod.interface_name}")


def make(config: IPNetConfig) -> Renderer:
    """The renderer of ``ipnet.dataplane: linux`` (see :func:`plugins.ipnet.renderer.make_renderer`)."""
    return LinuxRenderer(config.node_namespace)


class LinuxRenderer:
    """Renders ipnet intent for the Linux dataplane; ``node_namespace`` "" is the agent's own."""

    name = "linux"
    supports_stn = False

    def __init__(self, node_namespace: str = "") -> None:
        self.node_namespace = node_namespace

    def pod_interface_name(self, pod: PodIntent) -> str:
        """The node-side veth end."""
        return host_ifname(pod)

    def outbound_interfaces(self, vxlan: bool) -> tuple[str, ...]:
        """None: policies filter the node's forward path (nftables), not its interfaces."""
        return ()

    def host_interface(self) -> str:
        """None: the node's namespace is the dataplane."""
        return ""

    def use_stolen_nic(self, nic: StolenNic) -> None:
        raise ValueError("ipnet.stn: the linux renderer has no STN mode (STN needs dataplane: vpp)")

    def render_node(self, node: NodeIntent) -> Mapping[str, BaseModel]:
        ns = self.node_namespace
        values: list[BaseModel] = [Sysctl(namespace=ns, name="net.ipv4.ip_forward", value="1")]
        if node.transport is Transport.VXLAN:
            values += [
                Vxlan(namespace=ns, ifname=VXLAN_IFNAME, vni=node.vni, local=node.node_ip.ip,
                      mac=node.vxlan_mac, mtu=node.mtu),
                InterfaceAddress(namespace=ns, ifname=VXLAN_IFNAME, address=node.vxlan_ip),
            ]
        return _keyed(values)

    def result_host_interfaces(self, pod: PodIntent) -> list[tuple[str, str]]:
        """The node-side veth end (its MAC is the gateway MAC)."""
        return [(host_ifname(pod), pod.gateway_mac)]

    def render_pod(self, node: NodeIntent, pod: PodIntent) -> Mapping[str, BaseModel]:
        ns, pod_ns = self.node_namespace, pod.netns_path
        host_if, pod_if = host_ifname(pod), pod.interface_name
        values: list[BaseModel] = [
            Veth(
                name=f"pod-{host_if[2:]}",
                end1=VethEnd(namespace=pod_ns, ifname=pod_if, mac=pod.pod_mac, mtu=pod.mtu),
                end2=VethEnd(namespace=ns, ifname=host_if, mac=pod.gateway_mac, mtu=pod.mtu),
            ),
            InterfaceAddress(namespace=pod_ns, ifname=pod_if, address=pod.ip_address),
            # The gateway address on every node-side end: what the pod's neighbour entry and
            # the node's replies to the pod use. A /32 adds no subnet route.
            InterfaceAddress(namespace=ns, ifname=host_if,
                             address=IPv4Interface(f"{pod.gateway}/32")),
            Route(namespace=ns, dst=pod.node_route.dst, gateway=pod.node_route.gateway,
                  dev=host_if),
            Neighbour(namespace=ns, ifname=host_if, ip=pod.ip_address.ip, mac=pod.pod_mac),
        ]
        for route in pod.pod_routes:
            # onlink: the default route does not have to wait for the link route to the gateway.
            values.append(Route(namespace=pod_ns, dst=route.dst, gateway=route.gateway,
                                dev=pod_if, onlink=route.gateway is not None))
        for neighbour in pod.pod_neighbours:
            values.append(Neighbour(namespace=pod_ns, ifname=pod_if, ip=neighbour.ip,
                                    mac=neighbour.mac))
        return _keyed(values)

    def render_remote_node(
        self, node: NodeIntent, remote: RemoteNodeIntent
    ) -> Mapping[str, BaseModel]:
        ns = self.node_namespace
        values: list[BaseModel] = []
        if remote.transport is Transport.VXLAN:
            values += [
                Neighbour(namespace=ns, ifname=VXLAN_IFNAME, ip=remote.vxlan_ip,
                          mac=remote.vxlan_mac),
                FdbEntry(namespace=ns, ifname=VXLAN_IFNAME, mac=remote.vxlan_mac,
                         dst=remote.node_ip),
            ]
            values += [
                Route(namespace=ns, dst=net, gateway=remote.vxlan_ip, dev=VXLAN_IFNAME,
                      onlink=True)
                for net in remote.networks
            ]
        else:
            values += [
                Route(namespace=ns, dst=net, gateway=remote.node_ip, dev_is_ours=False)
                for net in remote.networks
            ]
        return _keyed(values)
