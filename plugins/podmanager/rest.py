"""REST views of the pod manager: the local pods and the CNI request timings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter

from plugins.podmanager.records import PodRecord
from plugins.podmanager.stats import RequestStats


def pod_routes(
    pods: Callable[[], Mapping[Any, PodRecord]], stats: RequestStats
) -> APIRouter:
    """``GET /contiv/v1/pods`` (records of this node) and ``GET /contiv/v1/pods/cni-stats``."""
    router = APIRouter(prefix="/contiv/v1/pods", tags=["podmanager"])

    @router.get("")
    async def list_pods() -> list[dict[str, Any]]:
        return [
            record.model_dump(mode="json")
            for _, record in sorted(pods().items(), key=lambda item: str(item[0]))
        ]

    @router.get("/cni-stats")
    async def cni_stats() -> dict[str, Any]:
        return stats.summary()

    return router
