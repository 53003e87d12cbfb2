"""IPv4 addresses on our links (ownership: the link carries our mark)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from ipaddress import IPv4Interface
from typing import Any

from pyroute2 import AsyncIPRoute

from plugins.kvscheduler.api import (
    Origin,
    RetrievedValue,
    ValueWithMetadata,
)
from plugins.linux.descriptors.base import OnLinkDescriptor, tolerating
from plugins.linux.links import LinkInfo, dump_links
from plugins.linux.models import ADDRESS_SPEC, InterfaceAddress


class AddressDescriptor(OnLinkDescriptor[InterfaceAddress]):
    """``config/linux/v1/address/<ns>/<ifname>/<ip>/<prefixlen>``."""

    name = "linux-address"
    spec = ADDRESS_SPEC
    model = InterfaceAddress

    async def create(self, key: str, value: InterfaceAddress) -> None:
        async def add(ipr: AsyncIPRoute, link: LinkInfo) -> None:
            await tolerating(ipr.addr("add", index=link.index, address=str(value.address.ip),
                                      prefixlen=value.address.network.prefixlen), errno.EEXIST)

        await self.apply_on_link(value, add)

    async def delete(self, key: str, value: InterfaceAddress, metadata: Any) -> None:
        async def remove(ipr: AsyncIPRoute, link: LinkInfo) -> None:
            await tolerating(ipr.addr("del", index=link.index, address=str(value.address.ip),
                                      prefixlen=value.address.network.prefixlen), errno.EADDRNOTAVAIL)

        await self.remove_on_link(value, remove)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        async def read(ns: str, ipr: AsyncIPRoute) -> list[RetrievedValue]:
            ours = {i.index: i for i in await dump_links(ipr) if i.mark is not None}
            if not ours:
                return []
            result = []
            async for msg in await ipr.addr("dump", family=socket.AF_INET):
                link = ours.get(int(msg["index"]))
                if link is None:
                    continue
                value = InterfaceAddress(
                    namespace=ns, ifname=link.ifname,
                    address=IPv4Interface(f"{msg.get('address')}/{msg['prefixlen']}"),
                )
                result.append(RetrievedValue(self.key_of(value), value, origin=Origin.FROM_NB))
            return result

        return await self.for_each_namespace(correlate, read)
