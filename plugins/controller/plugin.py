r"""The ``controller`` plugin: Contiv's event loop with its dbwatcher, wired into the agent.

Handlers are the enabled plugins that are :class:`plugins.controller.api.EventHandler`\ s: the
controller adopts them when the agent starts (``contiv_agent_starting``, before any ``init``), so
a handler may depend on the controller (to push events, register resources) without a cycle.
``controller.handler_order`` in the YAML fixes the calling order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

from core.health import HealthPlugin
from core.hookspecs import hookimpl
from core.http import HTTPPlugin
from core.kvdb.plugin import KVDBPlugin
from core.metrics import MetricsPlugin
from core.plugin import Plugin
from core.servicelabel import ServiceLabelAPI
from plugins.controller.api import ControllerAPI, Event, EventHandler, KubeStateReader
from plugins.controller.config import ControllerConfig
from plugins.controller.dbwatcher import DBWatcher
from plugins.controller.eventloop import EventLoop
from plugins.controller.events import RequestedResync, Shutdown
from plugins.controller.handlers import HandlerRegistrationError, order_handlers
from plugins.controller.kubestate import KubeStateCache, ResourceRegistry
from plugins.controller.metrics import ControllerMetrics
from plugins.controller.mirror import LocalMirror
from plugins.kvscheduler.api import KVSchedulerAPI


class ControllerPlugin(Plugin):
    """The agent's single event loop: events in, one scheduler transaction per event out.

    Implements :class:`plugins.controller.api.ControllerAPI`.
    """

    name = "controller"
    Config = ControllerConfig
    config: ControllerConfig

    def __init__(
        self,
        config: ControllerConfig | None = None,
        *,
        scheduler: KVSchedulerAPI,
        service_label: ServiceLabelAPI,
        kvdb: KVDBPlugin | None = None,
        http: HTTPPlugin | None = None,
        metrics: MetricsPlugin | None = None,
        health: HealthPlugin | None = None,
    ) -> None:
        super().__init__(config)
        self.scheduler = scheduler
        self.service_label = service_label
        self.kvdb = kvdb
        self.http = http
        self.metrics = metrics
        self.health = health
        #: The adopted handlers, in start order (``handler_order`` reorders them at start).
        self.handlers: list[EventHandler] = []
        self.resources = ResourceRegistry()
        self._kube_state = KubeStateCache()
        self.loop: EventLoop | None = None
        self.dbwatcher: DBWatcher | None = None
        self._mirror: LocalMirror | None = None
        #: Set when an agent runs this controller: start watching at ``contiv_agent_started``.
        self._watch_when_started = False

    # -- registration (from other plugins' init) ------------------------------------------

    def register_resource(self, keyword: str, key_prefix: str, model: type[BaseModel]) -> None:
        """Reflect ``/vnf-agent/contiv-ksr/<key_prefix>...`` as resource ``keyword`` of ``model``."""
        self.resources.register(keyword, key_prefix, model)

    @hookimpl
    def contiv_check_start(self, plugins: list[Plugin]) -> list[str]:
        """The handlers among ``plugins`` must be orderable (``controller.handler_order`` and
        the handlers' ``handler_after`` / ``handler_before``)."""
        handlers = [p for p in plugins if p is not self and isinstance(p, EventHandler)]
        try:
            order_handlers(handlers, self.config.handler_order)
        except HandlerRegistrationError as err:
            return [str(err)]
        return []

    @hookimpl
    def contiv_agent_starting(self, plugins: list[Plugin]) -> None:
        """Adopt every enabled plugin that is an :class:`EventHandler` (in start order)."""
        self.handlers = [p for p in plugins if p is not self and isinstance(p, EventHandler)]
        self._watch_when_started = True

    @hookimpl
    def contiv_agent_started(self, plugins: list[Plugin]) -> None:
        """Under an agent, etcd is watched (and so the first resync comes) only once every
        plugin has started: a dataplane plugin listed after the controller (``vpp``) is
        connected before the first resync needs it."""
        if self.dbwatcher is not None:
            self.dbwatcher.start()

    def config_model_for(self, key: str) -> type[BaseModel] | None:
        """The model of an external config key: that of the scheduler descriptor owning it."""
        for descriptor in self.scheduler.descriptors():
            if key.startswith(descriptor.key_prefix):
                model: type[BaseModel] = descriptor.model
                return model
        return None

    # -- producers -------------------------------------------------------------------------

    async def push_event(self, event: Event) -> None:
        """Queue an event (await ``event.wait()`` for a blocking one's outcome).

        Raises ``EventQueueFullError`` when the queue is full (never waits for room).
        """
        self.push_event_nowait(event)

    async def _wait_for_room(self, resync: bool) -> None:
        if self.loop is not None:
            await self.loop.wait_for_room(resync)

    def push_event_nowait(self, event: Event) -> None:
        """Queue an event without awaiting; from a handler inside the loop it is a follow-up."""
        if self.loop is None:
            raise RuntimeError(f"event {event.name!r} pushed before the controller started")
        self.loop.push(event)

    def push_follow_up(self, event: Event) -> None:
        """Push from a handler: a non-blocking follow-up served before queued events.

        Same as :meth:`push_event_nowait`; the name says where it is meant to be called.
        """
        self.push_event_nowait(event)

    @property
    def kube_state(self) -> KubeStateReader:
        """The cached Kubernetes state (read it from handlers, inside the loop)."""
        return self._kube_state

    # -- lifecycle -------------------------------------------------------------------------

    async def init(self) -> None:
        if self.http is not None:
            from plugins.controller.rest import make_router

            self.http.add_router(make_router(lambda: self.loop, self.request_resync))

    async def after_init(self) -> None:
        handlers = order_handlers(self.handlers, self.config.handler_order)
        registry = self.metrics.registry if self.metrics is not None else None
        health = self.health

        def report(ok: bool, detail: str) -> None:
            if health is not None:
                health.report(self.name, ok, detail)

        self.loop = EventLoop(
            self.scheduler,
            handlers,
            self.config,
            metrics=ControllerMetrics(registry),
            report_health=report,
            log=self.log,
            kube_state=self._kube_state,
        )
        self.loop.start()
        watcher_cfg = self.config.dbwatcher
        if watcher_cfg.enabled and self.kvdb is not None:
            if watcher_cfg.mirror_file:
                self._mirror = LocalMirror(Path(watcher_cfg.mirror_file))
                self._mirror.open()
            self.dbwatcher = DBWatcher(
                self.kvdb.broker,
                self.service_label.label,
                self.resources,
                self.config_model_for,
                self.push_event_nowait,
                watcher_cfg,
                self._mirror,
                wait_for_room=self._wait_for_room,
            )
            if not self._watch_when_started:  # standalone (no agent): watch at once
                self.dbwatcher.start()

    def request_resync(self) -> str:
        """Resync from etcd when watching it, else a full resync of the current state."""
        if self.dbwatcher is not None:
            self.dbwatcher.request_resync()
            return "db"
        self.push_event_nowait(RequestedResync())
        return "full"

    async def close(self) -> None:
        if self.dbwatcher is not None:
            await self.dbwatcher.stop()
            self.dbwatcher = None
        if self.loop is not None and self.loop.started:
            shutdown = Shutdown()
            try:
                self.loop.push(shutdown)
                async with asyncio.timeout(self.config.shutdown_timeout_s):
                    await shutdown.wait()
            except Exception as exc:  # noqa: BLE001 - stopping goes on whatever handlers did
                self.log.warning("shutdown event did not complete cleanly: %s", exc)
        if self.loop is not None:
            await self.loop.stop()
        if self._mirror is not None:
            self._mirror.close()
            self._mirror = None


def _implements_api(plugin: ControllerPlugin) -> ControllerAPI:
    """Never called: makes mypy check that the plugin implements :class:`ControllerAPI`."""
    return plugin
