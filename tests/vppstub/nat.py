"""NAT44-ED messages, with the real VPP's answers (checked against v26.10; see plugins/vpp/nat.py)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from tests.vppstub import errors as E
from tests.vppstub.errors import ApiError
from tests.vppstub.interfaces import Options
from tests.vppstub.state import VPPState

Reply = dict[str, Any]
ALREADY_ENABLED = -170
ALREADY_DISABLED = -169
UNSPECIFIED = -1
DEFAULT_SESSIONS = 64512
OUT2IN_ONLY = 0x04


@dataclass
class NatState:
    sessions: int
    inside_vrf: int
    outside_vrf: int
    forwarding: bool = False
    addresses: dict[str, tuple[int, int]] = field(default_factory=dict)  # ip -> (vrf, flags)
    features: dict[int, int] = field(default_factory=dict)  # sw_if_index -> inside/outside flags
    output: set[int] = field(default_factory=set)
    static: dict[tuple[str, int, int], dict[str, Any]] = field(default_factory=dict)  # (ext ip, port, proto)
    lb: dict[tuple[str, int, int], dict[str, Any]] = field(default_factory=dict)
    identity: dict[tuple[str, int, int, int], dict[str, Any]] = field(default_factory=dict)  # + vrf


def _nat(st: VPPState) -> NatState:
    if st.nat is None:
        raise ApiError(E.UNSUPPORTED, "NAT44 plugin not enabled")
    nat: NatState = st.nat
    return nat


def enable_disable(st: VPPState, opt: Options, req: Any) -> Reply:
    if req.enable:
        if st.nat is not None:
            raise ApiError(ALREADY_ENABLED, "NAT44 plugin already enabled")
        st.nat = NatState(req.sessions or DEFAULT_SESSIONS, req.inside_vrf, req.outside_vrf)
    else:
        if st.nat is None:
            raise ApiError(ALREADY_DISABLED, "NAT44 plugin already disabled")
        st.nat = None
    return {"retval": 0}


def running_config(st: VPPState, opt: Options, req: Any) -> Reply:
    nat = st.nat
    timeouts = {"udp": 300, "tcp_established": 7440, "tcp_transitory": 240, "icmp": 60}
    return {
        "retval": 0, "inside_vrf": nat.inside_vrf if nat else 0, "outside_vrf": nat.outside_vrf if nat else 0,
        "sessions": nat.sessions if nat else 0, "translation_buckets": 32768,
        "forwarding_enabled": nat.forwarding if nat else False, "timeouts": timeouts, "flags": 1,
    }


def forwarding(st: VPPState, opt: Options, req: Any) -> Reply:
    _nat(st).forwarding = bool(req.enable)
    return {"retval": 0}


def address_range(st: VPPState, opt: Options, req: Any) -> Reply:
    nat = _nat(st)
    first, last = ipaddress.IPv4Address(str(req.first_ip_address)), ipaddress.IPv4Address(str(req.last_ip_address))
    ips = [str(ipaddress.IPv4Address(i)) for i in range(int(first), int(last) + 1)]
    for ip in ips:
        if req.is_add and ip in nat.addresses:
            raise ApiError(E.VALUE_EXIST, f"{ip} in the pool")
        if not req.is_add and ip not in nat.addresses:
            raise ApiError(E.NO_SUCH_ENTRY, f"{ip} not in the pool")
    for ip in ips:
        if req.is_add:
            nat.addresses[ip] = (req.vrf_id, int(req.flags))
        else:
            del nat.addresses[ip]
    return {"retval": 0}


def address_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    nat = st.nat
    return [] if nat is None else [
        {"ip_address": ip, "flags": flags, "vrf_id": vrf} for ip, (vrf, flags) in sorted(nat.addresses.items())
    ]


def interface_feature(st: VPPState, opt: Options, req: Any) -> Reply:
    nat = _nat(st)
    st.iface(req.sw_if_index)
    bits = int(req.flags) & 0x30
    current = nat.features.get(req.sw_if_index, 0)
    current = current | bits if req.is_add else current & ~bits  # idempotent both ways, as VPP
    if current:
        nat.features[req.sw_if_index] = current
    else:
        nat.features.pop(req.sw_if_index, None)
    return {"retval": 0}


def interface_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    nat = st.nat
    return [] if nat is None else [{"sw_if_index": i, "flags": f} for i, f in sorted(nat.features.items())]


def output_interface(st: VPPState, opt: Options, req: Any) -> Reply:
    nat = _nat(st)
    st.iface(req.sw_if_index)
    if req.is_add:
        if req.sw_if_index in nat.output:
            raise ApiError(E.VALUE_EXIST, "output feature already on")
        nat.output.add(req.sw_if_index)
    else:
        if req.sw_if_index not in nat.output:
            raise ApiError(E.NO_SUCH_ENTRY, "no output feature")
        nat.output.discard(req.sw_if_index)
    return {"retval": 0}


def output_interface_get(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    nat = st.nat
    return [] if nat is None else [{"sw_if_index": i} for i in sorted(nat.output)]


def static_mapping(st: VPPState, opt: Options, req: Any) -> Reply:
    nat = _nat(st)
    key = (str(req.external_ip_address), req.external_port, req.protocol)
    if req.is_add:
        if key in nat.static or key in nat.lb:
            raise ApiError(E.VALUE_EXIST, f"mapping {key} exists")
        nat.static[key] = {
            "flags": int(req.flags), "local_ip_address": str(req.local_ip_address),
            "external_ip_address": key[0], "protocol": req.protocol, "local_port": req.local_port,
            "external_port": req.external_port, "external_sw_if_index": 0xFFFFFFFF, "vrf_id": req.vrf_id,
            "tag": req.tag,
        }
    elif nat.static.pop(key, None) is None:
        raise ApiError(E.NO_SUCH_ENTRY, f"no mapping {key}")
    return {"retval": 0}


def lb_mapping(st: VPPState, opt: Options, req: Any) -> Reply:
    nat = _nat(st)
    key = (str(req.external_addr), req.external_port, req.protocol)
    if not req.is_add:
        if nat.lb.pop(key, None) is None:
            raise ApiError(E.NO_SUCH_ENTRY, f"no mapping {key}")
        return {"retval": 0}
    in_pool = key[0] in nat.addresses
    if not (int(req.flags) & OUT2IN_ONLY or in_pool):
        raise ApiError(E.NO_SUCH_ENTRY, f"{key[0]} is not a pool address (and not out2in-only)")
    if key in nat.static or key in nat.lb:
        raise ApiError(E.VALUE_EXIST, f"mapping {key} exists")
    if req.local_num < 2:
        raise ApiError(E.INVALID_VALUE, "a load-balanced mapping needs 2+ locals")
    for local in req.locals:
        if local.vrf_id not in st.tables:
            raise ApiError(E.NO_SUCH_FIB, f"no VRF {local.vrf_id}")
    locals_ = [_local(x) for x in req.locals]
    # VPP's dump does not report the affinity (it comes back 0)
    nat.lb[key] = {"external_addr": key[0], "external_port": req.external_port, "protocol": req.protocol,
                   "flags": int(req.flags), "affinity": 0, "tag": req.tag, "locals": locals_}
    return {"retval": 0}


def _local(x: Any) -> dict[str, Any]:
    return {"addr": str(x.addr), "port": x.port, "probability": x.probability, "vrf_id": x.vrf_id}


def lb_local(st: VPPState, opt: Options, req: Any) -> Reply:
    nat = _nat(st)
    entry = nat.lb.get((str(req.external_addr), req.external_port, req.protocol))
    if entry is None:
        raise ApiError(E.NO_SUCH_ENTRY, "no such load-balanced mapping")
    ident = (str(req.local.addr), req.local.port, req.local.vrf_id)
    found = [x for x in entry["locals"] if (x["addr"], x["port"], x["vrf_id"]) == ident]
    if req.is_add:
        if found:
            raise ApiError(E.VALUE_EXIST, f"local {ident} exists")
        entry["locals"].append(_local(req.local))
    else:
        if not found:
            raise ApiError(E.NO_SUCH_ENTRY, f"no local {ident}")
        if len(entry["locals"]) <= 2:
            raise ApiError(UNSPECIFIED, "a load-balanced mapping keeps 2+ locals")
        entry["locals"].remove(found[0])
    return {"retval": 0}


def static_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [] if st.nat is None else [dict(v) for _k, v in sorted(st.nat.static.items())]


def lb_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    nat = st.nat
    return [] if nat is None else [
        {**v, "local_num": len(v["locals"])} for _k, v in sorted(nat.lb.items())
    ]


def identity(st: VPPState, opt: Options, req: Any) -> Reply:
    nat = _nat(st)
    key = (str(req.ip_address), req.port, req.protocol, req.vrf_id)
    if req.is_add:
        if key in nat.identity:
            raise ApiError(E.VALUE_EXIST, f"identity mapping {key} exists")
        # VPP keeps one tag per identity mapping across VRFs: the first one's
        same = [v for k, v in nat.identity.items() if k[:3] == key[:3]]
        tag = same[0]["tag"] if same else req.tag
        nat.identity[key] = {"flags": int(req.flags), "ip_address": key[0], "protocol": req.protocol,
                             "port": req.port, "sw_if_index": 0xFFFFFFFF, "vrf_id": req.vrf_id, "tag": tag}
    elif nat.identity.pop(key, None) is None:
        raise ApiError(E.NO_SUCH_ENTRY, f"no identity mapping {key}")
    return {"retval": 0}


def identity_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [] if st.nat is None else [dict(v) for _k, v in sorted(st.nat.identity.items())]


HANDLERS = {
    "nat44_ed_plugin_enable_disable": enable_disable,
    "nat44_show_running_config": running_config,
    "nat44_forwarding_enable_disable": forwarding,
    "nat44_add_del_address_range": address_range,
    "nat44_address_dump": address_dump,
    "nat44_interface_add_del_feature": interface_feature,
    "nat44_interface_dump": interface_dump,
    "nat44_ed_add_del_output_interface": output_interface,
    "nat44_ed_output_interface_get": output_interface_get,
    "nat44_add_del_static_mapping_v2": static_mapping,
    "nat44_add_del_lb_static_mapping": lb_mapping,
    "nat44_lb_static_mapping_add_del_local": lb_local,
    "nat44_static_mapping_dump": static_dump,
    "nat44_lb_static_mapping_dump": lb_dump,
    "nat44_add_del_identity_mapping": identity,
    "nat44_identity_mapping_dump": identity_dump,
}
