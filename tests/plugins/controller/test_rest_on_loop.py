"""REST routes run on the event loop: hammering them while transactions run never sees a
half-changed graph, and a resync request works without a dbwatcher (defect 1 of issue 11)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from core.agent import Agent
from core.health import HealthPlugin
from core.http import HTTPConfig, HTTPPlugin
from core.logs import LogsPlugin
from core.metrics import MetricsPlugin
from core.plugin import Plugin
from core.servicelabel import ServiceLabelConfig, ServiceLabelPlugin
from plugins.controller.api import Event, EventHandler, KubeStateReader, Transaction
from plugins.controller.config import ControllerConfig
from plugins.controller.plugin import ControllerPlugin
from plugins.kvscheduler.plugin import KVSchedulerPlugin
from plugins.kvscheduler.testing import Item, ItemDescriptor, MemoryDevice, item_key
from tests.plugins.controller.helpers import wait_until

VALUES = 60


class Churn(Plugin, EventHandler):
    """Desires VALUES items, each depending on the previous one, with a new generation per resync."""

    name = "churn"

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def handles_event(self, event: Event) -> bool:
        return True

    def resync(self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction) -> None:
        self.generation += 1
        # Odd generations chain the items, even ones drop half: nodes and edges come and go.
        count = VALUES if self.generation % 2 else VALUES // 2
        for i in range(count):
            deps = (item_key(f"v{i - 1}"),) if i and self.generation % 2 else ()
            txn.put(item_key(f"v{i}"), Item(name=f"v{i}", data=str(self.generation), depends_on=deps))


@pytest.fixture
async def agent() -> AsyncIterator[tuple[Agent, HTTPPlugin, ControllerPlugin, Churn]]:
    http = HTTPPlugin(HTTPConfig(port=0))
    metrics = MetricsPlugin(http=http)
    health = HealthPlugin(http=http)
    logs = LogsPlugin(http=http)
    scheduler = KVSchedulerPlugin(http=http, metrics=metrics)
    scheduler.register_descriptor(ItemDescriptor(MemoryDevice()))
    controller = ControllerPlugin(
        ControllerConfig.model_validate({"dbwatcher": {"enabled": False}}),
        scheduler=scheduler, service_label=ServiceLabelPlugin(ServiceLabelConfig(label="rest-loop")),
        http=http, metrics=metrics, health=health,
    )
    churn = Churn()
    agent = Agent([http, metrics, health, logs, scheduler, controller, churn])
    await agent.start()
    try:
        yield agent, http, controller, churn
    finally:
        await agent.stop()


async def test_rest_hammered_while_transactions_run(
    agent: tuple[Agent, HTTPPlugin, ControllerPlugin, Churn],
) -> None:
    _, http, controller, churn = agent
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    failures: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=http.base_url, timeout=60) as client:
            # No dbwatcher: every accepted resync is a full resync processed by the loop.
            first = await client.post("/controller/resync")
            assert first.status_code == 202, first.text
            assert first.json() == {"status": "accepted", "resync": "full"}
            await wait_until(lambda: churn.generation >= 1, 60)

            async def hammer(path: str, method: str = "GET", rounds: int = 30) -> None:
                for _ in range(rounds):
                    response = await client.request(method, path)
                    if response.status_code >= 300:
                        failures.append(f"{method} {path}: {response.status_code} {response.text[:200]}")

            await asyncio.gather(
                hammer("/controller/resync", "POST"),
                hammer("/scheduler/graph"),
                hammer("/scheduler/graph?format=dot"),
                hammer("/scheduler/stats"),
                hammer("/scheduler/txn-history"),
                hammer("/controller/event-history"),
                hammer("/controller/internal-state"),
            )
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert churn.generation > 2  # the resyncs really ran while the routes were read
    assert controller.loop is not None and controller.loop.ready


def test_a_route_that_would_run_in_a_worker_thread_is_refused() -> None:
    """FastAPI runs plain ``def`` routes in worker threads, off the event loop that owns the
    agent's state: the HTTP plugin refuses them, naming the route."""
    http = HTTPPlugin(HTTPConfig(port=0))
    router = APIRouter()

    @router.get("/fine")
    async def fine() -> None:
        return None

    @router.get("/x")
    def sync_route() -> None:
        return None

    with pytest.raises(TypeError, match=r"GET /x \(sync_route\) is not async"):
        http.add_router(router)
    assert not [r for r in http.app.routes if isinstance(r, APIRoute)]  # nothing half-added
