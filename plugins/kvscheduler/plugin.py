"""The ``kvscheduler`` plugin: the scheduler engine with REST routes and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from core.http import HTTPPlugin
from core.metrics import MetricsPlugin
from core.plugin import Plugin
from plugins.kvscheduler.api import Descriptor, KVSchedulerAPI, ResyncMode, TxnResult, ValueStatus
from plugins.kvscheduler.config import KVSchedulerConfig
from plugins.kvscheduler.metrics import SchedulerMetrics
from plugins.kvscheduler.rest import build_router
from plugins.kvscheduler.scheduler import KVScheduler, RetryPolicy


class KVSchedulerPlugin(Plugin):
    """Implements :class:`plugins.kvscheduler.api.KVSchedulerAPI` for the agent.

    Dataplane plugins call :meth:`register_descriptor` from their ``init``; the controller
    commits one transaction per event. With ``http`` the REST routes are served under
    ``/scheduler/``; with ``metrics`` the ``kvscheduler_*`` metrics land in its registry.
    """

    name = "kvscheduler"
    Config = KVSchedulerConfig
    config: KVSchedulerConfig

    def __init__(
        self,
        config: KVSchedulerConfig | None = None,
        *,
        http: HTTPPlugin | None = None,
        metrics: MetricsPlugin | None = None,
    ) -> None:
        super().__init__(config)
        self.http = http
        self.metrics = metrics
        cfg = self.config
        self.scheduler = KVScheduler(
            verify=cfg.verify,
            retry=RetryPolicy(cfg.retry_period_s, cfg.retry_max_attempts, cfg.retry_backoff),
            history_size=cfg.history_size,
            history_age_s=cfg.history_age_s,
            record_history=cfg.record_history,
        )
        self.scheduler_metrics: SchedulerMetrics | None = None

    async def init(self) -> None:
        if self.metrics is not None:
            self.scheduler_metrics = SchedulerMetrics(self.scheduler, self.metrics.registry)
        if self.http is not None:
            self.http.add_router(build_router(self.scheduler))

    async def close(self) -> None:
        await self.scheduler.close()

    # ---- KVSchedulerAPI (delegated to the engine) -----------------------------------------

    def register_descriptor(self, descriptor: Descriptor[Any]) -> None:
        """Add a value type; call from ``init``. Names and key prefixes must be unique."""
        self.scheduler.register_descriptor(descriptor)
        self.log.debug("descriptor %s registered for %s", descriptor.name, descriptor.key_prefix)

    async def commit(
        self,
        changes: Mapping[str, BaseModel | None],
        *,
        resync: ResyncMode | None = None,
        revert_on_failure: bool = False,
        description: str = "",
    ) -> TxnResult:
        """Run one transaction and wait for it (see :class:`KVSchedulerAPI`)."""
        return await self.scheduler.commit(
            changes, resync=resync, revert_on_failure=revert_on_failure, description=description
        )

    def descriptors(self) -> list[Descriptor[Any]]:
        """The registered descriptors."""
        return self.scheduler.descriptors()

    def value_status(self, key: str) -> ValueStatus:
        return self.scheduler.value_status(key)

    def desired(self) -> Mapping[str, BaseModel]:
        return self.scheduler.desired()

    def metadata(self, descriptor: str) -> Mapping[str, Any]:
        return self.scheduler.metadata(descriptor)

    async def settled(self, timeout: float | None = None) -> None:
        """Wait until no retry is scheduled."""
        await self.scheduler.settled(timeout)


def _implements_api(plugin: KVSchedulerPlugin, engine: KVScheduler) -> tuple[KVSchedulerAPI, KVSchedulerAPI]:
    """Static check (mypy): both the plugin and the bare engine implement KVSchedulerAPI."""
    return plugin, engine
