"""REST endpoints of the controller: event history, resync trigger, handlers' internal state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Query

from plugins.controller.eventloop import EventLoop


def make_router(loop: Callable[[], EventLoop | None], resync: Callable[[], str]) -> APIRouter:
    """Routes under ``/controller``; ``loop`` gives the running event loop (None before start)."""
    router = APIRouter(prefix="/controller", tags=["controller"])

    def running() -> EventLoop:
        current = loop()
        if current is None:
            raise HTTPException(status_code=503, detail="the controller has not started yet")
        return current

    @router.get("/event-history")
    async def event_history(
        since_seq: int = Query(0, ge=0, description="only events with this sequence number or later"),
        limit: int | None = Query(None, ge=0, description="at most this many (the newest)"),
    ) -> dict[str, Any]:
        current = running()
        records = current.history_records(since_seq, limit)
        return {
            "events": [record.to_json() for record in records],
            "ready": current.ready,
            "healing_scheduled": current.healing_scheduled,
        }

    @router.post("/resync", status_code=202)
    async def trigger_resync() -> dict[str, str]:
        running()
        return {"status": "accepted", "resync": resync()}

    @router.get("/internal-state")
    async def internal_state() -> dict[str, Any]:
        return running().describe_handlers()

    return router
