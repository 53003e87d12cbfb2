"""What a deleted Kubernetes node leaves behind: its node ID and its external configuration.

When KSR removes a node (incrementally or in a resync sweep) it also deletes the nodesync record
``allocatedIDs/<id>`` whose ``name`` is that node, so the ID is re-used by the next node, and
everything under the node's agent prefix ``/vnf-agent/<node>/`` (contiv.md 2.3). Work that fails
is remembered and retried after the next resync.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from core.kvdb.api import agent_prefix
from plugins.ksr import keys as ks
from plugins.ksr import model as m
from plugins.ksr.writer import Writer

log = logging.getLogger("contiv.ksr.node")


class NodeCleanup:
    """The node reflector's delete hook."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        #: Node names whose cleanup has not succeeded yet.
        self.pending: set[str] = set()
        #: Node names cleaned up so far (for statistics and tests).
        self.released: list[str] = []

    async def __call__(self, keys: Sequence[str]) -> None:
        for key in keys:
            keyword, name, _ = ks.parse_key(key)
            if keyword == "node":
                self.pending.add(name)
        for name in sorted(self.pending):
            await self.release(name)
            self.pending.discard(name)
            self.released.append(name)

    async def release(self, name: str) -> None:
        """Delete the node's ID record(s) and its agent prefix; raises ``KVError`` on failure."""
        records = await self.writer.broker.list(m.KSR_PREFIX + m.ALLOCATED_IDS_PREFIX)
        owned = []
        for kv in records:
            try:
                record = json.loads(kv.value)
            except ValueError:
                log.warning("ignoring unreadable node-ID record %s", kv.key)
                continue
            if isinstance(record, dict) and record.get("name") == name:
                owned.append(kv.key)
        await self.writer.apply({}, owned)
        if name != m.KSR_LABEL:  # never our own prefix
            await self.writer.delete_prefix(agent_prefix(name))
        log.info("node %s deleted: released %s and %s", name, owned or "no node ID", agent_prefix(name))
