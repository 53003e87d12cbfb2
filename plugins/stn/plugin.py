"""The ``stn`` plugin of contiv-stn: record, gRPC service, watchdog, REST, health and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prometheus_client import Gauge

from core.health import HealthPlugin
from core.http import HTTPPlugin
from core.metrics import MetricsPlugin
from core.plugin import Plugin, PluginConfig
from plugins.stn.config import STNConfig
from plugins.stn.server import STNServer
from plugins.stn.service import STNService
from plugins.stn.watchdog import Watchdog

HEALTH_COMPONENT = "stn"


class STNPlugin(Plugin):
    """Name ``stn``. Loads the record in ``init`` (a corrupt record stops the start, naming the
    file), serves gRPC and starts the watchdog in ``after_init``. Optional: ``http`` (REST
    ``/contiv/v1/stn``), ``health``, ``metrics``.
    """

    name = "stn"
    Config = STNConfig
    config: STNConfig

    def __init__(
        self,
        config: PluginConfig | None = None,
        *,
        http: HTTPPlugin | None = None,
        health: HealthPlugin | None = None,
        metrics: MetricsPlugin | None = None,
    ) -> None:
        super().__init__(config)
        self.http = http
        self.health = health
        self.metrics = metrics
        self.service = STNService(self.config, self.log)
        self.server = STNServer(self.config.socket_path, self.service, self.log)
        self.watchdog = Watchdog(self.config, self.service, self.log)
        self.watchdog.on_give_up.append(lambda message: self._report(False, message))
        self.service.on_change.append(lambda: self._report(True, f"serving on {self.config.socket_path}"))

    async def init(self) -> None:
        self.service.load()
        if self.http is not None:
            self.http.add_router(self._router())
        if self.metrics is not None:
            self._register_metrics(self.metrics)

    async def after_init(self) -> None:
        await self.server.start()
        self.watchdog.rearm()
        self.watchdog.start()
        self._report(True, f"serving on {self.config.socket_path}")

    async def close(self) -> None:
        await self.watchdog.stop()
        await self.server.stop()

    def _report(self, ok: bool, detail: str) -> None:
        if self.health is not None:
            self.health.report(HEALTH_COMPONENT, ok, detail)

    def state(self) -> dict[str, Any]:
        """The REST view: every stolen link's record and the watchdog."""
        return {
            "socket": self.config.socket_path,
            "state_file": self.config.state_file,
            "namespace": self.config.namespace,
            "stolen": {name: link.model_dump(mode="json") for name, link in sorted(self.service.stolen.items())},
            "watchdog": self.watchdog.state(),
        }

    def _router(self) -> APIRouter:
        router = APIRouter(tags=["stn"])

        @router.get("/contiv/v1/stn")
        async def stn_state() -> dict[str, Any]:
            """The stolen links (addresses, routes, driver) and the watchdog's view."""
            return self.state()

        return router

    def _register_metrics(self, metrics: MetricsPlugin) -> None:
        reg = metrics.registry
        stolen = Gauge("stn_stolen_interfaces", "Links currently stolen", registry=reg)
        stolen.set_function(lambda: len(self.service.stolen))
        ops = Gauge("stn_operations", "STN operations done since start", ["operation"], registry=reg)
        ops.labels(operation="steal").set_function(lambda: self.service.steals)
        ops.labels(operation="release").set_function(lambda: self.service.releases)
        ops.labels(operation="watchdog_restore").set_function(lambda: self.watchdog.restores)
        reqs = Gauge("stn_grpc_requests", "gRPC requests served, by result", ["result"], registry=reg)
        reqs.labels(result="all").set_function(lambda: self.server.requests)
        reqs.labels(result="failed").set_function(lambda: self.server.failures)
