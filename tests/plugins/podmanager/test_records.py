"""Pod records: the crash-safe local file and the copy in a real etcd, also while etcd is down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.etcdserver import EtcdServer
from core.kvdb.etcd import EtcdBroker
from plugins.podmanager.api import LocalPod, PodID
from plugins.podmanager.records import (
    PodRecord,
    PodRecordStore,
    PodResult,
    RecordedIP,
    RecordsFileError,
    read_records_file,
    record_key,
    records_prefix,
    write_records_file,
)

pytestmark = pytest.mark.etcd
NODE = "rec-node"


def record(name: str, cid: str) -> PodRecord:
    return PodRecord(
        name=name, namespace="ns", container_id=cid, netns_path=f"/var/run/netns/{name}",
        result=PodResult(ip_addresses=[RecordedIP(address="10.1.1.2/32", gateway="10.1.1.1")]),
    )


@pytest.fixture
async def broker(etcd: EtcdServer) -> AsyncIterator[EtcdBroker]:
    b = EtcdBroker([etcd.endpoint], tls=etcd.client_tls(), dial_timeout_s=2.0, op_timeout_s=1.0)
    await b.connect()
    try:
        yield b
    finally:
        await b.close()


def test_file_roundtrip_and_corruption(tmp_path: Path) -> None:
    path = tmp_path / "d" / "pods.json"
    assert read_records_file(path) is None
    recs = {r.id: r for r in (record("a", "1"), record("b", "2"))}
    write_records_file(path, recs)
    assert read_records_file(path) == recs
    assert not list(path.parent.glob(".*tmp"))  # the temporary file was renamed away
    path.write_text('{"format": 1, "pods": [{"name": 3}]}')
    with pytest.raises(RecordsFileError, match=str(path)):
        read_records_file(path)
    path.write_text("not json")
    with pytest.raises(RecordsFileError, match="corrupt"):
        read_records_file(path)


async def test_records_mirrored_in_etcd(tmp_path: Path, broker: EtcdBroker) -> None:
    store = PodRecordStore(tmp_path / "pods.json", broker, NODE)
    await store.load()
    await store.save(record("a", "1"))
    await store.save(record("b", "2"))
    await store.remove(PodID("a", "ns"))
    await store.drain()  # etcd's delete runs in the background (the DEL reply does not wait)
    kvs = await broker.list(records_prefix(NODE))
    assert [kv.key for kv in kvs] == [record_key(NODE, PodID("b", "ns"))]
    # Stored as LocalPod-compatible JSON (readers of LocalPod ignore the result).
    assert LocalPod.model_validate_json(kvs[0].value).container_id == "2"
    assert store.etcd_in_sync


async def test_local_file_is_authoritative_and_fixes_etcd(
    tmp_path: Path, broker: EtcdBroker
) -> None:
    path = tmp_path / "pods.json"
    write_records_file(path, {PodID("a", "ns"): record("a", "1")})
    await broker.put(record_key(NODE, PodID("gone", "ns")), record("gone", "9").model_dump_json().encode())
    store = PodRecordStore(path, broker, NODE)
    await store.load()
    assert set(store.all()) == {PodID("a", "ns")}
    assert [kv.key for kv in await broker.list(records_prefix(NODE))] == [
        record_key(NODE, PodID("a", "ns"))
    ]


async def test_corrupt_local_file_is_moved_aside_and_etcd_used(
    tmp_path: Path, broker: EtcdBroker
) -> None:
    path = tmp_path / "pods.json"
    await broker.put(record_key(NODE, PodID("a", "ns")), record("a", "1").model_dump_json().encode())
    path.write_text("{truncated")
    store = PodRecordStore(path, broker, NODE)
    await store.load()
    assert store.all()[PodID("a", "ns")].container_id == "1"
    assert (tmp_path / "pods.json.corrupt").read_text() == "{truncated"
    assert read_records_file(path) == dict(store.all())


async def test_etcd_outage_keeps_local_records_and_resyncs(
    tmp_path: Path, etcd: EtcdServer, broker: EtcdBroker
) -> None:
    store = PodRecordStore(tmp_path / "pods.json", broker, NODE, etcd_timeout_s=1.0,
                           retry_interval_s=0.1)
    await store.load()
    sync = asyncio.create_task(store.run_etcd_sync())
    try:
        etcd.stop()
        await store.save(record("a", "1"))  # must not fail nor hang past the timeout
        assert not store.etcd_in_sync
        assert set(read_records_file(store.path) or {}) == {PodID("a", "ns")}
        etcd.start()
        for _ in range(100):
            if store.etcd_in_sync:
                break
            await asyncio.sleep(0.1)
        assert store.etcd_in_sync
        keys = [kv.key for kv in await broker.list(records_prefix(NODE))]
        assert keys == [record_key(NODE, PodID("a", "ns"))]
    finally:
        sync.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sync


async def test_lost_file_and_etcd_down_adopts_etcd_records_later(
    tmp_path: Path, etcd: EtcdServer, broker: EtcdBroker
) -> None:
    await broker.put(record_key(NODE, PodID("a", "ns")), record("a", "1").model_dump_json().encode())
    etcd.stop()
    store = PodRecordStore(tmp_path / "pods.json", broker, NODE, etcd_timeout_s=0.5)
    await store.load()
    assert store.all() == {}
    await store.save(record("b", "2"))
    etcd.start()
    for _ in range(50):  # the client reconnects in its own time
        if await store.sync_etcd():
            break
        await asyncio.sleep(0.2)
    assert store.etcd_in_sync
    assert set(store.all()) == {PodID("a", "ns"), PodID("b", "ns")}
    assert len(await broker.list(records_prefix(NODE))) == 2
    assert set(read_records_file(store.path) or {}) == set(store.all())


async def test_unmirrored_save_is_local_until_mirrored(tmp_path: Path, broker: EtcdBroker) -> None:
    store = PodRecordStore(tmp_path / "pods.json", broker, NODE)
    await store.load()
    await store.save(record("a", "1"), mirror=False)
    # On disk at once (what a restart reads), not yet in etcd.
    assert set(read_records_file(store.path) or {}) == {PodID("a", "ns")}
    assert await broker.list(records_prefix(NODE)) == []
    await store.mirror(PodID("a", "ns"))
    kvs = await broker.list(records_prefix(NODE))
    assert [kv.key for kv in kvs] == [record_key(NODE, PodID("a", "ns"))]
    # A second save with the result mirrors as usual; mirror() of a mirrored pod writes nothing.
    await store.save(record("a", "2"))
    await broker.delete(record_key(NODE, PodID("a", "ns")))
    await store.mirror(PodID("a", "ns"))
    assert await broker.list(records_prefix(NODE)) == []
    # A full sync writes whatever was left unmirrored.
    await store.save(record("b", "3"), mirror=False)
    assert await store.sync_etcd()
    assert {kv.key for kv in await broker.list(records_prefix(NODE))} == {
        record_key(NODE, PodID("a", "ns")), record_key(NODE, PodID("b", "ns"))
    }


async def test_threaded_file_writes_are_group_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saves with the result (their file write runs in a thread, overlapping etcd's) that
    queue behind a write get one write for all of them; none returns before its record is in
    the file."""
    import threading

    from core.kvdb.memory import MemoryBroker
    from plugins.podmanager import records as records_module

    written: list[set[PodID]] = []
    release = threading.Event()
    real_write = records_module.write_records_text

    def slow_write(path: Path, pods: list[str], fsync: bool) -> None:
        release.wait(30)  # the first write holds until every save is queued
        real_write(path, pods, fsync)
        written.append(set(read_records_file(path) or {}))

    monkeypatch.setattr(records_module, "write_records_text", slow_write)
    path = tmp_path / "pods.json"
    store = PodRecordStore(path, MemoryBroker(), NODE)
    first = asyncio.ensure_future(store.save(record("a", "1")))
    await asyncio.sleep(0)  # the loop is free while the write waits in its thread
    later = [asyncio.ensure_future(store.save(record(n, n))) for n in "bcdef"]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *later)
    everyone = {PodID(n, "ns") for n in "abcdef"}
    assert written == [{PodID("a", "ns")}, everyone]
    assert set(read_records_file(path) or {}) == everyone
