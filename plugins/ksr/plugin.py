"""The KSR plugin: reflects Kubernetes state into etcd while this replica is the elected leader."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from typing import Any

from fastapi import APIRouter

from core.health import HealthPlugin
from core.http import HTTPPlugin
from core.kvdb.plugin import KVDBPlugin
from core.metrics import MetricsPlugin
from core.plugin import Plugin
from plugins.ksr import model as m
from plugins.ksr.config import KSRConfig
from plugins.ksr.leader import LeaderElector
from plugins.ksr.reflector import Reflector
from plugins.ksr.registry import ReflectorSet
from plugins.ksr.source import Source
from plugins.ksr.stats import KSRCollector, write_latency_histogram
from plugins.ksr.writer import Writer


class KSRPlugin(Plugin):
    """Kubernetes State Reflector: namespaces, pods, services, endpoint slices (or endpoints),
    network policies and nodes, from the API server or a manifest directory, into
    ``/vnf-agent/contiv-ksr/k8s/...``."""

    name = "ksr"
    Config = KSRConfig
    config: KSRConfig

    def __init__(
        self,
        config: KSRConfig | None = None,
        *,
        kvdb: KVDBPlugin,
        http: HTTPPlugin | None = None,
        metrics: MetricsPlugin | None = None,
        health: HealthPlugin | None = None,
    ) -> None:
        super().__init__(config)
        self.kvdb = kvdb
        self.http = http
        self.metrics = metrics
        self.health = health
        cfg = self.config
        self.instance_id = cfg.instance_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.keywords = ["namespace", "pod", "policy", "service", cfg.endpoints_source, "node"]
        #: Counters per reflector; they survive leadership terms.
        self.stats = {k: m.ReflectorStats() for k in self.keywords}
        self.reflectors: ReflectorSet | None = None
        self.elector: LeaderElector | None = None
        self._election: asyncio.Task[None] | None = None
        self._term_lock = asyncio.Lock()
        self._observe_latency: Any = None
        self._api_client: Any = None
        self._list_functions: Any = None

    @property
    def is_leader(self) -> bool:
        return self.reflectors is not None

    def synced(self) -> dict[str, bool]:
        return self.reflectors.synced() if self.reflectors is not None else {k: False for k in self.keywords}

    # ------------------------------------------------------------------ lifecycle

    async def init(self) -> None:
        cfg = self.config
        # Fail the start with a clear message rather than when (much later) elected.
        if cfg.source == "dir":
            assert cfg.source_dir is not None  # checked by the config model
            if not cfg.source_dir.is_dir():
                raise FileNotFoundError(f"ksr.source_dir {cfg.source_dir} is not a directory")
        else:
            from plugins.ksr.api_source import list_functions, load_api_client

            # Building the client's API classes takes about a second: do it once, before any
            # election is won, so a takeover starts listing at once.
            self._api_client = load_api_client(cfg.kubeconfig)
            self._list_functions = list_functions(self._api_client)
        if self.metrics is not None:
            self.metrics.registry.register(KSRCollector(self.stats, self.synced, lambda: self.is_leader))
            self._observe_latency = write_latency_histogram(self.metrics.registry).observe
        if self.http is not None:
            self.http.add_router(self._router())
        self._report_health()

    async def after_init(self) -> None:
        if not self.config.leader_election:
            await self._start_term()
            return
        self.elector = LeaderElector(
            self.kvdb.broker, self.instance_id, self.config.leader_ttl_s, self._start_term, self._end_term,
            on_observed=lambda _: self._report_health(),
        )
        self._election = asyncio.get_running_loop().create_task(self.elector.run(), name="ksr-election")

    async def close(self) -> None:
        if self._election is not None:
            self._election.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._election
        if self.elector is not None:
            await self.elector.resign()
        await self._end_term()
        if self._api_client is not None:
            self._api_client.close()

    # ------------------------------------------------------------------ terms

    def make_source(self) -> Source:
        cfg = self.config
        if cfg.source == "dir":
            from plugins.ksr.dir_source import DirSource

            assert cfg.source_dir is not None  # checked by the config model
            return DirSource(cfg.source_dir, cfg.dir_poll_interval_s)
        from plugins.ksr.api_source import APISource, list_functions, load_api_client

        if self._list_functions is None:
            self._api_client = load_api_client(cfg.kubeconfig)
            self._list_functions = list_functions(self._api_client)
        loop = asyncio.get_running_loop()
        server = str(self._api_client.configuration.host) if self._api_client is not None else ""

        def on_problem() -> None:  # from a follower's thread
            loop.call_soon_threadsafe(self._report_health)

        return APISource(
            self._list_functions,
            server=server,
            on_problem=on_problem,
            page_size=cfg.list_page_size,
            watch_timeout_s=cfg.watch_timeout_s,
            backoff_initial_s=cfg.backoff_initial_s,
            backoff_max_s=cfg.backoff_max_s,
        )

    async def _start_term(self) -> None:
        async with self._term_lock:
            if self.reflectors is not None:
                return
            cfg = self.config
            guard = self.elector.guard if self.elector is not None else None
            writer = Writer(self.kvdb.broker, max_ops=cfg.txn_max_ops, guard=guard)
            reflectors = ReflectorSet(
                self.keywords,
                self.make_source(),
                writer,
                self.stats,
                instance_id=self.instance_id,
                monitor_interval_s=cfg.monitor_interval_s,
                stats_interval_s=cfg.stats_interval_s,
                backoff_initial_s=cfg.backoff_initial_s,
                backoff_max_s=cfg.backoff_max_s,
                on_state=self._on_reflector_state,
                on_write=self._observe_latency,
                pod_annotation_prefixes=cfg.pod_annotation_prefixes,
            )
            self.log.info("starting reflectors (%s) from source %s", ", ".join(self.keywords), cfg.source)
            self.reflectors = reflectors
            try:
                await reflectors.start()
            except BaseException:
                self.reflectors = None
                raise
            self._report_health()

    async def _end_term(self) -> None:
        async with self._term_lock:
            reflectors, self.reflectors = self.reflectors, None
            if reflectors is not None:
                self.log.info("stopping reflectors")
                await reflectors.stop()
            self._report_health()

    def _on_reflector_state(self, reflector: Reflector) -> None:
        self._report_health()
        if not reflector.ds_synced and self.elector is not None:
            self.elector.check_now()

    # ------------------------------------------------------------------ health and REST

    def _report_health(self) -> None:
        if self.health is None:
            return
        if self.reflectors is None:
            leader = self.elector.leader_id if self.elector is not None else ""
            detail = f"standby (leader: {leader or 'none yet'})"
            for keyword in self.keywords:
                self.health.report(f"ksr/{keyword}", True, detail)
            return
        source = self.reflectors.source
        for keyword, synced in self.reflectors.synced().items():
            problem = source.problem(keyword)
            detail = "synced" if synced else f"not synced: {problem}" if problem else "not synced with etcd"
            self.health.report(f"ksr/{keyword}", synced, detail)

    def status(self) -> dict[str, Any]:
        """What ``GET /ksr/status`` returns."""
        return {
            "instance": self.instance_id,
            "leader": self.is_leader,
            "leader_id": self.elector.leader_id if self.elector is not None else self.instance_id,
            "source": self.config.source,
            "synced": self.synced(),
            "stats": {k: s.model_dump() for k, s in self.stats.items()},
        }

    def _router(self) -> APIRouter:
        router = APIRouter(tags=["ksr"])

        @router.get("/ksr/status")
        async def status() -> dict[str, Any]:
            return self.status()

        return router
