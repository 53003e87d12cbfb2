"""NAT44-ED descriptors: the plugin, pools, interface features, static/LB and identity mappings.

Everything is read back through VPP's NAT dumps (``nat44_show_running_config``,
``nat44_address_dump``, ``nat44_interface_dump``, ``nat44_ed_output_interface_get``,
``nat44_static_mapping_dump``, ``nat44_lb_static_mapping_dump``,
``nat44_identity_mapping_dump``); see :mod:`plugins.vpp.nat` for ownership and VPP's codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import Any

from plugins.kvscheduler.api import Dependency, Origin, RetrievedValue, ValueWithMetadata
from plugins.vpp.descriptors.base import VPPDescriptor
from plugins.vpp.errors import VPPCallError
from plugins.vpp.model import NO_INDEX, TAG_PREFIX, interface_key, vrf_key
from plugins.vpp.nat import (
    ADDR_ONLY_FLAG,
    GLOBAL_KEY,
    INSIDE_FLAG,
    NAT_ADDRESS_SPEC,
    NAT_GLOBAL_SPEC,
    NAT_IDENTITY_SPEC,
    NAT_INTERFACE_SPEC,
    NAT_MAPPING_SPEC,
    OUT2IN_ONLY_FLAG,
    OUTSIDE_FLAG,
    PROTOCOLS,
    SELF_TWICE_NAT_FLAG,
    TWICE_NAT_FLAG,
    Nat44Address,
    Nat44Global,
    Nat44Identity,
    Nat44Interface,
    Nat44Mapping,
    NatLocal,
    TwiceNat,
    nat_address_key,
    nat_identity_key,
    nat_mapping_key,
)

ALREADY_ENABLED = -170
ALREADY_DISABLED = -169
VALUE_EXIST = -81
NO_SUCH_ENTRY = -6
_PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}
_NEEDS_NAT = Dependency(label="NAT44 plugin enabled", key=GLOBAL_KEY)


async def _tolerate(call: Any, retval: int) -> None:
    """Await a NAT request for which ``retval`` means the wanted state already holds."""
    try:
        await call
    except VPPCallError as err:
        if err.retval != retval:
            raise


class Nat44GlobalDescriptor(VPPDescriptor[Nat44Global]):
    name = "vpp-nat44-global"
    spec = NAT_GLOBAL_SPEC
    model = Nat44Global

    def value_name(self, value: Nat44Global) -> str:
        return "global"

    def update_needs_recreate(self, key: str, old: Nat44Global, new: Nat44Global) -> bool:
        return (old.sessions, old.inside_vrf, old.outside_vrf) != (new.sessions, new.inside_vrf, new.outside_vrf)

    async def create(self, key: str, value: Nat44Global) -> None:
        enable = self.api.call(
            "nat44_ed_plugin_enable_disable", enable=True, sessions=value.sessions,
            inside_vrf=value.inside_vrf, outside_vrf=value.outside_vrf,
        )
        await _tolerate(enable, ALREADY_ENABLED)
        await self.api.call("nat44_forwarding_enable_disable", enable=value.forwarding)

    async def update(self, key: str, old: Nat44Global, new: Nat44Global, metadata: Any) -> None:
        await self.api.call("nat44_forwarding_enable_disable", enable=new.forwarding)

    async def delete(self, key: str, value: Nat44Global, metadata: Any) -> None:
        await _tolerate(self.api.call("nat44_ed_plugin_enable_disable", enable=False), ALREADY_DISABLED)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        wanted = next((c.value for c in correlate if isinstance(c.value, Nat44Global)), None)
        config = await self.api.call("nat44_show_running_config")
        if wanted is None or int(config.sessions) == 0:  # not ours to report / disabled
            return []
        value = Nat44Global(
            sessions=0 if wanted.sessions == 0 else int(config.sessions),  # 0: VPP's default, whatever it is
            inside_vrf=int(config.inside_vrf), outside_vrf=int(config.outside_vrf),
            forwarding=bool(config.forwarding_enabled),
        )
        return [RetrievedValue(GLOBAL_KEY, value, None, Origin.FROM_NB)]


class Nat44AddressDescriptor(VPPDescriptor[Nat44Address]):
    name = "vpp-nat44-address"
    spec = NAT_ADDRESS_SPEC
    model = Nat44Address
    retrieve_after = ("vpp-nat44-global",)

    def value_name(self, value: Nat44Address) -> str:
        return nat_address_key(value).removeprefix(NAT_ADDRESS_SPEC.key_prefix)

    def dependencies(self, key: str, value: Nat44Address) -> Sequence[Dependency]:
        return [_NEEDS_NAT]

    async def _range(self, value: Nat44Address, is_add: bool) -> None:
        await self.api.call(
            "nat44_add_del_address_range", first_ip_address=str(value.first),
            last_ip_address=str(value.last or value.first), vrf_id=value.vrf, is_add=is_add,
            flags=TWICE_NAT_FLAG if value.twice_nat else 0,
        )

    async def create(self, key: str, value: Nat44Address) -> None:
        await self._range(value, True)

    async def delete(self, key: str, value: Nat44Address, metadata: Any) -> None:
        await _tolerate(self._range(value, False), NO_SUCH_ENTRY)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        wanted = [(c.key, c.value) for c in correlate if isinstance(c.value, Nat44Address)]
        if not wanted:
            return []
        present = {
            (IPv4Address(str(d.ip_address)), int(d.vrf_id), bool(int(d.flags) & TWICE_NAT_FLAG))
            for d in await self.api.dump("nat44_address_dump")
        }
        return [
            RetrievedValue(key, value, None, Origin.FROM_NB)
            for key, value in wanted
            if all((ip, value.vrf, value.twice_nat) in present for ip in value.addresses)
        ]


class Nat44InterfaceDescriptor(VPPDescriptor[Nat44Interface]):
    name = "vpp-nat44-interface"
    spec = NAT_INTERFACE_SPEC
    model = Nat44Interface
    retrieve_after = ("vpp-interface", "vpp-nat44-global")

    def value_name(self, value: Nat44Interface) -> str:
        return value.interface

    def dependencies(self, key: str, value: Nat44Interface) -> Sequence[Dependency]:
        return [_NEEDS_NAT, Dependency(label="interface", key=interface_key(value.interface))]

    async def _apply(self, index: int, value: Nat44Interface, is_add: bool) -> None:
        if value.output:
            call = self.api.call("nat44_ed_add_del_output_interface", is_add=is_add, sw_if_index=index)
            if is_add:
                await call
            else:
                await _tolerate(call, NO_SUCH_ENTRY)
        for on, flag in ((value.inside, INSIDE_FLAG), (value.outside, OUTSIDE_FLAG)):
            if on:
                await self.api.call("nat44_interface_add_del_feature", is_add=is_add, flags=flag, sw_if_index=index)

    async def create(self, key: str, value: Nat44Interface) -> None:
        await self._apply(self.sw_if_index(value.interface), value, True)

    async def update(self, key: str, old: Nat44Interface, new: Nat44Interface, metadata: Any) -> None:
        index = self.sw_if_index(new.interface)
        removed = {f: getattr(old, f) and not getattr(new, f) for f in ("inside", "outside", "output")}
        added = {f: getattr(new, f) and not getattr(old, f) for f in ("inside", "outside", "output")}
        for change, is_add in ((removed, False), (added, True)):
            if any(change.values()):
                features = Nat44Interface.model_construct(
                    interface=new.interface, inside=change["inside"], outside=change["outside"], output=change["output"]
                )
                await self._apply(index, features, is_add)

    async def delete(self, key: str, value: Nat44Interface, metadata: Any) -> None:
        index = self.indexes.interfaces.index(value.interface)
        if index is not None:  # gone with the interface otherwise
            await self._apply(index, value, False)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        found: dict[str, dict[str, bool]] = {}
        for d in await self.api.dump("nat44_interface_dump"):
            name = self.indexes.interfaces.name(int(d.sw_if_index))
            if name is not None:
                bits = int(d.flags)
                found.setdefault(name, {})
                found[name]["inside"] = bool(bits & INSIDE_FLAG)
                found[name]["outside"] = bool(bits & OUTSIDE_FLAG)
        for d in await self.api.dump("nat44_ed_output_interface_get", cursor=0):
            name = self.indexes.interfaces.name(int(d.sw_if_index))
            if name is not None:
                found.setdefault(name, {})["output"] = True
        out = []
        for name, features in found.items():
            if any(features.values()):
                value = Nat44Interface.model_construct(
                    interface=name, inside=features.get("inside", False), outside=features.get("outside", False),
                    output=features.get("output", False),
                )
                out.append(RetrievedValue(NAT_INTERFACE_SPEC.key_prefix + name, value))
        return out


def _twice_flags(value: Nat44Mapping) -> int:
    flags = {TwiceNat.NONE: 0, TwiceNat.SELF: SELF_TWICE_NAT_FLAG, TwiceNat.ENABLED: TWICE_NAT_FLAG}[value.twice_nat]
    return flags | (OUT2IN_ONLY_FLAG if value.out2in_only else 0) | (ADDR_ONLY_FLAG if not value.protocol else 0)


def _local(local: NatLocal) -> dict[str, Any]:
    return {"addr": str(local.ip), "port": local.port, "probability": local.probability, "vrf_id": local.vrf}


class Nat44MappingDescriptor(VPPDescriptor[Nat44Mapping]):
    """One DNAT frontend; several locals = a load-balanced mapping; locals change in place."""

    name = "vpp-nat44-mapping"
    spec = NAT_MAPPING_SPEC
    model = Nat44Mapping
    retrieve_after = ("vpp-nat44-global",)

    def value_name(self, value: Nat44Mapping) -> str:
        return nat_mapping_key(value.external_ip, value.protocol, value.external_port).removeprefix(
            NAT_MAPPING_SPEC.key_prefix
        )

    def dependencies(self, key: str, value: Nat44Mapping) -> Sequence[Dependency]:
        vrfs = sorted({local.vrf for local in value.locals if local.vrf})
        return [_NEEDS_NAT, *(Dependency(label=f"VRF {v}", key=vrf_key(v)) for v in vrfs)]

    def update_needs_recreate(self, key: str, old: Nat44Mapping, new: Nat44Mapping) -> bool:
        if old.model_copy(update={"locals": ()}) != new.model_copy(update={"locals": ()}):
            return True
        if not (old.load_balanced and new.load_balanced):
            return True
        same = {(x.ip, x.port, x.vrf) for x in old.locals} & {(x.ip, x.port, x.vrf) for x in new.locals}
        reweighted = any(x not in old.locals and (x.ip, x.port, x.vrf) in same for x in new.locals)
        return len(new.locals) - (1 if reweighted else 0) < 2  # VPP keeps 2+ locals at every step

    async def create(self, key: str, value: Nat44Mapping) -> None:
        await self._add_del(value, True)

    async def update(self, key: str, old: Nat44Mapping, new: Nat44Mapping, metadata: Any) -> None:
        ident = {(x.ip, x.port, x.vrf): x for x in old.locals}
        new_ident = {(x.ip, x.port, x.vrf): x for x in new.locals}
        for k, local in new_ident.items():  # new backends first: never below two
            if k not in ident:
                await self._local(new, local, True)
        for k, local in ident.items():
            if k not in new_ident:
                await self._local(new, local, False)
        for k, local in new_ident.items():  # reweighted backends: out and back in
            if k in ident and ident[k] != local:
                await self._local(new, ident[k], False)
                await self._local(new, local, True)

    async def _local(self, value: Nat44Mapping, local: NatLocal, is_add: bool) -> None:
        await self.api.call(
            "nat44_lb_static_mapping_add_del_local", is_add=is_add, external_addr=str(value.external_ip),
            external_port=value.external_port, protocol=PROTOCOLS[value.protocol], local=_local(local),
        )

    async def delete(self, key: str, value: Nat44Mapping, metadata: Any) -> None:
        await _tolerate(self._add_del(value, False), NO_SUCH_ENTRY)

    async def _add_del(self, value: Nat44Mapping, is_add: bool) -> None:
        proto = PROTOCOLS[value.protocol]
        if value.load_balanced:
            await self.api.call(
                "nat44_add_del_lb_static_mapping", is_add=is_add, flags=_twice_flags(value),
                external_addr=str(value.external_ip), external_port=value.external_port, protocol=proto,
                affinity=value.affinity, tag=value.tag if is_add else "",
                local_num=len(value.locals) if is_add else 0,
                locals=[_local(x) for x in value.locals] if is_add else [],
            )
            return
        (local,) = value.locals
        await self.api.call(
            "nat44_add_del_static_mapping_v2", is_add=is_add, match_pool=False, flags=_twice_flags(value),
            pool_ip_address="0.0.0.0", local_ip_address=str(local.ip), external_ip_address=str(value.external_ip),
            protocol=proto, local_port=local.port, external_port=value.external_port,
            external_sw_if_index=NO_INDEX, vrf_id=local.vrf, tag=value.tag if is_add else "",
        )

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        expected = {c.key: c.value for c in correlate if isinstance(c.value, Nat44Mapping)}
        out = []
        for d in await self.api.dump("nat44_static_mapping_dump"):
            if not str(d.tag).startswith(TAG_PREFIX):
                continue
            local = NatLocal(ip=str(d.local_ip_address), port=int(d.local_port), vrf=int(d.vrf_id))
            out.append(self._value(d, str(d.external_ip_address), int(d.external_port), (local,), expected))
        for d in await self.api.dump("nat44_lb_static_mapping_dump"):
            if not str(d.tag).startswith(TAG_PREFIX):
                continue
            locals_ = tuple(
                NatLocal(ip=str(x.addr), port=int(x.port), probability=int(x.probability), vrf=int(x.vrf_id))
                for x in d.locals
            )
            out.append(self._value(d, str(d.external_addr), int(d.external_port), locals_, expected))
        return out

    def _value(
        self, d: Any, ext_ip: str, ext_port: int, locals_: tuple[NatLocal, ...], expected: dict[str, Nat44Mapping]
    ) -> RetrievedValue:
        flags, proto = int(d.flags), _PROTOCOL_NAMES.get(int(d.protocol), "")
        twice = TwiceNat.ENABLED if flags & TWICE_NAT_FLAG else TwiceNat.SELF if flags & SELF_TWICE_NAT_FLAG else None
        key = nat_mapping_key(ext_ip, proto, ext_port)
        old = expected.get(key)
        if old is not None:  # VPP reports backends in its own order and no affinity
            order = {(x.ip, x.port, x.vrf): i for i, x in enumerate(old.locals)}
            locals_ = tuple(sorted(locals_, key=lambda x: order.get((x.ip, x.port, x.vrf), len(order))))
            if len(locals_) == 1 == len(old.locals) and locals_[0] == old.locals[0].model_copy(
                update={"probability": 0}
            ):
                locals_ = old.locals  # a single backend has no weight in VPP
        value = Nat44Mapping(
            external_ip=ext_ip, protocol=proto, external_port=ext_port, locals=locals_,
            twice_nat=twice or TwiceNat.NONE, affinity=old.affinity if old is not None and len(locals_) > 1 else 0,
            out2in_only=bool(flags & OUT2IN_ONLY_FLAG), label=str(d.tag).removeprefix(TAG_PREFIX),
        )
        return RetrievedValue(key, value)


class Nat44IdentityDescriptor(VPPDescriptor[Nat44Identity]):
    name = "vpp-nat44-identity"
    spec = NAT_IDENTITY_SPEC
    model = Nat44Identity
    retrieve_after = ("vpp-nat44-global",)

    def value_name(self, value: Nat44Identity) -> str:
        return nat_identity_key(value).removeprefix(NAT_IDENTITY_SPEC.key_prefix)

    def dependencies(self, key: str, value: Nat44Identity) -> Sequence[Dependency]:
        deps = [_NEEDS_NAT]
        if value.vrf:
            deps.append(Dependency(label=f"VRF {value.vrf}", key=vrf_key(value.vrf)))
        return deps

    async def _add_del(self, value: Nat44Identity, is_add: bool) -> None:
        await self.api.call(
            "nat44_add_del_identity_mapping", is_add=is_add, flags=0 if value.protocol else ADDR_ONLY_FLAG,
            ip_address=str(value.ip), protocol=PROTOCOLS[value.protocol], port=value.port,
            sw_if_index=NO_INDEX, vrf_id=value.vrf, tag=value.tag if is_add else "",
        )

    async def create(self, key: str, value: Nat44Identity) -> None:
        await self._add_del(value, True)

    async def delete(self, key: str, value: Nat44Identity, metadata: Any) -> None:
        await _tolerate(self._add_del(value, False), NO_SUCH_ENTRY)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        # VPP keeps one tag per identity mapping across its VRFs: match by identity, not by tag.
        expected = {c.key: c.value for c in correlate if isinstance(c.value, Nat44Identity)}
        out = []
        for d in await self.api.dump("nat44_identity_mapping_dump"):
            if not str(d.tag).startswith(TAG_PREFIX):
                continue
            value = Nat44Identity(
                ip=str(d.ip_address), protocol=_PROTOCOL_NAMES.get(int(d.protocol), ""), port=int(d.port),
                vrf=int(d.vrf_id), label=str(d.tag).removeprefix(TAG_PREFIX),
            )
            key = nat_identity_key(value)
            old = expected.get(key)
            if old is not None:
                value = value.model_copy(update={"label": old.label})
            out.append(RetrievedValue(key, value))
        return out
