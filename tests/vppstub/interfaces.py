"""Interface messages: loopback, TAP v2, af_packet, VXLAN, tags, flags, addresses, VRF, unnumbered."""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

from plugins.linux.netns import run_in_namespace
from tests.vppstub import errors as E
from tests.vppstub import hosttap
from tests.vppstub.errors import ApiError
from tests.vppstub.state import NO_INDEX, Interface, VPPState

Reply = dict[str, Any]
ZERO_MAC = "00:00:00:00:00:00"
#: af_packet_create_v3 flags (QDISC_BYPASS, CKSUM_GSO, VERSION_2), as plugins.vpp.afpacket names them.
FLAG_QDISC_BYPASS, FLAG_CKSUM_GSO, FLAG_VERSION_2 = 1, 2, 8


class Options:
    """What the host the stand-in pretends to run on offers."""

    def __init__(
        self,
        vhost_net: bool = True,
        check_host_links: bool = True,
        create_host_taps: bool = False,
        host_namespace: str = "",
    ) -> None:
        #: Without /dev/vhost-net, tap_create_v3 fails with -11 (as on these machines).
        self.vhost_net = vhost_net
        #: af_packet_create_v3 needs the host link to exist (checked in the stand-in's netns).
        self.check_host_links = check_host_links
        #: Create a real Linux tap for every TAP (its host side, in its namespace), as VPP does.
        self.create_host_taps = create_host_taps
        #: The network namespace the stand-in "runs in" (af_packet looks for host links there).
        self.host_namespace = host_namespace


def create_loopback_instance(st: VPPState, opt: Options, req: Any) -> Reply:
    if req.is_specified:
        if any(i.name == f"loop{req.user_instance}" for i in st.interfaces.values()):
            raise ApiError(E.INSTANCE_IN_USE, f"loop{req.user_instance} exists")
        name = f"loop{req.user_instance}"
    else:
        used = {i.name for i in st.interfaces.values()}
        name = next(f"loop{n}" for n in range(1 << 16) if f"loop{n}" not in used)
    mac = str(req.mac_address)
    iface = st.add_interface("loop", "Loopback", ZERO_MAC, name=name)
    iface.mac = mac if mac != ZERO_MAC else f"de:ad:00:00:00:{iface.sw_if_index & 0xFF:02x}"
    return {"retval": 0, "sw_if_index": iface.sw_if_index}


def delete_loopback(st: VPPState, opt: Options, req: Any) -> Reply:
    iface = st.iface(req.sw_if_index)
    if iface.dev_type != "Loopback":
        raise ApiError(E.INVALID_SW_IF_INDEX, f"{iface.name} is not a loopback")
    st.remove_interface(iface.sw_if_index)
    return {"retval": 0}


def tap_create_v3(st: VPPState, opt: Options, req: Any) -> Reply:
    if not opt.vhost_net:
        raise ApiError(E.SYSCALL_ERROR_1, "open /dev/vhost-net: no such device")
    if req.host_if_name_set and not req.host_if_name:
        raise ApiError(E.INVALID_ARGUMENT, "host_if_name_set without host_if_name")
    if req.host_namespace_set:
        ns = req.host_namespace
        path = ns if "/" in ns else f"/var/run/netns/{ns}"
        if not ns or not os.path.exists(path):
            raise ApiError(E.SYSCALL_ERROR_2, f"clib_netns_open '{ns}'")
    taps = [i for i in st.interfaces.values() if i.dev_type == "virtio"]
    tap_id = req.id
    if tap_id == NO_INDEX:
        used_ids = {t.link["id"] for t in taps}
        tap_id = next(n for n in range(1 << 16) if n not in used_ids)
    elif any(t.link["id"] == tap_id for t in taps):
        raise ApiError(E.IF_ALREADY_EXISTS, f"tap{tap_id} exists")
    host_if = req.host_if_name if req.host_if_name_set else f"tap{tap_id}"
    host_ns = req.host_namespace if req.host_namespace_set else ""
    if any(t.link["host_if_name"] == host_if and t.link["host_namespace"] == host_ns for t in taps):
        raise ApiError(E.SYSCALL_ERROR_2, f"TUNSETIFF {host_if}: device busy")
    iface = st.add_interface(
        "tap",
        "virtio",
        ZERO_MAC,
        name=f"tap{tap_id}",
        id=tap_id,
        host_if_name=host_if,
        host_namespace=host_ns,
        host_mtu_size=req.host_mtu_size if req.host_mtu_set else 1500,
        tx_ring_sz=req.tx_ring_sz,
        rx_ring_sz=req.rx_ring_sz,
        tap_flags=int(req.tap_flags),
        host_mac_addr=str(req.host_mac_addr) if req.host_mac_addr_set else ZERO_MAC,
    )
    mac = str(req.mac_address)
    iface.mac = st.mac_for(iface.sw_if_index) if req.use_random_mac or mac == ZERO_MAC else mac
    iface.tag = req.tag
    if opt.create_host_taps:
        try:
            hosttap.create(host_ns, host_if, iface.link["host_mac_addr"], iface.link["host_mtu_size"])
        except OSError as err:
            st.remove_interface(iface.sw_if_index)
            raise ApiError(E.SYSCALL_ERROR_2, f"host tap {host_if}: {err}") from err
        iface.link["real"] = True
    return {"retval": 0, "sw_if_index": iface.sw_if_index}


