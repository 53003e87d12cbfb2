"""Contiv's VPP configuration written out by hand from the address plan (node N, pods, peers)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from pydantic import BaseModel

from plugins.vpp import model as m

POD_VRF = 1


def node_mac(prefix: str, node_id: int) -> str:
    return f"{prefix}:{node_id >> 24 & 255:02x}:{node_id >> 16 & 255:02x}:{node_id >> 8 & 255:02x}:{node_id & 255:02x}"


def interface(
    value: m.Interface, *, vrf: int = 0, addresses: tuple[str, ...] = (), unnumbered: str = ""
) -> dict[str, BaseModel]:
    """An interface with its VRF binding, addresses or unnumbered source, as separate values."""
    out: dict[str, BaseModel] = {m.interface_key(value.name): value}
    if vrf:
        out[m.interface_vrf_key(value.name, vrf)] = m.InterfaceVrf(interface=value.name, vrf=vrf)
    for text in addresses:
        address = IPv4Interface(text)
        out[m.address_key(value.name, address)] = m.InterfaceAddress(interface=value.name, address=address, vrf=vrf)
    if unnumbered:
        out[m.unnumbered_key(value.name)] = m.Unnumbered(interface=value.name, target=unnumbered)
    return out


def member(bd: str, bd_id: int, name: str, *, bvi: bool = False, shg: int = 1) -> dict[str, BaseModel]:
    value = m.BridgeDomainInterface(bridge_domain=bd, bd_id=bd_id, interface=name, bvi=bvi, shg=shg)
    return {m.bd_interface_key(bd, name): value}


def route(value: m.Route) -> dict[str, BaseModel]:
    return {m.route_key(value.vrf, value.dst): value}


def node_base(node_id: int) -> dict[str, BaseModel]:
    """Base config of node ``node_id`` (no NIC: a loopback, as Contiv did)."""
    n = node_id
    LOOP, TAP = m.InterfaceType.LOOPBACK, m.InterfaceType.TAP
    values: dict[str, BaseModel] = {m.vrf_key(POD_VRF): m.VrfTable(id=POD_VRF, label="pod")}
    values |= interface(m.Interface(name="loopbackNIC", type=LOOP), addresses=(f"192.168.16.{n}/24",))
    values |= interface(m.Interface(name="podGwLoop", type=LOOP), vrf=POD_VRF, addresses=(f"10.1.{n}.1/24",))
    tap = m.Interface(
        name="tap-vpp2", type=TAP, mac=node_mac("34:3c", n), tap=m.TapLink(host_if_name="vpp1", host_mtu=1450)
    )
    values |= interface(tap, addresses=(f"172.30.{n}.1/24",))
    bvi = m.Interface(name="vxlanBVI", type=LOOP, mac=node_mac("12:2b", n))
    values |= interface(bvi, vrf=POD_VRF, addresses=(f"192.168.30.{n}/24",))
    bd = m.BridgeDomain(name="vxlanBD", id=1, flood=False, unknown_unicast_flood=False, forward=True, learn=False)
    values[m.bd_key("vxlanBD")] = bd
    values |= member("vxlanBD", 1, "vxlanBVI", bvi=True)
    for r in (
        m.Route(vrf=POD_VRF, dst=IPv4Network("0.0.0.0/0"), type=m.RouteType.INTER_VRF, via_vrf=0),
        m.Route(vrf=POD_VRF, dst=IPv4Network(f"172.30.{n}.0/24"), type=m.RouteType.INTER_VRF, via_vrf=0),
        m.Route(vrf=0, dst=IPv4Network("10.1.0.0/16"), type=m.RouteType.INTER_VRF, via_vrf=POD_VRF),
        m.Route(vrf=0, dst=IPv4Network("172.30.0.0/16"), type=m.RouteType.INTER_VRF, via_vrf=POD_VRF),
        m.Route(vrf=POD_VRF, dst=IPv4Network("10.1.0.0/16"), type=m.RouteType.DROP),
        m.Route(vrf=POD_VRF, dst=IPv4Network("172.30.0.0/16"), type=m.RouteType.DROP),
    ):
        values |= route(r)
    return values


def pod(
    node_id: int, index: int, container: str, *, netns: str = "", veth_host: str = "", pod_mac: str = ""
) -> dict[str, BaseModel]:
    """A pod with address 10.1.<node>.<index>: a TAP (or an af_packet on ``veth_host``) into the pod VRF."""
    ip = IPv4Address(f"10.1.{node_id}.{index}")
    pod_mac = pod_mac or f"02:fe:00:00:{index >> 8 & 255:02x}:{index & 255:02x}"
    name = f"pod-{container}"
    if veth_host:
        value = m.Interface(name=name, type=m.InterfaceType.AF_PACKET, afpacket=m.AfPacketLink(host_if_name=veth_host))
    else:
        tap = m.TapLink(host_if_name="eth0", host_namespace=netns, host_mtu=1450)
        value = m.Interface(name=name, type=m.InterfaceType.TAP, tap=tap)
    values = interface(value, vrf=POD_VRF, unnumbered="podGwLoop")
    values |= route(m.Route(vrf=POD_VRF, dst=IPv4Network(f"{ip}/32"), outgoing_interface=name))
    values[m.neighbour_key(name, ip)] = m.Neighbour(interface=name, ip=ip, mac=pod_mac)
    return values


def remote_node(local_id: int, remote_id: int) -> dict[str, BaseModel]:
    """The mesh part for one other node: tunnel, BD membership, ARP, L2 FIB, routes via the BVI."""
    name = f"vxlan-{remote_id}"
    link = m.VxlanLink(src=IPv4Address(f"192.168.16.{local_id}"), dst=IPv4Address(f"192.168.16.{remote_id}"), vni=10)
    values = interface(m.Interface(name=name, type=m.InterfaceType.VXLAN, vxlan=link))
    values |= member("vxlanBD", 1, name)
    mac = node_mac("12:2b", remote_id)
    bvi_ip = IPv4Address(f"192.168.30.{remote_id}")
    values[m.neighbour_key("vxlanBVI", bvi_ip)] = m.Neighbour(interface="vxlanBVI", ip=bvi_ip, mac=mac)
    values[m.fib_key("vxlanBD", mac)] = m.L2FibEntry(bridge_domain="vxlanBD", bd_id=1, mac=mac, outgoing_interface=name)
    for dst in (f"10.1.{remote_id}.0/24", f"172.30.{remote_id}.0/24"):
        values |= route(m.Route(vrf=POD_VRF, dst=IPv4Network(dst), outgoing_interface="vxlanBVI", next_hop=bvi_ip))
    return values
