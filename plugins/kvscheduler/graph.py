"""The scheduler's in-memory graph: one node per key, dependency edges indexed both ways.

Edges are indexed by target so that "who waits for key K" is a dict lookup: exact-key
dependencies in ``_dependents``, any-of dependencies by prefix in ``_any_dependents``. For
any-of prefixes the graph also keeps how many *available* keys start with each prefix, so
checking an any-of dependency is O(number of prefixes), never a scan.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from plugins.kvscheduler.api import (
    Dependency,
    Descriptor,
    MissingDependency,
    Operation,
    Origin,
    ValueState,
    ValueStatus,
)


class Node:
    """Everything the scheduler knows about one key."""

    __slots__ = (
        "applied",
        "attempts",
        "available",
        "base",
        "deps",
        "derived_keys",
        "descriptor",
        "desired",
        "error",
        "invalid",
        "key",
        "last_op",
        "metadata",
        "nb",
        "next_deps",
        "origin",
        "state",
        "txn_seq",
    )

    def __init__(self, key: str, descriptor: Descriptor[Any] | None) -> None:
        self.key = key
        self.descriptor = descriptor
        #: The value this key should have (NB value, or derived from an available base).
        self.desired: BaseModel | None = None
        #: True when ``desired`` came from a northbound transaction.
        self.nb = False
        #: Key of the base value for derived values.
        self.base: str | None = None
        self.derived_keys: tuple[str, ...] = ()
        #: What we believe exists in the dataplane (None: nothing).
        self.applied: BaseModel | None = None
        self.metadata: Any = None
        self.origin = Origin.FROM_NB
        #: Whether the value satisfies dependencies of others right now.
        self.available = False
        self.state = ValueState.NONEXISTENT
        self.error: str | None = None
        #: Why the desired value is invalid (key mismatch, validate error), else None.
        self.invalid: str | None = None
        self.last_op: Operation | None = None
        self.deps: tuple[Dependency, ...] = ()
        #: The desired value's dependencies while ``deps`` also holds the applied form's.
        self.next_deps: tuple[Dependency, ...] | None = None
        self.txn_seq = 0
        #: Failed attempts of the current desired value (reset on success or change).
        self.attempts = 0

    @property
    def is_property(self) -> bool:
        """A derived value without a descriptor: exists exactly while its base does."""
        return self.descriptor is None and self.base is not None

    @property
    def descriptor_name(self) -> str | None:
        return self.descriptor.name if self.descriptor is not None else None


class Graph:
    """Nodes by key plus the dependency indexes."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self._dependents: dict[str, str | set[str]] = {}
        self._any_dependents: dict[str, set[str]] = {}
        #: available-key count per any-of prefix in use
        self._prefix_available: dict[str, int] = {}
        #: prefix length -> number of prefixes of that length in use
        self._prefix_lengths: dict[int, int] = {}
        #: how many nodes are in each state (kept up to date by :meth:`set_state`)
        #: (keyed by the state's string value: hashing an Enum member runs Python code)
        self.state_counts: dict[str, int] = {state.value: 0 for state in ValueState}
        #: every key, sorted: the keys under a prefix are one slice (see :meth:`_use_prefix`)
        self._sorted_keys: list[str] = []

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def get(self, key: str) -> Node | None:
        return self.nodes.get(key)

    def add(self, node: Node) -> Node:
        if node.key not in self.nodes:
            insort(self._sorted_keys, node.key)
        self.nodes[node.key] = node
        self.state_counts[node.state.value] += 1
        return node

    def drop(self, node: Node) -> None:
        """Forget a node that is neither desired nor applied."""
        self.set_deps(node, ())
        if node.available:
            self.set_available(node, False)
        if self.nodes.pop(node.key, None) is not None:
            self.state_counts[node.state.value] -= 1
            keys = self._sorted_keys
            at = bisect_left(keys, node.key)
            if at < len(keys) and keys[at] == node.key:
                del keys[at]

    def set_state(self, node: Node, state: ValueState) -> None:
        counts = self.state_counts
        counts[node.state._value_] -= 1  # _value_: a plain attribute, .value is a descriptor
        counts[state._value_] += 1
        node.state = state

    # ---- dependency edges -----------------------------------------------------------------

    def set_deps(self, node: Node, deps: tuple[Dependency, ...]) -> None:
        """Replace ``node``'s outgoing edges, keeping both indexes in step."""
        if deps == node.deps:
            return
        key = node.key
        dependents = self._dependents
        for dep in node.deps:
            target = dep.key
            if target is not None:
                users = dependents.get(target)
                if users is None:
                    continue
                if isinstance(users, str):
                    if users == key:
                        del dependents[target]
                else:
                    users.discard(key)
                    if len(users) == 1:
                        dependents[target] = next(iter(users))
            else:
                for prefix in dep.any_of:
                    self._unuse_prefix(prefix, key)
        node.deps = deps
        for dep in deps:
            target = dep.key
            if target is not None:
                # One dependent is stored as a bare string: most keys have a single user.
                users = dependents.get(target)
                if users is None:
                    dependents[target] = key
                elif isinstance(users, str):
                    if users != key:
                        dependents[target] = {users, key}
                else:
                    users.add(key)
            else:
                for prefix in dep.any_of:
                    self._use_prefix(prefix, key)

    def _use_prefix(self, prefix: str, key: str) -> None:
        users = self._any_dependents.get(prefix)
        if users is None:
            self._any_dependents[prefix] = {key}
            # First user of this prefix: count once (later kept up to date incrementally),
            # over the keys under the prefix only (a pod's routes each bring a new prefix:
            # a scan of every node cost ~1 ms per pod at 150 pods).
            keys, nodes = self._sorted_keys, self.nodes
            at = bisect_left(keys, prefix)
            count = 0
            while at < len(keys) and keys[at].startswith(prefix):
                if nodes[keys[at]].available:
                    count += 1
                at += 1
            self._prefix_available[prefix] = count
            length = len(prefix)
            self._prefix_lengths[length] = self._prefix_lengths.get(length, 0) + 1
        else:
            users.add(key)

    def _unuse_prefix(self, prefix: str, key: str) -> None:
        users = self._any_dependents.get(prefix)
        if users is None:
            return
        users.discard(key)
        if not users:
            del self._any_dependents[prefix]
            del self._prefix_available[prefix]
            length = len(prefix)
            left = self._prefix_lengths[length] - 1
            if left:
                self._prefix_lengths[length] = left
            else:
                del self._prefix_lengths[length]

    def dependents(self, key: str) -> list[str]:
        """Keys whose dependencies name ``key`` (exactly or by an any-of prefix)."""
        users = self._dependents.get(key)
        if users is None:
            found: list[str] = []
        elif isinstance(users, str):
            found = [users]
        else:
            found = list(users)
        if self._prefix_lengths:
            for length in self._prefix_lengths:
                if length <= len(key):
                    any_users = self._any_dependents.get(key[:length])
                    if any_users:
                        found.extend(any_users)
        return found

    # ---- availability ---------------------------------------------------------------------

    def set_available(self, node: Node, available: bool) -> None:
        if node.available == available:
            return
        node.available = available
        if self._prefix_lengths:
            step = 1 if available else -1
            key = node.key
            counts = self._prefix_available
            for length in self._prefix_lengths:
                prefix = key[:length]
                if length <= len(key) and prefix in counts:
                    counts[prefix] += step

    def _any_met(self, node: Node, prefixes: tuple[str, ...]) -> bool:
        counts = self._prefix_available
        for prefix in prefixes:
            count = counts.get(prefix, 0)
            if count and node.available:
                # A value never satisfies its own dependency, nor do its derived values.
                if node.key.startswith(prefix):
                    count -= 1
                for key in node.derived_keys:
                    if key.startswith(prefix):
                        child = self.nodes.get(key)
                        if child is not None and child.available:
                            count -= 1
            if count > 0:
                return True
        return False

    def unmet(self, node: Node) -> list[Dependency]:
        """The dependencies of ``node`` that are not satisfied right now."""
        return [dep for dep in node.deps if not self._met(node, dep)]

    def _met(self, node: Node, dep: Dependency) -> bool:
        if dep.key is not None:
            target = self.nodes.get(dep.key)
            return target is not None and target.available and target is not node and target.base != node.key
        return self._any_met(node, dep.any_of)

    def is_satisfied(self, node: Node) -> bool:
        nodes = self.nodes
        for dep in node.deps:
            if dep.key is not None:
                target = nodes.get(dep.key)
                if target is None or not target.available or target is node or target.base == node.key:
                    return False
            elif not self._any_met(node, dep.any_of):
                return False
        return True

    # ---- status ---------------------------------------------------------------------------

    def status(self, node: Node) -> ValueStatus:
        waiting: list[MissingDependency] = []
        if node.state is ValueState.PENDING:
            waiting = [MissingDependency(d.label, d.key, d.any_of) for d in self.unmet(node)]
        return ValueStatus(
            key=node.key,
            state=node.state,
            descriptor=node.descriptor_name,
            error=node.error,
            last_operation=node.last_op,
            waiting_for=waiting,
            derived_from=node.base,
            txn_seq=node.txn_seq,
        )
