"""L3 messages: IPv4 tables, routes (with VPP's connected, local and special entries), neighbours."""

from __future__ import annotations

import ipaddress
from typing import Any

from tests.vppstub import errors as E
from tests.vppstub.errors import ApiError
from tests.vppstub.interfaces import Options
from tests.vppstub.state import NO_INDEX, SPECIAL_PREFIXES, Route, VPPState

Reply = dict[str, Any]
NO_LABELS = [{"is_uniform": 0, "label": 0, "ttl": 0, "exp": 0}] * 16
TYPE_NORMAL, TYPE_LOCAL, TYPE_DROP = 0, 1, 2


def ip_table_add_del(st: VPPState, opt: Options, req: Any) -> Reply:
    table = req.table
    if table.is_ip6:
        return {"retval": 0}
    if req.is_add:
        st.tables[table.table_id] = table.name or f"ipv4-VRF:{table.table_id}"
        return {"retval": 0}
    if table.table_id == 0:
        return {"retval": 0}  # the default table cannot be removed; VPP ignores it
    st.tables.pop(table.table_id, None)
    for key in [k for k in st.routes if k[0] == table.table_id]:
        del st.routes[key]
    return {"retval": 0}


def ip_table_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [{"table": {"table_id": t, "is_ip6": False, "name": n}} for t, n in sorted(st.tables.items())]


def ip_route_add_del(st: VPPState, opt: Options, req: Any) -> Reply:
    route = req.route
    prefix = route.prefix
    if not isinstance(prefix, ipaddress.IPv4Network):
        raise ApiError(E.INVALID_VALUE, f"only IPv4 is kept by the stand-in, got {prefix}")
    if route.table_id not in st.tables:
        raise ApiError(E.NO_SUCH_FIB, f"no IPv4 table {route.table_id}")
    key = (route.table_id, prefix)
    if not req.is_add:
        st.routes.pop(key, None)  # VPP's fib_table_entry_delete returns nothing
        return {"retval": 0, "stats_index": 0}
    if route.n_paths == 0:
        raise ApiError(E.INVALID_VALUE, "route without paths")
    for path in route.paths:
        if int(path.type) == TYPE_NORMAL:
            if path.sw_if_index != NO_INDEX:
                st.iface(path.sw_if_index)
            elif path.table_id not in st.tables:
                raise ApiError(E.NO_SUCH_FIB, f"next-hop table {path.table_id}")
    paths = list(route.paths)
    if req.is_multipath and key in st.routes:
        paths = st.routes[key].paths + paths
    st.routes[key] = Route(route.table_id, prefix, paths)
    return {"retval": 0, "stats_index": len(st.routes)}


def _path(sw_if_index: int, kind: int, table_id: int = 0, nh: str = "0.0.0.0") -> Reply:
    return {
        "sw_if_index": sw_if_index,
        "table_id": table_id,
        "type": kind,
        "proto": 0,
        "weight": 1,
        "nh": {"address": {"ip4": nh}},
        "label_stack": NO_LABELS,
    }


def _encode_path(p: Any, prefix: ipaddress.IPv4Network | None = None) -> Reply:
    nh = str(p.nh.address.ip4)
    if prefix is not None and prefix.prefixlen == 32 and nh == "0.0.0.0" and p.sw_if_index != NO_INDEX:
        nh = str(prefix.network_address)  # as the real VPP: an attached host route names its host
    return {
        "sw_if_index": p.sw_if_index,
        "table_id": p.table_id,
        "rpf_id": p.rpf_id,
        "weight": p.weight,
        "preference": p.preference,
        "type": int(p.type),
        "flags": int(p.flags),
        "proto": int(p.proto),
        "nh": {"address": {"ip4": nh}},
        "n_labels": 0,
        "label_stack": NO_LABELS,
    }


def ip_route_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    table_id = req.table.table_id
    if req.table.is_ip6 or table_id not in st.tables:
        return []
    entries: dict[ipaddress.IPv4Network, list[Reply]] = {}
    for special in SPECIAL_PREFIXES:
        entries[ipaddress.IPv4Network(special)] = [_path(NO_INDEX, TYPE_DROP)]
    for iface in st.interfaces.values():
        if iface.table_id != table_id:
            continue
        for addr in iface.addresses:
            net = addr.network
            if net.prefixlen < 32:
                entries[net] = [_path(iface.sw_if_index, TYPE_NORMAL)]
            if net.prefixlen < 31:  # VPP drops the subnet's network and broadcast addresses
                for special in (net.network_address, net.broadcast_address):
                    entries[ipaddress.IPv4Network(f"{special}/32")] = [_path(NO_INDEX, TYPE_DROP)]
            entries[ipaddress.IPv4Network(f"{addr.ip}/32")] = [_path(iface.sw_if_index, TYPE_LOCAL)]
    for (idx, ip), _entry in st.neighbors.items():
        # every neighbour adds an attached-host /32 (source "adjacency") in its interface's table
        iface = st.interfaces.get(idx)
        if iface is not None and iface.table_id == table_id:
            entries[ipaddress.IPv4Network(f"{ip}/32")] = [_path(idx, TYPE_NORMAL, nh=ip)]
    for (tid, prefix), route in st.routes.items():
        if tid == table_id:
            entries[prefix] = [_encode_path(p, prefix) for p in route.paths]
    return [
        {
            "route": {
                "table_id": table_id,
                "prefix": str(prefix),
                "n_paths": len(paths),
                "paths": paths,
            }
        }
        for prefix, paths in sorted(
            entries.items(),
            key=lambda kv: (int(kv[0].network_address), kv[0].prefixlen),
        )
    ]


def ip_neighbor_add_del(st: VPPState, opt: Options, req: Any) -> Reply:
    nbr = req.neighbor
    st.iface(nbr.sw_if_index)
    key = (nbr.sw_if_index, str(nbr.ip_address))
    if req.is_add:
        st.neighbors[key] = (str(nbr.mac_address), int(nbr.flags))
        return {"retval": 0, "stats_index": 0}
    if key not in st.neighbors:
        raise ApiError(E.NO_SUCH_ENTRY, f"no neighbour {key[1]} on sw_if_index {key[0]}")
    del st.neighbors[key]
    return {"retval": 0, "stats_index": 0}


def ip_neighbor_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    if int(req.af) != 0:
        return []
    return [
        {
            "age": 0.0,
            "neighbor": {
                "sw_if_index": idx,
                "flags": flags,
                "mac_address": mac,
                "ip_address": ip,
            },
        }
        for (idx, ip), (mac, flags) in sorted(st.neighbors.items())
        if req.sw_if_index in (NO_INDEX, idx)
    ]


HANDLERS = {
    "ip_table_add_del": ip_table_add_del,
    "ip_table_dump": ip_table_dump,
    "ip_route_add_del": ip_route_add_del,
    "ip_route_dump": ip_route_dump,
    "ip_neighbor_add_del": ip_neighbor_add_del,
    "ip_neighbor_dump": ip_neighbor_dump,
}
