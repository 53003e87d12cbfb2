"""REST routes under /scheduler/ (served by FastAPI in-process through httpx)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from plugins.kvscheduler.rest import build_router
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.kvscheduler.testing import DeviceObject, Item, MemoryDevice, item_key

A, B, C = (item_key(n) for n in "abc")


@pytest.fixture
async def client(scheduler: KVScheduler) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(build_router(scheduler))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_status_of_a_pending_key_names_what_it_waits_for(
    scheduler: KVScheduler, device: MemoryDevice, client: httpx.AsyncClient
) -> None:
    await scheduler.commit({B: Item(name="b", depends_on=(A,))})
    body = (await client.get("/scheduler/status", params={"key": B})).json()
    assert body["state"] == "pending"
    assert body["waiting_for"] == [
        {"label": "depends-on", "key": A, "any_of": [], "target_state": "nonexistent", "target_error": None}
    ]
    # The dependency exists but failed: the status says why the value still waits.
    device.fail("create", A, retriable=False)
    await scheduler.commit({A: Item(name="a")})
    body = (await client.get("/scheduler/status", params={"key": B})).json()
    assert body["waiting_for"][0]["target_state"] == "failed"
    assert "injected fatal create failure" in body["waiting_for"][0]["target_error"]
    unknown = (await client.get("/scheduler/status", params={"key": "config/x/v1/y/z"})).json()
    assert unknown["state"] == "nonexistent"
    listing = (await client.get("/scheduler/status", params={"key-prefix": B})).json()
    assert [s["key"] for s in listing] == [B]


async def test_dump_views(scheduler: KVScheduler, device: MemoryDevice, client: httpx.AsyncClient) -> None:
    await scheduler.commit({A: Item(name="a", data="1")})
    device.objects[C] = DeviceObject(Item(name="c"))  # exists, not known to the scheduler yet
    nb = (await client.get("/scheduler/dump", params={"view": "nb"})).json()
    assert nb == [{"key": A, "value": Item(name="a", data="1").model_dump(mode="json"), "origin": "from-nb"}]
    applied = (await client.get("/scheduler/dump", params={"view": "applied"})).json()
    assert [(v["key"], v["metadata"]) for v in applied] == [(A, 1)]
    sb = (await client.get("/scheduler/dump", params={"view": "sb", "descriptor": "test-item"})).json()
    assert [v["key"] for v in sb] == [A, C]
    bad = await client.get("/scheduler/dump", params={"view": "bogus"})
    assert bad.status_code == 422 and "view" in bad.text
    missing = await client.get("/scheduler/dump", params={"descriptor": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


async def test_txn_history_json_text_and_by_seq(scheduler: KVScheduler, client: httpx.AsyncClient) -> None:
    await scheduler.commit({A: Item(name="a")}, description="first")
    await scheduler.commit({A: None}, description="second")
    history = (await client.get("/scheduler/txn-history")).json()
    assert [t["description"] for t in history] == ["first", "second"]
    assert history[0]["operations"][0]["operation"] == "create"
    assert history[0]["operations"][0]["after"] == {
        "name": "a",
        "data": "",
        "depends_on": [],
        "depends_on_any": [],
        "derived": [],
        "kind": "",
        "removed_with": [],
    }
    one = (await client.get("/scheduler/txn-history", params={"seq-num": 2})).json()
    assert one["description"] == "second" and one["values"][0]["state"] == "removed"
    text = (await client.get("/scheduler/txn-history", params={"format": "text"})).text
    assert "#1 nb 'first': 1 operation(s)" in text and f"delete   {A}" in text
    gone = await client.get("/scheduler/txn-history", params={"seq-num": 99})
    assert gone.status_code == 404


async def test_key_timeline(scheduler: KVScheduler, client: httpx.AsyncClient) -> None:
    await scheduler.commit({A: Item(name="a")})
    await scheduler.commit({B: Item(name="b")})
    await scheduler.commit({A: Item(name="a", data="2")})
    timeline = (await client.get("/scheduler/key-timeline", params={"key": A})).json()
    assert [e["seq"] for e in timeline] == [1, 3]
    assert [e["operations"][0]["operation"] for e in timeline] == ["create", "update"]
    assert timeline[-1]["status"]["state"] == "configured"


async def test_graph_json_and_dot(scheduler: KVScheduler, client: httpx.AsyncClient) -> None:
    await scheduler.commit(
        {
            A: Item(name="a", derived=(("prop/a/up", ""),)),
            B: Item(name="b", depends_on=("prop/a/up",), depends_on_any=((item_key("a"),),)),
            C: Item(name="c", depends_on=(item_key("missing"),)),
        }
    )
    graph = (await client.get("/scheduler/graph")).json()
    states = {n["key"]: n["state"] for n in graph["nodes"]}
    assert states == {A: "configured", B: "configured", C: "pending", "prop/a/up": "unimplemented"}
    edges = {(e["from"], e["to"], e["kind"]) for e in graph["edges"]}
    assert edges == {
        (A, "prop/a/up", "derives"),
        (B, "prop/a/up", "depends"),
        (B, A, "depends"),
        (C, item_key("missing"), "depends"),
    }
    dot = await client.get("/scheduler/graph", params={"format": "dot"})
    assert dot.text.startswith("digraph kvscheduler {")
    assert f'"{B}" -> "{A}" [label="depends-on-any", style=solid];' in dot.text
    assert f'"{A}" -> "prop/a/up" [label="derives", style=dashed];' in dot.text
    assert "fillcolor=yellow" in dot.text  # the pending one


async def test_downstream_resync_over_rest(
    scheduler: KVScheduler, device: MemoryDevice, client: httpx.AsyncClient
) -> None:
    await scheduler.commit({A: Item(name="a")})
    device.objects.clear()
    response = await client.post("/scheduler/downstream-resync")
    assert response.status_code == 200
    body = response.json()
    assert body["resync"] == "downstream" and body["ok"]
    assert [(o["operation"], o["key"]) for o in body["operations"]] == [("create", A)]
    assert A in device.objects
    stats = (await client.get("/scheduler/stats")).json()
    assert stats["values_by_state"] == {"configured": 1} and stats["recorded_transactions"] == 2
    descriptors = (await client.get("/scheduler/descriptors")).json()
    assert descriptors[0]["name"] == "test-item"
    assert descriptors[0]["key_prefix"] == "config/test/v1/item/"
