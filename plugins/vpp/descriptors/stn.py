"""STN mode on VPP: STN rules (``stn_add_del_rule``) and proxy ARP (contiv.md 3.7, STN mode).

* :class:`StnRule`: traffic for ``ip_address`` that VPP does not handle itself is punted to
  ``interface`` (the host interconnect), so the host keeps answering on the stolen NIC's
  address. VPP keeps no tag on rules: a dumped rule is ours when its interface is one of ours.
* :class:`ProxyArpRange` (``proxy_arp_add_del``): VPP answers ARP for these addresses (the
  stolen NIC's subnet) on interfaces with proxy ARP enabled, so the host reaches its old
  gateway and neighbours through VPP.
* :class:`ProxyArpInterface` (``proxy_arp_intfc_enable_disable``): proxy ARP on one interface.

Models and keys live here (not in ``plugins/vpp/model.py``): STN is the only user.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from plugins.kvscheduler.api import Dependency, ModelSpec, RetrievedValue, ValueWithMetadata
from plugins.vpp.descriptors.base import VPPDescriptor
from plugins.vpp.model import TAG_PREFIX, interface_key

STN_RULE_SPEC = ModelSpec("vpp/stn", "v2", "rule")
PROXY_ARP_RANGE_SPEC = ModelSpec("vpp", "v2", "proxyarp-range")
PROXY_ARP_INTERFACE_SPEC = ModelSpec("vpp", "v2", "proxyarp-interface")


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StnRule(_Value):
    """Punt what VPP does not handle for ``ip_address`` to ``interface``."""

    ip_address: IPv4Address
    interface: str


class ProxyArpRange(_Value):
    """VPP answers ARP requests for ``low``..``high`` (in FIB table ``vrf``)."""

    vrf: int = Field(default=0, ge=0)
    low: IPv4Address
    high: IPv4Address

    @model_validator(mode="after")
    def _ordered(self) -> ProxyArpRange:
        if self.low > self.high:
            raise ValueError(f"proxy ARP range {self.low}-{self.high} ends before it starts")
        return self


class ProxyArpInterface(_Value):
    """Proxy ARP enabled on ``interface``."""

    interface: str


def stn_rule_key(ip_address: IPv4Address) -> str:
    return f"{STN_RULE_SPEC.key_prefix}{ip_address}"


def proxy_arp_range_key(value: ProxyArpRange) -> str:
    return f"{PROXY_ARP_RANGE_SPEC.key_prefix}{value.vrf}/{value.low}-{value.high}"


def proxy_arp_interface_key(interface: str) -> str:
    return PROXY_ARP_INTERFACE_SPEC.key_prefix + interface


class StnRuleDescriptor(VPPDescriptor[StnRule]):
    """STN rules (``stn_add_del_rule``, ``stn_rules_dump``)."""

    name = "vpp-stn-rule"
    spec = STN_RULE_SPEC
    model = StnRule
    retrieve_after = ("vpp-interface",)

    def value_name(self, value: StnRule) -> str:
        return str(value.ip_address)

    def dependencies(self, key: str, value: StnRule) -> Sequence[Dependency]:
        return [Dependency(label="punt interface", key=interface_key(value.interface))]

    def update_needs_recreate(self, key: str, old: StnRule, new: StnRule) -> bool:
        return True

    async def _add_del(self, value: StnRule, is_add: bool) -> None:
        await self.api.call(
            "stn_add_del_rule", is_add=is_add, ip_address=str(value.ip_address),
            sw_if_index=self.sw_if_index(value.interface),
        )

    async def create(self, key: str, value: StnRule) -> None:
        await self._add_del(value, True)

    async def delete(self, key: str, value: StnRule, metadata: Any) -> None:
        if self.indexes.interfaces.index(value.interface) is not None:
            await self._add_del(value, False)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        out = []
        for details in await self.api.dump("stn_rules_dump"):
            name = self.indexes.interfaces.name(int(details.sw_if_index))
            if name is None:
                continue
            value = StnRule(ip_address=IPv4Address(str(details.ip_address)), interface=name)
            out.append(RetrievedValue(key=stn_rule_key(value.ip_address), value=value))
        return out


class ProxyArpRangeDescriptor(VPPDescriptor[ProxyArpRange]):
    """Proxy ARP address ranges (``proxy_arp_add_del``, ``proxy_arp_dump``).

    VPP has no owner mark for ranges: read back are the ranges in our VRF tables plus the ones
    the scheduler expects (table 0 is shared with whatever else configured VPP).
    """

    name = "vpp-proxy-arp-range"
    spec = PROXY_ARP_RANGE_SPEC
    model = ProxyArpRange
    retrieve_after = ("vpp-vrf-table",)

    def value_name(self, value: ProxyArpRange) -> str:
        return f"{value.vrf}/{value.low}-{value.high}"

    def dependencies(self, key: str, value: ProxyArpRange) -> Sequence[Dependency]:
        if value.vrf:
            return [Dependency(label="VRF table", key=f"config/vpp/v2/vrf-table/{value.vrf}")]
        return []

    async def _add_del(self, value: ProxyArpRange, is_add: bool) -> None:
        proxy = {"table_id": value.vrf, "low": str(value.low), "hi": str(value.high)}
        await self.api.call("proxy_arp_add_del", is_add=is_add, proxy=proxy)

    async def create(self, key: str, value: ProxyArpRange) -> None:
        await self._add_del(value, True)

    async def delete(self, key: str, value: ProxyArpRange, metadata: Any) -> None:
        await self._add_del(value, False)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        expected = {c.key for c in correlate}
        our_tables = {int(d.table.table_id) for d in await self.api.dump("ip_table_dump")
                      if str(d.table.name).startswith(TAG_PREFIX)}
        out = []
        for details in await self.api.dump("proxy_arp_dump"):
            proxy = details.proxy
            value = ProxyArpRange(vrf=int(proxy.table_id), low=IPv4Address(str(proxy.low)),
                                  high=IPv4Address(str(proxy.hi)))
            key = proxy_arp_range_key(value)
            if key in expected or value.vrf in our_tables:
                out.append(RetrievedValue(key=key, value=value))
        return out


class ProxyArpInterfaceDescriptor(VPPDescriptor[ProxyArpInterface]):
    """Proxy ARP on an interface (``proxy_arp_intfc_enable_disable``, ``proxy_arp_intfc_dump``)."""

    name = "vpp-proxy-arp-interface"
    spec = PROXY_ARP_INTERFACE_SPEC
    model = ProxyArpInterface
    retrieve_after = ("vpp-interface",)

    def value_name(self, value: ProxyArpInterface) -> str:
        return value.interface

    def dependencies(self, key: str, value: ProxyArpInterface) -> Sequence[Dependency]:
        return [Dependency(label="interface", key=interface_key(value.interface))]

    async def create(self, key: str, value: ProxyArpInterface) -> None:
        await self.api.call("proxy_arp_intfc_enable_disable", sw_if_index=self.sw_if_index(value.interface),
                            enable=True)

    async def delete(self, key: str, value: ProxyArpInterface, metadata: Any) -> None:
        index = self.indexes.interfaces.index(value.interface)
        if index is not None:
            await self.api.call("proxy_arp_intfc_enable_disable", sw_if_index=index, enable=False)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        out = []
        for details in await self.api.dump("proxy_arp_intfc_dump"):
            name = self.indexes.interfaces.name(int(details.sw_if_index))
            if name is not None:
                out.append(RetrievedValue(key=proxy_arp_interface_key(name), value=ProxyArpInterface(interface=name)))
        return out
