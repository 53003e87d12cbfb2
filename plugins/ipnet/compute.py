"""Pure functions computing the connectivity intent from the address plan (no I/O, no state)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_interface

from plugins.ipam.api import NodeAddressPlan
from plugins.ipnet.intent import (
    DEFAULT_MTU,
    DEFAULT_VNI,
    NeighbourIntent,
    NodeIntent,
    PodIntent,
    RemoteNodeIntent,
    RouteIntent,
    Transport,
)

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


class IntentError(ValueError):
    """The inputs cannot give a consistent intent (e.g. a pod IP outside the node subnet)."""


def fnv1a_32(data: bytes) -> int:
    """FNV-1a, 32 bits (Contiv derives interface MACs from it)."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def _mac(prefix: str, value: int) -> str:
    return prefix + ":".join(f"{b:02x}" for b in value.to_bytes(4, "big"))


def pod_macs(container_id: str, interface_name: str) -> tuple[str, str]:
    """(pod-side MAC, gateway-side MAC): ``02:fe:`` + the FNV-1a hash, and its bitwise NOT."""
    digest = fnv1a_32(f"{container_id}/{interface_name}".encode())
    return _mac("02:fe:", digest), _mac("02:fe:", ~digest & 0xFFFFFFFF)


def vxlan_mac(node_id: int) -> str:
    """The overlay MAC of a node: ``12:2b:`` + the 4-byte node ID (Contiv's BVI MAC)."""
    if not 0 < node_id < 1 << 32:
        raise IntentError(f"node ID {node_id} out of range")
    return _mac("12:2b:", node_id)


def node_intent(
    plan: NodeAddressPlan,
    node_name: str,
    *,
    node_ip: IPv4Interface | None = None,
    transport: Transport = Transport.VXLAN,
    vni: int = DEFAULT_VNI,
    mtu: int = DEFAULT_MTU,
) -> NodeIntent:
    """This node's base intent; ``node_ip`` overrides the plan's (a published/configured IP)."""
    return NodeIntent(
        node_id=plan.node_id,
        node_name=node_name,
        pod_subnet=plan.pod_subnet,
        pod_gateway=plan.pod_gateway,
        pod_network=plan.pod_network,
        host_interconnect_subnet=plan.host_interconnect_subnet,
        node_ip=node_ip or plan.node_ip,
        vxlan_ip=plan.vxlan_ip,
        vxlan_mac=vxlan_mac(plan.node_id),
        vni=vni,
        transport=transport,
        mtu=mtu,
    )


def pod_intent(
    node: NodeIntent,
    *,
    pod_name: str,
    pod_namespace: str,
    container_id: str,
    netns_path: str,
    ip: IPv4Address,
    interface_name: str = "eth0",
) -> PodIntent:
    """One pod's intent: eth0 with ip/32, a link route to the gateway, default via it."""
    subnet = node.pod_subnet
    if ip not in subnet:
        raise IntentError(f"pod {pod_namespace}/{pod_name}: IP {ip} is not in the node subnet "
                          f"{subnet}")
    if ip in (subnet.network_address, subnet.broadcast_address, node.pod_gateway):
        raise IntentError(f"pod {pod_namespace}/{pod_name}: IP {ip} is reserved in {subnet}")
    pod_mac, gateway_mac = pod_macs(container_id, interface_name)
    gateway = node.pod_gateway
    return PodIntent(
        pod_name=pod_name,
        pod_namespace=pod_namespace,
        container_id=container_id,
        netns_path=netns_path,
        interface_name=interface_name,
        ip_address=IPv4Interface(f"{ip}/32"),
        gateway=gateway,
        pod_mac=pod_mac,
        gateway_mac=gateway_mac,
        mtu=node.mtu,
        pod_routes=(
            RouteIntent(dst=IPv4Network(f"{gateway}/32")),
            RouteIntent(dst=IPv4Network("0.0.0.0/0"), gateway=gateway),
        ),
        pod_neighbours=(NeighbourIntent(ip=gateway, mac=gateway_mac),),
        node_route=RouteIntent(dst=IPv4Network(f"{ip}/32")),
    )


def remote_node_intent(
    node: NodeIntent,
    remote_plan: NodeAddressPlan,
    remote_name: str,
    *,
    published_ips: list[IPv4Interface] | tuple[IPv4Interface, ...] = (),
    mgmt_addresses: list[str] | tuple[str, ...] = (),
) -> RemoteNodeIntent:
    """How this node reaches another: its published IP (or the planned one) as tunnel end.

    Routed behind it: its pod subnet, its host subnet and its IPv4 management addresses as /32,
    except addresses that are the tunnel end itself or belong to this node (routing those
    into the tunnel would cut the tunnel).
    """
    if remote_plan.node_id == node.node_id:
        raise IntentError(f"node {remote_name} has this node's ID {node.node_id}")
    remote_ip = published_ips[0].ip if published_ips else remote_plan.node_ip.ip
    networks: list[IPv4Network] = [remote_plan.pod_subnet, remote_plan.host_interconnect_subnet]
    own = {node.node_ip.ip, node.vxlan_ip.ip}
    for text in mgmt_addresses:
        try:
            address = ip_interface(text.strip()).ip
        except ValueError:
            continue  # not an address (or a name): nothing to route
        if address.version != 4 or address == remote_ip or address in own:
            continue
        assert isinstance(address, IPv4Address)
        net = IPv4Network(f"{address}/32")
        if not any(address in covered for covered in networks) and net not in networks:
            networks.append(net)
    return RemoteNodeIntent(
        node_id=remote_plan.node_id,
        node_name=remote_name,
        node_ip=remote_ip,
        vxlan_ip=remote_plan.vxlan_ip.ip,
        vxlan_mac=vxlan_mac(remote_plan.node_id),
        vni=node.vni,
        transport=node.transport,
        networks=tuple(networks),
    )
