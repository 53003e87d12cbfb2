"""The memoised link lookups of :func:`plugins.linux.links.on_link` in a real namespace."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Interface
from typing import Any

import pytest

from plugins.linux.descriptors.address import AddressDescriptor
from plugins.linux.links import LinkInfo, LinkMissingError, forget_links, on_link
from plugins.linux.models import InterfaceAddress
from plugins.linux.netns import NetlinkPool
from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns


class CountingGets:
    """Wraps an AsyncIPRoute's ``link`` to count the ``get`` requests it sends."""

    def __init__(self, ipr: Any) -> None:
        self.gets = 0
        self._link = ipr.link

        async def link(command: str, **kwargs: Any) -> Any:
            if command == "get":
                self.gets += 1
            return await self._link(command, **kwargs)

        ipr.link = link


def mark(ns: str, ifname: str, key: str = "config/test/x") -> None:
    ip("link", "set", ifname, "alias", f"contiv:{key}", ns=ns)


async def test_one_lookup_is_shared_and_a_stale_index_is_looked_up_again(
    make_netns: Callable[[], str],
) -> None:
    ns = make_netns()
    ip("link", "add", "m0", "type", "veth", "peer", "name", "m1", ns=ns)
    mark(ns, "m0")
    pool = NetlinkPool(sticky=[ns])
    seen: list[int] = []

    async def record(link: LinkInfo) -> int:
        seen.append(link.index)
        return link.index

    try:
        async with pool.connect(ns) as ipr:
            counter = CountingGets(ipr)
            first = await on_link(pool, ipr, "m0", record)
            assert await on_link(pool, ipr, "m0", record) == first
            assert counter.gets == 1  # the second call used the memo
            # The link is replaced under the same name: its memoised index is gone (ENODEV)
            # and the operation is retried with a fresh lookup.
            ip("link", "del", "m0", ns=ns)
            ip("link", "add", "m0", "type", "veth", "peer", "name", "m1", ns=ns)
            mark(ns, "m0")

            async def set_mtu(link: LinkInfo) -> int:
                await ipr.link("set", index=link.index, mtu=1300)
                return link.index

            second = await on_link(pool, ipr, "m0", set_mtu)
            assert second != first and counter.gets == 2
            assert "mtu 1300" in ip("link", "show", "m0", ns=ns)
            # Forgotten on request (what the link descriptors do when they change a link).
            forget_links(pool, ns, "m0")
            await on_link(pool, ipr, "m0", record)
            assert counter.gets == 3
    finally:
        pool.close()


async def test_owned_lookup_refuses_unmarked_links_even_when_memoised(
    make_netns: Callable[[], str],
) -> None:
    ns = make_netns()
    ip("link", "add", "m0", "type", "veth", "peer", "name", "m1", ns=ns)
    pool = NetlinkPool(sticky=[ns])

    async def index(link: LinkInfo) -> int:
        return link.index

    try:
        async with pool.connect(ns) as ipr:
            # Any device will do for a route: the unmarked link is found and memoised ...
            assert await on_link(pool, ipr, "m0", index, owned=False) > 0
            # ... but an address only goes onto one of ours.
            with pytest.raises(LinkMissingError, match="m0 is missing or not ours"):
                await on_link(pool, ipr, "m0", index)
            with pytest.raises(LinkMissingError, match="nope is missing"):
                await on_link(pool, ipr, "nope", index, owned=False)
    finally:
        pool.close()


async def test_address_after_link_recreated_lands_on_the_new_link(
    make_netns: Callable[[], str],
) -> None:
    ns = make_netns()
    ip("link", "add", "m0", "type", "veth", "peer", "name", "m1", ns=ns)
    mark(ns, "m0")
    pool = NetlinkPool(sticky=[ns])
    desc = AddressDescriptor(pool=pool)
    try:
        first = InterfaceAddress(namespace=ns, ifname="m0", address=IPv4Interface("10.77.0.1/32"))
        await desc.create(desc.key_of(first), first)
        ip("link", "del", "m0", ns=ns)
        ip("link", "add", "m0", "type", "veth", "peer", "name", "m1", ns=ns)
        mark(ns, "m0")
        second = InterfaceAddress(namespace=ns, ifname="m0", address=IPv4Interface("10.77.0.2/32"))
        await desc.create(desc.key_of(second), second)
        assert "10.77.0.2/32" in ip("-4", "addr", "show", "m0", ns=ns)
        # Deleting from a vanished link is a no-op, not an error.
        ip("link", "del", "m0", ns=ns)
        await desc.delete(desc.key_of(second), second, None)
    finally:
        pool.close()
