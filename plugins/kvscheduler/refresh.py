"""Reading the dataplane back: graph refresh for resyncs, and verification after transactions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from core.tuning import dataplane_call
from plugins.kvscheduler.api import (
    Descriptor,
    Origin,
    RetrievedValue,
    ValueState,
    ValueWithMetadata,
)
from plugins.kvscheduler.desired import DescriptorCheckError
from plugins.kvscheduler.engine import Executor, describe_error
from plugins.kvscheduler.graph import Node


def _by_descriptor(nodes: Iterable[Node]) -> dict[str, list[Node]]:
    grouped: dict[str, list[Node]] = defaultdict(list)
    for node in nodes:
        if node.descriptor is not None:
            grouped[node.descriptor.name].append(node)
    return grouped


def _correlate(nodes: list[Node]) -> list[ValueWithMetadata]:
    applied = [
        ValueWithMetadata(n.key, n.applied, n.metadata)
        for n in nodes
        if n.applied is not None and n.origin is Origin.FROM_NB
    ]
    if applied:
        return applied
    # Nothing applied yet (first resync): correlate with what NB wants.
    return [ValueWithMetadata(n.key, n.desired, None) for n in nodes if n.desired is not None]


async def retrieve_all(ex: Executor, descriptors: list[Descriptor[Any]]) -> dict[str, dict[str, RetrievedValue]]:
    """Run ``retrieve`` of each descriptor in order; failures are recorded as errors.

    Returns descriptor name -> key -> retrieved value, for descriptors whose retrieve worked.
    """
    grouped = _by_descriptor(ex.graph)
    found: dict[str, dict[str, RetrievedValue]] = {}
    for desc in descriptors:
        try:
            got = await dataplane_call(desc.retrieve(_correlate(grouped.get(desc.name, []))))
        except Exception as err:  # noqa: BLE001 - descriptor code may raise anything
            ex.ctx.errors[f"retrieve:{desc.name}"] = describe_error(err)
            continue
        mine: dict[str, RetrievedValue] = {}
        for item in got:
            if not item.key.startswith(desc.key_prefix):
                ex.ctx.errors[f"retrieve:{desc.name}"] = (
                    f"retrieve returned {item.key!r}, outside the prefix {desc.key_prefix!r}"
                )
                continue
            mine[item.key] = item
        found[desc.name] = mine
    return found


async def refresh(ex: Executor) -> None:
    """Make the graph's view of the dataplane match what every descriptor reads back.

    Values found and ours become available (DISCOVERED when not desired: obsolete, to be
    deleted); foreign ones become OBTAINED (never touched); values we believed applied but
    not found become MISSING (re-created by the reconcile that follows).

    Derived values follow their bases before anything is planned, whatever the key order:
    what a base lost from the dataplane derived disappears with it (a property stops
    satisfying dependencies), and what a read-back base derives is recorded as desired, its
    properties available. So a dataplane that equals the desired state costs no operation,
    also on the first resync of a fresh scheduler (an agent restart).
    """
    graph = ex.graph
    grouped = _by_descriptor(graph)
    found = await retrieve_all(ex, ex.registry.retrieve_order())
    rederive: list[Node] = []
    lost: list[Node] = []
    for name, items in found.items():
        desc = ex.registry.by_name(name)
        for key, item in items.items():
            node = graph.get(key)
            if node is None:
                node = graph.add(Node(key, desc))
            if _absorb(ex, node, item):
                rederive.append(node)
        for node in grouped.get(name, []):
            if node.key not in items and (node.applied is not None or node.available):
                _lose(ex, node)
                lost.append(node)
    for node in lost:
        for key in node.derived_keys:
            child = graph.get(key)
            if child is not None:
                _orphan(ex, child)
        node.derived_keys = ()
    for node in rederive:
        if node.available and node.origin is Origin.FROM_NB:
            _derive_read_back(ex, node)


def _absorb(ex: Executor, node: Node, item: RetrievedValue) -> bool:
    """Record a read-back value; True if what it derives must be (re)computed."""
    desc = node.descriptor
    assert desc is not None
    previous = node.applied
    was_available = node.available
    node.applied = item.value
    node.metadata = item.metadata
    ex.registry.set_metadata(desc, node.key, item.metadata)
    changed = previous is None or previous != item.value or not was_available
    if item.origin is Origin.FROM_SB:
        changed = False  # foreign values derive nothing we track
        if node.origin is not Origin.FROM_SB or node.state is not ValueState.OBTAINED:
            node.origin = Origin.FROM_SB
            if node.desired is None:
                ex.graph.set_deps(node, ())
                ex.mark(node, ValueState.OBTAINED)
    else:
        node.origin = Origin.FROM_NB
        if node.desired is None:
            ex.set_desired(node, None, derived=node.base is not None)  # index deps of applied
            ex.mark(node, ValueState.DISCOVERED)
        elif previous is None or previous != item.value:
            # Index what the value found in the dataplane needs, too.
            ex.set_desired(node, node.desired, derived=node.base is not None)
    ex.graph.set_available(node, True)
    return changed


def _derive_read_back(ex: Executor, node: Node) -> None:
    """Derive from a read-back value of ours: its derived keys become desired (reconciled by
    the walk that follows, in any key order); its properties exist since it does."""
    graph = ex.graph
    for key in ex.derive(node):
        child = graph.get(key)
        if child is not None:
            _orphan(ex, child)
    for key in node.derived_keys:
        child = graph.nodes[key]
        if child.descriptor is None and child.desired is not None and not child.available:
            child.applied = child.desired
            graph.set_available(child, True)


def _orphan(ex: Executor, child: Node) -> None:
    """``child``'s base no longer derives it (the base is gone or changed): it is not desired.

    A property stops existing at once; a derived value of ours that is still in the dataplane
    is obsolete (DISCOVERED) and deleted by the walk that follows.
    """
    ex.set_desired(child, None, derived=True)
    if child.descriptor is None:
        child.applied = None
        ex.graph.set_available(child, False)
        ex.mark(child, ValueState.REMOVED)
    elif not (child.available or child.applied is not None):
        ex.mark(child, ValueState.REMOVED)
    elif child.origin is Origin.FROM_NB:
        ex.mark(child, ValueState.DISCOVERED)


def _lose(ex: Executor, node: Node) -> None:
    desc = node.descriptor
    assert desc is not None
    node.applied = None
    node.metadata = None
    ex.registry.drop_metadata(desc, node.key)
    ex.graph.set_available(node, False)
    node.origin = Origin.FROM_NB
    if node.desired is not None:
        ex.mark(node, ValueState.MISSING)
    else:
        ex.set_desired(node, None, derived=node.base is not None)
        ex.mark(node, ValueState.REMOVED)


async def verify(ex: Executor) -> None:
    """Verification mode: read back every touched value and compare with what we applied."""
    graph = ex.graph
    touched = [n for k in ex.ctx.touched if (n := graph.get(k)) is not None]
    grouped = _by_descriptor(touched)
    if not grouped:
        return
    descriptors = [ex.registry.by_name(name) for name in sorted(grouped)]
    found = await retrieve_all(ex, descriptors)
    for name, nodes in grouped.items():
        items = found.get(name)
        if items is None:
            continue
        for node in nodes:
            if node.origin is Origin.FROM_SB or node.state in (
                ValueState.FAILED,
                ValueState.RETRYING,
            ):
                continue  # foreign, or failed: what exists is not ours to assert
            expected = node.applied
            item = items.get(node.key)
            actual = item.value if item is not None and item.origin is Origin.FROM_NB else None
            if expected is None and actual is None:
                continue
            try:
                same = expected is not None and actual is not None and ex.equivalent(node, expected, actual)
            except DescriptorCheckError as err:
                ex.ctx.errors[node.key] = f"verification failed: {err}"
                continue
            if not same:
                ex.ctx.errors[node.key] = f"verification failed: expected {expected!r}, read back {actual!r}"
