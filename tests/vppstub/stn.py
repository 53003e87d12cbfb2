"""STN mode messages: STN rules and proxy ARP (ranges per FIB table, enabled interfaces)."""

from __future__ import annotations

import ipaddress
from typing import Any

from tests.vppstub import errors as E
from tests.vppstub.errors import ApiError
from tests.vppstub.interfaces import Options
from tests.vppstub.state import VPPState

Reply = dict[str, Any]


def _ip4(value: Any) -> str:
    address = ipaddress.ip_address(str(value))
    if address.version != 4:
        raise ApiError(E.INVALID_VALUE, f"only IPv4 is kept by the stand-in, got {address}")
    return str(address)


def stn_add_del_rule(st: VPPState, opt: Options, req: Any) -> Reply:
    address = _ip4(req.ip_address)
    if req.is_add:
        st.iface(req.sw_if_index)
        st.stn_rules[address] = int(req.sw_if_index)
        return {"retval": 0}
    if address not in st.stn_rules:
        raise ApiError(E.NO_SUCH_ENTRY, f"no STN rule for {address}")
    del st.stn_rules[address]
    return {"retval": 0}


def stn_rules_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [{"ip_address": ip, "sw_if_index": index} for ip, index in sorted(st.stn_rules.items())]


def proxy_arp_add_del(st: VPPState, opt: Options, req: Any) -> Reply:
    proxy = req.proxy
    key = (int(proxy.table_id), _ip4(proxy.low), _ip4(proxy.hi))
    if ipaddress.IPv4Address(key[1]) > ipaddress.IPv4Address(key[2]):
        raise ApiError(E.INVALID_VALUE, f"proxy ARP range {key[1]}-{key[2]}")
    if req.is_add:
        if key[0] not in st.tables:
            raise ApiError(E.NO_SUCH_FIB, f"no IPv4 table {key[0]}")
        st.proxy_arp_ranges.add(key)
        return {"retval": 0}
    if key not in st.proxy_arp_ranges:
        raise ApiError(E.NO_SUCH_ENTRY, f"no proxy ARP range {key}")
    st.proxy_arp_ranges.discard(key)
    return {"retval": 0}


def proxy_arp_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [{"proxy": {"table_id": t, "low": low, "hi": hi}} for t, low, hi in sorted(st.proxy_arp_ranges)]


def proxy_arp_intfc_enable_disable(st: VPPState, opt: Options, req: Any) -> Reply:
    st.iface(req.sw_if_index)
    if req.enable:
        st.proxy_arp_interfaces.add(int(req.sw_if_index))
    else:
        st.proxy_arp_interfaces.discard(int(req.sw_if_index))
    return {"retval": 0}


def proxy_arp_intfc_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [{"sw_if_index": index} for index in sorted(st.proxy_arp_interfaces)]


HANDLERS = {
    "stn_add_del_rule": stn_add_del_rule,
    "stn_rules_dump": stn_rules_dump,
    "proxy_arp_add_del": proxy_arp_add_del,
    "proxy_arp_dump": proxy_arp_dump,
    "proxy_arp_intfc_enable_disable": proxy_arp_intfc_enable_disable,
    "proxy_arp_intfc_dump": proxy_arp_intfc_dump,
}
