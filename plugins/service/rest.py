"""REST face of the service plugin: ``GET /contiv/v1/services[/<namespace>/<name>]``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException

if TYPE_CHECKING:
    from plugins.service.plugin import ServicePlugin


def build_router(plugin: ServicePlugin) -> APIRouter:
    """Routes serving the intent of every service: frontends, backends, skip reasons."""
    router = APIRouter(prefix="/contiv/v1/services", tags=["services"])

    @router.get("")
    async def services() -> dict[str, Any]:
        """Every service's intent by ``namespace/name`` (async: read on the event loop)."""
        return plugin.service_view()

    @router.get("/{namespace}/{name}")
    async def service(namespace: str, name: str) -> dict[str, Any]:
        """One service's intent; 404 when unknown."""
        found = plugin.service_view(f"{namespace}/{name}")
        if not found:
            raise HTTPException(status_code=404, detail=f"no service {namespace}/{name}")
        body: dict[str, Any] = found[f"{namespace}/{name}"]
        return body

    return router
