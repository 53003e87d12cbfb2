"""The ``vpp`` renderer: ipnet intent -> VPP values the Contiv way, pod side through Linux values.

Node (contiv.md 3.7): VRF 1 for pods (VRF 0 is the main one), the main interface (a NIC adopted
by name, or the ``loopbackNIC`` loopback) with the node IP, the pod gateway loopback
``podGwLoop`` (``10.1.N.1/24``) in the pod VRF, the host interconnect (VPP ``172.30.N.1/24``,
Linux ``vpp1`` ``172.30.N.2/24`` with a route to the pod network via VPP), inter-VRF routes
(pod VRF -> main: default and this node's host subnet; main -> pod VRF: pod network and host
network) and drop routes in the pod VRF for the pod and host networks. With VXLAN: bridge
domain ``vxlanBD`` (no learning, no flooding) with the BVI loopback ``vxlanBVI``
(``192.168.30.N/24``, ``12:2b:<N>``, pod VRF, split horizon group 1).

Pod: a VPP TAP into the pod namespace (``eth0``), or with ``pod_interface: veth`` a veth pair
with an af_packet interface on the node end (in the node namespace, where VPP runs; ``auto``
picks TAP where /dev/vhost-net exists). af_packet interfaces are TPACKET_V3 with the
virtio-net header (``af_packet_offload``: the veths keep checksum and segmentation offload, VPP
completes partial checksums and segments GSO frames) and qdisc bypass; without the header,
transmit checksum offload goes off on the pod end and on ``vpp1`` (full checksums for VPP).
In the pod VRF, unnumbered to ``podGwLoop``, MAC = the pod's gateway MAC; a static neighbour for
the pod and a /32 route to it. Inside the pod, the Linux values: the /32 address, the link
route to the gateway, the default route, a static neighbour for the gateway.

Remote node: a VXLAN tunnel (VNI 10) in the bridge domain (split horizon 1), a static neighbour
and an L2 FIB entry for its BVI MAC, routes to its networks in the pod VRF via its BVI address.
With ``nooverlay``: routes in the main VRF via its node IP.

Settings come from ``config.vpp`` (a :class:`VppRenderSettings` or a mapping) when ipnet's
config has that section, else the defaults; ``config.node_namespace`` places the node's Linux
side (``vpp1`` and its route) like it does for the Linux renderer.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from core.naming import short_hash
from plugins.ipnet.config import IPNetConfig, VppRenderSettings
from plugins.ipnet.intent import NodeIntent, PodIntent, RemoteNodeIntent, Transport
from plugins.ipnet.renderer import Renderer
from plugins.ipnet.stn import StolenNic
from plugins.linux import models as lx
from plugins.linux.descriptors.offload import LinkOffload
from plugins.vpp import model as vpp
from plugins.vpp import nat

MAIN_VRF = 0
BD_NAME = "vxlanBD"
BD_ID = 1
BVI = "vxlanBVI"
POD_GW_LOOP = "podGwLoop"
VXLAN_SHG = 1
#: VPP names af_packet interfaces ``host-<Linux name>``; such a ``main_interface`` is attached.
AF_PACKET_PREFIX = "host-"
#: The device a VPP TAP v2 needs (virtio backend in the kernel).
VHOST_NET = Path("/dev/vhost-net")


def choose_pod_interface(setting: str, vhost_net: Path = VHOST_NET) -> Literal["tap", "veth"]:
    """The pod interface mode for ``pod_interface`` = ``setting``: ``tap`` and ``veth`` as they
    are; ``auto`` = ``tap`` when ``vhost_net`` exists (a character device VPP can open), else
    ``veth`` (af_packet), as Contiv's ``useTAPInterfaces`` would have to be set by hand."""
    if setting == "tap":
        return "tap"
    if setting == "veth":
        return "veth"
    if setting != "auto":
        raise ValueError(f"pod_interface {setting!r}: expected auto, tap or veth")
    try:
        return "tap" if stat.S_ISCHR(vhost_net.stat().st_mode) else "veth"
    except OSError:
        return "veth"


