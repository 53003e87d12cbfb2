"""The ``ipam`` plugin: this node's address plan and persisted, next-fit pod IP allocation.

With ``pod_subnet_source: kubernetes`` the pod subnets are the Nodes' ``spec.podCIDR``
(:mod:`plugins.ipam.podcidr`): this node's is waited for at start (bounded; the agent then
starts not ready and takes it when the Node gets one), other nodes' follow their reflected
Node, and a change of one is pushed as a ``NodeUpdate`` so that ipnet re-routes that node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from core.health import HealthPlugin
from core.http import HTTPPlugin
from core.kvdb.api import agent_prefix
from core.kvdb.plugin import KVDBPlugin
from core.plugin import Plugin
from plugins.controller.api import (
    ControllerAPI,
    Event,
    EventHandler,
    EventMethod,
    KubeStateReader,
    Transaction,
)
from plugins.controller.events import KubeStateChange
from plugins.ipam import follow
from plugins.ipam.allocator import PodSubnetAllocator
from plugins.ipam.api import NodeAddressPlan
from plugins.ipam.config import IPAMConfig
from plugins.ipam.nodeaddr import publish_node_address
from plugins.ipam.persistence import merge_remote, restore_local_file
from plugins.ipam.plan import (
    SOURCE_KUBERNETES,
    AddressPlanError,
    ResolvedPlan,
    node_plan,
    resolve_plan,
    with_pod_subnet,
)
from plugins.ipam.podcidr import NodePodSubnets, wait_for_own_pod_subnet
from plugins.ipam.pusher import (
    PUSH_ERRORS,
    DeleteAllocation,
    EtcdAllocationPusher,
    PutAllocation,
    Reconcile,
)
from plugins.ipam.released import ReleasedPods
from plugins.ipam.rest import build_router, describe
from plugins.ipam.saver import AllocationSaver
from plugins.ipam.stale import StalePods
from plugins.ipam.store import AllocationState, LocalAllocationFile, StateFileError
from plugins.ipam.subnet import NOT_INITIALISED, OwnPodSubnet
from plugins.ksr.keys import RESOURCES
from plugins.ksr.model import KSR_LABEL
from plugins.nodesync.api import NodeAddressPublisher, NodeSyncAPI
from plugins.podmanager.api import PodID, PodManagerAPI

#: How long ``close`` waits for queued allocation changes to reach etcd.
CLOSE_FLUSH_TIMEOUT_S = 3.0
class IPAMPlugin(Plugin, EventHandler):
    """Implements :class:`plugins.ipam.api.IPAMAPI` for this node.

    Allocations are written synchronously to a local file before an address is returned, and
    pushed to ``/vnf-agent/<node>/ipam/allocations/`` in etcd in order, in the background. On
    start both are read and merged (the local file wins a conflict: it is never behind), so a
    restarted agent never hands out an address a running pod holds. Allocations of pods that
    are neither wired here (pod manager) nor known to Kubernetes on this node are released
    after ``release_grace_s``. Also a controller handler: it follows the reflected pods.
    """

    name = "ipam"
    Config = IPAMConfig
    config: IPAMConfig

    def __init__(
        self,
        config: IPAMConfig | None = None,
        *,
        kvdb: KVDBPlugin,
        nodesync: NodeSyncAPI,
        http: HTTPPlugin | None = None,
        podmanager: PodManagerAPI | None = None,
        controller: ControllerAPI | None = None,
        health: HealthPlugin | None = None,
    ) -> None:
        super().__init__(config)
        self.kvdb = kvdb
        self.nodesync = nodesync
        self.http = http
        self.podmanager = podmanager
        self.controller = controller
        self.health = health
        self.resolved: ResolvedPlan = resolve_plan(self.config)
        self._subnet = OwnPodSubnet(self.nodesync.node_name, self._from_kubernetes(), health, self.log)
        #: Pods released while pending: dropped from the restored state once it is loaded.
        self._released_while_pending: set[PodID] = set()
        #: ``kubernetes`` source: every reflected Node's pod subnet.
        self.node_subnets = NodePodSubnets(self.resolved.pod_subnet_cidr, self.log)
        self._allocator: PodSubnetAllocator | None = None
        self._file = LocalAllocationFile(self.config.state_file, fsync_directory=self.config.fsync_directory)
        self._saver = AllocationSaver(self._file, self.log)
        self._pusher: EtcdAllocationPusher | None = None
        self._had_local_state = False
        self._stale = StalePods(self.config.release_grace_s, self.log)
        self._stale_task: asyncio.Task[None] | None = None
        self._publish_task: asyncio.Task[None] | None = None
        #: Addresses released by CNI DEL that a stale Kubernetes pod record must not bring back.
        self._released = ReleasedPods()

    # ------------------------------------------------------------------ lifecycle

    async def init(self) -> None:
        name = self.nodesync.node_name()
        self._subnet.base_plan = node_plan(self.resolved, self.nodesync.node_id())
        broker = self.kvdb.broker.prefixed(agent_prefix(name))
        self._pusher = EtcdAllocationPusher(
            broker,
            self._merge_remote,
            retry_initial_s=self.config.etcd_retry_initial_s,
            retry_max_s=self.config.etcd_retry_max_s,
            log=self.log,
        )
        if self._from_kubernetes():
            found = await wait_for_own_pod_subnet(
                self.kvdb.broker.prefixed(agent_prefix(KSR_LABEL)), name, self.resolved.pod_subnet_cidr,
                self.config.pod_cidr_wait_s, self.log,
            )
            if found.subnet is not None:
                self._activate(found.subnet)
            else:
                if found.missing:
                    self.log.warning("%s", found.problem)
                self._subnet.set_pending(found)
        else:
            self._activate(None)
        if self._allocator is not None:
            try:
                await self._pusher.run_once(Reconcile())
            except PUSH_ERRORS as exc:  # etcd down: start from the local file, merge when it is back
                self.log.warning("cannot read allocations from etcd now (%s); will merge them later", exc)
                self._pusher.enqueue(Reconcile())
        self._pusher.start()
        if self.http is not None:
            self.http.add_router(build_router(self))
        if self.controller is not None:
            # The reflected pods tell which allocations are still in use (idempotent if
            # another plugin registered the same resource).
            self.controller.register_resource("pod", *RESOURCES["pod"])
            if self._from_kubernetes():
                self.controller.register_resource("node", *RESOURCES["node"])
        if self._allocator is not None:
            self.log.info(
                "node %s (ID %d): pod subnet %s, %d allocation(s) restored",
                name, self._base().node_id, self._allocator.subnet, len(self._allocator),
            )

    async def after_init(self) -> None:
        loop = asyncio.get_running_loop()
        self._stale_task = loop.create_task(self._stale_loop(), name="ipam-stale")
        if isinstance(self.nodesync, NodeAddressPublisher):
            # The node's addresses come from its ID alone (whatever the pod subnet source).
            publication = publish_node_address(self.nodesync, self.config, self._base(), self.log)
            self._publish_task = loop.create_task(publication, name="ipam-node-ip")

    async def close(self) -> None:
        for task in (self._publish_task, self._stale_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(self._saver.close)
        if self._pusher is not None:
            await self._pusher.stop(CLOSE_FLUSH_TIMEOUT_S)

    # ------------------------------------------------------------------ IPAMAPI

    def plan(self, node_id: int | None = None) -> NodeAddressPlan:
        if node_id is None:
            return self._node_plan()
        if not self._from_kubernetes():
            return node_plan(self.resolved, node_id)
        if node_id == self._base().node_id:
            return self._node_plan()
        name = self._node_name_of(node_id)
        found = self.node_subnets.lookup(name)
        if found.subnet is None:
            raise AddressPlanError(found.problem)
        own = self._subnet.plan
        if own is not None and found.subnet.overlaps(own.pod_subnet):
            raise AddressPlanError(f"Node {name} spec.podCIDR {found.subnet} overlaps this node's pod "
                                   f"subnet {own.pod_subnet}")
        return with_pod_subnet(node_plan(self.resolved, node_id), found.subnet)

    def pod_ip(self, pod: PodID) -> IPv4Address | None:
        if self._allocator is None:
            return None
        return self._allocator.ip_of(pod)

    def allocate_pod_ip(self, pod: PodID, *, defer_save: bool = False) -> IPv4Address:
        alloc = self._alloc()
        previous_last = alloc.last_index
        ip, new = alloc.allocate(pod)
        if new:
            if defer_save:
                # The caller awaits persisted() before anyone outside the agent learns the
                # address (the CNI reply); a failed write surfaces there.
                self._saver.save_deferred(self._state())
            else:
                try:
                    self._save()
                except StateFileError:
                    alloc.release(pod)
                    alloc.last_index = previous_last
                    raise
            self._push().enqueue(PutAllocation(pod, ip))
            self.log.info("allocated %s to pod %s", ip, pod)
        self._stale.present(pod)
        self._released.forget(pod)
        return ip

    async def persisted(self) -> None:
        """Wait until every allocation change so far is in the local file (or raise why not)."""
        await self._saver.wait()

    def release_pod_ip(self, pod: PodID) -> None:
        if self._allocator is None and self._subnet.pending:
            # Still waiting for the subnet: the pod may hold an address in the state not loaded
            # yet; it is dropped when that is loaded (a CNI DEL must succeed meanwhile).
            self._released_while_pending.add(pod)
            return
        alloc = self._alloc()
        ip = alloc.release(pod)
        self._stale.present(pod)
        if ip is None:
            return
        # Not waited for: until it is written the file still holds the address, which only
        # keeps it from being reused after a crash (the stale-allocation check frees it).
        self._saver.save_background(self._state(), f"releasing {ip} of pod {pod}")
        self._push().enqueue(DeleteAllocation(pod))
        self._released.add(pod, ip)
        self.log.info("released %s of pod %s", ip, pod)

    def allocations(self) -> Mapping[PodID, IPv4Address]:
        if self._allocator is None:
            return {}
        return self._allocator.allocations()

    def pending_reason(self) -> str:
        """Why this node has no pod subnet yet ("" when it has one)."""
        return self._subnet.pending

    # ------------------------------------------------------------------ more for REST and tests
    # (methods, not properties: pluggy inspects every attribute when the plugin is registered)

    def capacity(self) -> int:
        """How many pods this node's subnet holds."""
        return self._alloc().capacity

    def last_assigned_index(self) -> int:
        return self._alloc().last_index

    def etcd_pending(self) -> int:
        """Allocation changes not yet in etcd."""
        return self._push().pending

    def etcd_last_error(self) -> str:
        return self._push().last_error

    async def flush_to_etcd(self, timeout_s: float = 10.0) -> bool:
        """Wait until every allocation change is in etcd; False on timeout."""
        return await self._push().flush(timeout_s)

    def release_stale(self, now: float | None = None) -> list[PodID]:
        """Release allocations whose pod has been missing for ``release_grace_s``; returns them.

        Does nothing until some source of existing pods is available (a pod manager, or the
        first resync with the Kubernetes state).
        """
        if (self.podmanager is None and self._stale.kube_pods is None) or self._allocator is None:
            return []
        wired = self.podmanager.local_pods() if self.podmanager is not None else ()
        released = self._stale.due(list(self.allocations()), wired, time.monotonic() if now is None else now)
        for pod in released:
            self.release_pod_ip(pod)
        self._stale.prune(self.allocations())
        return released

    # ------------------------------------------------------------------ controller handler

    def handles_event(self, event: Event) -> bool:
        if event.method is not EventMethod.UPDATE:
            return True
        if not isinstance(event, KubeStateChange):
            return False
        return event.resource == "pod" or (event.resource == "node" and self._from_kubernetes())

    def resync(self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction) -> None:
        follow.resync(self, kube_state)

    def update(self, event: Event, txn: Transaction) -> str | None:
        if isinstance(event, KubeStateChange) and event.resource == "node" and self._from_kubernetes():
            return follow.node_changed(self, event.key, event.new_value)
        if isinstance(event, KubeStateChange) and event.resource == "pod":
            follow.pod_changed(self, event.prev_value, event.new_value)
        return None

    def describe_internal_state(self) -> dict[str, object] | None:
        """The allocations (what a no-op resync must leave unchanged)."""
        state: dict[str, object] = {
            "podSubnet": None if self._subnet.plan is None else str(self._subnet.plan.pod_subnet),
            "allocations": {str(pod): str(ip) for pod, ip in sorted(self.allocations().items())},
        }
        if self._from_kubernetes():
            state["pending"] = self._subnet.pending
            state["nodePodCIDRProblems"] = self.node_subnets.problems()
        return state

    def describe(self) -> dict[str, Any]:
        """This node's allocations as JSON-friendly data (also served over REST)."""
        return describe(self)

    # ------------------------------------------------------------------ internals

    def _from_kubernetes(self) -> bool:
        return self.resolved.pod_subnet_source == SOURCE_KUBERNETES

    def _base(self) -> NodeAddressPlan:
        return self._subnet.base()

    def _node_plan(self) -> NodeAddressPlan:
        return self._subnet.node_plan()

    def _alloc(self) -> PodSubnetAllocator:
        if self._allocator is None:
            self._subnet.require()
            raise RuntimeError(NOT_INITIALISED)
        return self._allocator

    def _node_name_of(self, node_id: int) -> str:
        for name, node in self.nodesync.nodes().items():
            if node.id == node_id:
                return name
        raise AddressPlanError(f"node ID {node_id} belongs to no known node (nodesync)")

    def _activate(self, pod_subnet: IPv4Network | None) -> None:
        """Take this node's pod subnet (None: the plan's block) and load the persisted state.

        A state file for another subnet (another node ID, or a switch of
        ``pod_subnet_source``) is ignored, and etcd's records outside the subnet are dropped
        by the merge: the same as any change of the node's subnet.
        """
        plan = self._subnet.plan_with(pod_subnet)
        self._allocator = PodSubnetAllocator(plan.pod_subnet)
        self._load_local_file()
        self._subnet.taken(plan, len(self._allocator))

    def _push(self) -> EtcdAllocationPusher:
        if self._pusher is None:
            raise RuntimeError(NOT_INITIALISED)
        return self._pusher

    def _state(self) -> AllocationState:
        alloc = self._alloc()
        return AllocationState(alloc.subnet, alloc.last_index, alloc.allocations())

    def _save(self) -> None:
        # Through the writer thread, after any deferred save still queued (same file).
        self._saver.save(self._state())

    def _load_local_file(self) -> None:
        self._had_local_state = restore_local_file(self._file, self._alloc(), self.log)

    def _merge_remote(self, remote: dict[PodID, IPv4Address]) -> Mapping[PodID, IPv4Address]:
        """Add etcd's allocations that do not clash with what the local file had."""
        alloc = self._alloc()
        released = bool(self._released_while_pending)
        for pod in self._released_while_pending:
            # CNI DELs answered while the subnet was unknown: their addresses are free.
            remote.pop(pod, None)
            alloc.release(pod)
        self._released_while_pending.clear()
        if merge_remote(alloc, remote, self._had_local_state, self.log) or released:
            self._saver.save_background(self._state(), "merging the allocations in etcd")
            self._had_local_state = True
        return alloc.allocations()

    async def _stale_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.stale_check_interval_s)
            try:
                self.release_stale()
            except Exception:  # keep checking; the next round may succeed
                self.log.exception("stale allocation check failed")
