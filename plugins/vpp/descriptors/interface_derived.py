"""Descriptors of an interface's L3 settings: VRF binding, addresses, unnumbered.

Order matters in VPP: an interface with addresses cannot change its table (-114), so an
address depends on its interface's VRF binding, and VRF bindings depend on the VRF table.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Interface
from typing import Any

from plugins.kvscheduler.api import Dependency, RetrievedValue, ValueWithMetadata
from plugins.vpp.descriptors.base import VPPDescriptor
from plugins.vpp.model import (
    ADDRESS_SPEC,
    INTERFACE_VRF_SPEC,
    NO_INDEX,
    UNNUMBERED_SPEC,
    InterfaceAddress,
    InterfaceVrf,
    Unnumbered,
    address_key,
    interface_key,
    interface_vrf_key,
    unnumbered_key,
    vrf_key,
)


class InterfaceVrfDescriptor(VPPDescriptor[InterfaceVrf]):
    """Binds an interface to a non-default IPv4 table (``sw_interface_set_table``)."""

    name = "vpp-interface-vrf"
    spec = INTERFACE_VRF_SPEC
    model = InterfaceVrf
    retrieve_after = ("vpp-interface",)

    def value_name(self, value: InterfaceVrf) -> str:
        return f"{value.interface}/vrf/{value.vrf}"

    def dependencies(self, key: str, value: InterfaceVrf) -> Sequence[Dependency]:
        return [
            Dependency(label="interface", key=interface_key(value.interface)),
            Dependency(label="VRF table", key=vrf_key(value.vrf)),
        ]

    async def create(self, key: str, value: InterfaceVrf) -> None:
        index = self.sw_if_index(value.interface)
        await self.api.call("sw_interface_set_table", sw_if_index=index, is_ipv6=False, vrf_id=value.vrf)

    async def delete(self, key: str, value: InterfaceVrf, metadata: Any) -> None:
        index = self.indexes.interfaces.index(value.interface)
        if index is not None:
            await self.api.call("sw_interface_set_table", sw_if_index=index, is_ipv6=False, vrf_id=0)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        out = []
        for name, index in self.indexes.interfaces.items():
            reply = await self.api.call("sw_interface_get_table", sw_if_index=index, is_ipv6=False)
            if int(reply.vrf_id):
                value = InterfaceVrf(interface=name, vrf=int(reply.vrf_id))
                out.append(RetrievedValue(key=interface_vrf_key(name, value.vrf), value=value))
        return out


class InterfaceAddressDescriptor(VPPDescriptor[InterfaceAddress]):
    """One IPv4 address on an interface (``sw_interface_add_del_address``)."""

    name = "vpp-interface-address"
    spec = ADDRESS_SPEC
    model = InterfaceAddress
    retrieve_after = ("vpp-interface",)

    def value_name(self, value: InterfaceAddress) -> str:
        return f"{value.interface}/{value.address}"

    def dependencies(self, key: str, value: InterfaceAddress) -> Sequence[Dependency]:
        if value.vrf:
            return [Dependency(label="interface VRF", key=interface_vrf_key(value.interface, value.vrf))]
        return [Dependency(label="interface", key=interface_key(value.interface))]

    async def create(self, key: str, value: InterfaceAddress) -> None:
        await self._add_del(value, True)

    async def delete(self, key: str, value: InterfaceAddress, metadata: Any) -> None:
        if self.indexes.interfaces.index(value.interface) is not None:
            await self._add_del(value, False)

    async def _add_del(self, value: InterfaceAddress, is_add: bool) -> None:
        index = self.sw_if_index(value.interface)
        await self.api.call(
            "sw_interface_add_del_address", sw_if_index=index, is_add=is_add, del_all=False, prefix=str(value.address)
        )

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        out = []
        for name, index in self.indexes.interfaces.items():
            table = await self.api.call("sw_interface_get_table", sw_if_index=index, is_ipv6=False)
            for details in await self.api.dump("ip_address_dump", sw_if_index=index, is_ipv6=False):
                address = IPv4Interface(str(details.prefix))
                value = InterfaceAddress(interface=name, address=address, vrf=int(table.vrf_id))
                out.append(RetrievedValue(key=address_key(name, address), value=value))
        return out


class UnnumberedDescriptor(VPPDescriptor[Unnumbered]):
    """The interface borrows another interface's addresses (``sw_interface_set_unnumbered``)."""

    name = "vpp-unnumbered"
    spec = UNNUMBERED_SPEC
    model = Unnumbered
    retrieve_after = ("vpp-interface",)

    def value_name(self, value: Unnumbered) -> str:
        return value.interface

    def dependencies(self, key: str, value: Unnumbered) -> Sequence[Dependency]:
        return [
            Dependency(label="interface", key=interface_key(value.interface)),
            Dependency(label="unnumbered target", key=interface_key(value.target)),
        ]

    async def create(self, key: str, value: Unnumbered) -> None:
        await self.api.call(
            "sw_interface_set_unnumbered",
            sw_if_index=self.sw_if_index(value.target),
            unnumbered_sw_if_index=self.sw_if_index(value.interface),
            is_add=True,
        )

    async def delete(self, key: str, value: Unnumbered, metadata: Any) -> None:
        user = self.indexes.interfaces.index(value.interface)
        target = self.indexes.interfaces.index(value.target)
        if user is None or target is None:
            return  # gone with its interface
        await self.api.call(
            "sw_interface_set_unnumbered", sw_if_index=target, unnumbered_sw_if_index=user, is_add=False
        )

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        out = []
        for details in await self.api.dump("ip_unnumbered_dump", sw_if_index=NO_INDEX):
            user = self.indexes.interfaces.name(int(details.sw_if_index))
            target = self.indexes.interfaces.name(int(details.ip_sw_if_index))
            if user and target:
                value = Unnumbered(interface=user, target=target)
                out.append(RetrievedValue(key=unnumbered_key(user), value=value))
        return out
