"""The ``nodesync`` plugin: this node's ID, the table of all nodes, ``NodeUpdate`` events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Interface
from typing import Any

from core.kvdb.api import KVBroker, KVError
from core.kvdb.plugin import KVDBPlugin
from core.plugin import Plugin
from core.servicelabel import ServiceLabelAPI
from plugins.controller.api import ControllerAPI, Event, EventHandler, EventMethod, KubeStateReader, Transaction
from plugins.controller.events import DBResync, KubeStateChange
from plugins.ksr.keys import RESOURCES
from plugins.nodesync.allocation import (
    ALLOCATED_IDS_PREFIX,
    NodeIDAllocationError,
    allocate_node_id,
    read_records,
    update_node_record,
)
from plugins.nodesync.api import Node, NodeUpdate, VppNode
from plugins.nodesync.config import NodeSyncConfig
from plugins.nodesync.guard import NodeIDConflict, RecordGuard
from plugins.nodesync.table import (
    build_node_table,
    k8s_mgmt_addresses,
    node_from_record,
)
from plugins.podmanager.api import AddPod

#: Where KSR and nodesync publish cluster state.
KSR_PREFIX = "/vnf-agent/contiv-ksr/"
#: The kube-state keyword nodesync registers for ``allocatedIDs/<id>`` records.
VPPNODE_RESOURCE = "vppnode"


class NodeSyncPlugin(Plugin, EventHandler):
    """Implements :class:`plugins.nodesync.api.NodeSyncAPI`.

    ``init`` claims this node's ID in etcd (Contiv's first-free-ID scheme with put-if-absent,
    reusing the ID recorded under this node's name) and reads the table of all nodes. As a
    controller handler it rebuilds the table on every resync and turns changes of the
    ``vppnode`` resource (``allocatedIDs/``) and of Kubernetes nodes into ``NodeUpdate``
    follow-up events: other nodes joining, leaving or changing addresses, and this node's
    management address changes.
    """

    #: AddPods/DeletePods of different pods may be updated before one commit (batch.py).
    supports_batching = True

    name = "nodesync"
    Config = NodeSyncConfig
    config: NodeSyncConfig

    def __init__(
        self,
        config: NodeSyncConfig | None = None,
        *,
        kvdb: KVDBPlugin,
        service_label: ServiceLabelAPI,
        controller: ControllerAPI | None = None,
    ) -> None:
        super().__init__(config)
        self.kvdb = kvdb
        self.service_label = service_label
        self.controller = controller
        self._record: VppNode | None = None
        self._records: dict[str, VppNode] = {}  # by key suffix (the ID as text)
        self._k8s_nodes: dict[str, Any] = {}
        self._table: dict[str, Node] = {}
        self.updates_emitted = 0
        #: Keeps this node's ID record in etcd; its ``conflict`` stops pod wiring.
        self.guard = RecordGuard(self._broker, self.log)

    # ------------------------------------------------------------------ lifecycle

    async def init(self) -> None:
        if self.controller is not None:
            self.controller.register_resource(VPPNODE_RESOURCE, ALLOCATED_IDS_PREFIX, VppNode)
            # Kubernetes nodes carry the management addresses (idempotent if registered elsewhere).
            self.controller.register_resource("node", *RESOURCES["node"])
        broker = self._broker()
        name = self.service_label.label
        mgmt = [str(a) for a in self.config.management_addresses]
        deadline = time.monotonic() + self.config.etcd_wait_s
        delay = 0.2
        while True:
            try:
                record = await allocate_node_id(
                    broker, name, mgmt_addresses=mgmt,
                    max_attempts=self.config.max_allocation_attempts,
                    max_id=self.config.max_node_id, log=self.log,
                )
                if mgmt and sorted(record.mgmt_addresses) != sorted(mgmt):
                    record = await update_node_record(broker, record.id, name, mgmt_addresses=mgmt, log=self.log)
                records, _ = await read_records(broker, self.log)
                break
            except KVError as exc:
                if time.monotonic() + delay > deadline:
                    raise NodeIDAllocationError(f"cannot allocate the ID of node {name}: etcd: {exc}") from exc
                self.log.warning("etcd not reachable for node ID allocation (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self._record = record
        self._records = {str(node_id): stored.node for node_id, stored in records.items()}
        self._records[str(record.id)] = record
        self._rebuild()
        self.log.info("this node is %s with ID %d; %d node(s) known", name, record.id, len(self._table))

    async def close(self) -> None:
        await self.guard.close()

    # ------------------------------------------------------------------ NodeSyncAPI

    def node_id(self) -> int:
        return self._own().id

    def node_name(self) -> str:
        return self.service_label.label

    def nodes(self) -> Mapping[str, Node]:
        return dict(self._table)

    async def publish_node_ips(
        self, ip_addresses: Sequence[IPv4Interface], mgmt_addresses: Sequence[str] | None = None
    ) -> None:
        """Record this node's dataplane (and optionally management) addresses in its ID record.

        The record is rewritten only when the set of addresses changed (Contiv's PublishNodeIPs).
        Only etcd is written here: the change comes back through the watch as an event, so the
        node table changes inside the event loop and handlers see a ``NodeUpdate``.
        """
        own = self._own()
        await update_node_record(
            self._broker(), own.id, own.name,
            ip_addresses=[str(ip) for ip in ip_addresses],
            mgmt_addresses=list(mgmt_addresses) if mgmt_addresses is not None else None,
            log=self.log,
        )

    # ------------------------------------------------------------------ controller handler

    def handles_event(self, event: Event) -> bool:
        if event.method is not EventMethod.UPDATE:
            return True
        if isinstance(event, AddPod):
            return self.guard.conflict is not None
        return isinstance(event, KubeStateChange) and event.resource in (VPPNODE_RESOURCE, "node")

    def resync(self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction) -> None:
        records = {
            suffix: value for suffix, value in kube_state.list(VPPNODE_RESOURCE).items()
            if isinstance(value, VppNode)
        }
        own = self._own()
        stored = records.get(str(own.id))
        remote = not (isinstance(event, DBResync) and event.local)
        if remote and stored is not None and stored.name == own.name:
            # Our record as etcd has it (with the addresses IPAM published, perhaps before this
            # first resync): what gets put back if etcd loses it. (A local mirror may be older.)
            self._record = own = stored
        if remote:
            # A remote snapshot without our record: etcd lost it (wipe, restore of an older
            # snapshot); put it back before another node takes the ID. Another node's name
            # there: a conflict. (A local mirror may simply predate our record.)
            self.guard.observe(own, stored)
        if stored is None or stored.name != own.name:
            records[str(own.id)] = own
        self._records = records
        self._k8s_nodes = dict(kube_state.list("node"))
        self._rebuild()

    def update(self, event: Event, txn: Transaction) -> str | None:
        if isinstance(event, AddPod) and self.guard.conflict is not None:
            raise NodeIDConflict(self.guard.conflict)
        if not isinstance(event, KubeStateChange):
            return None
        before = dict(self._table)
        if event.resource == VPPNODE_RESOURCE:
            new = event.new_value
            own = self._own()
            if event.key == str(own.id):
                self.guard.observe(own, new if isinstance(new, VppNode) else None)
            if isinstance(new, VppNode):
                if event.key == str(own.id) and new.name != own.name:
                    pass  # another node's claim on our ID: keep our own entry in the table
                else:
                    self._records[event.key] = new
                    if new.name == self.node_name():
                        self._record = new
            elif event.key != str(own.id):
                self._records.pop(event.key, None)
        elif event.resource == "node":
            name = event.key
            if event.new_value is None:
                self._k8s_nodes.pop(name, None)
            else:
                self._k8s_nodes[name] = event.new_value
        self._rebuild()
        changes = self._emit_updates(before, self._table, mgmt_only=event.resource == "node")
        return ", ".join(changes) if changes else None

    def describe_internal_state(self) -> dict[str, object] | None:
        """This node's ID and the node table."""
        return {
            "nodeId": self._record.id if self._record else None,
            "nodeName": self.node_name(),
            "idConflict": self.guard.conflict,
            "nodes": {name: node.model_dump(mode="json") for name, node in sorted(self._table.items())},
        }

    # ------------------------------------------------------------------ internals

    def _broker(self) -> KVBroker:
        return self.kvdb.broker.prefixed(KSR_PREFIX)

    def _own(self) -> VppNode:
        if self._record is None:
            raise RuntimeError("nodesync has no node ID yet (its init() has not run)")
        return self._record

    def _rebuild(self) -> None:
        table = build_node_table(self._records.values(), self._k8s_nodes, self.log)
        own = self._record
        if own is not None and own.name not in table:
            k8s = self._k8s_nodes.get(own.name)
            table[own.name] = node_from_record(own, k8s_mgmt_addresses(k8s) if k8s else None, self.log)
        self._table = table

    def _emit_updates(self, before: Mapping[str, Node], after: Mapping[str, Node], *, mgmt_only: bool) -> list[str]:
        """Push a NodeUpdate per node that joined, left or changed; returns what happened."""
        changes: list[str] = []
        for name in sorted(set(before) | set(after)):
            prev, new = before.get(name), after.get(name)
            if prev == new:
                continue
            if mgmt_only and prev is not None and new is not None and prev.mgmt_addresses == new.mgmt_addresses:
                continue
            if name == self.node_name() and (prev is None or new is None):
                # This node's own record appearing is not an event; its changes are: unlike
                # Contiv (management addresses only), the published dataplane address matters
                # too, since the node mesh's VXLAN endpoint is that address.
                continue
            update = NodeUpdate(name, prev, new)
            changes.append(update.describe())
            if self.controller is None:
                self.log.warning("no controller attached: %s not delivered", update.describe())
                continue
            self.controller.push_follow_up(update)
            self.updates_emitted += 1
        return changes
