"""L2 messages: bridge domains, interface membership (BVI, split horizon), static L2 FIB."""

from __future__ import annotations

from typing import Any

from tests.vppstub import errors as E
from tests.vppstub.errors import ApiError
from tests.vppstub.interfaces import Options
from tests.vppstub.state import NO_INDEX, BridgeDomain, VPPState

Reply = dict[str, Any]
BD_FLAGS = ("flood", "uu_flood", "forward", "learn", "arp_term", "arp_ufwd", "mac_age")
DEFAULT_FLAGS = {
    "flood": True,
    "uu_flood": True,
    "forward": True,
    "learn": True,
    "arp_term": False,
    "arp_ufwd": False,
    "mac_age": 0,
}


def bridge_domain_add_del_v2(st: VPPState, opt: Options, req: Any) -> Reply:
    bd_id = req.bd_id
    if bd_id == 0:
        raise ApiError(E.BD_NOT_MODIFIABLE, "bridge domain 0")
    if not req.is_add:
        if bd_id not in st.bridge_domains:
            raise ApiError(E.NO_SUCH_ENTRY, f"no bridge domain {bd_id}")
        if any(i.bd_id == bd_id for i in st.interfaces.values()):
            raise ApiError(E.BD_IN_USE, f"bridge domain {bd_id} has members")
        del st.bridge_domains[bd_id]
        for key in [k for k in st.l2fib if k[0] == bd_id]:
            del st.l2fib[key]
        return {"retval": 0, "bd_id": bd_id}
    if bd_id == NO_INDEX:
        bd_id = next(n for n in range(1, 1 << 24) if n not in st.bridge_domains)
    elif bd_id in st.bridge_domains:
        raise ApiError(E.BD_ALREADY_EXISTS, f"bridge domain {bd_id}")
    st.bridge_domains[bd_id] = BridgeDomain(bd_id, {f: getattr(req, f) for f in BD_FLAGS}, req.bd_tag)
    return {"retval": 0, "bd_id": bd_id}


def sw_interface_set_l2_bridge(st: VPPState, opt: Options, req: Any) -> Reply:
    iface = st.iface(req.rx_sw_if_index)
    if not req.enable:
        if iface.is_bvi and iface.bd_id is not None:
            st.l2fib.pop((iface.bd_id, iface.mac), None)
        iface.bd_id, iface.shg, iface.is_bvi = None, 0, False
        return {"retval": 0}
    if req.bd_id not in st.bridge_domains:
        # VPP creates a missing bridge domain with default flags (bd_find_or_add_bd_index).
        st.bridge_domains[req.bd_id] = BridgeDomain(req.bd_id, dict(DEFAULT_FLAGS))
    bvi = int(req.port_type) == 1
    if bvi and any(i.is_bvi and i.bd_id == req.bd_id and i is not iface for i in st.interfaces.values()):
        raise ApiError(E.BD_ALREADY_HAS_BVI, f"bridge domain {req.bd_id} has a BVI")
    iface.bd_id, iface.shg, iface.is_bvi = req.bd_id, req.shg, bvi
    if bvi:  # as the real VPP: a BVI's own MAC gets a static BVI entry in the L2 FIB
        st.l2fib[(req.bd_id, iface.mac)] = (iface.sw_if_index, True, True)
    return {"retval": 0}


def bridge_domain_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    out = []
    for bd in sorted(st.bridge_domains.values(), key=lambda b: b.bd_id):
        if req.bd_id not in (NO_INDEX, bd.bd_id):
            continue
        members = [i for i in st.interfaces.values() if i.bd_id == bd.bd_id]
        bvi = next((i.sw_if_index for i in members if i.is_bvi), NO_INDEX)
        out.append(
            {
                "bd_id": bd.bd_id,
                **bd.flags,
                "bd_tag": bd.tag,
                "bvi_sw_if_index": bvi,
                "uu_fwd_sw_if_index": NO_INDEX,
                "n_sw_ifs": len(members),
                "sw_if_details": [{"context": 0, "sw_if_index": i.sw_if_index, "shg": i.shg} for i in members],
            }
        )
    return out


def l2fib_add_del(st: VPPState, opt: Options, req: Any) -> Reply:
    if req.bd_id not in st.bridge_domains:
        raise ApiError(E.NO_SUCH_ENTRY, f"no bridge domain {req.bd_id}")
    key = (req.bd_id, str(req.mac))
    if not req.is_add:
        if key not in st.l2fib:
            raise ApiError(E.NO_SUCH_ENTRY, f"no L2 FIB entry {key[1]} in bridge domain {key[0]}")
        del st.l2fib[key]
        return {"retval": 0}
    iface = st.iface(req.sw_if_index)
    if iface.bd_id is None:
        raise ApiError(E.INVALID_SW_IF_INDEX, f"{iface.name} is not in L2 bridge mode")
    st.l2fib[key] = (req.sw_if_index, bool(req.static_mac), bool(req.bvi_mac))
    return {"retval": 0}


def l2_fib_table_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [
        {
            "bd_id": bd,
            "mac": mac,
            "sw_if_index": idx,
            "static_mac": static,
            "filter_mac": False,
            "bvi_mac": bvi,
        }
        for (bd, mac), (idx, static, bvi) in sorted(st.l2fib.items())
        if req.bd_id in (NO_INDEX, bd)
    ]


HANDLERS = {
    "bridge_domain_add_del_v2": bridge_domain_add_del_v2,
    "sw_interface_set_l2_bridge": sw_interface_set_l2_bridge,
    "bridge_domain_dump": bridge_domain_dump,
    "l2fib_add_del": l2fib_add_del,
    "l2_fib_table_dump": l2_fib_table_dump,
}
