"""The cnat translation descriptor (see :mod:`plugins.vpp.cnat`): ``cnat_translation_update``
(create and in-place update), ``cnat_translation_del`` by the id VPP answered, read back through
``cnat_translation_dump`` (only the translations the scheduler believes applied: no tags)."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_address
from typing import Any

from plugins.kvscheduler.api import RetrievedValue, ValueWithMetadata
from plugins.vpp.cnat import (
    CNAT_TRANSLATION_SPEC,
    FLOW_HASH_SRC_IP,
    LB_DEFAULT,
    LB_MAGLEV,
    PROTOCOLS,
    CnatBackend,
    CnatTranslation,
    cnat_translation_key,
)
from plugins.vpp.descriptors.base import VPPDescriptor
from plugins.vpp.errors import VPPCallError
from plugins.vpp.model import NO_INDEX

NO_SUCH_ENTRY = -6
_PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}


def _endpoint(ip: Any, port: int) -> dict[str, Any]:
    return {"addr": str(ip), "sw_if_index": NO_INDEX, "if_af": 0 if ip_address(str(ip)).version == 4 else 1,
            "port": port}


def translation_message(value: CnatTranslation) -> dict[str, Any]:
    """The ``translation`` argument of ``cnat_translation_update``."""
    any_ip = "0.0.0.0" if value.vip.version == 4 else "::"
    return {
        "vip": _endpoint(value.vip, value.port), "id": 0, "ip_proto": PROTOCOLS[value.protocol], "is_real_ip": 0,
        "flags": 0, "lb_type": LB_MAGLEV if value.affinity else LB_DEFAULT, "n_paths": len(value.backends),
        "flow_hash_config": FLOW_HASH_SRC_IP if value.affinity else 0,
        "paths": [{"dst_ep": _endpoint(b.ip, b.port), "src_ep": _endpoint(any_ip, 0), "flags": 0}
                  for b in value.backends],
    }


class CnatTranslationDescriptor(VPPDescriptor[CnatTranslation]):
    """One frontend; its backends change in place (the same translation id)."""

    name = "vpp-cnat-translation"
    spec = CNAT_TRANSLATION_SPEC
    model = CnatTranslation

    def value_name(self, value: CnatTranslation) -> str:
        key = cnat_translation_key(value.vip, value.protocol, value.port)
        return key.removeprefix(CNAT_TRANSLATION_SPEC.key_prefix)

    async def create(self, key: str, value: CnatTranslation) -> Any:
        reply = await self.api.call("cnat_translation_update", translation=translation_message(value))
        return int(reply.id)

    async def update(self, key: str, old: CnatTranslation, new: CnatTranslation, metadata: Any) -> Any:
        return await self.create(key, new)

    async def delete(self, key: str, value: CnatTranslation, metadata: Any) -> None:
        ident = metadata if isinstance(metadata, int) else await self._find(value)
        if ident is None:
            return
        try:
            await self.api.call("cnat_translation_del", id=ident)
        except VPPCallError as err:
            if err.retval != NO_SUCH_ENTRY:
                raise

    async def _find(self, value: CnatTranslation) -> int | None:
        for d in await self.api.dump("cnat_translation_dump"):
            t = d.translation
            if (ip_address(str(t.vip.addr)), int(t.vip.port), int(t.ip_proto)) == (
                    value.vip, value.port, PROTOCOLS[value.protocol]):
                return int(t.id)
        return None

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        expected = {c.key: c.value for c in correlate if isinstance(c.value, CnatTranslation)}
        if not expected:
            return []
        out = []
        for d in await self.api.dump("cnat_translation_dump"):
            t = d.translation
            proto = _PROTOCOL_NAMES.get(int(t.ip_proto))
            if proto is None:
                continue
            key = cnat_translation_key(str(t.vip.addr), proto, int(t.vip.port))
            old = expected.get(key)
            if old is None:
                continue  # not ours (no tags in cnat: ours = what we applied)
            backends = tuple(CnatBackend(ip=str(p.dst_ep.addr), port=int(p.dst_ep.port)) for p in t.paths)
            affinity = int(t.lb_type) == LB_MAGLEV  # the dump reports no flow hash; Maglev is ours for affinity
            value = CnatTranslation(vip=str(t.vip.addr), protocol=proto, port=int(t.vip.port), backends=backends,
                                    affinity=affinity, label=old.label)
            out.append(RetrievedValue(key, value, metadata=int(t.id)))
        return out
