"""REST face of the policy plugin: ``GET /contiv/v1/policies``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

if TYPE_CHECKING:
    from plugins.policy.plugin import PolicyPlugin


def build_router(plugin: PolicyPlugin) -> APIRouter:
    router = APIRouter(prefix="/contiv/v1/policies", tags=["policy"])

    @router.get("")
    async def policies() -> dict[str, Any]:
        """Per local pod: the policies selecting it and its rendered rule sets (chain name and
        rules, per side; absent side = not isolated); plus skipped policies and totals. Runs on
        the event loop, so it never sees a half-applied event."""
        return plugin.describe()

    return router
