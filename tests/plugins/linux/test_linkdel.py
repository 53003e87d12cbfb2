"""delete_link: done when the kernel announced the link gone, its acknowledgement collected later."""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
from collections.abc import Callable

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from plugins.linux import linkdel
from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns


def index_of(ns: str, ifname: str) -> int:
    return int(ip("-o", "link", "show", ifname, ns=ns).split(":", 1)[0])


async def test_a_deleted_veth_is_gone_with_its_routes_when_delete_link_returns(
    make_netns: Callable[[], str],
) -> None:
    pod, node = make_netns(), make_netns()
    ip("link", "add", "ld0", "type", "veth", "peer", "name", "ld1", "netns", node, ns=pod)
    for ns, ifname, addr in ((pod, "ld0", "10.7.0.2/24"), (node, "ld1", "10.7.0.1/32")):
        ip("addr", "add", addr, "dev", ifname, ns=ns)
        ip("link", "set", ifname, "up", ns=ns)
    ip("route", "add", "10.7.0.2/32", "dev", "ld1", ns=node)
    ip("neigh", "add", "10.7.0.2", "lladdr", "02:00:00:00:00:07", "dev", "ld1", ns=node)

    await linkdel.delete_link(pod, index_of(pod, "ld0"), [(pod, "ld0"), (node, "ld1")])
    # Right away, before the acknowledgement: nothing of the pair is left in either namespace.
    assert "ld0" not in ip("link", "show", ns=pod)
    assert "ld1" not in ip("link", "show", ns=node)
    assert "10.7.0" not in ip("route", "show", ns=node) + ip("neigh", "show", ns=node)
    # The name is free again at once.
    ip("link", "add", "ld1", "type", "veth", "peer", "name", "ld9", ns=node)
    await linkdel.drain()
    assert linkdel.DELETER.pending() == 0


async def test_an_error_before_the_announcement_is_raised(make_netns: Callable[[], str]) -> None:
    node = make_netns()
    with pytest.raises(NetlinkError) as caught:
        await linkdel.delete_link(node, 999_999, [(node, "nosuch0")])
    assert caught.value.code == errno.ENODEV


async def test_without_anything_to_watch_the_acknowledgement_decides(
    make_netns: Callable[[], str],
) -> None:
    node = make_netns()
    ip("link", "add", "ld2", "type", "veth", "peer", "name", "ld3", ns=node)
    await linkdel.delete_link(node, index_of(node, "ld2"), [])
    assert "ld2" not in ip("link", "show", ns=node)
    assert linkdel.DELETER.pending() == 0


async def test_devices_the_kernel_never_frees_pin_no_later_deletion_and_are_reported(
    make_netns: Callable[[], str],
) -> None:
    """Sixteen deletions stay inside the kernel for good (a device "waiting to become free"):
    a later one still completes, and they are reported, not waited for."""
    node = make_netns()
    freed = threading.Event()
    never = range(900_000, 900_016)

    def request(sock: socket.socket, index: int, timeout_s: float) -> None:
        if index in never:  # the sender stays in the system call until the device is freed
            with sock:
                freed.wait()
            return
        linkdel.request_deletion(sock, index, timeout_s)

    deleter = linkdel.LinkDeleter(ack_timeout_s=0.5, request=request)
    try:
        stuck = [asyncio.ensure_future(deleter.delete(node, i, [(node, f"gone{i - never.start}")])) for i in never]
        results = await asyncio.gather(*stuck, return_exceptions=True)
        assert all(isinstance(r, linkdel.LinkDeletionStuck) for r in results), results
        assert sorted(s.index for s in deleter.stuck()) == list(never)

        ip("link", "add", "ld4", "type", "veth", "peer", "name", "ld5", ns=node)
        async with asyncio.timeout(5):
            await deleter.delete(node, index_of(node, "ld4"), [(node, "ld4"), (node, "ld5")])
        assert "ld4" not in ip("link", "show", ns=node)
    finally:
        freed.set()
    await deleter.drain()
    assert deleter.stuck() == [] and deleter.pending() == 0
