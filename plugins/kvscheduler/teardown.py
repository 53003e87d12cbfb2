"""Taking values down (the cascade of deletes) and recording operation results.

Part of the executor (:class:`plugins.kvscheduler.engine.Executor` derives from
:class:`Teardown`): before a value goes away, everything that depends on it and everything
derived from it is deleted first; a failed delete blocks what it needs, never silently.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from core.tuning import dataplane_call
from plugins.kvscheduler.api import Operation, OperationRecord, Origin, TxnKind, ValueState
from plugins.kvscheduler.desired import AbortTransaction, DesiredState, describe_error
from plugins.kvscheduler.graph import Node


class Teardown(DesiredState):
    """Deletes in dependency order; records every operation and failure of the transaction."""

    #: A value the current walk must not take down (the one being re-created).
    _protected: Node | None = None

    async def take_down(self, root: Node, *, recreate: bool = False) -> None:
        """Delete ``root`` after everything derived from it or depending on it.

        Dependents that are still desired become PENDING (re-created when ``root`` returns);
        derived values die with their base. Iterative post-order walk: no recursion limit.
        """
        graph = self.graph
        nodes = graph.nodes
        recreating = root if recreate else None
        stack: list[tuple[Node, bool]] = [(root, False)]
        seen: set[str] = set()
        done: set[str] = set()
        # Values the dataplane removes together with a value later in this walk (their
        # carrier, see Dependency.removed_with): settled right after the carrier's delete.
        riders: dict[str, list[Node]] = {}
        riding: set[str] = set()
        while stack:
            node, children_done = stack.pop()
            if children_done:
                done.add(node.key)
                # Values still waiting in this walk (dependency cycles) and riders will go
                # after us.
                blocker = self._blocker(node, (seen - done) | riding)
                carrier = self.carrier_of(node) if blocker is None else None
                if carrier is not None and carrier.key in seen and carrier.key not in done:
                    riders.setdefault(carrier.key, []).append(node)
                    riding.add(node.key)
                    continue
                if blocker is not None:
                    self._blocked(node, blocker)
                else:
                    await self._delete_one(node, recreating)
                for rider in riders.pop(node.key, ()):
                    riding.discard(rider.key)
                    # Gone with the carrier; if the carrier is still there (its delete failed
                    # or was blocked), the rider is deleted the usual way.
                    await self._delete_one(rider, recreating, implicit=node.applied is None)
                continue
            if node.key in seen:
                continue
            seen.add(node.key)
            graph.set_available(node, False)
            stack.append((node, True))
            for key in node.derived_keys:
                child = nodes.get(key)
                if child is not None and (child.available or child.applied is not None):
                    stack.append((child, False))
            for key in graph.dependents(node.key):
                dep = nodes.get(key)
                if (
                    dep is not None
                    and dep is not self._protected
                    and (dep.available or dep.applied is not None)
                    and dep.origin is Origin.FROM_NB
                    and key not in seen
                    and not graph.is_satisfied(dep)
                    and self._applied_needs(dep, node.key)
                ):
                    stack.append((dep, False))

    def carrier_of(self, node: Node) -> Node | None:
        """The value whose delete removes ``node`` from the dataplane too, if any.

        Follows the applied form's ``removed_with`` dependency; a property without descriptor
        (a link's presence) stands for the value it is derived from (the veth).
        """
        desc = node.descriptor
        applied = node.applied
        if desc is None or applied is None or node.origin is not Origin.FROM_NB:
            return None
        try:
            needs = desc.dependencies(node.key, applied)
        except Exception:  # noqa: BLE001 - descriptor code may raise anything: no shortcut
            return None
        nodes = self.graph.nodes
        for dep in needs:
            if not dep.removed_with or dep.key is None:
                continue
            target = nodes.get(dep.key)
            while target is not None and target.descriptor is None and target.base is not None:
                target = nodes.get(target.base)
            if (
                target is not None
                and target is not self._protected
                and target.descriptor is not None
                and target.applied is not None
                and target.origin is Origin.FROM_NB
            ):
                return target
        return None

    @staticmethod
    def _applied_needs(dep: Node, key: str) -> bool:
        """Whether what ``dep`` has in the dataplane needs ``key``.

        While ``dep``'s dependencies change, the index holds both what its applied form needs and
        what its next form will need. A take-down must only cascade through the former: a value
        whose *next* form needs ``key`` is dealt with when it is reconciled itself, and taking its
        applied form down now could pull a property from under a value still needing it.
        """
        if dep.next_deps is None or dep.applied is None or dep.descriptor is None:
            return True
        try:
            needs = dep.descriptor.dependencies(dep.key, dep.applied)
        except Exception:  # noqa: BLE001 - descriptor code may raise anything: stay conservative
            return True
        return any(
            d.key == key if d.key is not None else any(key.startswith(p) for p in d.any_of) for d in needs
        )

    def _blocker(self, node: Node, leaving: set[str]) -> str | None:
        """A value still in the dataplane that needs ``node`` (its delete failed), if any."""
        graph = self.graph
        nodes = graph.nodes
        for key in node.derived_keys:
            child = nodes.get(key)
            if child is not None and child.applied is not None and child.descriptor is not None:
                return key
        for key in graph.dependents(node.key):
            dep = nodes.get(key)
            if (
                dep is not None
                and dep is not node
                and dep is not self._protected
                and dep.key != node.base  # a base never waits for its own derived values
                and key not in leaving
                and dep.applied is not None
                and dep.descriptor is not None
                and dep.origin is Origin.FROM_NB
                and not graph.is_satisfied(dep)
                and self._applied_needs(dep, node.key)
            ):
                return key
        return None

    def _blocked(self, node: Node, blocker: str) -> None:
        """``node`` cannot be deleted yet: ``blocker``, which needs it, failed to go away."""
        node.last_op = Operation.DELETE
        error = f"not deleted: {blocker}, which needs it, could not be removed"
        ctx = self.ctx
        if node.attempts < ctx.max_attempts:
            node.attempts += 1
            self.mark(node, ValueState.RETRYING, error)
            ctx.retry_keys.append(node.key)
        else:
            self.mark(node, ValueState.FAILED, error)
        if ctx.abort_on_failure and not ctx.reverting:
            raise AbortTransaction(node.key)

    async def _delete_one(self, node: Node, recreating: Node | None, *, implicit: bool = False) -> None:
        """Delete one value (``implicit``: the dataplane already did; no call, only records)."""
        desc = node.descriptor
        old = node.applied
        if desc is not None and old is not None and node.origin is Origin.FROM_NB:
            started = time.perf_counter()
            if not implicit:
                try:
                    await dataplane_call(desc.delete(node.key, old, node.metadata))
                except Exception as err:  # noqa: BLE001 - descriptor code may raise anything
                    self._record(node, Operation.DELETE, old, None, started, err)
                    self._failed(node, Operation.DELETE, err)
                    return
            self._record(node, Operation.DELETE, old, None, started, None, implicit=implicit)
            self.registry.drop_metadata(desc, node.key)
        node.applied = None
        node.metadata = None
        node.last_op = Operation.DELETE
        for key in node.derived_keys:  # derived values die with their base
            child = self.graph.nodes.get(key)
            if child is not None and child.applied is None:
                self.set_desired(child, None, derived=True)
                self.mark(child, ValueState.REMOVED)
        node.derived_keys = ()
        if node.base is not None:
            base = self.graph.get(node.base)
            if base is None or not base.available:
                self.set_desired(node, None, derived=True)
        if node is recreating or node.desired is None:
            self.mark(node, ValueState.REMOVED)
        else:
            self.mark(node, ValueState.PENDING)

    def _record(
        self,
        node: Node,
        op: Operation,
        before: BaseModel | None,
        after: BaseModel | None,
        started: float,
        err: BaseException | None,
        *,
        implicit: bool = False,
    ) -> None:
        self.ctx.operations.append(
            OperationRecord(
                node.key,
                op,
                before,
                after,
                describe_error(err) if err is not None else None,
                time.perf_counter() - started,
                self.ctx.kind is TxnKind.RETRY,
                self.ctx.reverting,
                implicit,
            )
        )

    def _failed(self, node: Node, op: Operation, err: Exception) -> None:
        desc = node.descriptor
        node.last_op = op
        try:
            retriable = desc is not None and desc.is_retriable(err)
        except Exception:  # noqa: BLE001 - descriptor code may raise anything
            retriable = False
        ctx = self.ctx
        if retriable and node.attempts < ctx.max_attempts:
            node.attempts += 1
            self.mark(node, ValueState.RETRYING, describe_error(err))
            ctx.retry_keys.append(node.key)
        else:
            self.mark(node, ValueState.FAILED, describe_error(err))
        if ctx.abort_on_failure and not ctx.reverting:
            raise AbortTransaction(node.key)