def tap_delete_v2(st: VPPState, opt: Options, req: Any) -> Reply:
    iface = st.iface(req.sw_if_index)
    if iface.dev_type != "virtio":
        raise ApiError(E.INVALID_SW_IF_INDEX, f"{iface.name} is not a tap")
    if iface.link.get("real"):
        hosttap.delete(iface.link["host_namespace"], iface.link["host_if_name"])
    st.remove_interface(iface.sw_if_index)
    return {"retval": 0}


def af_packet_create_v3(st: VPPState, opt: Options, req: Any) -> Reply:
    name = req.host_if_name
    if not name:
        raise ApiError(E.INVALID_ARGUMENT, "host_if_name is empty")
    if int(req.mode) not in (1, 2):
        raise ApiError(E.INVALID_VALUE, f"mode {int(req.mode)}")
    if any(i.link.get("host_if_name") == name for i in st.interfaces.values() if i.dev_type == "af_packet"):
        raise ApiError(E.IF_ALREADY_EXISTS, f"host-{name} exists")  # as the real VPP answers
    if opt.check_host_links:
        try:
            run_in_namespace(opt.host_namespace, lambda: socket.if_nametoindex(name))
        except OSError:
            raise ApiError(E.INVALID_INTERFACE, f"no host interface {name}") from None
    flags = int(req.flags)
    if flags & ~(FLAG_QDISC_BYPASS | FLAG_CKSUM_GSO | FLAG_VERSION_2):
        raise ApiError(E.INVALID_VALUE, f"flags {flags:#x}")
    iface = st.add_interface("host", "af_packet", ZERO_MAC, name=f"host-{name}", host_if_name=name, flags=flags)
    mac = str(req.hw_addr)
    iface.mac = st.mac_for(iface.sw_if_index) if req.use_random_hw_addr or mac == ZERO_MAC else mac
    return {"retval": 0, "sw_if_index": iface.sw_if_index}


def af_packet_delete(st: VPPState, opt: Options, req: Any) -> Reply:
    for iface in list(st.interfaces.values()):
        if iface.dev_type == "af_packet" and iface.link["host_if_name"] == req.host_if_name:
            st.remove_interface(iface.sw_if_index)
            return {"retval": 0}
    raise ApiError(E.INVALID_INTERFACE, f"no af_packet interface on {req.host_if_name}")


def _vxlan_key(req: Any) -> tuple[str, str, int, int]:
    return (str(req.src_address), str(req.dst_address), req.vni, req.encap_vrf_id)


def vxlan_add_del_tunnel_v3(st: VPPState, opt: Options, req: Any) -> Reply:
    key = _vxlan_key(req)
    tunnels = [i for i in st.interfaces.values() if i.dev_type == "VXLAN"]
    existing = next((t for t in tunnels if t.link["key"] == key), None)
    if not req.is_add:
        if existing is None:
            raise ApiError(E.NO_SUCH_ENTRY, f"no VXLAN tunnel {key}")
        st.remove_interface(existing.sw_if_index)
        return {"retval": 0, "sw_if_index": NO_INDEX}
    if existing is not None:
        raise ApiError(E.TUNNEL_EXIST, f"VXLAN tunnel {key} exists")
    if key[0] == key[1]:
        raise ApiError(E.SAME_SRC_DST, "source and destination are the same")
    if req.vni == 0 or req.vni >= 1 << 24:
        raise ApiError(E.INVALID_VALUE, f"vni {req.vni}")
    if req.encap_vrf_id not in st.tables:
        raise ApiError(E.NO_SUCH_FIB, f"encap VRF {req.encap_vrf_id}")
    used = {t.link["instance"] for t in tunnels}
    instance = req.instance
    if instance == NO_INDEX:
        instance = next(n for n in range(1 << 16) if n not in used)
    elif instance in used:
        raise ApiError(E.INSTANCE_IN_USE, f"vxlan_tunnel{instance} exists")
    iface = st.add_interface(
        "vxlan_tunnel",
        "VXLAN",
        ZERO_MAC,
        name=f"vxlan_tunnel{instance}",
        key=key,
        src=key[0],
        dst=key[1],
        vni=req.vni,
        encap_vrf_id=req.encap_vrf_id,
        src_port=req.src_port or 4789,
        dst_port=req.dst_port or 4789,
    )
    iface.link["instance"] = instance
    iface.mac = st.mac_for(iface.sw_if_index)
    return {"retval": 0, "sw_if_index": iface.sw_if_index}


