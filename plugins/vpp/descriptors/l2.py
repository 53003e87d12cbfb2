"""L2 descriptors: bridge domains (tagged ``cv:<name>``), their members, static L2 FIB entries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plugins.kvscheduler.api import Dependency, RetrievedValue, ValueWithMetadata
from plugins.vpp.descriptors.base import VPPDescriptor
from plugins.vpp.model import (
    BD_INTERFACE_SPEC,
    BD_SPEC,
    FIB_SPEC,
    NO_INDEX,
    TAG_PREFIX,
    BridgeDomain,
    BridgeDomainInterface,
    L2FibEntry,
    bd_interface_key,
    bd_key,
    fib_key,
    interface_key,
)

PORT_NORMAL, PORT_BVI = 0, 1


class BridgeDomainDescriptor(VPPDescriptor[BridgeDomain]):
    """Bridge domains (members are ``vpp-bd-interface`` values). Metadata: ``bd_id``."""

    name = "vpp-bridge-domain"
    spec = BD_SPEC
    model = BridgeDomain
    with_metadata = True
    retrieve_after = ("vpp-interface",)

    def value_name(self, value: BridgeDomain) -> str:
        return value.name

    def update_needs_recreate(self, key: str, old: BridgeDomain, new: BridgeDomain) -> bool:
        return True  # flags and id are fixed at creation

    async def create(self, key: str, value: BridgeDomain) -> int:
        await self.api.call(
            "bridge_domain_add_del_v2",
            bd_id=value.id,
            flood=value.flood,
            uu_flood=value.unknown_unicast_flood,
            forward=value.forward,
            learn=value.learn,
            arp_term=value.arp_termination,
            arp_ufwd=False,
            mac_age=value.mac_age,
            bd_tag=value.tag,
            is_add=True,
        )
        self.indexes.bridge_domains.put(value.name, value.id)
        return value.id

    async def delete(self, key: str, value: BridgeDomain, metadata: Any) -> None:
        await self.api.call("bridge_domain_add_del_v2", bd_id=value.id, is_add=False)
        self.indexes.bridge_domains.remove(value.name)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        self.indexes.bridge_domains.clear()
        out = []
        for d in await self.api.dump("bridge_domain_dump", bd_id=NO_INDEX, sw_if_index=NO_INDEX):
            if not d.bd_tag.startswith(TAG_PREFIX):
                continue
            name = d.bd_tag[len(TAG_PREFIX) :]
            self.indexes.bridge_domains.put(name, int(d.bd_id))
            value = BridgeDomain(
                name=name,
                id=int(d.bd_id),
                flood=bool(d.flood),
                unknown_unicast_flood=bool(d.uu_flood),
                forward=bool(d.forward),
                learn=bool(d.learn),
                arp_termination=bool(d.arp_term),
                mac_age=int(d.mac_age),
            )
            out.append(RetrievedValue(key=bd_key(name), value=value, metadata=int(d.bd_id)))
        return out


class BridgeDomainInterfaceDescriptor(VPPDescriptor[BridgeDomainInterface]):
    """One interface in a bridge domain (``sw_interface_set_l2_bridge``)."""

    name = "vpp-bd-interface"
    spec = BD_INTERFACE_SPEC
    model = BridgeDomainInterface
    retrieve_after = ("vpp-interface", "vpp-bridge-domain")

    def value_name(self, value: BridgeDomainInterface) -> str:
        return f"{value.bridge_domain}/{value.interface}"

    def dependencies(self, key: str, value: BridgeDomainInterface) -> Sequence[Dependency]:
        return [
            Dependency(label="bridge domain", key=bd_key(value.bridge_domain)),
            Dependency(label="member interface", key=interface_key(value.interface)),
        ]

    async def _set(self, value: BridgeDomainInterface, enable: bool) -> None:
        await self.api.call(
            "sw_interface_set_l2_bridge",
            rx_sw_if_index=self.sw_if_index(value.interface),
            bd_id=value.bd_id,
            port_type=PORT_BVI if value.bvi else PORT_NORMAL,
            shg=value.shg,
            enable=enable,
        )

    async def create(self, key: str, value: BridgeDomainInterface) -> None:
        await self._set(value, True)

    async def update(self, key: str, old: BridgeDomainInterface, new: BridgeDomainInterface, metadata: Any) -> None:
        await self._set(new, True)

    async def delete(self, key: str, value: BridgeDomainInterface, metadata: Any) -> None:
        if self.indexes.interfaces.index(value.interface) is not None:
            await self._set(value, False)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        out = []
        for d in await self.api.dump("bridge_domain_dump", bd_id=NO_INDEX, sw_if_index=NO_INDEX):
            if not d.bd_tag.startswith(TAG_PREFIX):
                continue
            bd = d.bd_tag[len(TAG_PREFIX) :]
            for member in d.sw_if_details:
                iface = self.indexes.interfaces.name(int(member.sw_if_index))
                if iface is None:
                    continue
                value = BridgeDomainInterface(
                    bridge_domain=bd,
                    bd_id=int(d.bd_id),
                    interface=iface,
                    bvi=int(member.sw_if_index) == int(d.bvi_sw_if_index),
                    shg=int(member.shg),
                )
                out.append(RetrievedValue(key=bd_interface_key(bd, iface), value=value))
        return out


class L2FibDescriptor(VPPDescriptor[L2FibEntry]):
    """Static L2 FIB entries in our bridge domains (``l2fib_add_del``)."""

    name = "vpp-l2-fib"
    spec = FIB_SPEC
    model = L2FibEntry
    retrieve_after = ("vpp-interface", "vpp-bridge-domain")

    def value_name(self, value: L2FibEntry) -> str:
        return f"{value.bridge_domain}/{value.mac}"

    def dependencies(self, key: str, value: L2FibEntry) -> Sequence[Dependency]:
        # VPP accepts an entry only for an interface in bridge mode (else -2).
        return [
            Dependency(label="bridge domain", key=bd_key(value.bridge_domain)),
            Dependency(label="bridge member", key=bd_interface_key(value.bridge_domain, value.outgoing_interface)),
        ]

    async def create(self, key: str, value: L2FibEntry) -> None:
        await self.api.call(
            "l2fib_add_del",
            mac=value.mac,
            bd_id=value.bd_id,
            sw_if_index=self.sw_if_index(value.outgoing_interface),
            is_add=True,
            static_mac=True,
            filter_mac=False,
            bvi_mac=value.bvi,
        )

    async def delete(self, key: str, value: L2FibEntry, metadata: Any) -> None:
        index = self.indexes.interfaces.index(value.outgoing_interface)
        await self.api.call(
            "l2fib_add_del",
            mac=value.mac,
            bd_id=value.bd_id,
            sw_if_index=NO_INDEX if index is None else index,
            is_add=False,
            static_mac=True,
        )

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        out = []
        expected = {c.key for c in correlate}
        for d in await self.api.dump("l2_fib_table_dump", bd_id=NO_INDEX):
            bd = self.indexes.bridge_domains.name(int(d.bd_id))
            iface = self.indexes.interfaces.name(int(d.sw_if_index))
            if bd is None or iface is None or not d.static_mac:
                continue
            if d.bvi_mac and fib_key(bd, str(d.mac)) not in expected:
                continue  # VPP adds a BVI's own MAC by itself when the BVI joins the domain
            value = L2FibEntry(
                bridge_domain=bd, bd_id=int(d.bd_id), mac=str(d.mac), outgoing_interface=iface, bvi=bool(d.bvi_mac)
            )
            out.append(RetrievedValue(key=fib_key(bd, value.mac), value=value))
        return out
