"""Health: liveness, readiness with each plugin's and component's state, Ligato's statuscheck.

Plugins report named components (``report("etcd", ok=False, detail=...)``); the agent reports
every plugin's lifecycle through the ``contiv_plugin_started`` hook. Readiness is the AND of all
of them; liveness is true while the process serves.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from core.hookspecs import hookimpl
from core.http import HTTPPlugin
from core.plugin import Plugin, PluginConfig


@dataclass(slots=True)
class ComponentState:
    ok: bool
    detail: str = ""
    since: float = 0.0


class HealthConfig(PluginConfig):
    liveness_path: str = "/liveness"
    """Answers 200 while the process serves."""
    readiness_path: str = "/readiness"
    """200 when every plugin started and every reported component is ok, else 503; the body lists them."""


class HealthPlugin(Plugin):
    """Liveness and readiness probes over the states that plugins report."""

    name = "health"
    Config = HealthConfig
    config: HealthConfig

    def __init__(self, config: HealthConfig | None = None, *, http: HTTPPlugin) -> None:
        super().__init__(config)
        self.http = http
        self.components: dict[str, ComponentState] = {}
        self.started = False

    def report(self, component: str, ok: bool, detail: str = "") -> None:
        """Set the state of ``component`` (a plugin name or a sub-part like ``etcd``)."""
        current = self.components.get(component)
        if current is None or current.ok != ok or current.detail != detail:
            if current is not None and current.ok != ok:
                self.log.log(20 if ok else 30, "%s is %s%s", component,
                             "ok" if ok else "NOT ok", f": {detail}" if detail else "")
            self.components[component] = ComponentState(ok, detail, time.time())

    def ready(self) -> bool:
        return self.started and all(c.ok for c in self.components.values())

    def snapshot(self) -> dict[str, Any]:
        return {
            "ready": self.ready(),
            "started": self.started,
            "components": {name: asdict(state) for name, state in sorted(self.components.items())},
        }

    @hookimpl
    def contiv_plugin_started(self, plugin: Plugin) -> None:
        self.components.setdefault(plugin.name, ComponentState(True, "started", time.time()))

    @hookimpl
    def contiv_agent_started(self, plugins: list[Plugin]) -> None:
        self.started = True

    @hookimpl
    def contiv_agent_stopping(self, plugins: list[Plugin]) -> None:
        self.started = False

    async def init(self) -> None:
        router = APIRouter(tags=["health"])

        @router.get(self.config.liveness_path)
        async def liveness() -> dict[str, Any]:
            return {"alive": True}

        @router.get(self.config.readiness_path)
        async def readiness() -> JSONResponse:
            body = self.snapshot()
            return JSONResponse(body, status_code=200 if body["ready"] else 503)

        self.http.add_router(router)
