"""Value models of the VPP dataplane (one per descriptor) and their keys.

Ownership marks: every interface we create or adopt carries the VPP tag ``cv:<name>``, every
VRF table the name ``cv:<label>``, every bridge domain the ``bd_tag`` ``cv:<name>``. Routes,
neighbours and L2 FIB entries have no tag in VPP; they are ours when they hang off an object of
ours (see the descriptors). Keys follow vpp-agent's layout (``config/vpp/v2/interfaces/...``).
"""

from __future__ import annotations

import enum
import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plugins.kvscheduler.api import ModelSpec

#: Prefix of the VPP tag / table name / bd_tag marking objects the agent owns.
TAG_PREFIX = "cv:"
#: VPP's "no index" (~0).
NO_INDEX = 0xFFFFFFFF

INTERFACE_SPEC = ModelSpec("vpp", "v2", "interfaces")
ADDRESS_SPEC = ModelSpec("vpp", "v2", "interface-address")
INTERFACE_VRF_SPEC = ModelSpec("vpp", "v2", "interface-vrf")
UNNUMBERED_SPEC = ModelSpec("vpp", "v2", "unnumbered")
VRF_SPEC = ModelSpec("vpp", "v2", "vrf-table")
ROUTE_SPEC = ModelSpec("vpp", "v2", "route")
NEIGHBOUR_SPEC = ModelSpec("vpp", "v2", "arp")
BD_SPEC = ModelSpec("vpp/l2", "v2", "bridge-domain")
BD_INTERFACE_SPEC = ModelSpec("vpp/l2", "v2", "bd-interface")
FIB_SPEC = ModelSpec("vpp/l2", "v2", "fib")

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,60}$"
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _check_mac(value: str) -> str:
    value = value.lower()
    if value and not _MAC.match(value):
        raise ValueError(f"bad MAC address {value!r} (expected aa:bb:cc:dd:ee:ff)")
    return value


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def interface_key(name: str) -> str:
    return INTERFACE_SPEC.key_prefix + name


def vrf_key(vrf: int) -> str:
    return VRF_SPEC.key_prefix + str(vrf)


def interface_vrf_key(name: str, vrf: int) -> str:
    return f"{INTERFACE_VRF_SPEC.key_prefix}{name}/vrf/{vrf}"


def address_key(interface: str, address: IPv4Interface) -> str:
    return f"{ADDRESS_SPEC.key_prefix}{interface}/{address}"


def unnumbered_key(interface: str) -> str:
    return UNNUMBERED_SPEC.key_prefix + interface


def route_key(vrf: int, dst: IPv4Network) -> str:
    return f"{ROUTE_SPEC.key_prefix}{vrf}/{dst}"


def neighbour_key(interface: str, ip: IPv4Address) -> str:
    return f"{NEIGHBOUR_SPEC.key_prefix}{interface}/{ip}"


def bd_key(name: str) -> str:
    return BD_SPEC.key_prefix + name


def bd_interface_key(bd: str, interface: str) -> str:
    return f"{BD_INTERFACE_SPEC.key_prefix}{bd}/{interface}"


def fib_key(bd: str, mac: str) -> str:
    return f"{FIB_SPEC.key_prefix}{bd}/{mac.lower()}"


# ------------------------------------------------------------------------------ interfaces


class InterfaceType(enum.StrEnum):
    LOOPBACK = "loopback"
    #: A virtio TAP (``tap_create_v3``); needs /dev/vhost-net on the host.
    TAP = "tap"
    #: A host interface on one end of a veth pair (``af_packet_create_v3``), named ``host-<if>``.
    AF_PACKET = "af_packet"
    VXLAN = "vxlan"
    #: An interface VPP already has (a NIC): adopted by tagging, never created or deleted.
    EXISTING = "existing"


class TapLink(_Value):
    """The Linux side VPP creates for a TAP."""

    host_if_name: str = Field(min_length=1, max_length=15)
    #: Network namespace of the Linux side (name under /var/run/netns or a path); "" = VPP's.
    host_namespace: str = ""
    #: MTU of the Linux side; 0 = VPP's default.
    host_mtu: int = Field(default=0, ge=0, le=65535)
    #: MAC of the Linux side; "" = random.
    host_mac: str = ""
    rx_ring_size: int = Field(default=256, ge=0)
    tx_ring_size: int = Field(default=256, ge=0)
    #: A property key to derive while the TAP exists (lets Linux values in the pod wait for it).
    host_link_property: str = ""
    #: Interface alias set on the Linux side after creation (the Linux descriptors' ownership
    #: mark), so Linux values (addresses, routes, neighbours) may configure it; "" = none.
    host_alias: str = Field(default="", max_length=250)

    _host_mac = field_validator("host_mac")(_check_mac)


