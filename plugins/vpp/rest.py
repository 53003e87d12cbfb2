"""REST ``/contiv/v1/vpp``: connection state, VPP version, API call counts, interface index."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from plugins.vpp.connection import VPPConnection
from plugins.vpp.index import Indexes


def vpp_router(connection: VPPConnection, indexes: Indexes) -> APIRouter:
    router = APIRouter(tags=["vpp"])

    @router.get("/contiv/v1/vpp")
    async def vpp_state() -> dict[str, Any]:
        """Whether the agent is connected to VPP, which VPP it is, and what it asked of it."""
        return {
            "connected": connection.connected,
            "api_socket": connection.api_socket,
            "version": connection.version,
            "vpe_pid": connection.vpe_pid,
            "reconnects": connection.reconnects,
            "api_calls": connection.stats.total_calls,
            "api_failures": connection.stats.total_failures,
            "calls_by_message": dict(sorted(connection.stats.calls.items())),
            "failures_by_message": dict(sorted(connection.stats.failures.items())),
            "interfaces": dict(indexes.interfaces.items()),
            "bridge_domains": dict(indexes.bridge_domains.items()),
        }

    return router
