"""Fixtures: a kvdb plugin on the real etcd."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.etcdserver import EtcdServer
from core.kvdb.plugin import KVDBConfig, KVDBPlugin
from tests.plugins.linux.conftest import make_netns

__all__ = ["make_netns"]


@pytest.fixture
async def etcd_kvdb(etcd: EtcdServer) -> AsyncIterator[KVDBPlugin]:
    kvdb = KVDBPlugin(KVDBConfig(**etcd.kvdb_config(), op_timeout_s=1.0, dial_timeout_s=2.0))
    await kvdb.init()
    try:
        yield kvdb
    finally:
        await kvdb.close()