class AfPacketLink(_Value):
    """The existing Linux interface an af_packet interface attaches to (a veth end).

    VPP opens a TPACKET_V3 socket on it; ``offload`` and ``qdisc_bypass`` are
    ``af_packet_create_v3`` flags (VPP's dump does not report them: read back from
    ``show hardware-interfaces``, a change re-creates the interface).
    """

    host_if_name: str = Field(min_length=1, max_length=15)
    #: The key of the value that creates the Linux interface (the interface waits for it).
    host_link_key: str = ""
    #: ``AF_PACKET_API_FLAG_CKSUM_GSO``: packets carry a virtio-net header both ways, so VPP takes
    #: partial checksums and TSO/GSO frames from the kernel and hands them back as such (VPP
    #: enables it only if the Linux interface has transmit checksum or GSO offload on at creation).
    offload: bool = False
    #: ``AF_PACKET_API_FLAG_QDISC_BYPASS``: VPP's transmits skip the Linux interface's qdisc.
    qdisc_bypass: bool = False


class VxlanLink(_Value):
    src: IPv4Address
    dst: IPv4Address
    vni: int = Field(ge=1, lt=1 << 24)
    #: VRF of the underlay (where the encapsulated packets are routed).
    encap_vrf: int = Field(default=0, ge=0)


class Interface(_Value):
    """A VPP interface and its admin state (VRF, addresses, unnumbered are values of their own)."""

    name: str = Field(pattern=_NAME)
    type: InterfaceType
    enabled: bool = True
    #: MAC address; "" lets VPP choose.
    mac: str = ""
    tap: TapLink | None = None
    afpacket: AfPacketLink | None = None
    vxlan: VxlanLink | None = None
    #: For EXISTING: VPP's name of the interface (e.g. ``GigabitEthernet0/8/0``).
    vpp_name: str = ""

    _mac = field_validator("mac")(_check_mac)

    @model_validator(mode="after")
    def _consistent(self) -> Interface:
        links = {InterfaceType.TAP: self.tap, InterfaceType.AF_PACKET: self.afpacket, InterfaceType.VXLAN: self.vxlan}
        for kind, link in links.items():
            if (self.type == kind) != (link is not None):
                raise ValueError(
                    f"interface {self.name}: field {kind.value!r} must be set exactly for type {kind.value}"
                )
        if (self.type == InterfaceType.EXISTING) != bool(self.vpp_name):
            raise ValueError(f"interface {self.name}: vpp_name must be set exactly for type existing")
        return self

    @property
    def tag(self) -> str:
        return TAG_PREFIX + self.name


class InterfaceVrf(_Value):
    """The interface is bound to IPv4 table ``vrf`` (>= 1; table 0 is the default binding)."""

    interface: str
    vrf: int = Field(ge=1)


class InterfaceAddress(_Value):
    """One IPv4 address of an interface; ``vrf`` is the interface's table (set before the address)."""

    interface: str
    address: IPv4Interface
    vrf: int = Field(default=0, ge=0)


class Unnumbered(_Value):
    """The interface borrows the addresses of ``target`` (``sw_interface_set_unnumbered``)."""

    interface: str
    target: str

    @model_validator(mode="after")
    def _not_self(self) -> Unnumbered:
        if self.interface == self.target:
            raise ValueError(f"interface {self.interface}: cannot be unnumbered to itself")
        return self


class HostLinkProperty(_Value):
    """Derived property (no descriptor): the Linux side of a TAP exists."""

    namespace: str
    ifname: str


# ------------------------------------------------------------------------------ L3


class VrfTable(_Value):
    """An IPv4 FIB table (VRF); table 0 always exists and is never managed."""

    id: int = Field(ge=1, lt=NO_INDEX)
    label: str = Field(min_length=1, max_length=60)


class RouteType(enum.StrEnum):
    #: Forward via an interface and/or a next hop.
    NORMAL = "normal"
    #: Look the destination up again in another VRF (``via_vrf``).
    INTER_VRF = "inter-vrf"
    #: Drop matching packets.
    DROP = "drop"


