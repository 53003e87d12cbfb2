"""Fixtures of the KSR tests: the Kubernetes fake, a connected etcd broker, a running KSR plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from core.etcdserver import EtcdServer
from core.kvdb.etcd import EtcdBroker
from core.kvdb.plugin import KVDBConfig, KVDBPlugin
from plugins.ksr.config import KSRConfig
from plugins.ksr.plugin import KSRPlugin
from tests.ksrfake.server import FakeKubernetes


@pytest.fixture
def fake_k8s() -> Iterator[FakeKubernetes]:
    fake = FakeKubernetes(bookmark_interval_s=0.2)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def broker(etcd: EtcdServer) -> AsyncIterator[EtcdBroker]:
    """A test-side client of the real etcd (to read what KSR wrote)."""
    client = EtcdBroker([etcd.endpoint], tls=etcd.client_tls(), dial_timeout_s=5, op_timeout_s=2)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


RunKSR = Callable[..., AbstractAsyncContextManager[KSRPlugin]]

FAST = {
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.3,
    "monitor_interval_s": 0.2,
    "stats_interval_s": 0.5,
    "watch_timeout_s": 5,
    "list_page_size": 7,
}


@pytest.fixture
def run_ksr(etcd: EtcdServer, tmp_path: Path) -> RunKSR:
    """Start a KSR plugin (on its own kvdb plugin, as the app wires it) with settings overrides."""

    @asynccontextmanager
    async def run(fake: FakeKubernetes | None = None, **settings: Any) -> AsyncIterator[KSRPlugin]:
        options: dict[str, Any] = {**FAST, **settings}
        if fake is not None:
            options.setdefault("kubeconfig", fake.write_kubeconfig(tmp_path / "kubeconfig"))
        kvdb = KVDBPlugin(KVDBConfig(**etcd.kvdb_config(), op_timeout_s=1.0))
        await kvdb.init()
        ksr = KSRPlugin(KSRConfig(**options), kvdb=kvdb)
        try:
            await ksr.init()
            await ksr.after_init()
            yield ksr
        finally:
            await ksr.close()
            await kvdb.close()

    return run
