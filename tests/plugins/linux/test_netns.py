"""Namespace references and the netlink handle pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from plugins.linux.links import dump_links
from plugins.linux.netns import (
    NamespaceNotFoundError,
    NetlinkPool,
    namespace_label,
    namespace_path,
    run_in_namespace,
    validate_namespace_ref,
)
from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns


def test_references() -> None:
    assert namespace_path("") is None
    assert namespace_path("pod1") == "/var/run/netns/pod1"
    assert namespace_path("/proc/1/ns/net") == "/proc/1/ns/net"
    assert namespace_label("") == "-"
    assert "/" not in namespace_label("/proc/1/ns/net")
    assert validate_namespace_ref("a/b") is not None
    assert validate_namespace_ref("/var/run/netns/x") is None


async def test_pool_reuses_expires_and_follows_recreated_namespaces(
    make_netns: Callable[[], str],
) -> None:
    ns = make_netns()
    pool = NetlinkPool(idle_s=0.05)
    try:
        async with pool.connect(ns) as first:
            pass
        async with pool.connect(ns) as second:
            assert second is first  # reused while fresh
        await asyncio.sleep(0.2)
        async with pool.connect(ns) as third:
            assert third is not first  # expired when idle
            ip("link", "add", "old0", "type", "veth", "peer", "name", "old1", ns=ns)
            assert "old0" in {i.ifname for i in await dump_links(third)}
        # Same name, new namespace: the pool must not keep talking to the old one.
        ip("netns", "del", ns)
        ip("netns", "add", ns)
        async with pool.connect(ns) as fourth:
            assert "old0" not in {i.ifname for i in await dump_links(fourth)}
        ip("netns", "del", ns)
        with pytest.raises(NamespaceNotFoundError):
            async with pool.connect(ns):
                pass
        ip("netns", "add", ns)  # for the fixture's cleanup
    finally:
        pool.close()


async def test_sticky_handles_stay_until_closed(make_netns: Callable[[], str]) -> None:
    ns = make_netns()
    pool = NetlinkPool(sticky=[ns], idle_s=0.01)
    async with pool.connect(ns) as first:
        pass
    await asyncio.sleep(0.05)
    async with pool.connect(ns) as again:
        assert again is first
    pool.close()
    async with pool.connect(ns) as fresh:
        assert fresh is not first
    pool.close()


def test_run_in_namespace(make_netns: Callable[[], str]) -> None:
    ns = make_netns()
    ip("link", "add", "probe0", "type", "veth", "peer", "name", "probe1", ns=ns)
    names = run_in_namespace(ns, lambda: open("/proc/thread-self/net/dev").read())
    assert "probe0" in names
    with pytest.raises(NamespaceNotFoundError):
        run_in_namespace("h5l-missing-ns", lambda: None)
