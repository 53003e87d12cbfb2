"""The pool's long-lived netlink handles keep no replies nobody waits for (memory under churn).

pyroute2 files the kernel's ACK of ``link("add")`` and ``link("del")`` under a queue only
broadcast readers empty; on the agent's sticky handles that was a message per veth added or
removed (pod ADD/DEL) for the agent's life, and each pinned a few KiB of the C heap
(docs/reliability.md, "Memory under churn").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pyroute2 import AsyncIPRoute

from plugins.linux.netns import NetlinkPool, netlink
from plugins.linux.nlreplies import drop_unread_replies
from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns

CALLS = 30


async def veth_cycle(ipr: AsyncIPRoute) -> None:
    """What a pod ADD/DEL does in the node namespace: a veth pair added, then removed."""
    await ipr.link("add", ifname="nlr0", kind="veth", peer={"ifname": "nlr1"})
    (link,) = await ipr.link("get", ifname="nlr0")
    await ipr.link("del", index=link["index"])


def unread(ipr: Any) -> int:
    """Messages waiting in the handle's root queue (this thread's)."""
    queue = getattr(ipr.local, "msg_queue", None)
    return 0 if queue is None else int(queue.root.qsize())




async def test_a_bare_handle_keeps_the_ack_of_every_link_add_and_del(
    make_netns: Callable[[], str],
) -> None:
    """The contract with the pinned pyroute2 (setup.cfg): the internal :func:`drop_unread_replies`
    reads (the handle's per-thread root queue, an ``asyncio.Queue``) and the behaviour it works
    around (every ACK of a link add/del left there; docs/pyroute2-unread-acks.md). Fails when
    either changes: then drop_unread_replies must follow, or go."""
    ns = make_netns()
    async with netlink(ns) as ipr:
        for _ in range(CALLS):
            await veth_cycle(ipr)
        assert isinstance(ipr.local.msg_queue.root, asyncio.Queue), "pyroute2's reply queues changed"
        left = unread(ipr)
        assert left >= CALLS, f"pyroute2 left {left} unread replies after {CALLS} veth add/del (fixed upstream?)"
        assert drop_unread_replies(ipr) == left
        assert unread(ipr) == 0
        await veth_cycle(ipr)  # the handle still works after the drop
    assert "nlr0" not in ip("link", "show", ns=ns)


@pytest.mark.parametrize("sticky", [True, False], ids=["sticky", "reused-within-idle_s"])
async def test_long_lived_pool_handles_keep_no_unread_replies(
    make_netns: Callable[[], str], sticky: bool,
) -> None:
    """Sticky handles live as long as the agent; others as long as they are reused within
    ``idle_s`` (the node namespace's during churn): neither may collect orphaned replies."""
    ns = make_netns()
    pool = NetlinkPool(sticky=[ns] if sticky else [], idle_s=60.0)
    try:
        handles = set()
        for i in range(CALLS):
            async with pool.connect(ns) as ipr:
                handles.add(id(ipr))
                await veth_cycle(ipr)
            # A reply that arrives after the handle went idle waits for its next idle point.
            assert unread(ipr) <= 1, f"{unread(ipr)} unread replies after {i + 1} veth add/del"
        assert len(handles) == 1  # one long-lived handle
    finally:
        pool.close()
