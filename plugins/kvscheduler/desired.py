"""Desired-state bookkeeping of one transaction: contexts, checks, dependency indexing.

:class:`DesiredState` records what NB (or a base value) wants for a key, checks it (type, own
key, ``validate``) and keeps the graph's dependency index in step; the walk that applies it to
the dataplane is :class:`plugins.kvscheduler.engine.Executor`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from plugins.kvscheduler.api import (
    Dependency,
    InvalidValueError,
    KeyMismatchError,
    OperationRecord,
    Origin,
    TxnKind,
    ValueState,
)
from plugins.kvscheduler.graph import Graph, Node
from plugins.kvscheduler.registry import DescriptorRegistry


class AbortTransaction(Exception):
    """Raised inside a revert-on-failure transaction at its first failed operation."""


@dataclass(slots=True)
class TxnContext:
    """Per-transaction bookkeeping shared by the executor, refresh and verification."""

    seq: int
    kind: TxnKind
    max_attempts: int
    abort_on_failure: bool = False
    reverting: bool = False
    operations: list[OperationRecord] = field(default_factory=list)
    touched: dict[str, None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    retry_keys: list[str] = field(default_factory=list)


def describe_error(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class DescriptorCheckError(Exception):
    """A descriptor's ``equivalent`` or ``update_needs_recreate`` raised: the value fails
    (never silently treated as "different, update in place")."""

    def __init__(self, method: str, err: BaseException) -> None:
        super().__init__(f"{method}() raised {describe_error(err)}")
        self.method = method


def dependencies_first(nodes: list[Node]) -> list[Node]:
    """Order ``nodes`` (sorted by key) so that exact-key dependencies among them come first.

    Kahn's algorithm, stable by key; values in dependency cycles keep their key order at the
    end. Only an optimisation: the walk would create them in a correct order anyway (PENDING,
    then woken), this saves the detour.
    """
    if len(nodes) < 2:
        return nodes
    by_key = {n.key: n for n in nodes}
    waiting: dict[str, int] = {}
    users: dict[str, list[Node]] = {}
    for node in nodes:
        count = 0
        for dep in node.deps:
            target = dep.key
            if target is not None and target != node.key and target in by_key:
                count += 1
                users.setdefault(target, []).append(node)
        if count:
            waiting[node.key] = count
    if not waiting:
        return nodes
    ordered = [n for n in nodes if n.key not in waiting]
    for node in ordered:  # grows while iterating: a FIFO queue
        for user in users.get(node.key, ()):
            left = waiting[user.key] - 1
            waiting[user.key] = left
            if left == 0:
                ordered.append(user)
    if len(ordered) < len(nodes):
        ordered.extend(n for n in nodes if waiting.get(n.key, 0) > 0)
    return ordered


class DesiredState:
    """Desired values of one transaction's keys, checked and indexed in the graph."""

    def __init__(self, graph: Graph, registry: DescriptorRegistry, ctx: TxnContext) -> None:
        self.graph = graph
        self.registry = registry
        self.ctx = ctx

    # ---- desired state --------------------------------------------------------------------

    def set_nb(self, key: str, value: BaseModel | None, *, force: bool = False) -> bool:
        """Record a northbound desired value (None: not desired). True if work is needed."""
        node = self.graph.get(key)
        if node is None:
            if value is None:
                return False
            node = self.graph.add(Node(key, self.registry.for_key(key)))
        if node.base is not None:
            self.ctx.errors[key] = f"{key} is derived from {node.base}; derived values cannot be set directly"
            return False
        if (
            not force
            and value is not None
            and node.nb
            and node.desired == value
            and node.state in (ValueState.CONFIGURED, ValueState.PENDING, ValueState.INVALID)
        ):
            return False  # same value again, and the last attempt did not fail
        if value is None and not node.nb and node.desired is None:
            return False
        node.nb = value is not None
        node.attempts = 0
        self.set_desired(node, value, derived=False)
        return True

    def set_desired(self, node: Node, value: BaseModel | None, *, derived: bool) -> None:
        """Store ``value`` as desired, check it, and re-index the node's dependencies.

        Until the node is reconciled, what is in the dataplane still needs what its applied
        form needs: the index then holds both sets, so a cascade in between sees it.
        """
        node.desired = value
        desc = node.descriptor
        node.invalid = self._check(node, value, derived) if value is not None and desc is not None else None
        wanted: tuple[Dependency, ...] = ()
        if value is not None and desc is not None and node.invalid is None:
            wanted = self._dependencies_of(node, value)
        current: tuple[Dependency, ...] = ()
        applied = node.applied
        changing = (
            desc is not None and applied is not None and applied is not value and node.origin is Origin.FROM_NB
        )
        if changing and applied is not None:
            current = self._dependencies_of(node, applied)
        # Also when the applied form needs nothing: the take-down cascade must know that what the
        # next form needs is not needed yet (see Executor._applied_needs).
        if changing and current != wanted:
            node.next_deps = wanted
            self.graph.set_deps(node, tuple(dict.fromkeys(current + wanted)))
        else:
            node.next_deps = None
            self.graph.set_deps(node, wanted)

    def _check(self, node: Node, value: BaseModel, derived: bool) -> str | None:
        desc = node.descriptor
        assert desc is not None
        if not isinstance(value, desc.model):
            return f"descriptor {desc.name!r} expects a {desc.model.__name__}, got a {type(value).__name__}"
        try:
            if not derived:
                own_key = desc.key_of(value)
                if own_key != node.key:
                    return str(KeyMismatchError(f"key {node.key!r} is not the value's own key {own_key!r}"))
            desc.validate(node.key, value)
        except InvalidValueError as err:
            return err.reason
        except Exception as err:  # noqa: BLE001 - descriptor code may raise anything
            return f"validation raised {describe_error(err)}"
        return None

    def _dependencies_of(self, node: Node, value: BaseModel) -> tuple[Dependency, ...]:
        desc = node.descriptor
        assert desc is not None
        try:
            return tuple(desc.dependencies(node.key, value))
        except Exception as err:  # noqa: BLE001 - descriptor code may raise anything
            node.invalid = f"dependencies() raised {describe_error(err)}"
            return ()

    # ---- planning -------------------------------------------------------------------------

    def is_settled(self, node: Node) -> bool:
        """True when reconciling ``node`` would do nothing (the resync fast path)."""
        if node.invalid is not None or node.error is not None or node.next_deps is not None:
            return False
        if node.base is not None:
            base = self.graph.get(node.base)
            if base is None or not base.available:
                return not node.available and node.applied is None and node.desired is None
        desired = node.desired
        if desired is None:
            return node.origin is Origin.FROM_SB or (node.applied is None and not node.available)
        if node.origin is not Origin.FROM_NB:
            return False
        if node.state is ValueState.PENDING:
            return node.applied is None and not self.graph.is_satisfied(node)
        if not node.available or not self.graph.is_satisfied(node):
            return False
        if node.descriptor is None:
            return node.state is ValueState.UNIMPLEMENTED
        applied = node.applied
        if node.state is not ValueState.CONFIGURED or applied is None:
            return False
        try:
            return self.equivalent(node, applied, desired)
        except DescriptorCheckError:
            return False  # reconciling it reports the error

    def mark(self, node: Node, state: ValueState, error: str | None = None) -> None:
        if node.state is not state:
            self.graph.set_state(node, state)
        node.error = error
        node.txn_seq = self.ctx.seq
        self.ctx.touched[node.key] = None
        if error is not None:
            self.ctx.errors[node.key] = error

    def equivalent(self, node: Node, old: BaseModel, new: BaseModel) -> bool:
        """The descriptor's ``equivalent``; raises :class:`DescriptorCheckError` when it raised."""
        desc = node.descriptor
        if desc is None:
            return bool(old == new)
        try:
            return desc.equivalent(node.key, old, new)
        except Exception as err:
            raise DescriptorCheckError("equivalent", err) from err
