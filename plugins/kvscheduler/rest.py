"""REST surface of the scheduler under ``/scheduler/`` (after Ligato's, see docs/kvscheduler.md)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from plugins.kvscheduler.api import Origin, ResyncMode, SchedulerError
from plugins.kvscheduler.export import (
    graph_dot,
    graph_json,
    jsonable,
    status_json,
    timeline_json,
    txn_json,
)
from plugins.kvscheduler.history import TxnRecord
from plugins.kvscheduler.scheduler import KVScheduler


def txn_text(record: TxnRecord) -> str:
    """A readable summary of one transaction (like Ligato's printed txn summary)."""
    r = record.result
    head = f"#{r.seq} {r.kind.value}"
    if r.resync is not None:
        head += f" ({r.resync.value} resync)"
    if r.description:
        head += f" {r.description!r}"
    lines = [f"{head}: {len(r.operations)} operation(s), {r.duration_s * 1000:.2f} ms"]
    for op in r.operations:
        flags = "".join(f" [{name}]" for name, on in (
            ("retry", op.is_retry), ("revert", op.is_revert), ("implicit", op.implicit)) if on)
        error = f" ERROR: {op.error}" if op.error else ""
        lines.append(f"  {op.operation.value:<8} {op.key}{flags}{error}")
    for key, error in r.errors.items():
        lines.append(f"  error {key}: {error}")
    if r.reverted:
        lines.append("  reverted")
    return "\n".join(lines)


def build_router(scheduler: KVScheduler) -> APIRouter:
    """The scheduler's REST routes (prefix ``/scheduler``)."""
    router = APIRouter(prefix="/scheduler", tags=["kvscheduler"])

    @router.get("/descriptors")
    async def descriptors() -> list[dict[str, Any]]:
        """Registered descriptors with their key prefixes."""
        return [
            {
                "name": d.name,
                "key_prefix": d.key_prefix,
                "with_metadata": d.with_metadata,
                "retrieve_after": list(d.retrieve_after),
            }
            for d in scheduler.descriptors()
        ]

    @router.get("/dump")
    async def dump(
        view: Literal["nb", "applied", "sb"] = "applied",
        descriptor: str | None = None,
        key_prefix: str = Query("", alias="key-prefix"),
    ) -> list[dict[str, Any]]:
        """Values by view: ``nb`` desired, ``applied`` the scheduler's view of the dataplane,
        ``sb`` a live read-back (``retrieve``) that changes nothing."""
        if descriptor is not None and not any(d.name == descriptor for d in scheduler.descriptors()):
            raise HTTPException(404, f"no descriptor named {descriptor!r}")

        def wanted(key: str) -> bool:
            if not key.startswith(key_prefix):
                return False
            if descriptor is None:
                return True
            owner = scheduler.registry.for_key(key)
            return owner is not None and owner.name == descriptor

        if view == "nb":
            return [
                {"key": k, "value": jsonable(v), "origin": Origin.FROM_NB.value}
                for k, v in sorted(scheduler.desired().items())
                if wanted(k)
            ]
        if view == "applied":
            return [
                {
                    "key": k,
                    "value": jsonable(n.applied),
                    "origin": n.origin.value,
                    "metadata": jsonable(n.metadata),
                    "derived_from": n.base,
                }
                for k, n in sorted(scheduler.applied(key_prefix).items())
                if wanted(k)
            ]
        try:
            found = await scheduler.read_back(descriptor)
        except SchedulerError as err:
            raise HTTPException(502, f"read-back failed: {err}") from err
        return [
            {
                "key": k,
                "value": jsonable(item.value),
                "origin": item.origin.value,
                "metadata": jsonable(item.metadata),
            }
            for k, item in sorted(found.items())
            if wanted(k)
        ]

    @router.get("/status")
    async def status(
        key: str | None = None,
        descriptor: str | None = None,
        key_prefix: str = Query("", alias="key-prefix"),
    ) -> Any:
        """One key's status (with what a pending value waits for), or all under a prefix."""
        if key is not None:
            return status_json(scheduler.value_status(key), scheduler.value_status)
        lookup = scheduler.value_status
        return [status_json(s, lookup) for s in scheduler.statuses(key_prefix, descriptor)]

    @router.get("/txn-history")
    async def txn_history(
        seq_num: int | None = Query(None, alias="seq-num"),
        since: float | None = None,
        until: float | None = None,
        format: Literal["json", "text"] = "json",
    ) -> Response:
        """Recorded transactions (``since``/``until`` in unix seconds), or one by ``seq-num``."""
        if seq_num is not None:
            found = scheduler.history.get(seq_num)
            if found is None:
                raise HTTPException(404, f"transaction {seq_num} is not in the history")
            records = [found]
        else:
            records = scheduler.history.records(since, until)
        if format == "text":
            return PlainTextResponse("\n".join(txn_text(r) for r in records) + "\n")
        body = [txn_json(r) for r in records]
        return JSONResponse(body[0] if seq_num is not None else body)

    @router.get("/key-timeline")
    async def key_timeline(key: str) -> list[dict[str, Any]]:
        """Every recorded transaction that touched ``key``: status and operations."""
        return timeline_json(scheduler.history.timeline(key))

    @router.get("/graph")
    async def graph(format: Literal["json", "dot"] = "json") -> Response:
        """The graph: nodes with state, dependency and derivation edges (JSON or Graphviz)."""
        if format == "dot":
            return PlainTextResponse(graph_dot(scheduler.graph), media_type="text/vnd.graphviz")
        return JSONResponse(graph_json(scheduler.graph))

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        """Counts of values by state, and how many transactions are recorded."""
        return {
            "values_by_state": {s.value: n for s, n in scheduler.count_by_state().items()},
            "values": len(scheduler.graph),
            "desired": len(scheduler.desired()),
            "recorded_transactions": len(scheduler.history),
            "descriptors": len(scheduler.descriptors()),
        }

    @router.post("/downstream-resync")
    async def downstream_resync() -> dict[str, Any]:
        """Read the dataplane back and re-apply the last desired state; returns the txn."""
        try:
            result = await scheduler.commit({}, resync=ResyncMode.DOWNSTREAM, description="downstream resync (REST)")
        except SchedulerError as err:
            raise HTTPException(503, str(err)) from err
        record = scheduler.history.get(result.seq)
        if record is None:  # history disabled
            record = TxnRecord(result, 0.0)
        return txn_json(record)

    return router
