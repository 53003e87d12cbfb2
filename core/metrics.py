"""The Prometheus metrics plugin: one registry per app, served at ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Info, generate_latest

from core.http import HTTPPlugin
from core.plugin import Plugin, PluginConfig


class MetricsConfig(PluginConfig):
    path: str = "/metrics"
    """Where the Prometheus text format is served."""


class MetricsPlugin(Plugin):
    """Prometheus metrics at ``/metrics``.

    Owns the app's :class:`CollectorRegistry`; plugins create metrics with ``registry=``.
    """

    name = "metrics"
    Config = MetricsConfig
    config: MetricsConfig

    def __init__(self, config: MetricsConfig | None = None, *, http: HTTPPlugin) -> None:
        super().__init__(config)
        self.http = http
        self.registry = CollectorRegistry(auto_describe=True)
        self.build_info = Info("contiv_build", "Version of the running app", registry=self.registry)

    async def init(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            self.build_info.info({"version": version("contiv-py")})
        except PackageNotFoundError:
            self.build_info.info({"version": "unknown"})
        router = APIRouter(tags=["metrics"])

        @router.get(self.config.path)
        async def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        self.http.add_router(router)