def _settings(config: Any) -> VppRenderSettings:
    raw = getattr(config, "vpp", None)
    if raw is None:
        return VppRenderSettings()
    if isinstance(raw, VppRenderSettings):
        return raw
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    return VppRenderSettings.model_validate(raw)


def nat_loopback_ip(node: NodeIntent) -> IPv4Address:
    """The twice-NAT address: the last host of the node's pod subnet (Contiv's NAT loopback IP)."""
    return IPv4Address(int(node.pod_subnet.broadcast_address) - 1)


def _hash(pod: PodIntent, digits: int) -> str:
    return short_hash(f"{pod.container_id}/{pod.interface_name}", digits)


def pod_interface_name(container_id: str, interface_name: str = "eth0") -> str:
    """The VPP interface name of a pod (the policy plugin's VPP ACL renderer looks it up)."""
    return "pod-" + short_hash(f"{container_id}/{interface_name}", 16)


def _node_mac(prefix: str, node_id: int) -> str:
    return prefix + ":" + ":".join(f"{node_id >> s & 255:02x}" for s in (24, 16, 8, 0))


class Values:
    """Rendered values by key; the same key twice must carry the same value."""

    def __init__(self) -> None:
        self.items: dict[str, BaseModel] = {}

    def put(self, key: str, value: BaseModel) -> None:
        if key in self.items and self.items[key] != value:
            raise ValueError(f"two different values rendered under {key}")
        self.items[key] = value

    def linux(self, value: BaseModel) -> None:
        self.put(lx.value_key(value), value)  # derived from the model: no descriptor needed

    def interface(
        self, value: vpp.Interface, *, vrf: int = 0, addresses: tuple[IPv4Interface, ...] = (), unnumbered: str = ""
    ) -> None:
        self.put(vpp.interface_key(value.name), value)
        if vrf:
            self.put(vpp.interface_vrf_key(value.name, vrf), vpp.InterfaceVrf(interface=value.name, vrf=vrf))
        for address in addresses:
            value_address = vpp.InterfaceAddress(interface=value.name, address=address, vrf=vrf)
            self.put(vpp.address_key(value.name, address), value_address)
        if unnumbered:
            self.put(vpp.unnumbered_key(value.name), vpp.Unnumbered(interface=value.name, target=unnumbered))

    def route(self, value: vpp.Route) -> None:
        self.put(vpp.route_key(value.vrf, value.dst), value)

    def neighbour(self, value: vpp.Neighbour) -> None:
        self.put(vpp.neighbour_key(value.interface, value.ip), value)


def make(config: IPNetConfig) -> Renderer:
    """The renderer of ``ipnet.dataplane: vpp`` (see :func:`plugins.ipnet.renderer.make_renderer`)."""
    return VppRenderer(config)


