"""The ``kvdb`` plugin: connects the configured backend and reports datastore health."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from pydantic import Field

from core.health import HealthPlugin
from core.kvdb.api import KVBroker, KVError
from core.kvdb.etcd import ETCD_SERVER_NAME, EtcdBroker, TLSFiles
from core.kvdb.memory import MemoryBroker
from core.plugin import Plugin, PluginConfig


class TLSConfig(PluginConfig):
    ca_file: Path
    """CA bundle that signed etcd's server certificate."""
    cert_file: Path
    """Client certificate (mutual TLS; its CN is the etcd user when etcd has auth enabled)."""
    key_file: Path
    """Client private key."""
    server_name: str = ETCD_SERVER_NAME
    """Name etcd's certificate is verified against (contiv-certs puts ``contiv-etcd`` in it, since
    node addresses are unknown when it runs); ``""`` verifies the endpoint's host instead."""


class KVDBConfig(PluginConfig):
    backend: Literal["etcd", "memory"] = "memory"
    """``etcd`` for a real cluster, ``memory`` for an in-process store (tests, single process)."""
    endpoints: list[str] = ["127.0.0.1:2379"]
    """etcd client endpoints as ``host:port``; ``ETCD_ENDPOINTS`` overrides (comma-separated)."""
    dial_timeout_s: float = Field(3.0, gt=0)
    """How long start-up waits for etcd before the agent starts without it (see ``allow_delayed_start``)."""
    op_timeout_s: float = Field(5.0, gt=0)
    """Deadline of each etcd operation."""
    tls: TLSConfig | None = None
    """Mutual TLS to etcd. Required unless ``insecure`` is true."""
    insecure: bool = False
    """Allow plain text to etcd when ``tls`` is absent (no encryption, no authentication; a
    warning is logged at every start)."""
    username: str | None = None
    """etcd user (with ``password``) when etcd has authentication enabled."""
    password: str | None = None
    """Password of ``username``."""
    allow_delayed_start: bool = True
    """Start even when etcd is down (operations fail with a retriable error until it is back)."""
    health_interval_s: float = Field(1.0, gt=0)
    """How often datastore health is probed and reported."""


class KVDBPlugin(Plugin):
    """Gives other plugins ``.broker`` (the whole store; make views with ``.prefixed``)."""

    name = "kvdb"
    Config = KVDBConfig
    config: KVDBConfig

    def __init__(self, config: KVDBConfig | None = None, *, health: HealthPlugin | None = None) -> None:
        super().__init__(config)
        self.health = health
        self.broker: KVBroker
        self._probe: asyncio.Task[None] | None = None
        self.connected = False

    async def init(self) -> None:
        cfg = self.config
        if cfg.backend == "memory":
            self.broker = MemoryBroker()
            self.connected = True
            return
        tls = None
        if cfg.tls is not None:
            tls = TLSFiles(cfg.tls.ca_file, cfg.tls.cert_file, cfg.tls.key_file, cfg.tls.server_name)
        elif cfg.insecure:
            self.log.warning("etcd at %s in PLAIN TEXT (kvdb.insecure: true): anyone who reaches it can "
                             "read and rewrite the cluster's network state", ", ".join(cfg.endpoints))
        broker = EtcdBroker(cfg.endpoints, cfg.dial_timeout_s, cfg.op_timeout_s, tls, cfg.username, cfg.password,
                            insecure=cfg.insecure)
        self.broker = broker
        try:
            await broker.connect()
            self.connected = True
        except KVError as err:
            if not cfg.allow_delayed_start:
                raise
            self.log.warning("starting without etcd: %s", err)
        self._report(self.connected, "" if self.connected else "etcd unreachable")

    def _report(self, ok: bool, detail: str) -> None:
        if self.health is not None:
            self.health.report("etcd" if self.config.backend == "etcd" else "kvdb", ok, detail)

    async def after_init(self) -> None:
        if self.config.backend == "etcd":
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        while True:
            ok = await self.broker.healthy()
            if ok != self.connected:
                self.log.warning("etcd is %s", "back" if ok else "unreachable")
            self.connected = ok
            self._report(ok, "" if ok else "etcd unreachable")
            await asyncio.sleep(self.config.health_interval_s)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self.broker.close()
