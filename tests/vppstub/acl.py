"""ACL plugin messages: ACLs (add/replace, delete, dump) and per-interface ACL lists."""

from __future__ import annotations

from typing import Any

from tests.vppstub import errors as E
from tests.vppstub.errors import ApiError
from tests.vppstub.interfaces import Options
from tests.vppstub.state import NO_INDEX, VPPState

Reply = dict[str, Any]
ACL_IN_USE_INBOUND = -142
ACL_IN_USE_OUTBOUND = -143


def _rule(r: Any) -> Reply:
    return {
        "is_permit": int(r.is_permit),
        "src_prefix": str(r.src_prefix),
        "dst_prefix": str(r.dst_prefix),
        "proto": int(r.proto),
        "srcport_or_icmptype_first": r.srcport_or_icmptype_first,
        "srcport_or_icmptype_last": r.srcport_or_icmptype_last,
        "dstport_or_icmpcode_first": r.dstport_or_icmpcode_first,
        "dstport_or_icmpcode_last": r.dstport_or_icmpcode_last,
        "tcp_flags_mask": r.tcp_flags_mask,
        "tcp_flags_value": r.tcp_flags_value,
    }


def acl_add_replace(st: VPPState, opt: Options, req: Any) -> Reply:
    rules = [_rule(r) for r in req.r[: req.count]]
    for rule in rules:
        if (":" in rule["src_prefix"]) != (":" in rule["dst_prefix"]):
            raise ApiError(E.INVALID_VALUE, "source and destination of different address families")
    index = req.acl_index
    if index == NO_INDEX:
        index = next(n for n in range(1 << 20) if n not in st.acls)
    elif index not in st.acls:
        raise ApiError(E.NO_SUCH_ENTRY, f"no ACL {index} to replace")
    st.acls[index] = (req.tag, rules)
    return {"retval": 0, "acl_index": index}


def acl_del(st: VPPState, opt: Options, req: Any) -> Reply:
    if req.acl_index not in st.acls:
        raise ApiError(E.NO_SUCH_ENTRY, f"no ACL {req.acl_index}")
    for inputs, outputs in st.acl_lists.values():
        if req.acl_index in inputs:
            raise ApiError(ACL_IN_USE_INBOUND, f"ACL {req.acl_index} is applied on input")
        if req.acl_index in outputs:
            raise ApiError(ACL_IN_USE_OUTBOUND, f"ACL {req.acl_index} is applied on output")
    del st.acls[req.acl_index]
    return {"retval": 0}


def acl_interface_set_acl_list(st: VPPState, opt: Options, req: Any) -> Reply:
    st.iface(req.sw_if_index)
    acls = list(req.acls[: req.count])
    missing = [a for a in acls if a not in st.acls]
    if missing:
        raise ApiError(E.NO_SUCH_ENTRY, f"no ACL {missing[0]}")
    if acls:
        st.acl_lists[req.sw_if_index] = (acls[: req.n_input], acls[req.n_input :])
    else:
        st.acl_lists.pop(req.sw_if_index, None)
    return {"retval": 0}


def acl_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [
        {"acl_index": i, "tag": tag, "count": len(rules), "r": rules}
        for i, (tag, rules) in sorted(st.acls.items())
        if req.acl_index in (NO_INDEX, i)
    ]


def acl_interface_list_dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [
        {"sw_if_index": idx, "count": len(i) + len(o), "n_input": len(i), "acls": i + o}
        for idx, (i, o) in sorted(st.acl_lists.items())
        if req.sw_if_index in (NO_INDEX, idx)
    ]


HANDLERS = {
    "acl_add_replace": acl_add_replace,
    "acl_del": acl_del,
    "acl_interface_set_acl_list": acl_interface_set_acl_list,
    "acl_dump": acl_dump,
    "acl_interface_list_dump": acl_interface_list_dump,
}