class VppRenderer:
    """Renders ipnet intent for the VPP dataplane (see the module docstring)."""

    name = "vpp"
    supports_stn = True

    def __init__(self, config: Any = None, settings: VppRenderSettings | None = None) -> None:
        self.settings = settings if settings is not None else _settings(config)
        self.node_namespace: str = getattr(config, "node_namespace", "") or ""
        #: ``tap`` or ``veth``: the setting, with ``auto`` decided here (:func:`choose_pod_interface`).
        self.pod_interface = choose_pod_interface(self.settings.pod_interface, Path(self.settings.vhost_net))
        #: The NIC contiv-stn stole for VPP (STN mode, ``renderer/vpp_stn.py``); set by ipnet.
        self.stolen: StolenNic | None = None

    def use_stolen_nic(self, nic: StolenNic) -> None:
        self.stolen = nic

    # ------------------------------------------------------------------------------ node

    def render_node(self, node: NodeIntent) -> Mapping[str, BaseModel]:
        s, out = self.settings, Values()
        pod_vrf = s.pod_vrf
        out.put(vpp.vrf_key(pod_vrf), vpp.VrfTable(id=pod_vrf, label="pod"))
        if s.main_interface.startswith(AF_PACKET_PREFIX):
            # A Linux NIC in VPP's namespace, attached through af_packet by the agent.
            link = self._af_packet(s.main_interface.removeprefix(AF_PACKET_PREFIX), header=False)
            main = vpp.Interface(name="main-nic", type=vpp.InterfaceType.AF_PACKET, afpacket=link)
        elif s.main_interface:
            main = vpp.Interface(name="main-nic", type=vpp.InterfaceType.EXISTING, vpp_name=s.main_interface)
        else:
            main = vpp.Interface(name="loopbackNIC", type=vpp.InterfaceType.LOOPBACK)
        out.interface(main, addresses=(node.node_ip,))
        gateway = IPv4Interface(f"{node.pod_gateway}/{node.pod_subnet.prefixlen}")
        out.interface(
            vpp.Interface(name=POD_GW_LOOP, type=vpp.InterfaceType.LOOPBACK), vrf=pod_vrf, addresses=(gateway,)
        )
        self._host_interconnect(node, out)
        inter = vpp.RouteType.INTER_VRF
        out.route(vpp.Route(vrf=pod_vrf, dst=IPv4Network("0.0.0.0/0"), type=inter, via_vrf=MAIN_VRF))
        out.route(vpp.Route(vrf=pod_vrf, dst=node.host_interconnect_subnet, type=inter, via_vrf=MAIN_VRF))
        if node.transport is Transport.VXLAN:
            for net in (node.pod_network, s.host_network):
                out.route(vpp.Route(vrf=MAIN_VRF, dst=net, type=inter, via_vrf=pod_vrf))
                out.route(vpp.Route(vrf=pod_vrf, dst=net, type=vpp.RouteType.DROP))
            bvi = vpp.Interface(name=BVI, type=vpp.InterfaceType.LOOPBACK, mac=node.vxlan_mac)
            out.interface(bvi, vrf=pod_vrf, addresses=(node.vxlan_ip,))
            out.put(
                vpp.bd_key(BD_NAME),
                vpp.BridgeDomain(name=BD_NAME, id=BD_ID, flood=False, unknown_unicast_flood=False, learn=False),
            )
            member = vpp.BridgeDomainInterface(
                bridge_domain=BD_NAME, bd_id=BD_ID, interface=BVI, bvi=True, shg=VXLAN_SHG
            )
            out.put(vpp.bd_interface_key(BD_NAME, BVI), member)
        else:
            out.route(vpp.Route(vrf=MAIN_VRF, dst=node.pod_subnet, type=inter, via_vrf=pod_vrf))
        if s.nat:
            self._node_nat(node, main.name, out)
        if self.stolen is not None:
            from plugins.ipnet.renderer.vpp_stn import apply_stn  # it builds on this module

            return apply_stn(out.items, node, self.stolen, main_interface=s.main_interface,
                             host_ifname=s.host_ifname, namespace=self.node_namespace)
        return out.items

    def outbound_interfaces(self, vxlan: bool = True) -> tuple[str, ...]:
        """The node's interfaces traffic leaves it by (the policy renderer's global table):
        the main interface, the host interconnect and, with VXLAN, the BVI."""
        s = self.settings
        main = "main-nic" if s.main_interface or self.stolen is not None else "loopbackNIC"
        host = "tap-vpp2" if self.pod_interface == "tap" else "afpacket-vpp2"
        return (main, host, BVI) if vxlan else (main, host)

    def host_interface(self) -> str:
        """The node namespace's end of the host interconnect (``host_ifname``)."""
        return self.settings.host_ifname

    def _node_nat(self, node: NodeIntent, main: str, out: Values) -> None:
        """The node's NAT44 (contiv.md 3.8 ``Nat44Global`` and ``DNAT-identities``)."""
        s = self.settings
        out.put(nat.GLOBAL_KEY, nat.Nat44Global())
        snat = nat.Nat44Address(first=node.node_ip.ip)
        twice = nat.Nat44Address(first=nat_loopback_ip(node), twice_nat=True)
        for pool in (snat, twice):
            out.put(nat.nat_address_key(pool), pool)
        for ident in (
            nat.Nat44Identity(ip=node.node_ip.ip, protocol="udp", port=4789, label="identities"),
            nat.Nat44Identity(ip=node.node_ip.ip, label="identities"),
            nat.Nat44Identity(ip=node.node_ip.ip, vrf=s.pod_vrf, label="identities"),
        ):
            out.put(nat.nat_identity_key(ident), ident)
        out.put(nat.nat_interface_key(main), nat.Nat44Interface(interface=main, output=True))
        host = "tap-vpp2" if self.pod_interface == "tap" else "afpacket-vpp2"
        for name in [host] + ([BVI] if node.transport is Transport.VXLAN else []):
            out.put(nat.nat_interface_key(name), nat.Nat44Interface(interface=name, inside=True, outside=True))

    def _host_interconnect(self, node: NodeIntent, out: Values) -> None:
        s, ns = self.settings, self.node_namespace
        hosts = list(node.host_interconnect_subnet.hosts())
        prefix = node.host_interconnect_subnet.prefixlen
        vpp_ip, host_ip = IPv4Interface(f"{hosts[0]}/{prefix}"), IPv4Interface(f"{hosts[1]}/{prefix}")
        mac = _node_mac("34:3c", node.node_id)
        if self.pod_interface == "tap":
            key = vpp.interface_key("tap-vpp2")
            tap = vpp.TapLink(
                host_if_name=s.host_ifname,
                host_namespace=ns,
                host_mtu=node.mtu,
                host_link_property=lx.link_property_key(ns, s.host_ifname),
                host_alias=lx.ALIAS_PREFIX + key,
            )
            out.interface(
                vpp.Interface(name="tap-vpp2", type=vpp.InterfaceType.TAP, mac=mac, tap=tap), addresses=(vpp_ip,)
            )
        else:
            out.linux(
                lx.Veth(
                    name="vpp-host-interconnect",
                    end1=lx.VethEnd(namespace=ns, ifname=s.host_ifname, mtu=node.mtu),
                    end2=lx.VethEnd(namespace=ns, ifname=s.vpp_side_ifname, mtu=node.mtu),
                )
            )
            self._veth_offload(ns, s.host_ifname, out)
            link = self._af_packet(s.vpp_side_ifname, lx.link_property_key(ns, s.vpp_side_ifname))
            afp = vpp.Interface(name="afpacket-vpp2", type=vpp.InterfaceType.AF_PACKET, mac=mac, afpacket=link)
            out.interface(afp, addresses=(vpp_ip,))
        out.linux(lx.InterfaceAddress(namespace=ns, ifname=s.host_ifname, address=host_ip))
        out.linux(lx.Route(namespace=ns, dst=node.pod_network, gateway=vpp_ip.ip, dev=s.host_ifname))

    def _af_packet(self, host_if_name: str, host_link_key: str = "", header: bool = True) -> vpp.AfPacketLink:
        s = self.settings
        return vpp.AfPacketLink(
            host_if_name=host_if_name, host_link_key=host_link_key,
            offload=header and s.af_packet_offload, qdisc_bypass=s.af_packet_qdisc_bypass,
        )

    def _veth_offload(self, namespace: str, ifname: str, out: Values) -> None:
        """The offloads of a veth end whose peer VPP reads (a pod's ``eth0``, ``vpp1``): without
        the virtio-net header the kernel must compute checksums (partial ones stay unfixed);
        with it, checksums stay offloaded and only segmentation goes (unless ``af_packet_gso``)."""
        s = self.settings
        if not s.af_packet_offload:
            out.linux(LinkOffload(namespace=namespace, ifname=ifname, tx_checksum=False))
        elif not s.af_packet_gso:
            out.linux(LinkOffload(namespace=namespace, ifname=ifname, tx_checksum=True, segmentation=False))

    # ------------------------------------------------------------------------------ pods

    def pod_interface_name(self, pod: PodIntent) -> str:
        return pod_interface_name(pod.container_id, pod.interface_name)

    def result_host_interfaces(self, pod: PodIntent) -> list[tuple[str, str]]:
        """A TAP's node end lives in VPP (nothing Linux could inspect); an AF_PACKET pod's
        veth has its node end in the host namespace (kernel-chosen MAC, not reported)."""
        if self.pod_interface == "tap":
            return []
        return [(self.settings.veth_prefix + _hash(pod, 15 - len(self.settings.veth_prefix)), "")]

    def render_pod(self, node: NodeIntent, pod: PodIntent) -> Mapping[str, BaseModel]:
        s, out, node_ns = self.settings, Values(), self.node_namespace
        name, pod_ns, ifname = self.pod_interface_name(pod), pod.netns_path, pod.interface_name
        if self.pod_interface == "tap":
            tap = vpp.TapLink(
                host_if_name=ifname,
                host_namespace=pod_ns,
                host_mtu=pod.mtu,
                host_mac=pod.pod_mac,
                host_link_property=lx.link_property_key(pod_ns, ifname),
                host_alias=lx.ALIAS_PREFIX + vpp.interface_key(name),
            )
            value = vpp.Interface(name=name, type=vpp.InterfaceType.TAP, mac=pod.gateway_mac, tap=tap)
        else:
            host_end = s.veth_prefix + _hash(pod, 15 - len(s.veth_prefix))
            out.linux(
                lx.Veth(
                    name=f"vpp-{_hash(pod, 16)}",
                    end1=lx.VethEnd(namespace=pod_ns, ifname=ifname, mac=pod.pod_mac, mtu=pod.mtu),
                    end2=lx.VethEnd(namespace=node_ns, ifname=host_end, mtu=pod.mtu),
                )
            )
            self._veth_offload(pod_ns, ifname, out)
            link = self._af_packet(host_end, lx.link_property_key(node_ns, host_end))
            value = vpp.Interface(name=name, type=vpp.InterfaceType.AF_PACKET, mac=pod.gateway_mac, afpacket=link)
        out.interface(value, vrf=s.pod_vrf, unnumbered=POD_GW_LOOP)
        if s.nat:  # a pod is a client (outside) and may be a backend (inside) of services
            out.put(nat.nat_interface_key(name), nat.Nat44Interface(interface=name, inside=True, outside=True))
        out.route(vpp.Route(vrf=s.pod_vrf, dst=pod.node_route.dst, outgoing_interface=name))
        out.neighbour(vpp.Neighbour(interface=name, ip=pod.ip_address.ip, mac=pod.pod_mac))
        # The pod side, through the Linux values.
        out.linux(lx.InterfaceAddress(namespace=pod_ns, ifname=ifname, address=pod.ip_address))
        for route in pod.pod_routes:
            out.linux(
                lx.Route(
                    namespace=pod_ns, dst=route.dst, gateway=route.gateway, dev=ifname, onlink=route.gateway is not None
                )
            )
        for neighbour in pod.pod_neighbours:
            out.linux(lx.Neighbour(namespace=pod_ns, ifname=ifname, ip=neighbour.ip, mac=neighbour.mac))
        return out.items

    # ------------------------------------------------------------------------------ mesh

    def render_remote_node(self, node: NodeIntent, remote: RemoteNodeIntent) -> Mapping[str, BaseModel]:
        s, out = self.settings, Values()
        if remote.transport is not Transport.VXLAN:
            for net in remote.networks:
                out.route(vpp.Route(vrf=MAIN_VRF, dst=net, next_hop=remote.node_ip))
            return out.items
        name = f"vxlan-{remote.node_id}"
        link = vpp.VxlanLink(src=node.node_ip.ip, dst=remote.node_ip, vni=remote.vni)
        out.interface(vpp.Interface(name=name, type=vpp.InterfaceType.VXLAN, vxlan=link))
        member = vpp.BridgeDomainInterface(bridge_domain=BD_NAME, bd_id=BD_ID, interface=name, shg=VXLAN_SHG)
        out.put(vpp.bd_interface_key(BD_NAME, name), member)
        out.neighbour(vpp.Neighbour(interface=BVI, ip=remote.vxlan_ip, mac=remote.vxlan_mac))
        fib = vpp.L2FibEntry(bridge_domain=BD_NAME, bd_id=BD_ID, mac=remote.vxlan_mac, outgoing_interface=name)
        out.put(vpp.fib_key(BD_NAME, remote.vxlan_mac), fib)
        for net in remote.networks:
            out.route(vpp.Route(vrf=s.pod_vrf, dst=net, outgoing_interface=BVI, next_hop=IPv4Address(remote.vxlan_ip)))
        return out.items
