"""The VPP dataplane plugin (name ``vpp``): connection, descriptors, REST, metrics, health."""

from __future__ import annotations

from typing import Any

from prometheus_client import Gauge

from core.health import HealthPlugin
from core.http import HTTPPlugin
from core.metrics import MetricsPlugin
from core.plugin import Plugin, PluginConfig
from plugins.kvscheduler.api import Descriptor, KVSchedulerAPI, ResyncMode
from plugins.vpp.config import VPPConfig
from plugins.vpp.connection import VPPConnection
from plugins.vpp.descriptors import all_descriptors
from plugins.vpp.index import Indexes
from plugins.vpp.rest import vpp_router

HEALTH_COMPONENT = "vpp"


class VPPDataplanePlugin(Plugin):
    """Drives VPP through vpp-papi: registers the VPP descriptors with the KV scheduler.

    Connects in ``after_init`` (waiting up to ``connect_timeout_s`` for VPP), probes the
    connection, and after every reconnect runs a downstream resync so that a restarted (empty)
    VPP gets the whole configuration again. Imports no contiv plugin but the scheduler's API.
    """

    name = "vpp"
    Config = VPPConfig
    config: VPPConfig

    def __init__(
        self,
        config: PluginConfig | None = None,
        *,
        scheduler: KVSchedulerAPI,
        http: HTTPPlugin | None = None,
        metrics: MetricsPlugin | None = None,
        health: HealthPlugin | None = None,
    ) -> None:
        super().__init__(config)
        self.scheduler = scheduler
        self.http = http
        self.metrics = metrics
        self.health = health
        cfg = self.config
        self.connection = VPPConnection(
            cfg.api_socket,
            cfg.resolved_api_dir(),
            client_name=cfg.client_name,
            reply_timeout_s=cfg.reply_timeout_s,
            reconnect_interval_s=cfg.reconnect_interval_s,
            health_interval_s=cfg.health_interval_s,
        )
        self.indexes = Indexes()
        self.descriptors: list[Descriptor[Any]] = []
        self.resyncs = 0

    async def init(self) -> None:
        self.descriptors = all_descriptors(self.connection, self.indexes)
        for descriptor in self.descriptors:
            self.scheduler.register_descriptor(descriptor)
        if self.http is not None:
            self.http.add_router(vpp_router(self.connection, self.indexes))
        if self.metrics is not None:
            self._register_metrics(self.metrics)
        self.connection.on_reconnect(self._resync_after_reconnect)
        self.connection.on_lost(lambda: self._report(False, "connection to VPP lost"))
        self.log.info("registered %d VPP descriptors", len(self.descriptors))

    async def after_init(self) -> None:
        cfg = self.config
        await self.connection.connect_with_retry(cfg.connect_timeout_s)
        self._report(True, f"VPP {self.connection.version}")
        self.connection.start_monitor()

    async def close(self) -> None:
        await self.connection.close()

    async def _resync_after_reconnect(self, restarted: bool) -> None:
        self._report(True, f"VPP {self.connection.version} (reconnected)")
        self.resyncs += 1
        why = "VPP restarted" if restarted else "VPP connection re-established"
        result = await self.scheduler.commit({}, resync=ResyncMode.DOWNSTREAM, description=why)
        if not result.ok:
            self.log.warning("downstream resync after reconnect: %s", result.errors)

    def _report(self, ok: bool, detail: str) -> None:
        if self.health is not None:
            self.health.report(HEALTH_COMPONENT, ok, detail)

    def _register_metrics(self, metrics: MetricsPlugin) -> None:
        stats = self.connection.stats
        calls = Gauge("vpp_api_calls", "VPP binary-API calls made, by result", ["result"], registry=metrics.registry)
        calls.labels(result="all").set_function(lambda: stats.total_calls)
        calls.labels(result="failed").set_function(lambda: stats.total_failures)
        connected = Gauge("vpp_connected", "1 while connected to VPP", registry=metrics.registry)
        connected.set_function(lambda: 1.0 if self.connection.connected else 0.0)
        reconnects = Gauge("vpp_reconnects", "Reconnections to VPP since start", registry=metrics.registry)
        reconnects.set_function(lambda: self.connection.reconnects)
