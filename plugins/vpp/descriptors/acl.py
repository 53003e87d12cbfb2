"""ACL descriptors: ACLs tagged ``cv:<name>`` and the ACL lists of our interfaces."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network
from typing import Any

from plugins.kvscheduler.api import Dependency, RetrievedValue, ValueWithMetadata
from plugins.vpp.descriptors.base import VPPDescriptor
from plugins.vpp.errors import VPPNotFoundError
from plugins.vpp.model import (
    ACL_INTERFACE_SPEC,
    ACL_SPEC,
    NO_INDEX,
    TAG_PREFIX,
    Acl,
    AclAction,
    AclInterface,
    AclRule,
    acl_interface_key,
    acl_key,
    interface_key,
)


def _encode_rule(rule: AclRule) -> dict[str, Any]:
    return {
        "is_permit": int(rule.action),
        "src_prefix": str(rule.src),
        "dst_prefix": str(rule.dst),
        "proto": rule.proto,
        "srcport_or_icmptype_first": rule.src_first,
        "srcport_or_icmptype_last": rule.src_last,
        "dstport_or_icmpcode_first": rule.dst_first,
        "dstport_or_icmpcode_last": rule.dst_last,
        "tcp_flags_mask": rule.tcp_flags_mask,
        "tcp_flags_value": rule.tcp_flags_value,
    }


def _decode_rule(r: Any) -> AclRule:
    return AclRule(
        action=AclAction(int(r.is_permit)),
        src=IPv4Network(str(r.src_prefix)),
        dst=IPv4Network(str(r.dst_prefix)),
        proto=int(r.proto),
        src_first=int(r.srcport_or_icmptype_first),
        src_last=int(r.srcport_or_icmptype_last),
        dst_first=int(r.dstport_or_icmpcode_first),
        dst_last=int(r.dstport_or_icmpcode_last),
        tcp_flags_mask=int(r.tcp_flags_mask),
        tcp_flags_value=int(r.tcp_flags_value),
    )


class AclDescriptor(VPPDescriptor[Acl]):
    """ACLs; metadata is the ``acl_index`` (kept across in-place rule replacement)."""

    name = "vpp-access-list"
    spec = ACL_SPEC
    model = Acl
    with_metadata = True

    def value_name(self, value: Acl) -> str:
        return value.name

    async def _add_replace(self, value: Acl, index: int) -> int:
        rules = [_encode_rule(r) for r in value.rules]
        reply = await self.api.call("acl_add_replace", acl_index=index, tag=value.tag, count=len(rules), r=rules)
        self.indexes.acls.put(value.name, int(reply.acl_index))
        return int(reply.acl_index)

    async def create(self, key: str, value: Acl) -> int:
        return await self._add_replace(value, NO_INDEX)

    async def update(self, key: str, old: Acl, new: Acl, metadata: Any) -> int:
        return await self._add_replace(new, int(metadata))

    async def delete(self, key: str, value: Acl, metadata: Any) -> None:
        await self.api.call("acl_del", acl_index=int(metadata))
        self.indexes.acls.remove(value.name)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        self.indexes.acls.clear()
        out = []
        for d in await self.api.dump("acl_dump", acl_index=NO_INDEX):
            if not d.tag.startswith(TAG_PREFIX):
                continue
            name = d.tag[len(TAG_PREFIX) :]
            self.indexes.acls.put(name, int(d.acl_index))
            value = Acl(name=name, rules=tuple(_decode_rule(r) for r in d.r))
            out.append(RetrievedValue(key=acl_key(name), value=value, metadata=int(d.acl_index)))
        return out


class AclInterfaceDescriptor(VPPDescriptor[AclInterface]):
    """The input and output ACL lists of one of our interfaces (``acl_interface_set_acl_list``)."""

    name = "vpp-acl-interface"
    spec = ACL_INTERFACE_SPEC
    model = AclInterface
    retrieve_after = ("vpp-interface", "vpp-access-list")

    def value_name(self, value: AclInterface) -> str:
        return value.interface

    def dependencies(self, key: str, value: AclInterface) -> Sequence[Dependency]:
        deps = [Dependency(label="interface", key=interface_key(value.interface))]
        deps += [Dependency(label=f"ACL {n}", key=acl_key(n)) for n in dict.fromkeys(value.input + value.output)]
        return deps

    def _index(self, acl: str) -> int:
        index = self.indexes.acls.index(acl)
        if index is None:
            raise VPPNotFoundError(f"VPP ACL {acl!r} is not known (not created yet?)")
        return index

    async def _set(self, interface: str, inputs: Sequence[str], outputs: Sequence[str]) -> None:
        acls = [self._index(a) for a in inputs] + [self._index(a) for a in outputs]
        await self.api.call(
            "acl_interface_set_acl_list",
            sw_if_index=self.sw_if_index(interface),
            count=len(acls),
            n_input=len(inputs),
            acls=acls,
        )

    async def create(self, key: str, value: AclInterface) -> None:
        await self._set(value.interface, value.input, value.output)

    async def update(self, key: str, old: AclInterface, new: AclInterface, metadata: Any) -> None:
        await self._set(new.interface, new.input, new.output)

    async def delete(self, key: str, value: AclInterface, metadata: Any) -> None:
        if self.indexes.interfaces.index(value.interface) is not None:
            await self._set(value.interface, (), ())

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        out = []
        for d in await self.api.dump("acl_interface_list_dump", sw_if_index=NO_INDEX):
            interface = self.indexes.interfaces.name(int(d.sw_if_index))
            names = [self.indexes.acls.name(int(i)) for i in d.acls[: int(d.count)]]
            if interface is None or not names or any(n is None for n in names):
                continue  # not ours, empty, or with foreign ACLs: left alone
            n_input = int(d.n_input)
            value = AclInterface(
                interface=interface,
                input=tuple(n for n in names[:n_input] if n),
                output=tuple(n for n in names[n_input:] if n),
            )
            out.append(RetrievedValue(key=acl_interface_key(interface), value=value))
        return out
