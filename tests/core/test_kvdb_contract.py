"""One contract suite for the KV broker, run against the memory backend and a real etcd."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from core.etcdserver import EtcdServer
from core.kvdb.api import Compare, EventType, KVBroker, Op, WatchEvent, WatchResync
from core.kvdb.etcd import EtcdBroker
from core.kvdb.memory import MemoryBroker


@pytest.fixture(params=["memory", "etcd"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[KVBroker]:
    if request.param == "memory":
        b: KVBroker = MemoryBroker()
    else:
        server: EtcdServer = request.getfixturevalue("etcd")
        eb = EtcdBroker([server.endpoint], tls=server.client_tls(), op_timeout_s=5)
        await eb.connect()
        b = eb
    try:
        yield b
    finally:
        await b.close()


async def next_item(it: AsyncIterator[object], timeout: float = 5.0) -> object:
    return await asyncio.wait_for(it.__anext__(), timeout)


class Thing(BaseModel):
    name: str
    size: int = 0


async def test_put_get_list_delete(broker: KVBroker) -> None:
    rev1 = await broker.put("/t/a", b"1")
    rev2 = await broker.put("/t/b", b"2")
    await broker.put("/u/c", b"3")
    assert rev2 > rev1
    kv = await broker.get("/t/a")
    assert kv is not None and kv.value == b"1" and kv.mod_revision == rev1
    assert await broker.get("/t/missing") is None
    assert [(k.key, k.value) for k in await broker.list("/t/")] == [("/t/a", b"1"), ("/t/b", b"2")]
    assert [k.key for k in await broker.list("/t/", keys_only=True)] == ["/t/a", "/t/b"]
    assert await broker.delete("/t/a") == 1
    assert await broker.delete("/t/a") == 0
    await broker.put("/t/x/1", b"")
    assert await broker.delete("/t/", prefix=True) == 2
    assert await broker.list("/t/") == []
    assert [k.key for k in await broker.list("/u/")] == ["/u/c"]


async def test_models_and_prefixed_view(broker: KVBroker) -> None:
    view = broker.prefixed("/vnf-agent/node1/")
    await view.put_model("things/a", Thing(name="a", size=3))
    assert (await broker.get("/vnf-agent/node1/things/a")) is not None
    assert await view.get_model("things/a", Thing) == Thing(name="a", size=3)
    assert await view.list_models("things/", Thing) == {"things/a": Thing(name="a", size=3)}
    nested = view.prefixed("things/")
    assert [kv.key for kv in await nested.list("")] == ["a"]


async def test_put_if_absent_and_compare_and_put(broker: KVBroker) -> None:
    assert await broker.put_if_absent("/k", b"first")
    assert not await broker.put_if_absent("/k", b"second")
    kv = await broker.get("/k")
    assert kv is not None and kv.value == b"first"
    assert not await broker.compare_and_put("/k", b"x", kv.mod_revision + 100)
    assert await broker.compare_and_put("/k", b"x", kv.mod_revision)
    assert await broker.compare_and_put("/new", b"y", 0)
    assert not await broker.compare_and_put("/new", b"z", 0)


async def test_put_if_absent_concurrent_writers_have_one_winner(broker: KVBroker) -> None:
    results = await asyncio.gather(*(broker.put_if_absent("/ids/1", f"w{i}".encode()) for i in range(20)))
    assert results.count(True) == 1
    winner = results.index(True)
    kv = await broker.get("/ids/1")
    assert kv is not None and kv.value == f"w{winner}".encode()


async def test_multi_op_transaction(broker: KVBroker) -> None:
    await broker.put("/tx/a", b"1")
    res = await broker.txn(
        [Compare("/tx/a", "value", b"1"), Compare("/tx/b", "exists", False)],
        [Op.Put("/tx/b", b"2"), Op.Delete("/tx/a"), Op.Get("/tx/b")],
        [Op.Put("/tx/failed", b"1")],
    )
    assert res.succeeded
    assert res.gets[0] is not None and res.gets[0].value == b"2"
    assert await broker.get("/tx/a") is None
    # Both writes got one revision, as etcd gives a transaction.
    kv_b = await broker.get("/tx/b")
    assert kv_b is not None and kv_b.mod_revision == res.revision
    res2 = await broker.txn([Compare("/tx/a", "exists", True)], [Op.Put("/tx/ok", b"")],
                            [Op.Put("/tx/failed", b"1")])
    assert not res2.succeeded
    assert await broker.get("/tx/failed") is not None and await broker.get("/tx/ok") is None


async def test_lease_expiry_removes_keys(broker: KVBroker) -> None:
    lease = await broker.grant_lease(1)
    await broker.put("/leased", b"v", lease=lease)
    await broker.refresh_lease(lease)
    assert await broker.get("/leased") is not None
    for _ in range(60):
        if await broker.get("/leased") is None:
            break
        await asyncio.sleep(0.1)
    assert await broker.get("/leased") is None
    lease2 = await broker.grant_lease(30)
    await broker.put("/leased2", b"v", lease=lease2)
    await broker.revoke_lease(lease2)
    assert await broker.get("/leased2") is None


async def test_watch_delivers_puts_and_deletes_with_prev_values(broker: KVBroker) -> None:
    it = broker.watch("/w/").__aiter__()
    task = asyncio.ensure_future(next_item(it))
    await asyncio.sleep(0.2)  # let the watch register
    await broker.put("/other", b"x")
    await broker.put("/w/a", b"1")
    ev = await task
    assert isinstance(ev, WatchEvent) and ev.type is EventType.PUT and ev.key == "/w/a"
    assert ev.value == b"1" and ev.prev_value is None
    await broker.put("/w/a", b"2")
    ev = await next_item(it)
    assert isinstance(ev, WatchEvent) and ev.prev_value == b"1" and ev.value == b"2"
    await broker.delete("/w/a")
    ev = await next_item(it)
    assert isinstance(ev, WatchEvent) and ev.type is EventType.DELETE and ev.prev_value == b"2"
    await it.aclose()  # type: ignore[attr-defined]


async def test_watch_from_revision_replays_history(broker: KVBroker) -> None:
    start = await broker.put("/h/a", b"1")
    await broker.put("/h/b", b"2")
    await broker.delete("/h/a")
    it = broker.watch("/h/", from_revision=start).__aiter__()
    seen = [await next_item(it) for _ in range(3)]
    assert [(e.type, e.key) for e in seen if isinstance(e, WatchEvent)] == [
        (EventType.PUT, "/h/a"), (EventType.PUT, "/h/b"), (EventType.DELETE, "/h/a")]
    await broker.put("/h/c", b"3")
    ev = await next_item(it)
    assert isinstance(ev, WatchEvent) and ev.key == "/h/c"
    await it.aclose()  # type: ignore[attr-defined]


async def test_watch_compacted_history_yields_resync(broker: KVBroker, request: pytest.FixtureRequest) -> None:
    first = await broker.put("/c/a", b"1")
    for i in range(5):
        await broker.put("/c/a", str(i).encode())
    last = await broker.put("/c/b", b"b")
    if isinstance(broker, MemoryBroker):
        broker.compact(last)
    else:
        server: EtcdServer = request.getfixturevalue("etcd")
        assert server.etcdctl("compaction", str(last)).returncode == 0
    it = broker.watch("/c/", from_revision=first).__aiter__()
    item = await next_item(it)
    assert isinstance(item, WatchResync)
    assert {kv.key: kv.value for kv in item.snapshot} == {"/c/a": b"4", "/c/b": b"b"}
    assert item.revision >= last
    await broker.put("/c/z", b"z")
    ev = await next_item(it)
    assert isinstance(ev, WatchEvent) and ev.key == "/c/z"
    await it.aclose()  # type: ignore[attr-defined]


@pytest.mark.etcd
async def test_etcd_watch_survives_restart_without_loss_or_duplicates(etcd: EtcdServer) -> None:
    writer = EtcdBroker([etcd.endpoint], tls=etcd.client_tls(), op_timeout_s=2)
    watcher = EtcdBroker([etcd.endpoint], tls=etcd.client_tls(), op_timeout_s=2)
    await writer.connect()
    await watcher.connect()
    received: list[tuple[str, bytes | None]] = []

    async def consume() -> None:
        async for item in watcher.watch("/r/"):
            assert isinstance(item, WatchEvent)
            received.append((item.key, item.value))

    task = asyncio.ensure_future(consume())
    try:
        await asyncio.sleep(0.3)
        for i in range(10):
            await writer.put(f"/r/{i:02d}", b"before")
        etcd.stop()
        await asyncio.sleep(0.5)
        etcd.start()
        # Writes while the watcher reconnects, and after.
        for i in range(10, 20):
            for _ in range(50):
                try:
                    await writer.put(f"/r/{i:02d}", b"after")
                    break
                except Exception:
                    await asyncio.sleep(0.1)
        for _ in range(100):
            if len(received) >= 20:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # anything duplicated would arrive now
        assert [k for k, _ in received] == [f"/r/{i:02d}" for i in range(20)]
    finally:
        task.cancel()
        await writer.close()
        await watcher.close()


@pytest.mark.etcd
async def test_etcd_unreachable_is_a_retriable_error(etcd: EtcdServer) -> None:
    from core.kvdb.api import KVUnavailableError

    broker = EtcdBroker([etcd.endpoint], tls=etcd.client_tls(), op_timeout_s=1)
    await broker.connect()
    etcd.stop()
    try:
        with pytest.raises(KVUnavailableError):
            await broker.put("/x", b"1")
        assert not await broker.healthy()
    finally:
        etcd.start()
        await broker.close()
    dead = EtcdBroker(["127.0.0.1:1"], dial_timeout_s=0.3, insecure=True)
    with pytest.raises(KVUnavailableError, match="did not answer"):
        await dead.connect()
    await dead.close()
