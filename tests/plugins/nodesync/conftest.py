"""Fixtures: kvdb plugins on the real etcd (one client connection each)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from core.etcdserver import EtcdServer
from core.kvdb.plugin import KVDBConfig, KVDBPlugin

KVDBFactory = Callable[[], Awaitable[KVDBPlugin]]


@pytest.fixture
async def kvdb_factory(etcd: EtcdServer) -> AsyncIterator[KVDBFactory]:
    """Makes connected kvdb plugins (each its own etcd client, like separate agents)."""
    made: list[KVDBPlugin] = []

    async def make() -> KVDBPlugin:
        kvdb = KVDBPlugin(KVDBConfig(**etcd.kvdb_config(), op_timeout_s=2.0))
        await kvdb.init()
        made.append(kvdb)
        return kvdb

    try:
        yield make
    finally:
        for kvdb in made:
            await kvdb.close()
