"""Executes one transaction on the graph: the CRUD walk (bookkeeping is in desired.py, the
delete cascade and operation records in teardown.py).

The walk keeps three promises: a value is created only when its dependencies are available;
before a value goes away, everything that depends on it (and everything derived from it) is
deleted first; a value whose dependencies are missing waits as PENDING and is created as soon
as they appear (a FIFO work list of woken dependents, so long chains never recurse).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

from pydantic import BaseModel

from core.tuning import dataplane_call
from plugins.kvscheduler.api import Operation, Origin, ValueState
from plugins.kvscheduler.desired import (
    AbortTransaction,
    DescriptorCheckError,
    TxnContext,
    dependencies_first,
    describe_error,
)
from plugins.kvscheduler.graph import Graph, Node
from plugins.kvscheduler.registry import DescriptorRegistry
from plugins.kvscheduler.teardown import Teardown

__all__ = ["AbortTransaction", "Executor", "TxnContext", "describe_error"]

FOREIGN_OBJECT_ERROR = "a foreign object (not created by this agent) exists under this key; it is left alone"
NO_DESCRIPTOR_ERROR = "no descriptor is registered for this key"


class Executor(Teardown):
    """Applies desired-state changes of one transaction to the graph and the dataplane."""

    def __init__(self, graph: Graph, registry: DescriptorRegistry, ctx: TxnContext) -> None:
        super().__init__(graph, registry, ctx)
        self._woken: deque[Node] = deque()
        self._protected: Node | None = None
        #: key -> the applied value object its derived values were recorded from (by a
        #: resync's read-back, see :meth:`derive`); saves deriving the same value again.
        self.derived_from: dict[str, BaseModel] = {}

    # ---- planning -------------------------------------------------------------------------

    async def run(self, keys: Iterable[str], *, skip_settled: bool = False) -> None:
        """Reconcile ``keys``: deletes, then re-creates, then creates, then updates."""
        deletes: list[Node] = []
        recreates: list[Node] = []
        creates: list[Node] = []
        updates: list[Node] = []
        nodes = self.graph.nodes
        for key in sorted(keys):
            node = nodes.get(key)
            if node is None or (skip_settled and self.is_settled(node)):
                continue
            if node.desired is None:
                deletes.append(node)
            elif not node.available:
                creates.append(node)
            elif self._recreate_planned(node):
                recreates.append(node)
            else:
                updates.append(node)
        # Values the dataplane removes with a value also deleted here go last: that value's
        # cascade reaches them first and needs no call for them (Dependency.removed_with).
        deletes.sort(key=self._goes_with_carrier)
        for group in (deletes, recreates, dependencies_first(creates), updates):
            for node in group:
                await self.reconcile(node)
                await self._drain()

    def _goes_with_carrier(self, node: Node) -> bool:
        carrier = self.carrier_of(node)
        return carrier is not None and carrier.desired is None

    def _recreate_planned(self, node: Node) -> bool:
        """:meth:`_needs_recreate` for planning; a raising descriptor is reported by ``_change``."""
        try:
            return self._needs_recreate(node)
        except DescriptorCheckError:
            return False

    def _needs_recreate(self, node: Node) -> bool:
        """Raises :class:`DescriptorCheckError` when ``equivalent``/``update_needs_recreate`` did."""
        desc, old, new = node.descriptor, node.applied, node.desired
        if desc is None or old is None or new is None or node.invalid is not None:
            return False
        if self.equivalent(node, old, new):
            return False
        try:
            return desc.update_needs_recreate(node.key, old, new)
        except Exception as err:
            raise DescriptorCheckError("update_needs_recreate", err) from err

    async def _drain(self) -> None:
        woken = self._woken
        while woken:
            node = woken.popleft()
            if node.state is ValueState.PENDING and node.desired is not None:
                await self.reconcile(node)

    def _wake_dependents(self, node: Node) -> None:
        graph = self.graph
        nodes = graph.nodes
        pending = ValueState.PENDING
        for key in graph.dependents(node.key):
            dep = nodes.get(key)
            if dep is not None and dep.state is pending and dep.desired is not None and graph.is_satisfied(dep):
                self._woken.append(dep)

    # ---- the per-key walk -----------------------------------------------------------------

    async def reconcile(self, node: Node) -> None:
        """Move one key towards its desired value (cascading as the graph requires)."""
        self.ctx.touched[node.key] = None
        want = node.desired
        if want is not None and node.next_deps is not None:
            self.graph.set_deps(node, node.next_deps)  # from now on only the new needs count
            node.next_deps = None
        if want is not None and node.base is not None:
            base = self.graph.get(node.base)
            if base is None or not base.available:
                self.set_desired(node, None, derived=True)  # a derived value dies with its base
                want = None
        if want is None:
            if node.origin is Origin.FROM_SB:
                # Obtained from the dataplane and not ours: never touched.
                if node.state is not ValueState.OBTAINED:
                    self.mark(node, ValueState.OBTAINED)
                return
            if node.available or node.applied is not None:
                await self.take_down(node)
            if node.applied is None:
                self.mark(node, ValueState.REMOVED)
            return
        if node.origin is Origin.FROM_SB and node.available:
            self.mark(node, ValueState.FAILED, FOREIGN_OBJECT_ERROR)
            return
        if node.descriptor is None and node.base is None:
            self.mark(node, ValueState.UNIMPLEMENTED, NO_DESCRIPTOR_ERROR)
            return
        if node.invalid is not None:
            if node.available or node.applied is not None:
                await self.take_down(node)
            self.mark(node, ValueState.INVALID, node.invalid)
            return
        if not self.graph.is_satisfied(node):
            if node.available or node.applied is not None:
                await self.take_down(node)
            if node.applied is None:
                self.mark(node, ValueState.PENDING)
            return
        if node.descriptor is None:  # a property: exists exactly while its base does
            node.applied = want
            self.mark(node, ValueState.UNIMPLEMENTED)
            if not node.available:
                self.graph.set_available(node, True)
                self._wake_dependents(node)
            return
        if node.applied is None:
            await self._create(node, want, Operation.CREATE)
        else:
            await self._change(node, want)

    async def _create(self, node: Node, want: BaseModel, op: Operation) -> None:
        desc = node.descriptor
        assert desc is not None
        started = time.perf_counter()
        try:
            metadata = await dataplane_call(desc.create(node.key, want))
        except Exception as err:  # noqa: BLE001 - descriptor code may raise anything
            self._record(node, op, None, want, started, err)
            self._failed(node, op, err)
            return
        self._record(node, op, None, want, started, None)
        node.applied = want
        node.metadata = metadata
        node.attempts = 0
        node.last_op = op
        self.registry.set_metadata(desc, node.key, metadata)
        self.mark(node, ValueState.CONFIGURED)
        self.graph.set_available(node, True)
        await self._sync_derived(node)
        self._wake_dependents(node)

    async def _change(self, node: Node, want: BaseModel) -> None:
        desc = node.descriptor
        old = node.applied
        assert desc is not None and old is not None
        try:
            same = self.equivalent(node, old, want)
            recreate = not same and self._needs_recreate(node)
        except DescriptorCheckError as err:
            self._failed(node, Operation.UPDATE, err)
            return
        if same:
            node.applied = want
            if node.state is not ValueState.CONFIGURED or node.error is not None:
                node.attempts = 0
                self.mark(node, ValueState.CONFIGURED)
            if not node.available:
                self.graph.set_available(node, True)
                self._wake_dependents(node)
            # Already derived from an equal value read back by this resync: only reconcile.
            fresh = self.derived_from.pop(node.key, None) is not old or old != want
            await self._sync_derived(node, derive=fresh)
            return
        if recreate:
            await self.take_down(node, recreate=True)
            if node.applied is None:
                # The cascade may have removed what the new value needs.
                if self.graph.is_satisfied(node):
                    await self._create(node, want, Operation.RECREATE)
                else:
                    self.mark(node, ValueState.PENDING)
            return
        await self._drop_obsolete_derived(node, want)
        if node.applied is not old or not node.available:
            return  # a failed delete in the cascade blocked this value
        if not self.graph.is_satisfied(node):
            # The new form needs something the cascade just removed.
            await self.take_down(node)
            if node.applied is None:
                self.mark(node, ValueState.PENDING)
            return
        started = time.perf_counter()
        try:
            metadata = await dataplane_call(desc.update(node.key, old, want, node.metadata))
        except Exception as err:  # noqa: BLE001 - descriptor code may raise anything
            self._record(node, Operation.UPDATE, old, want, started, err)
            self._failed(node, Operation.UPDATE, err)
            return
        self._record(node, Operation.UPDATE, old, want, started, None)
        node.applied = want
        node.metadata = metadata
        node.attempts = 0
        node.last_op = Operation.UPDATE
        self.registry.set_metadata(desc, node.key, metadata)
        self.mark(node, ValueState.CONFIGURED)
        if not node.available:
            self.graph.set_available(node, True)
            self._wake_dependents(node)
        await self._sync_derived(node)

    async def _drop_obsolete_derived(self, node: Node, want: BaseModel) -> None:
        """Before an update: remove derived values the new value no longer derives."""
        if not node.derived_keys or node.descriptor is None:
            return
        try:
            keep = {item.key for item in node.descriptor.derived_values(node.key, want)}
        except Exception:  # noqa: BLE001 - reported by _sync_derived after the update
            return
        gone = [k for k in node.derived_keys if k not in keep]
        if not gone:
            return
        node.derived_keys = tuple(k for k in node.derived_keys if k in keep)
        # The value being updated is not deleted by this cascade even if its new form needs
        # what goes away: its current form does not (checked again before the update).
        self._protected = node
        try:
            for key in sorted(gone):
                child = self.graph.nodes[key]
                self.set_desired(child, None, derived=True)
                await self.reconcile(child)
        finally:
            self._protected = None

    async def _sync_derived(self, node: Node, *, derive: bool = True) -> None:
        """Bring the derived values of an available ``node`` in line with its applied value
        (``derive=False``: they are recorded already, only reconcile them)."""
        gone = self.derive(node) if derive else []
        current = node.derived_keys
        graph = self.graph
        for key in gone:
            child = graph.nodes[key]
            self.set_desired(child, None, derived=True)
            await self.reconcile(child)
        for key in current:
            child = graph.nodes[key]
            if not self.is_settled(child):
                await self.reconcile(child)

    def derive(self, node: Node) -> list[str]:
        """Record what ``node``'s applied value derives (desired values of its derived keys).

        Bookkeeping only, no dataplane call: returns the keys it derived before and no longer
        derives (sorted), which the caller removes.
        """
        desc = node.descriptor
        value = node.applied
        if desc is None or value is None:
            return []
        self.derived_from[node.key] = value
        try:
            derived = desc.derived_values(node.key, value)
        except Exception as err:  # noqa: BLE001 - descriptor code may raise anything
            self.ctx.errors[node.key] = f"derived_values() raised {describe_error(err)}"
            derived = ()
        if not derived and not node.derived_keys:
            return []
        graph = self.graph
        new_keys: list[str] = []
        for item in derived:
            child = graph.get(item.key)
            if child is None:
                child = graph.add(Node(item.key, self.registry.for_key(item.key)))
            elif child.nb or (child.base is not None and child.base != node.key):
                self.ctx.errors[node.key] = f"derived value {item.key} collides with a value set elsewhere; ignored"
                continue
            child.base = node.key
            if child.desired is None or child.desired != item.value or child.invalid is not None:
                self.set_desired(child, item.value, derived=True)
            new_keys.append(item.key)
        keep = set(new_keys)
        gone = sorted(k for k in node.derived_keys if k not in keep)
        node.derived_keys = tuple(new_keys)
        return gone
