"""Replies nobody waits for, dropped from a long-lived pyroute2 handle.

pyroute2 (0.9) files every netlink message whose sequence number has no waiting request under
the socket's root queue, which only a caller reading broadcasts (``ipr.get()``) empties. Some
requests finish without reading the kernel's ACK: every ``link("add")`` and ``link("del")`` leaves
one 36-byte message there, for the life of the handle. The agent's sticky handles (its own and
the node namespace) live as long as the agent, so pod churn (a veth added and removed per pod)
accumulated about three such messages per pod ADD/DEL, for ever. Each one is also the tail of
the 256 KiB receive buffer asyncio allocates per datagram, shrunk in place, so it pinned a
free hole of a few KiB in the C heap: that, not the 40 bytes, was the agent's RSS growth under
churn (docs/reliability.md, "Memory under churn").
"""

from __future__ import annotations

import asyncio
from typing import Any


def drop_unread_replies(ipr: Any) -> int:
    """Empty the root reply queue of ``ipr`` (an idle ``AsyncIPRoute``); how many were dropped.

    Call it only while no request of this handle is in flight, from the thread using the
    handle (the queue is per thread). The agent never subscribes these sockets to multicast
    groups, so the root queue holds nothing but such orphaned replies.
    """
    queue = getattr(getattr(ipr, "local", None), "msg_queue", None)
    root = getattr(queue, "root", None)
    if not isinstance(root, asyncio.Queue):
        return 0
    dropped = 0
    while True:
        try:
            root.get_nowait()
        except asyncio.QueueEmpty:
            return dropped
        root.task_done()
        dropped += 1