def sw_interface_tag_add_del(st: VPPState, opt: Options, req: Any) -> Reply:
    iface = st.iface(req.sw_if_index)
    if req.is_add and not req.tag:
        raise ApiError(E.INVALID_VALUE, "empty tag")
    iface.tag = req.tag if req.is_add else ""
    return {"retval": 0}


def sw_interface_set_flags(st: VPPState, opt: Options, req: Any) -> Reply:
    st.iface(req.sw_if_index).admin_up = bool(int(req.flags) & 1)
    return {"retval": 0}


def sw_interface_add_del_address(st: VPPState, opt: Options, req: Any) -> Reply:
    iface = st.iface(req.sw_if_index)
    if req.del_all:
        iface.addresses.clear()
        return {"retval": 0}
    prefix = req.prefix
    if not isinstance(prefix, ipaddress.IPv4Interface):
        raise ApiError(E.INVALID_VALUE, f"only IPv4 is kept by the stand-in, got {prefix}")
    if req.is_add:
        if prefix in iface.addresses:
            return {"retval": 0}
        for other in st.interfaces.values():
            if (
                other is not iface
                and other.table_id == iface.table_id
                and any(a.network.overlaps(prefix.network) for a in other.addresses)
            ):
                raise ApiError(
                    E.DUPLICATE_IF_ADDRESS,
                    f"{prefix} overlaps an address of {other.name}",
                )
        iface.addresses.append(prefix)
        return {"retval": 0}
    if prefix not in iface.addresses:
        raise ApiError(E.ADDRESS_NOT_FOUND_FOR_INTERFACE, f"{prefix} not on {iface.name}")
    iface.addresses.remove(prefix)
    return {"retval": 0}


def sw_interface_set_table(st: VPPState, opt: Options, req: Any) -> Reply:
    iface = st.iface(req.sw_if_index)
    if req.is_ipv6:
        iface.link["ip6_table_id"] = req.vrf_id
        return {"retval": 0}
    if req.vrf_id not in st.tables:
        raise ApiError(E.NO_SUCH_FIB, f"no IPv4 table {req.vrf_id}")
    if iface.addresses and req.vrf_id != iface.table_id:
        raise ApiError(E.ADDRESS_FOUND_FOR_INTERFACE, f"{iface.name} has addresses")
    iface.table_id = req.vrf_id
    return {"retval": 0}


def sw_interface_get_table(st: VPPState, opt: Options, req: Any) -> Reply:
    iface = st.iface(req.sw_if_index)
    vrf = iface.link.get("ip6_table_id", 0) if req.is_ipv6 else iface.table_id
    return {"retval": 0, "vrf_id": vrf}


def sw_interface_set_unnumbered(st: VPPState, opt: Options, req: Any) -> Reply:
    st.iface(req.sw_if_index)
    user = st.iface(req.unnumbered_sw_if_index, E.INVALID_SW_IF_INDEX_2)
    user.unnumbered_to = req.sw_if_index if req.is_add else None
    return {"retval": 0}


def _details(iface: Interface) -> Reply:
    return {
        "sw_if_index": iface.sw_if_index,
        "sup_sw_if_index": iface.sw_if_index,
        "l2_address": iface.mac,
        "flags": 3 if iface.admin_up else 0,
        "interface_name": iface.name,
        "interface_dev_type": iface.dev_type,
        "tag": iface.tag,
        "link_mtu": 9000,
        "mtu": [9000, 0, 0, 0],
    }


def sw_interface_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    out = []
    for iface in sorted(st.interfaces.values(), key=lambda i: i.sw_if_index):
        if req.sw_if_index not in (NO_INDEX, iface.sw_if_index):
            continue
        if req.name_filter_valid and req.name_filter not in iface.name:
            continue
        out.append(_details(iface))
    return out


