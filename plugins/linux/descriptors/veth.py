"""Veth pairs whose ends live in any two namespaces (pod <-> node), with MAC, MTU and state."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Sequence
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from plugins.kvscheduler.api import (
    DerivedValue,
    InvalidValueError,
    Origin,
    RetrievedValue,
    ValueWithMetadata,
)
from plugins.linux.descriptors.base import LinuxDescriptor, tolerating
from plugins.linux.linkdel import delete_link
from plugins.linux.links import LinkInfo, Mark, dump_links, find_link, forget_links, set_link
from plugins.linux.models import (
    VETH_SPEC,
    LinkProperty,
    Veth,
    VethEnd,
    link_property_key,
)
from plugins.linux.models import value_name as model_value_name
from plugins.linux.netns import (
    NamespaceNotFoundError,
    namespace_exists,
    namespace_path,
    open_namespace,
)


class VethDescriptor(LinuxDescriptor[Veth]):
    """``config/linux/v1/veth/<name>``: both ends carry the mark ``contiv:<key>@<peer>``."""

    name = "linux-veth"
    spec = VETH_SPEC
    model = Veth

    def value_name(self, value: Veth) -> str:
        return model_value_name(value)

    def validate(self, key: str, value: Veth) -> None:
        if (value.end1.namespace, value.end1.ifname) == (value.end2.namespace, value.end2.ifname):
            raise InvalidValueError(key, "both ends have the same name in the same namespace")

    def derived_values(self, key: str, value: Veth) -> Sequence[DerivedValue]:
        return [
            DerivedValue(link_property_key(end.namespace, end.ifname), LinkProperty(
                namespace=end.namespace, ifname=end.ifname))
            for end in (value.end1, value.end2)
        ]

    def update_needs_recreate(self, key: str, old: Veth, new: Veth) -> bool:
        return any(
            (o.namespace, o.ifname) != (n.namespace, n.ifname)
            for o, n in ((old.end1, new.end1), (old.end2, new.end2))
        )

    async def create(self, key: str, value: Veth) -> None:
        end1, end2 = value.end1, value.end2
        for end in (end1, end2):
            if not namespace_exists(end.namespace):
                raise NamespaceNotFoundError(end.namespace, namespace_path(end.namespace) or "")
        for end in (end1, end2):
            forget_links(self.pool, end.namespace, end.ifname)
        peer: dict[str, Any] = {"ifname": end2.ifname}
        fd = open_namespace(end2.namespace) if end2.namespace != end1.namespace else None
        try:
            async with self.pool.connect(end1.namespace) as ipr:
                if fd is not None:
                    peer["net_ns_fd"] = fd
                try:
                    await ipr.link("add", ifname=end1.ifname, kind="veth", peer=peer)
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST or not await _remove_leftover(ipr, key, end1):
                        raise
                    await ipr.link("add", ifname=end1.ifname, kind="veth", peer=peer)
        finally:
            if fd is not None:
                os.close(fd)
        try:
            # Both ends were just created by us under these names: configure them by name,
            # without looking them up first.
            await self._configure(key, end1, end2, by_name=True)
            await self._configure(key, end2, end1, by_name=True)
        except BaseException:
            await self._delete_end(end1)
            raise

    async def _configure(self, key: str, end: VethEnd, peer: VethEnd, by_name: bool = False) -> None:
        mark = Mark(key, peer.namespace, peer.ifname)
        async with self.pool.connect(end.namespace) as ipr:
            if by_name:
                await set_link(ipr, None, mac=end.mac, mtu=end.mtu, up=end.up,
                               alias=mark.alias(), ifname=end.ifname)
                return
            info = await find_link(ipr, end.ifname)
            if info is None or info.mark is None or info.mark.key != key:
                raise OSError(f"our veth end {end.ifname} is missing from namespace "
                              f"{end.namespace!r}")
            await set_link(ipr, info.index, mac=end.mac, mtu=end.mtu, up=end.up,
                           alias=mark.alias())

    async def update(self, key: str, old: Veth, new: Veth, metadata: Any) -> None:
        for o, n, peer in ((old.end1, new.end1, new.end2), (old.end2, new.end2, new.end1)):
            if o != n:
                await self._configure(key, n, peer)

    async def delete(self, key: str, value: Veth, metadata: Any) -> None:
        # Deleting either end removes the pair; an end whose namespace is gone is gone too.
        for end in (value.end1, value.end2):
            if await self._delete_end(end, key):
                return

    async def _delete_end(self, end: VethEnd, key: str | None = None) -> bool:
        if not namespace_exists(end.namespace):
            return False
        async with self.pool.connect(end.namespace) as ipr:
            info = await find_link(ipr, end.ifname)
            if info is None or info.mark is None:
                return False
            if key is not None and info.mark.key != key:
                return False
            # Done once the kernel announced both ends gone (their addresses, routes and
            # neighbours with them), without waiting for its RCU barrier (linkdel.py).
            watch = [(end.namespace, end.ifname)]
            if info.mark.peer_ifname and namespace_exists(info.mark.peer_namespace):
                watch.append((info.mark.peer_namespace, info.mark.peer_ifname))
            try:
                await delete_link(end.namespace, info.index, watch)
            except NamespaceNotFoundError:  # the peer's namespace went meanwhile
                await ipr.link("del", index=info.index)
            forget_links(self.pool, end.namespace, end.ifname)
            if info.mark.peer_ifname:
                forget_links(self.pool, info.mark.peer_namespace, info.mark.peer_ifname)
            return True

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        # (namespace, ifname) -> link, for every veth end carrying our mark.
        async def scan(ns: str) -> list[tuple[str, LinkInfo]]:
            try:
                async with self.pool.connect(ns) as ipr:
                    return [
                        (ns, info) for info in await dump_links(ipr)
                        if info.kind == "veth" and info.mark
                        and info.mark.key.startswith(self.key_prefix)
                    ]
            except NamespaceNotFoundError:
                return []

        found = await asyncio.gather(*(scan(ns) for ns in self.scan_namespaces(correlate)))
        ends = {(ns, info.ifname): info for part in found for ns, info in part}
        wanted = {item.key: item.value for item in correlate if isinstance(item.value, Veth)}
        result: list[RetrievedValue] = []
        seen: set[str] = set()
        for key, desired in wanted.items():
            e1 = ends.get((desired.end1.namespace, desired.end1.ifname))
            e2 = ends.get((desired.end2.namespace, desired.end2.ifname))
            if e1 is None or e2 is None or e1.mark is None or e1.mark.key != key:
                continue
            seen.add(key)
            result.append(RetrievedValue(key, Veth(
                name=desired.name, end1=_read_end(desired.end1, e1),
                end2=_read_end(desired.end2, e2))))
        # Ours but not believed applied (e.g. after a restart that lost state): report them
        # so a full resync removes them; the peer is known from the mark.
        for (ns, ifname), info in ends.items():
            mark = info.mark
            if mark is None or mark.key in seen or mark.key in wanted:
                continue
            seen.add(mark.key)
            end1 = VethEnd(namespace=ns, ifname=ifname, mac=info.mac, mtu=info.mtu, up=info.up)
            peer = ends.get((mark.peer_namespace, mark.peer_ifname))
            end2 = VethEnd(
                namespace=mark.peer_namespace, ifname=mark.peer_ifname,
                mac=peer.mac if peer else "", mtu=peer.mtu if peer else 0,
                up=peer.up if peer else False,
            )
            name = mark.key[len(self.key_prefix):]
            result.append(RetrievedValue(mark.key, Veth(name=name, end1=end1, end2=end2),
                                         origin=Origin.FROM_NB))
        return result


def _read_end(desired: VethEnd, info: LinkInfo) -> VethEnd:
    """The end as found, in the desired value's terms (unset MAC/MTU stay unset)."""
    return VethEnd(
        namespace=desired.namespace,
        ifname=info.ifname,
        mac=info.mac if desired.mac else "",
        mtu=info.mtu if desired.mtu else 0,
        up=info.up,
    )


async def _remove_leftover(ipr: Any, key: str, end: VethEnd) -> bool:
    """Delete a veth end left by a crash between its creation and its marking; True if done.

    An agent killed right after ``link add`` leaves a veth without our mark: read-back does
    not recognise it, so every later create of the same value failed with EEXIST and the
    pod could never be wired again (found by the reliability suite's agent kills). Only a
    veth that is unmarked or marked for this very value is removed; anything else is left
    alone and the create fails as before.
    """
    info = await find_link(ipr, end.ifname)
    if info is None or info.kind != "veth":
        return info is None  # gone meanwhile: just retry
    if info.mark is not None and info.mark.key != key:
        return False
    await tolerating(ipr.link("del", index=info.index), errno.ENODEV)
    return True
