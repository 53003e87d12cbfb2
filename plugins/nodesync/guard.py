"""Keeping this node's ID record while the agent lives (Contiv issues 1491/1492).

An etcd wipe, a restore from an older snapshot or an operator's mistake can remove this node's
record ``allocatedIDs/<id>``. The next node to allocate would then take the first free ID, this
node's, and with it this node's pod subnet: two nodes with one subnet, a mesh that never
converges. So a running agent re-publishes its record (put-if-absent) as soon as it sees it
gone, and a node that finds its ID held by another node says so loudly and stops wiring pods
(``NodeIDConflict``): its addresses would collide with the other node's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from core.kvdb.api import KVBroker, KVError, encode_model
from plugins.nodesync.allocation import node_id_key
from plugins.nodesync.api import VppNode
from plugins.podmanager.cnicodes import CNICode


class NodeIDConflict(Exception):
    """This node's ID is recorded for another node: pods are not wired until that is resolved."""

    cni_code = int(CNICode.ADD_FAILED)


class RecordGuard:
    """Re-publishes this node's record when it disappears; tracks an ID conflict."""

    def __init__(self, broker: Callable[[], KVBroker], log: logging.Logger,
                 retry_initial_s: float = 0.2, retry_max_s: float = 5.0) -> None:
        self._broker = broker
        self.log = log
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        #: Why pods are not wired (None: no conflict).
        self.conflict: str | None = None
        self.republished = 0
        self._task: asyncio.Task[None] | None = None

    def observe(self, own: VppNode, stored: VppNode | None) -> None:
        """What etcd (a resync snapshot or a watch event) holds at this node's ID key."""
        if stored is None:
            self.republish(own)
        elif stored.name != own.name:
            self.set_conflict(own, stored.name)
        elif self.conflict is not None:
            self.log.warning("node ID %d is this node's (%s) again; wiring pods again",
                             own.id, own.name)
            self.conflict = None

    def set_conflict(self, own: VppNode, holder: str) -> None:
        message = (f"node ID {own.id} of node {own.name} is recorded for node {holder}: "
                   f"both would use one pod subnet; this node stops wiring pods until the "
                   f"record is this node's again (remove one of the nodes)")
        if message != self.conflict:
            self.log.error("NODE ID CONFLICT: %s", message)
        self.conflict = message

    def republish(self, own: VppNode) -> None:
        """Put the record back (in the background, retried while etcd is unreachable)."""
        if self._task is not None and not self._task.done():
            return
        self.log.warning("the ID record of this node (%s, ID %d) is gone from etcd; "
                         "re-publishing it", own.name, own.id)
        self._task = asyncio.get_running_loop().create_task(self._republish(own))

    async def _republish(self, own: VppNode) -> None:
        delay = self.retry_initial_s
        key = node_id_key(own.id)
        while True:
            broker = self._broker()
            try:
                if await broker.put_if_absent(key, encode_model(own)):
                    self.republished += 1
                    self.log.info("re-published the ID record of node %s (ID %d)", own.name, own.id)
                    self.conflict = None
                    return
                kv = await broker.get(key)
                if kv is None:
                    continue  # deleted again in between: try once more
                holder = VppNode.model_validate_json(kv.value).name
                if holder != own.name:
                    self.set_conflict(own, holder)
                return
            except KVError as exc:
                self.log.warning("cannot re-publish node ID record %s yet (%s); retrying", key, exc)
            except ValueError as exc:
                self.log.error("node ID record %s is malformed: %s", key, exc)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_s)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