def sw_interface_tap_v2_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [
        {
            "sw_if_index": i.sw_if_index,
            "id": i.link["id"],
            "tx_ring_sz": i.link["tx_ring_sz"],
            "rx_ring_sz": i.link["rx_ring_sz"],
            "host_mtu_size": i.link["host_mtu_size"],
            "host_mac_addr": i.link["host_mac_addr"],
            "tap_flags": i.link["tap_flags"],
            "dev_name": i.name,
            "host_if_name": i.link["host_if_name"],
            "host_namespace": i.link["host_namespace"],
            "host_ip4_prefix": "0.0.0.0/0",
            "host_ip6_prefix": "::/0",
        }
        for i in st.interfaces.values()
        if i.dev_type == "virtio" and req.sw_if_index in (NO_INDEX, i.sw_if_index)
    ]


def af_packet_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [
        {"sw_if_index": i.sw_if_index, "host_if_name": i.link["host_if_name"]}
        for i in st.interfaces.values()
        if i.dev_type == "af_packet"
    ]


def vxlan_tunnel_v2_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [
        {
            "sw_if_index": i.sw_if_index,
            "instance": i.link["instance"],
            "src_address": i.link["src"],
            "dst_address": i.link["dst"],
            "src_port": i.link["src_port"],
            "dst_port": i.link["dst_port"],
            "mcast_sw_if_index": NO_INDEX,
            "encap_vrf_id": i.link["encap_vrf_id"],
            "decap_next_index": 1,
            "vni": i.link["vni"],
        }
        for i in st.interfaces.values()
        if i.dev_type == "VXLAN" and req.sw_if_index in (NO_INDEX, i.sw_if_index)
    ]


def ip_address_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    if req.is_ipv6:
        return []
    iface = st.interfaces.get(req.sw_if_index)
    if iface is None:
        return []
    return [{"sw_if_index": iface.sw_if_index, "prefix": str(a)} for a in iface.addresses]


def ip_unnumbered_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [
        {"sw_if_index": i.sw_if_index, "ip_sw_if_index": i.unnumbered_to}
        for i in st.interfaces.values()
        if i.unnumbered_to is not None and req.sw_if_index in (NO_INDEX, i.sw_if_index)
    ]


def cli_inband(st: VPPState, opt: Options, req: Any) -> Reply:
    """Only ``show hardware-interfaces``, and of it only what VPP prints for af_packet features;
    anything else answers as VPP does for a command it does not know."""
    if req.cmd.split() != ["show", "hardware-interfaces"]:
        return {"retval": 0, "reply": f"unknown input `{req.cmd}'\n"}
    lines = ["              Name                Idx   Link  Hardware"]
    for i in st.interfaces.values():
        lines.append(f"{i.name:<34} {i.sw_if_index:<4} {'up' if i.admin_up else 'down':<5} {i.name}")
        if i.dev_type == "af_packet":
            flags = i.link["flags"]
            lines.append("  Linux PACKET socket interface " + ("v2" if flags & FLAG_VERSION_2 else "v3"))
            lines.append("  FEATURES:")
            if flags & FLAG_QDISC_BYPASS:
                lines.append("    qdisc-bpass-enabled")
            if flags & FLAG_CKSUM_GSO:
                lines.append("    cksum-gso-enabled")
    return {"retval": 0, "reply": "\n".join(lines) + "\n"}


HANDLERS = {
    "cli_inband": cli_inband,
    "create_loopback_instance": create_loopback_instance,
    "delete_loopback": delete_loopback,
    "tap_create_v3": tap_create_v3,
    "tap_delete_v2": tap_delete_v2,
    "af_packet_create_v3": af_packet_create_v3,
    "af_packet_delete": af_packet_delete,
    "vxlan_add_del_tunnel_v3": vxlan_add_del_tunnel_v3,
    "sw_interface_tag_add_del": sw_interface_tag_add_del,
    "sw_interface_set_flags": sw_interface_set_flags,
    "sw_interface_add_del_address": sw_interface_add_del_address,
    "sw_interface_set_table": sw_interface_set_table,
    "sw_interface_get_table": sw_interface_get_table,
    "sw_interface_set_unnumbered": sw_interface_set_unnumbered,
    "sw_interface_dump": sw_interface_dump,
    "sw_interface_tap_v2_dump": sw_interface_tap_v2_dump,
    "af_packet_dump": af_packet_dump,
    "vxlan_tunnel_v2_dump": vxlan_tunnel_v2_dump,
    "ip_address_dump": ip_address_dump,
    "ip_unnumbered_dump": ip_unnumbered_dump,
}
