"""JSON-ready views of the scheduler's state: statuses, transactions, timelines, the graph."""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from plugins.kvscheduler.api import OperationRecord, ValueState, ValueStatus
from plugins.kvscheduler.graph import Graph, Node
from plugins.kvscheduler.history import TimelineEntry, TxnRecord


def jsonable(value: Any) -> Any:
    """A JSON-compatible form of a value or metadata object (repr() as the last resort)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def status_json(status: ValueStatus, lookup: Callable[[str], ValueStatus] | None = None) -> dict[str, Any]:
    """``lookup`` (key -> status) adds, for each exact-key dependency a pending value waits
    for, that key's own state and error: "nonexistent" usually means a wrong key, "failed" or
    "invalid" says why it is not there."""
    waiting: list[dict[str, Any]] = []
    for missing in status.waiting_for:
        item: dict[str, Any] = {"label": missing.label, "key": missing.key, "any_of": list(missing.any_of)}
        if lookup is not None and missing.key is not None:
            target = lookup(missing.key)
            item["target_state"] = target.state.value
            item["target_error"] = target.error
        waiting.append(item)
    return {
        "key": status.key,
        "state": status.state.value,
        "descriptor": status.descriptor,
        "error": status.error,
        "last_operation": status.last_operation.value if status.last_operation else None,
        "waiting_for": waiting,
        "derived_from": status.derived_from,
        "txn_seq": status.txn_seq,
    }


def operation_json(op: OperationRecord) -> dict[str, Any]:
    return {
        "key": op.key,
        "operation": op.operation.value,
        "before": jsonable(op.before),
        "after": jsonable(op.after),
        "error": op.error,
        "duration_s": op.duration_s,
        "is_retry": op.is_retry,
        "is_revert": op.is_revert,
        "implicit": op.implicit,
    }


def txn_json(record: TxnRecord, *, with_values: bool = True) -> dict[str, Any]:
    result = record.result
    data: dict[str, Any] = {
        "seq": result.seq,
        "kind": result.kind.value,
        "resync": result.resync.value if result.resync else None,
        "description": result.description,
        "started": record.started,
        "duration_s": result.duration_s,
        "ok": result.ok,
        "reverted": result.reverted,
        "errors": dict(result.errors),
        "operations": [operation_json(op) for op in result.operations],
    }
    if with_values:
        data["values"] = [status_json(s) for s in result.values.values()]
    return data


def timeline_json(entries: list[TimelineEntry]) -> list[dict[str, Any]]:
    return [
        {
            "seq": e.seq,
            "started": e.started,
            "kind": e.kind,
            "status": status_json(e.status) if e.status is not None else None,
            "operations": [operation_json(op) for op in e.operations],
        }
        for e in entries
    ]


def node_json(node: Node, graph: Graph) -> dict[str, Any]:
    data = status_json(graph.status(node))
    data.update(
        {
            "available": node.available,
            "origin": node.origin.value,
            "desired": jsonable(node.desired),
            "applied": jsonable(node.applied),
            "metadata": jsonable(node.metadata),
            "derived": list(node.derived_keys),
        }
    )
    return data


def graph_edges(graph: Graph) -> list[dict[str, str]]:
    """Edges: ``depends`` (from a value to each key satisfying a dependency) and ``derives``."""
    keys = sorted(graph.nodes)
    edges: list[dict[str, str]] = []
    for key in keys:
        node = graph.nodes[key]
        for dep in node.deps:
            if dep.key is not None:
                edges.append({"from": key, "to": dep.key, "label": dep.label, "kind": "depends"})
                continue
            for prefix in dep.any_of:
                start = bisect.bisect_left(keys, prefix)
                for target in keys[start:]:
                    if not target.startswith(prefix):
                        break
                    if graph.nodes[target].available:
                        edges.append({"from": key, "to": target, "label": dep.label, "kind": "depends"})
        for child in node.derived_keys:
            edges.append({"from": key, "to": child, "label": "derives", "kind": "derives"})
    return edges


def graph_json(graph: Graph) -> dict[str, Any]:
    return {
        "nodes": [node_json(graph.nodes[k], graph) for k in sorted(graph.nodes)],
        "edges": graph_edges(graph),
    }


_COLORS = {
    ValueState.CONFIGURED: "palegreen",
    ValueState.OBTAINED: "lightblue",
    ValueState.DISCOVERED: "lightblue",
    ValueState.UNIMPLEMENTED: "lightgrey",
    ValueState.PENDING: "yellow",
    ValueState.RETRYING: "orange",
    ValueState.FAILED: "tomato",
    ValueState.INVALID: "tomato",
    ValueState.MISSING: "orange",
}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_dot(graph: Graph) -> str:
    """The graph in Graphviz dot: nodes coloured by state, dashed edges for derived values."""
    lines = ["digraph kvscheduler {", "  rankdir=LR;", "  node [shape=box, style=filled];"]
    for key in sorted(graph.nodes):
        node = graph.nodes[key]
        label = _quote(key)[:-1] + "\\n" + node.state.value + '"'
        color = _COLORS.get(node.state, "white")
        lines.append(f"  {_quote(key)} [label={label}, fillcolor={color}];")
    for edge in graph_edges(graph):
        style = "dashed" if edge["kind"] == "derives" else "solid"
        lines.append(
            f"  {_quote(edge['from'])} -> {_quote(edge['to'])} [label={_quote(edge['label'])}, style={style}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
