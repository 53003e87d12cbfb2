"""VXLAN devices (the Linux end of the node mesh), marked ``contiv:<key>``, learning off."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import Any

from pyroute2 import AsyncIPRoute

from plugins.kvscheduler.api import (
    DerivedValue,
    Origin,
    RetrievedValue,
    ValueWithMetadata,
)
from plugins.linux.descriptors.base import LinuxDescriptor
from plugins.linux.links import LinkInfo, Mark, dump_links, find_link, forget_links, set_link
from plugins.linux.models import VXLAN_SPEC, LinkProperty, Vxlan, link_property_key
from plugins.linux.models import value_name as model_value_name
from plugins.linux.netns import NamespaceNotFoundError


class VxlanDescriptor(LinuxDescriptor[Vxlan]):
    """``config/linux/v1/vxlan/<ns>/<ifname>``."""

    name = "linux-vxlan"
    spec = VXLAN_SPEC
    model = Vxlan

    def value_name(self, value: Vxlan) -> str:
        return model_value_name(value)

    def derived_values(self, key: str, value: Vxlan) -> Sequence[DerivedValue]:
        return [DerivedValue(link_property_key(value.namespace, value.ifname),
                             LinkProperty(namespace=value.namespace, ifname=value.ifname))]

    def update_needs_recreate(self, key: str, old: Vxlan, new: Vxlan) -> bool:
        fixed = ("vni", "local", "port", "underlay", "ifname", "namespace")
        return any(getattr(old, f) != getattr(new, f) for f in fixed)

    async def create(self, key: str, value: Vxlan) -> None:
        async with self.pool.connect(value.namespace) as ipr:
            attrs: dict[str, Any] = {
                "vxlan_id": value.vni,
                "vxlan_local": str(value.local),
                "vxlan_port": value.port,
                "vxlan_learning": 0,
            }
            if value.underlay:
                under = await find_link(ipr, value.underlay)
                if under is None:
                    raise OSError(f"VXLAN underlay device {value.underlay} does not exist")
                attrs["vxlan_link"] = under.index
            forget_links(self.pool, value.namespace, value.ifname)
            await ipr.link("add", ifname=value.ifname, kind="vxlan", **attrs)
            try:
                await set_link(ipr, None, mac=value.mac, mtu=value.mtu, up=value.up,
                               alias=Mark(key).alias(), ifname=value.ifname)
            except BaseException:
                await ipr.link("del", ifname=value.ifname)
                raise

    async def update(self, key: str, old: Vxlan, new: Vxlan, metadata: Any) -> None:
        async with self.pool.connect(new.namespace) as ipr:
            info = await find_link(ipr, new.ifname)
            if info is None or info.mark is None:
                raise OSError(f"our VXLAN device {new.ifname} is missing")
            await set_link(ipr, info.index, mac=new.mac, mtu=new.mtu, up=new.up)

    async def delete(self, key: str, value: Vxlan, metadata: Any) -> None:
        try:
            async with self.pool.connect(value.namespace) as ipr:
                info = await find_link(ipr, value.ifname)
                if info is not None and info.mark is not None and info.mark.key == key:
                    await ipr.link("del", index=info.index)
                    forget_links(self.pool, value.namespace, value.ifname)
        except NamespaceNotFoundError:
            return

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        wanted = {item.key: item.value for item in correlate if isinstance(item.value, Vxlan)}

        async def read(ns: str, ipr: AsyncIPRoute) -> list[RetrievedValue]:
            links = await dump_links(ipr)
            by_index = {info.index: info for info in links}
            return [
                RetrievedValue(info.mark.key, _read(ns, info, by_index, wanted.get(info.mark.key)),
                               origin=Origin.FROM_NB)
                for info in links
                if info.kind == "vxlan" and info.mark is not None
                and info.mark.key.startswith(self.key_prefix)
            ]

        return await self.for_each_namespace(correlate, read)


def _read(ns: str, info: LinkInfo, by_index: dict[int, LinkInfo], desired: Any) -> Vxlan:
    data = info.msg.get(("linkinfo", "data"))
    under_idx = data.get("IFLA_VXLAN_LINK") if data is not None else None
    underlay = by_index[under_idx].ifname if under_idx in by_index else ""
    want_mac = desired.mac if isinstance(desired, Vxlan) else "x"
    want_mtu = desired.mtu if isinstance(desired, Vxlan) else 1
    return Vxlan(
        namespace=ns,
        ifname=info.ifname,
        mac=info.mac if want_mac else "",
        mtu=info.mtu if want_mtu else 0,
        up=info.up,
        vni=int(data.get("IFLA_VXLAN_ID")) if data is not None else 1,
        local=IPv4Address(data.get("IFLA_VXLAN_LOCAL") or "0.0.0.0") if data is not None
        else IPv4Address("0.0.0.0"),
        port=int(data.get("IFLA_VXLAN_PORT") or 4789) if data is not None else 4789,
        underlay=underlay,
    )
