"""Node deletion cleanup on the in-process store."""

from __future__ import annotations

from core.kvdb.memory import MemoryBroker
from plugins.ksr import keys as ks
from plugins.ksr import model as m
from plugins.ksr.nodecleanup import NodeCleanup
from plugins.ksr.writer import Writer


async def test_release_only_the_deleted_nodes_records_and_prefix() -> None:
    broker = MemoryBroker()
    ids = m.KSR_PREFIX + m.ALLOCATED_IDS_PREFIX
    await broker.put(ids + "1", b'{"id": 1, "name": "a"}')
    await broker.put(ids + "2", b'{"id": 2, "name": "b"}')
    await broker.put(ids + "3", b"not json")
    await broker.put("/vnf-agent/b/config/x", b"{}")
    await broker.put("/vnf-agent/bb/config/x", b"{}")  # a prefix sibling, not b's
    await broker.put(m.KSR_PREFIX + ks.node_key("a"), b"{}")
    cleanup = NodeCleanup(Writer(broker))
    await cleanup([ks.node_key("b")])
    assert [kv.key for kv in await broker.list(ids)] == [ids + "1", ids + "3"]
    assert await broker.get("/vnf-agent/b/config/x") is None
    assert await broker.get("/vnf-agent/bb/config/x") is not None
    assert cleanup.released == ["b"] and cleanup.pending == set()
    # A node named like KSR itself never takes KSR's own prefix with it.
    await cleanup([ks.node_key(m.KSR_LABEL)])
    assert await broker.get(m.KSR_PREFIX + ks.node_key("a")) is not None
    # An empty call (after a resync) with nothing pending does nothing.
    await cleanup([])
    assert cleanup.released == ["b", m.KSR_LABEL]
