"""cnat translations, with the real VPP's answers (checked against v26.10; see plugins/vpp/cnat.py):
an update of an existing (VIP, protocol, port) keeps its id and replaces the paths; deleting an
unknown id answers -6; the dump reports every path with flag 0x4 and flow_hash_config 0."""

from __future__ import annotations

from typing import Any

from tests.vppstub import errors as E
from tests.vppstub.errors import ApiError
from tests.vppstub.interfaces import Options
from tests.vppstub.state import VPPState

Reply = dict[str, Any]
RESOLVED = 0x4


def _endpoint(ep: Any) -> dict[str, Any]:
    return {"addr": str(ep.addr), "sw_if_index": int(ep.sw_if_index), "if_af": int(ep.if_af), "port": int(ep.port)}


def update(st: VPPState, opt: Options, req: Any) -> Reply:
    t = req.translation
    key = (str(t.vip.addr), int(t.vip.port), int(t.ip_proto))
    ident = next((i for i, v in st.cnat.items() if v["key"] == key), None)
    if ident is None:
        ident = next(i for i in range(len(st.cnat) + 1) if i not in st.cnat)
    paths = [{"dst_ep": _endpoint(p.dst_ep), "src_ep": _endpoint(p.src_ep), "flags": int(p.flags) | RESOLVED}
             for p in t.paths]
    st.cnat[ident] = {"key": key, "translation": {
        "vip": _endpoint(t.vip), "id": ident, "ip_proto": int(t.ip_proto), "is_real_ip": int(t.is_real_ip),
        "flags": int(t.flags), "lb_type": int(t.lb_type), "n_paths": len(paths),
        "flow_hash_config": 0, "paths": paths}}  # VPP applies the hash but dumps 0
    return {"retval": 0, "id": ident}


def delete(st: VPPState, opt: Options, req: Any) -> Reply:
    if st.cnat.pop(int(req.id), None) is None:
        raise ApiError(E.NO_SUCH_ENTRY, f"no cnat translation {req.id}")
    return {"retval": 0}


def dump(st: VPPState, opt: Options, req: Any) -> list[Reply]:
    return [{"translation": v["translation"]} for _i, v in sorted(st.cnat.items())]


HANDLERS = {
    "cnat_translation_update": update,
    "cnat_translation_del": delete,
    "cnat_translation_dump": dump,
}
