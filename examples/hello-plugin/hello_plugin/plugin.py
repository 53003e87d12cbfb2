"""The ``hello`` plugin: a greeting over REST, a key in the KV store, a lifecycle log.

It shows everything a plugin author needs: a name, a validated config, dependencies typed by
the interface they use (resolved by the app from the enabled plugins), the lifecycle, a pluggy
hook implementation, a REST route and a Prometheus metric.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from prometheus_client import Counter

from contiv_sdk import HTTPPlugin, KVDBPlugin, MetricsPlugin, Plugin, PluginConfig, hookimpl


class HelloConfig(PluginConfig):
    greeting: str = "hello"
    """What ``GET /hello`` answers."""
    lifecycle_log: Path | None = None
    """If set, each lifecycle step is appended to this file (one word a line)."""


class HelloPlugin(Plugin):
    name = "hello"
    Config = HelloConfig
    config: HelloConfig

    def __init__(self, config: HelloConfig | None = None, *, http: HTTPPlugin,
                 kvdb: KVDBPlugin, metrics: MetricsPlugin | None = None) -> None:
        super().__init__(config)
        self.http = http
        self.kvdb = kvdb
        self.metrics = metrics
        self.greetings = Counter("hello_greetings", "Greetings served",
                                 registry=metrics.registry if metrics else None)
        self.seen_started: list[str] = []

    def _record(self, step: str) -> None:
        if self.config.lifecycle_log is not None:
            with self.config.lifecycle_log.open("a") as f:
                f.write(step + "\n")

    async def init(self) -> None:
        router = APIRouter()

        @router.get("/hello")
        async def hello() -> dict[str, str]:
            self.greetings.inc()
            return {"greeting": self.config.greeting}

        self.http.add_router(router)
        self._record("init")

    async def after_init(self) -> None:
        await self.kvdb.broker.put("/hello/greeting", self.config.greeting.encode())
        self._record("after_init")

    @hookimpl
    def contiv_plugin_started(self, plugin: Plugin) -> None:
        self.seen_started.append(plugin.name)

    async def close(self) -> None:
        self._record("close")
