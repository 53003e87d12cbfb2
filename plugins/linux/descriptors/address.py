"""IPv4 addresses on our links (ownership: the link carries our mark)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from ipaddress import IPv4Interface
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from plugins.kvscheduler.api import (
    Dependency,
    Origin,
    RetrievedValue,
    ValueWithMetadata,
)
from plugins.linux.descriptors.base import LinuxDescriptor
from plugins.linux.links import LinkInfo, LinkMissingError, dump_links, on_link
from plugins.linux.models import ADDRESS_SPEC, InterfaceAddress, link_property_key
from plugins.linux.netns import NamespaceNotFoundError, namespace_label


class AddressDescriptor(LinuxDescriptor):
    """``config/linux/v1/address/<ns>/<ifname>/<ip>/<prefixlen>``."""

    name = "linux-address"
    spec = ADDRESS_SPEC
    model = InterfaceAddress
    retrieve_after = ("linux-veth", "linux-vxlan")

    def value_name(self, value: InterfaceAddress) -> str:
        return f"{namespace_label(value.namespace)}/{value.ifname}/{value.address}"

    def dependencies(self, key: str, value: InterfaceAddress) -> Sequence[Dependency]:
        return [Dependency("interface", key=link_property_key(value.namespace, value.ifname))]

    async def create(self, key: str, value: InterfaceAddress) -> None:
        async with self.pool.connect(value.namespace) as ipr:

            async def add(link: LinkInfo) -> None:
                try:
                    await ipr.addr("add", index=link.index, address=str(value.address.ip),
                                   prefixlen=value.address.network.prefixlen)
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise

            try:
                await on_link(self.pool, ipr, value.ifname, add)
            except LinkMissingError as exc:
                raise OSError(str(exc)) from None

    async def delete(self, key: str, value: InterfaceAddress, metadata: Any) -> None:
        try:
            async with self.pool.connect(value.namespace) as ipr:

                async def remove(link: LinkInfo) -> None:
                    try:
                        await ipr.addr("del", index=link.index, address=str(value.address.ip),
                                       prefixlen=value.address.network.prefixlen)
                    except NetlinkError as exc:
                        if exc.code != errno.EADDRNOTAVAIL:
                            raise

                await on_link(self.pool, ipr, value.ifname, remove)
        except (NamespaceNotFoundError, LinkMissingError):
            return

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