class Route(_Value):
    """One IPv4 route (one path) in a VRF; one route per (VRF, destination)."""

    vrf: int = Field(default=0, ge=0)
    dst: IPv4Network
    type: RouteType = RouteType.NORMAL
    outgoing_interface: str = ""
    next_hop: IPv4Address | None = None
    via_vrf: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Route:
        if self.type == RouteType.NORMAL and not (self.outgoing_interface or self.next_hop):
            raise ValueError(f"route {self.dst}: a normal route needs outgoing_interface or next_hop")
        if self.type != RouteType.NORMAL and (self.outgoing_interface or self.next_hop):
            raise ValueError(f"route {self.dst}: {self.type.value} routes take no interface or next hop")
        if self.type == RouteType.INTER_VRF and self.via_vrf == self.vrf:
            raise ValueError(f"route {self.dst}: via_vrf must differ from vrf")
        if self.type != RouteType.INTER_VRF and self.via_vrf:
            raise ValueError(f"route {self.dst}: via_vrf only for inter-vrf routes")
        return self


class Neighbour(_Value):
    """A static IP neighbour (ARP entry) on one of our interfaces."""

    interface: str
    ip: IPv4Address
    mac: str

    _mac = field_validator("mac")(_check_mac)


# ------------------------------------------------------------------------------ L2


class BridgeDomain(_Value):
    """An L2 bridge domain (members are :class:`BridgeDomainInterface` values)."""

    name: str = Field(pattern=_NAME)
    id: int = Field(ge=1, lt=1 << 24)
    flood: bool = True
    unknown_unicast_flood: bool = True
    forward: bool = True
    learn: bool = True
    arp_termination: bool = False
    mac_age: int = Field(default=0, ge=0, le=255)

    @property
    def tag(self) -> str:
        return TAG_PREFIX + self.name


class BridgeDomainInterface(_Value):
    """``interface`` is a member of bridge domain ``bridge_domain`` (id ``bd_id``)."""

    bridge_domain: str
    bd_id: int = Field(ge=1, lt=1 << 24)
    interface: str
    #: Bridge virtual interface (VPP allows one per bridge domain; a loopback).
    bvi: bool = False
    #: Split-horizon group.
    shg: int = Field(default=0, ge=0, le=255)


class L2FibEntry(_Value):
    """A static L2 FIB entry: frames to ``mac`` in the bridge domain go out ``outgoing_interface``."""

    bridge_domain: str
    bd_id: int = Field(ge=1, lt=1 << 24)
    mac: str
    outgoing_interface: str
    bvi: bool = False

    _mac = field_validator("mac")(_check_mac)


# ------------------------------------------------------------------------------ ACL

ACL_SPEC = ModelSpec("vpp/acls", "v2", "acl")
ACL_INTERFACE_SPEC = ModelSpec("vpp/acls", "v2", "interface")


def acl_key(name: str) -> str:
    return ACL_SPEC.key_prefix + name


def acl_interface_key(interface: str) -> str:
    return ACL_INTERFACE_SPEC.key_prefix + interface


class AclAction(enum.IntEnum):
    DENY = 0
    PERMIT = 1
    #: Permit and let the reverse direction of the session pass too.
    REFLECT = 2


class AclRule(_Value):
    """One rule of an ACL (IPv4); ports are ICMP type/code ranges for ICMP."""

    action: AclAction
    src: IPv4Network = IPv4Network("0.0.0.0/0")
    dst: IPv4Network = IPv4Network("0.0.0.0/0")
    #: IP protocol number; 0 = any.
    proto: int = Field(default=0, ge=0, le=255)
    src_first: int = Field(default=0, ge=0, le=65535)
    src_last: int = Field(default=65535, ge=0, le=65535)
    dst_first: int = Field(default=0, ge=0, le=65535)
    dst_last: int = Field(default=65535, ge=0, le=65535)
    tcp_flags_mask: int = Field(default=0, ge=0, le=255)
    tcp_flags_value: int = Field(default=0, ge=0, le=255)

    @model_validator(mode="after")
    def _ranges(self) -> AclRule:
        if self.src_first > self.src_last or self.dst_first > self.dst_last:
            raise ValueError(f"ACL rule {self}: a port range ends before it starts")
        return self


class Acl(_Value):
    """An ACL (``acl_add_replace``), tagged ``cv:<name>``; its rules are replaced in place."""

    name: str = Field(pattern=_NAME)
    rules: tuple[AclRule, ...] = Field(min_length=1)

    @property
    def tag(self) -> str:
        return TAG_PREFIX + self.name


class AclInterface(_Value):
    """The ACLs applied to one interface, in order: ``input`` then ``output``."""

    interface: str
    input: tuple[str, ...] = ()
    output: tuple[str, ...] = ()
