"""The stand-in's state as comparable sets, and the same sets expected from VPP values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from plugins.vpp import model as m
from tests.vppstub import VPPStub

DEV_TYPES = {
    m.InterfaceType.LOOPBACK: "Loopback",
    m.InterfaceType.TAP: "virtio",
    m.InterfaceType.AF_PACKET: "af_packet",
    m.InterfaceType.VXLAN: "VXLAN",
}


def snapshot(stub: VPPStub) -> dict[str, set[Any]]:
    """Everything in the stand-in (objects of ours and API routes), keyed by kind."""
    st = stub.state
    names = {i.sw_if_index: i.tag.removeprefix(m.TAG_PREFIX) for i in st.interfaces.values()}
    out: dict[str, set[Any]] = {k: set() for k in ("interfaces", "tables", "routes", "neighbours", "bds", "fib")}
    for i in st.interfaces.values():
        if i.sw_if_index == 0:
            continue
        unnumbered = names[i.unnumbered_to] if i.unnumbered_to is not None else ""
        addresses = frozenset(str(a) for a in i.addresses)
        out["interfaces"].add((i.tag, i.dev_type, i.admin_up, i.table_id, addresses, unnumbered))
    out["tables"] = {(t, n) for t, n in st.tables.items() if t}
    for (table, prefix), route in st.routes.items():
        for p in route.paths:
            via = names.get(p.sw_if_index, "") if p.sw_if_index != m.NO_INDEX else ""
            out["routes"].add((table, str(prefix), int(p.type), via, str(p.nh.address.ip4), p.table_id))
    out["neighbours"] = {(names[idx], ip, mac) for (idx, ip), (mac, _flags) in st.neighbors.items()}
    for bd in st.bridge_domains.values():
        members = frozenset(
            (names[i.sw_if_index], i.is_bvi, i.shg) for i in st.interfaces.values() if i.bd_id == bd.bd_id
        )
        out["bds"].add((bd.tag, bd.bd_id, bd.flags["flood"], bd.flags["learn"], members))
    out["fib"] = {(bd, mac, names[idx]) for (bd, mac), (idx, _s, _b) in st.l2fib.items()}
    return out


def expected(values: Mapping[str, BaseModel]) -> dict[str, set[Any]]:
    """What ``snapshot`` must show once ``values`` are applied."""
    out: dict[str, set[Any]] = {k: set() for k in ("interfaces", "tables", "routes", "neighbours", "bds", "fib")}
    vrfs = {v.interface: v.vrf for v in values.values() if isinstance(v, m.InterfaceVrf)}
    addresses: dict[str, set[str]] = {}
    for v in values.values():
        if isinstance(v, m.InterfaceAddress):
            addresses.setdefault(v.interface, set()).add(str(v.address))
    unnumbered = {v.interface: v.target for v in values.values() if isinstance(v, m.Unnumbered)}
    members: dict[str, set[Any]] = {}
    for v in values.values():
        if isinstance(v, m.BridgeDomainInterface):
            members.setdefault(v.bridge_domain, set()).add((v.interface, v.bvi, v.shg))
    for value in values.values():
        if isinstance(value, m.Interface):
            name = value.name
            row = (value.tag, DEV_TYPES[value.type], value.enabled, vrfs.get(name, 0))
            out["interfaces"].add((*row, frozenset(addresses.get(name, ())), unnumbered.get(name, "")))
        elif isinstance(value, m.VrfTable):
            out["tables"].add((value.id, m.TAG_PREFIX + value.label))
        elif isinstance(value, m.Route):
            kind = {m.RouteType.NORMAL: 0, m.RouteType.INTER_VRF: 0, m.RouteType.DROP: 2}[value.type]
            table = value.via_vrf if value.type == m.RouteType.INTER_VRF else value.vrf
            nh = str(value.next_hop) if value.next_hop else "0.0.0.0"
            out["routes"].add((value.vrf, str(value.dst), kind, value.outgoing_interface, nh, table))
        elif isinstance(value, m.Neighbour):
            out["neighbours"].add((value.interface, str(value.ip), value.mac))
        elif isinstance(value, m.BridgeDomain):
            row = (value.tag, value.id, value.flood, value.learn)
            out["bds"].add((*row, frozenset(members.get(value.name, ()))))
        elif isinstance(value, m.L2FibEntry):
            out["fib"].add((value.bd_id, value.mac, value.outgoing_interface))
        elif isinstance(value, m.BridgeDomainInterface) and value.bvi:
            # VPP adds a BVI's own MAC to the domain's L2 FIB by itself
            iface = values.get(m.interface_key(value.interface))
            if isinstance(iface, m.Interface) and iface.mac:
                out["fib"].add((value.bd_id, iface.mac, value.interface))
    return out
