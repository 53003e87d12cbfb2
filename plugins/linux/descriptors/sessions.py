"""Conntrack sessions of UDP/SCTP DNAT frontends (:class:`plugins.linux.models.Sessions`).

The value is a frontend and its backends; what the descriptor does is delete conntrack entries
(``ctnetlink`` through pyroute2, in the value's namespace):

* create: every entry to the frontend (made before it was served: they bypass its DNAT);
* update: the entries to backends it no longer has, or every entry when it had none;
* delete: every entry to the frontend.

Nothing of this can be read back from the kernel: ``retrieve`` reports what the scheduler
believes applied, so an agent restart deletes no entry (established flows keep their backend).
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Sequence
from typing import Any

from pyroute2 import Conntrack
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from plugins.kvscheduler.api import Origin, RetrievedValue, ValueWithMetadata
from plugins.linux.descriptors.base import LinuxDescriptor
from plugins.linux.models import SESSIONS_SPEC, Sessions
from plugins.linux.models import value_name as model_value_name
from plugins.linux.netns import NamespaceNotFoundError, call_in_namespace, namespace_exists
from plugins.linux.protocols import IP_PROTOCOLS


def delete_sessions(value: Sessions, backends: frozenset[str] | None = None) -> int:
    """Delete the conntrack entries to the frontend (those answered by ``backends`` only, when
    given) in the calling thread's namespace; returns how many went."""
    ct = Conntrack()
    try:
        wanted = NFCTAttrTuple(proto=IP_PROTOCOLS[value.protocol], daddr=str(value.ip), dport=value.port)
        doomed = []
        for entry in list(ct.dump_entries(tuple_orig=wanted)):
            reply = entry.tuple_reply
            if backends is None or f"{reply.saddr}:{reply.sport}" in backends:
                doomed.append(entry.tuple_orig)
        for orig in doomed:
            try:
                ct.entry("del", tuple_orig=orig)
            except NetlinkError as exc:
                if exc.code != errno.ENOENT:  # gone by itself meanwhile: fine
                    raise
        return len(doomed)
    finally:
        ct.close()


class SessionsDescriptor(LinuxDescriptor[Sessions]):
    """``config/linux/v1/sessions/<ns>/<proto>/<ip>/<port>``; ``deleted`` counts entries deleted.

    Its keys sort after ``nft-table``, so within one transaction the scheduler updates a
    service table before the sessions of its frontends (updates run in key order).
    """

    name = "linux-sessions"
    spec = SESSIONS_SPEC
    model = Sessions

    def __init__(self) -> None:
        super().__init__()
        self.deleted = 0

    def value_name(self, value: Sessions) -> str:
        return model_value_name(value)

    def update_needs_recreate(self, key: str, old: Sessions, new: Sessions) -> bool:
        return (old.namespace, old.protocol, old.ip, old.port) != (new.namespace, new.protocol, new.ip, new.port)

    async def _delete(self, value: Sessions, backends: frozenset[str] | None = None) -> None:
        def work() -> int:
            return delete_sessions(value, backends)

        try:  # pyroute2's blocking API runs an event loop of its own: never in the agent's loop
            if value.namespace:
                self.deleted += await call_in_namespace(value.namespace, work)
            else:
                self.deleted += await asyncio.to_thread(work)
        except NamespaceNotFoundError:
            return  # its namespace is gone, and its sessions with it

    async def create(self, key: str, value: Sessions) -> None:
        await self._delete(value)

    async def update(self, key: str, old: Sessions, new: Sessions, metadata: Any) -> None:
        if not old.backends:
            await self._delete(new)
            return
        gone = frozenset(old.backends) - frozenset(new.backends)
        if gone:
            await self._delete(new, gone)

    async def delete(self, key: str, value: Sessions, metadata: Any) -> None:
        await self._delete(value)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        return [RetrievedValue(item.key, item.value, item.metadata, Origin.FROM_NB) for item in correlate
                if isinstance(item.value, Sessions) and namespace_exists(item.value.namespace)]
