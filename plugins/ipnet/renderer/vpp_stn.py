"""STN mode of the VPP renderer (contiv.md 3.7): the node's values when VPP owns the only NIC.

Applied to the normal node values of :class:`~plugins.ipnet.renderer.vpp.VppRenderer`:

* the main interface is the stolen NIC: an af_packet interface on the stolen Linux link (or,
  where contiv-stn unbound a PCI device, the VPP interface named by ``vpp.main_interface``)
  with the NIC's addresses (the node IP first);
* VPP's end of the host interconnect has no address of its own: it is unnumbered to the NIC;
  the host side (``vpp1``) carries the NIC's addresses instead, so the host keeps its address;
* an STN rule punts traffic for the node IP that VPP does not handle to the host interconnect,
  and proxy ARP on it answers for the NIC's subnet, so the host reaches its old gateway and
  neighbours through VPP;
* the NIC's routes are replayed on VPP (via the NIC) and on the host (via ``vpp1``); the pod
  network is reached via the old default gateway (answered by VPP's proxy ARP).
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Interface

from pydantic import BaseModel

from plugins.ipnet.intent import NodeIntent
from plugins.ipnet.renderer.vpp import MAIN_VRF, Values
from plugins.ipnet.stn import StolenNic
from plugins.linux import models as lx
from plugins.vpp import model as vpp
from plugins.vpp.descriptors.stn import (
    ProxyArpInterface,
    ProxyArpRange,
    StnRule,
    proxy_arp_interface_key,
    proxy_arp_range_key,
    stn_rule_key,
)

MAIN_NIC = "main-nic"


def _linux_key(value: BaseModel) -> str:
    return lx.value_key(value)


def host_gateway(stolen: StolenNic) -> IPv4Address:
    """The host's next hop into VPP: the old default gateway, else another address of the subnet."""
    if stolen.gateway is not None:
        return stolen.gateway
    net = stolen.node_ip.network
    return next(h for h in net.hosts() if h != stolen.node_ip.ip)


def apply_stn(
    values: Mapping[str, BaseModel], node: NodeIntent, stolen: StolenNic, *, main_interface: str,
    host_ifname: str, namespace: str,
) -> dict[str, BaseModel]:
    """The node values in STN mode (see the module docstring)."""
    items = dict(values)
    hosts = list(node.host_interconnect_subnet.hosts())
    prefix = node.host_interconnect_subnet.prefixlen
    vpp_ip, host_ip = IPv4Interface(f"{hosts[0]}/{prefix}"), IPv4Interface(f"{hosts[1]}/{prefix}")
    interconnect = "tap-vpp2" if vpp.interface_key("tap-vpp2") in items else "afpacket-vpp2"
    # What the normal rendering puts where STN puts something else.
    for name in ("loopbackNIC", MAIN_NIC):
        items.pop(vpp.interface_key(name), None)
        items.pop(vpp.address_key(name, node.node_ip), None)
    items.pop(vpp.address_key(interconnect, vpp_ip), None)
    items.pop(_linux_key(lx.InterfaceAddress(namespace=namespace, ifname=host_ifname, address=host_ip)), None)
    items.pop(_linux_key(lx.Route(namespace=namespace, dst=node.pod_network, gateway=vpp_ip.ip, dev=host_ifname)),
              None)

    out = Values()
    out.items = items
    if stolen.pci_address and main_interface:
        nic = vpp.Interface(name=MAIN_NIC, type=vpp.InterfaceType.EXISTING, vpp_name=main_interface)
    else:
        link = vpp.AfPacketLink(host_if_name=stolen.interface)
        nic = vpp.Interface(name=MAIN_NIC, type=vpp.InterfaceType.AF_PACKET, afpacket=link)
    out.interface(nic, addresses=stolen.addresses)
    out.put(vpp.unnumbered_key(interconnect), vpp.Unnumbered(interface=interconnect, target=MAIN_NIC))
    out.put(stn_rule_key(stolen.node_ip.ip), StnRule(ip_address=stolen.node_ip.ip, interface=interconnect))
    out.put(proxy_arp_interface_key(interconnect), ProxyArpInterface(interface=interconnect))
    for address in stolen.addresses:
        net = address.network
        if net.prefixlen < 31:
            arp = ProxyArpRange(vrf=MAIN_VRF, low=net.network_address + 1, high=net.broadcast_address - 1)
            out.put(proxy_arp_range_key(arp), arp)
        out.linux(lx.InterfaceAddress(namespace=namespace, ifname=host_ifname, address=address))
    connected = {a.network for a in stolen.addresses}
    for route in stolen.routes:
        if route.dst in connected:
            continue
        if route.table == 254:
            out.route(vpp.Route(vrf=MAIN_VRF, dst=route.dst, outgoing_interface=MAIN_NIC, next_hop=route.gateway))
        out.linux(lx.Route(namespace=namespace, dst=route.dst, gateway=route.gateway, dev=host_ifname,
                           table=route.table, metric=route.metric))
    out.linux(lx.Route(namespace=namespace, dst=node.pod_network, gateway=host_gateway(stolen), dev=host_ifname))
    return out.items
