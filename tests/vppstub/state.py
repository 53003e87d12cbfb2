"""The dataplane state the stand-in keeps: interfaces, FIB tables, routes, neighbours, L2."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from tests.vppstub.errors import INVALID_SW_IF_INDEX, ApiError

NO_INDEX = 0xFFFFFFFF
IPv4If = ipaddress.IPv4Interface
IPv4Net = ipaddress.IPv4Network

# Routes VPP installs in every IPv4 table (source "special", always DROP); they cannot be removed.
SPECIAL_PREFIXES = (
    "0.0.0.0/0",
    "0.0.0.0/32",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
)


@dataclass
class Interface:
    sw_if_index: int
    name: str
    dev_type: str
    mac: str
    tag: str = ""
    admin_up: bool = False
    table_id: int = 0
    addresses: list[IPv4If] = field(default_factory=list)
    unnumbered_to: int | None = None
    bd_id: int | None = None
    shg: int = 0
    is_bvi: bool = False
    # type-specific attributes (tap: host_if_name/namespace/mtu, af_packet: host_if_name, vxlan: ...)
    link: dict[str, Any] = field(default_factory=dict)


@dataclass
class Route:
    """An API-sourced route: its paths as the client gave them (decoded fib_path tuples)."""

    table_id: int
    prefix: IPv4Net
    paths: list[Any]


@dataclass
class BridgeDomain:
    bd_id: int
    flags: dict[str, Any]
    tag: str = ""


@dataclass
class VPPState:
    """Everything a restart loses."""

    interfaces: dict[int, Interface] = field(default_factory=dict)
    tables: dict[int, str] = field(default_factory=lambda: {0: "ipv4-VRF:0"})
    routes: dict[tuple[int, IPv4Net], Route] = field(default_factory=dict)
    neighbors: dict[tuple[int, str], tuple[str, int]] = field(default_factory=dict)
    bridge_domains: dict[int, BridgeDomain] = field(default_factory=dict)
    l2fib: dict[tuple[int, str], tuple[int, bool, bool]] = field(default_factory=dict)
    acls: dict[int, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    acl_lists: dict[int, tuple[list[int], list[int]]] = field(default_factory=dict)
    # STN mode: rules (IPv4 -> punt sw_if_index), proxy ARP ranges (table, low, high) and interfaces
    stn_rules: dict[str, int] = field(default_factory=dict)
    proxy_arp_ranges: set[tuple[int, str, str]] = field(default_factory=set)
    proxy_arp_interfaces: set[int] = field(default_factory=set)
    nat: Any = None  # tests.vppstub.nat.NatState once the NAT plugin is enabled
    cnat: dict[int, dict[str, Any]] = field(default_factory=dict)  # translation id -> key and translation
    next_sw_if_index: int = 1
    instances: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.interfaces[0] = Interface(0, "local0", "local", "00:00:00:00:00:00")

    def iface(self, sw_if_index: int, code: int = INVALID_SW_IF_INDEX) -> Interface:
        found = self.interfaces.get(sw_if_index)
        if found is None:
            raise ApiError(code, f"no interface with sw_if_index {sw_if_index}")
        return found

    def add_interface(self, kind: str, dev_type: str, mac: str, **link: Any) -> Interface:
        instance = self.instances.get(kind, 0)
        self.instances[kind] = instance + 1
        name = link.pop("name", None) or f"{kind}{instance}"
        index = self.next_sw_if_index
        self.next_sw_if_index += 1
        iface = Interface(index, name, dev_type, mac, link=dict(link, instance=instance))
        self.interfaces[index] = iface
        return iface

    def remove_interface(self, sw_if_index: int) -> None:
        """Drop an interface and everything VPP drops with it."""
        iface = self.interfaces.pop(sw_if_index)
        for key in [k for k in self.neighbors if k[0] == sw_if_index]:
            del self.neighbors[key]
        for key in [k for k, v in self.l2fib.items() if v[0] == sw_if_index]:
            del self.l2fib[key]
        self.acl_lists.pop(sw_if_index, None)
        self.proxy_arp_interfaces.discard(sw_if_index)
        for ip in [ip for ip, index in self.stn_rules.items() if index == sw_if_index]:
            del self.stn_rules[ip]
        if self.nat is not None:
            self.nat.features.pop(sw_if_index, None)
            self.nat.output.discard(sw_if_index)
        for other in self.interfaces.values():
            if other.unnumbered_to == sw_if_index:
                other.unnumbered_to = None
        for key, route in list(self.routes.items()):
            route.paths = [p for p in route.paths if p.sw_if_index != sw_if_index]
            if not route.paths:
                del self.routes[key]
        del iface

    def mac_for(self, sw_if_index: int) -> str:
        return f"02:fe:00:00:{(sw_if_index >> 8) & 0xFF:02x}:{sw_if_index & 0xFF:02x}"
