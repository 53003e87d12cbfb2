"""Static neighbours (IP -> MAC) and VXLAN forwarding entries (MAC -> remote IP) on our links."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import Any

from pyroute2 import AsyncIPRoute

from plugins.kvscheduler.api import (
    Origin,
    RetrievedValue,
    ValueWithMetadata,
)
from plugins.linux.descriptors.base import OnLinkDescriptor, tolerating
from plugins.linux.links import LinkInfo, LinkMissingError, dump_links
from plugins.linux.models import (
    FDB_SPEC,
    NEIGHBOUR_SPEC,
    FdbEntry,
    Neighbour,
)

_NUD_PERMANENT = 0x80
_NUD_NOARP = 0x40
_NTF_SELF = 0x02


class NeighbourDescriptor(OnLinkDescriptor[Neighbour]):
    """``config/linux/v1/neighbour/<ns>/<ifname>/<ip>``: permanent entries on our links."""

    name = "linux-neighbour"
    spec = NEIGHBOUR_SPEC
    model = Neighbour

    async def create(self, key: str, value: Neighbour) -> None:
        async def replace(ipr: AsyncIPRoute, link: LinkInfo) -> None:
            # replace: a dynamic entry the kernel learnt meanwhile becomes our static one.
            await ipr.neigh("replace", ifindex=link.index, dst=str(value.ip),
                            lladdr=value.mac, state=_NUD_PERMANENT)

        await self.apply_on_link(value, replace)

    async def update(self, key: str, old: Neighbour, new: Neighbour, metadata: Any) -> None:
        await self.create(key, new)

    async def delete(self, key: str, value: Neighbour, metadata: Any) -> None:
        async def remove(ipr: AsyncIPRoute, link: LinkInfo) -> None:
            await tolerating(ipr.neigh("del", ifindex=link.index, dst=str(value.ip)), errno.ENOENT)

        await self.remove_on_link(value, remove)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        async def read(ns: str, ipr: AsyncIPRoute) -> list[RetrievedValue]:
            ours = {i.index: i for i in await dump_links(ipr) if i.mark is not None}
            if not ours:
                return []
            result = []
            async for msg in await ipr.neigh("dump", family=socket.AF_INET):
                link = ours.get(int(msg["ifindex"]))
                if link is None or not int(msg["state"]) & _NUD_PERMANENT:
                    continue
                value = Neighbour(namespace=ns, ifname=link.ifname,
                                  ip=IPv4Address(msg.get("dst")), mac=str(msg.get("lladdr")))
                result.append(RetrievedValue(self.key_of(value), value, origin=Origin.FROM_NB))
            return result

        return await self.for_each_namespace(correlate, read)


class FdbDescriptor(OnLinkDescriptor[FdbEntry]):
    """``config/linux/v1/fdb/<ns>/<ifname>/<mac>``: static entries on our VXLAN devices."""

    name = "linux-fdb"
    spec = FDB_SPEC
    model = FdbEntry
    retrieve_after = ("linux-vxlan",)

    def missing_link_message(self, value: FdbEntry, error: LinkMissingError) -> str:
        return f"VXLAN device {value.ifname} is missing or not ours"

    async def create(self, key: str, value: FdbEntry) -> None:
        async def replace(ipr: AsyncIPRoute, link: LinkInfo) -> None:
            # pyroute2 only fills in NOARP/SELF for add/append/del; replace needs them spelt out.
            await ipr.fdb("replace", ifindex=link.index, lladdr=value.mac,
                          dst=str(value.dst), state=_NUD_PERMANENT | _NUD_NOARP, flags=_NTF_SELF)

        await self.apply_on_link(value, replace)

    async def update(self, key: str, old: FdbEntry, new: FdbEntry, metadata: Any) -> None:
        await self.create(key, new)

    async def delete(self, key: str, value: FdbEntry, metadata: Any) -> None:
        async def remove(ipr: AsyncIPRoute, link: LinkInfo) -> None:
            await tolerating(ipr.fdb("del", ifindex=link.index, lladdr=value.mac, dst=str(value.dst)),
                             errno.ENOENT)

        await self.remove_on_link(value, remove)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        async def read(ns: str, ipr: AsyncIPRoute) -> list[RetrievedValue]:
            ours = {i.index: i for i in await dump_links(ipr)
                    if i.mark is not None and i.kind == "vxlan"}
            if not ours:
                return []
            result = []
            async for msg in await ipr.fdb("dump"):
                link = ours.get(int(msg["ifindex"]))
                dst = msg.get("NDA_DST")
                if link is None or not dst or not int(msg["state"]) & _NUD_PERMANENT:
                    continue
                value = FdbEntry(namespace=ns, ifname=link.ifname,
                                 mac=str(msg.get("NDA_LLADDR")), dst=IPv4Address(dst))
                result.append(RetrievedValue(self.key_of(value), value, origin=Origin.FROM_NB))
            return result

        return await self.for_each_namespace(correlate, read)
