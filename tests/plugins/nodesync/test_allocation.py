"""Node ID allocation against a real etcd: first gap, reuse by name, races, bounded retries."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from core.kvdb.api import KVBroker
from core.kvdb.prefixed import PrefixedBroker
from core.servicelabel import ServiceLabelConfig, ServiceLabelPlugin
from plugins.nodesync.allocation import NodeIDAllocationError, allocate_node_id, first_free_id
from plugins.nodesync.api import VppNode
from plugins.nodesync.config import NodeSyncConfig
from plugins.nodesync.plugin import KSR_PREFIX, NodeSyncPlugin
from tests.plugins.nodesync.conftest import KVDBFactory

log = logging.getLogger("test.nodesync")


def record(node_id: int, name: str) -> bytes:
    return VppNode(id=node_id, name=name).model_dump_json().encode()


def nodesync(kvdb: object, name: str, **settings: object) -> NodeSyncPlugin:
    return NodeSyncPlugin(
        NodeSyncConfig.model_validate(settings),
        kvdb=kvdb,  # type: ignore[arg-type]
        service_label=ServiceLabelPlugin(ServiceLabelConfig(label=name)),
    )


def test_first_free_id_is_the_first_gap() -> None:
    assert first_free_id([]) == 1
    assert first_free_id([1, 2, 4]) == 3
    assert first_free_id([2, 3]) == 1
    assert first_free_id([1, 2, 3], max_id=3) is None


async def test_first_gap_is_taken_and_recorded(kvdb_factory: KVDBFactory) -> None:
    kvdb = await kvdb_factory()
    for node_id, name in ((1, "n1"), (2, "n2"), (4, "n4")):
        await kvdb.broker.put(f"{KSR_PREFIX}allocatedIDs/{node_id}", record(node_id, name))
    plugin = nodesync(kvdb, "new-node", management_addresses=["10.0.0.7"])
    await plugin.init()
    assert plugin.node_id() == 3
    stored = await kvdb.broker.get(f"{KSR_PREFIX}allocatedIDs/3")
    assert stored is not None
    assert json.loads(stored.value) == {
        "id": 3, "name": "new-node", "ip_addresses": [], "mgmt_addresses": ["10.0.0.7"]
    }
    assert sorted(plugin.nodes()) == ["n1", "n2", "n4", "new-node"]
    assert plugin.nodes()["new-node"].mgmt_addresses == ["10.0.0.7"]


async def test_existing_record_is_reused_by_name(kvdb_factory: KVDBFactory) -> None:
    kvdb = await kvdb_factory()
    await kvdb.broker.put(f"{KSR_PREFIX}allocatedIDs/1", record(1, "other"))
    await kvdb.broker.put(f"{KSR_PREFIX}allocatedIDs/7", record(7, "me"))
    plugin = nodesync(kvdb, "me")
    await plugin.init()
    assert plugin.node_id() == 7
    again = nodesync(kvdb, "me")
    await again.init()
    assert again.node_id() == 7
    assert len(await kvdb.broker.list(f"{KSR_PREFIX}allocatedIDs/")) == 2


async def test_malformed_records_keep_their_id_reserved(kvdb_factory: KVDBFactory) -> None:
    kvdb = await kvdb_factory()
    await kvdb.broker.put(f"{KSR_PREFIX}allocatedIDs/1", b"{not json")
    await kvdb.broker.put(f"{KSR_PREFIX}allocatedIDs/2", record(5, "liar"))
    plugin = nodesync(kvdb, "me")
    await plugin.init()
    assert plugin.node_id() == 3


async def test_concurrent_nodes_get_distinct_ids_one_winner_each(kvdb_factory: KVDBFactory) -> None:
    names = [f"race-{i}" for i in range(8)]
    plugins = [nodesync(await kvdb_factory(), name) for name in names]
    await asyncio.gather(*(p.init() for p in plugins))
    ids = {p.node_name(): p.node_id() for p in plugins}
    assert sorted(ids.values()) == list(range(1, 9))
    # etcd holds exactly one record per ID, naming the node that won it.
    kvdb = await kvdb_factory()
    stored = await kvdb.broker.list_models(f"{KSR_PREFIX}allocatedIDs/", VppNode)
    assert {node.name: node.id for node in stored.values()} == ids
    assert all(key.endswith(f"/{node.id}") for key, node in stored.items())


class CompetingBroker(PrefixedBroker):
    """A KSR view on the real etcd where another node claims every ID just before we try it."""

    def __init__(self, inner: KVBroker, prefix: str) -> None:
        super().__init__(inner, prefix)
        self.attempts = 0

    async def put_if_absent(self, key: str, value: bytes, lease: int = 0) -> bool:
        self.attempts += 1
        node_id = int(key.rsplit("/", 1)[1])
        await self.inner.put(self.prefix + key, record(node_id, f"rival-{node_id}"))
        return await super().put_if_absent(key, value, lease)


async def test_lost_races_retry_a_bounded_number_of_times(kvdb_factory: KVDBFactory) -> None:
    kvdb = await kvdb_factory()
    broker = CompetingBroker(kvdb.broker, KSR_PREFIX)
    with pytest.raises(NodeIDAllocationError, match="could not allocate a node ID for node me: lost the race 4 times"):
        await allocate_node_id(broker, "me", max_attempts=4, log=log)
    assert broker.attempts == 4
    stored = await kvdb.broker.list_models(f"{KSR_PREFIX}allocatedIDs/", VppNode)
    assert sorted(node.name for node in stored.values()) == ["rival-1", "rival-2", "rival-3", "rival-4"]


async def test_no_id_left_is_a_clear_error(kvdb_factory: KVDBFactory) -> None:
    kvdb = await kvdb_factory()
    for node_id in (1, 2):
        await kvdb.broker.put(f"{KSR_PREFIX}allocatedIDs/{node_id}", record(node_id, f"n{node_id}"))
    plugin = nodesync(kvdb, "third", max_node_id=2)
    with pytest.raises(NodeIDAllocationError, match=r"no free node ID left for node third \(all of 1\.\.2 taken\)"):
        await plugin.init()


async def test_publish_rewrites_the_record_only_when_addresses_change(kvdb_factory: KVDBFactory) -> None:
    from ipaddress import IPv4Interface

    kvdb = await kvdb_factory()
    plugin = nodesync(kvdb, "pub")
    await plugin.init()
    key = f"{KSR_PREFIX}allocatedIDs/{plugin.node_id()}"
    await plugin.publish_node_ips([IPv4Interface("192.168.16.1/24")])
    first = await kvdb.broker.get(key)
    assert first is not None and json.loads(first.value)["ip_addresses"] == ["192.168.16.1/24"]
    await plugin.publish_node_ips([IPv4Interface("192.168.16.1/24")])
    same = await kvdb.broker.get(key)
    assert same is not None and same.mod_revision == first.mod_revision
    # The table changes only through the controller's events (none here), never behind its back.
    assert plugin.nodes()["pub"].ip_addresses == []


async def test_etcd_unreachable_fails_start_with_a_clear_error() -> None:
    from core.kvdb.plugin import KVDBConfig, KVDBPlugin

    # A port nothing listens on: allocation retries for etcd_wait_s, then names the node.
    kvdb = KVDBPlugin(KVDBConfig(backend="etcd", endpoints=["127.0.0.1:9"], insecure=True,
                                 dial_timeout_s=0.3, op_timeout_s=0.3))
    await kvdb.init()
    try:
        plugin = nodesync(kvdb, "lonely", etcd_wait_s=0.5)
        with pytest.raises(NodeIDAllocationError, match="cannot allocate the ID of node lonely: etcd"):
            await plugin.init()
    finally:
        await kvdb.close()
