"""The controller plugin in an agent with the real core plugins and the real kvscheduler plugin
over its test southbound: desired state reaches the dataplane; REST, metrics and health."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.agent import Agent
from core.health import HealthPlugin
from core.http import HTTPConfig, HTTPPlugin
from core.kvdb.memory import MemoryBroker
from core.kvdb.plugin import KVDBPlugin
from core.metrics import MetricsPlugin
from core.plugin import Plugin
from core.servicelabel import ServiceLabelConfig, ServiceLabelPlugin
from plugins.controller.api import (
    Event,
    EventHandler,
    KubeStateReader,
    Transaction,
    UpdateTxnType,
)
from plugins.controller.config import ControllerConfig, DBWatcherConfig
from plugins.controller.events import KubeStateChange
from plugins.controller.kubestate import KSR_PREFIX
from plugins.controller.plugin import ControllerPlugin
from plugins.kvscheduler.plugin import KVSchedulerPlugin
from plugins.kvscheduler.testing import ITEM_PREFIX, Item, ItemDescriptor, MemoryDevice
from tests.plugins.controller.helpers import RecordingScheduler, make_handler, wait_until
from tests.plugins.controller.test_dbwatcher import PodObj, pod_json, pod_key

NODE = "ctl-plugin-node"


class AddThing(Event):
    """A blocking revert-on-failure event, like the pod manager's AddPod."""

    name = "Add Thing"
    blocking = True
    txn_type = UpdateTxnType.REVERT_ON_FAILURE

    def __init__(self, thing: str) -> None:
        super().__init__()
        self.thing = thing


class PodWiring(Plugin, EventHandler):
    """A handler that wants one dataplane item per pod, and one per AddThing."""

    name = "pod-wiring"

    def __init__(self, controller: ControllerPlugin) -> None:
        super().__init__()
        self.controller = controller
        self.things: set[str] = set()
        self.seen: list[str] = []
        self.first_resync = asyncio.Event()
        self.on_resync: Callable[[], None] = lambda: None

    async def init(self) -> None:
        # A handler may depend on the controller: it is adopted, not injected (no cycle).
        self.controller.register_resource("pod", "k8s/pod/", PodObj)

    def handles_event(self, event: Event) -> bool:
        return True

    def resync(self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction) -> None:
        self.on_resync()
        self.first_resync.set()
        for pod in kube_state.list("pod").values():
            txn.put(ITEM_PREFIX + pod.name, Item(name=pod.name))
        for thing in self.things:
            txn.put(ITEM_PREFIX + thing, Item(name=thing))

    def update(self, event: Event, txn: Transaction) -> str | None:
        self.seen.append(event.name)
        if isinstance(event, KubeStateChange) and event.resource == "pod":
            pod = event.new_value or event.prev_value
            assert isinstance(pod, PodObj)
            if event.new_value is None:
                txn.delete(ITEM_PREFIX + pod.name)
                return f"unwire {pod.name}"
            txn.put(ITEM_PREFIX + pod.name, Item(name=pod.name))
            return f"wire {pod.name}"
        if isinstance(event, AddThing):
            self.things.add(event.thing)
            txn.put(ITEM_PREFIX + event.thing, Item(name=event.thing))
            return f"add {event.thing}"
        return None

    def revert(self, event: Event) -> None:
        if isinstance(event, AddThing):
            self.things.discard(event.thing)

    def describe_internal_state(self) -> dict[str, Any]:
        return {"things": sorted(self.things)}


def build_agent(tmp_path: Path) -> tuple[Agent, ControllerPlugin, MemoryDevice]:
    http = HTTPPlugin(HTTPConfig(port=0))
    health = HealthPlugin(http=http)
    metrics = MetricsPlugin(http=http)
    label = ServiceLabelPlugin(ServiceLabelConfig(label=NODE))
    kvdb = KVDBPlugin(health=health)
    device = MemoryDevice()
    scheduler = KVSchedulerPlugin(http=http, metrics=metrics)
    scheduler.register_descriptor(ItemDescriptor(device))
    controller = ControllerPlugin(
        ControllerConfig(
            delay_after_error_healing_s=0.2,
            dbwatcher=DBWatcherConfig(mirror_file=str(tmp_path / "mirror.sqlite"),
                                      remote_db_probing_interval_s=0.1),
        ),
        scheduler=scheduler, service_label=label, kvdb=kvdb, http=http, metrics=metrics, health=health,
    )
    wiring = PodWiring(controller)
    agent = Agent([http, health, metrics, label, kvdb, scheduler, controller, wiring])
    return agent, controller, device


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[tuple[Agent, ControllerPlugin, MemoryDevice]]:
    agent, controller, device = build_agent(tmp_path)
    await agent.start()
    try:
        yield agent, controller, device
    finally:
        await agent.stop()


async def test_desired_state_reaches_the_dataplane(agent: tuple[Agent, ControllerPlugin, MemoryDevice]) -> None:
    _, controller, device = agent
    assert isinstance(controller.kvdb, KVDBPlugin)
    broker = controller.kvdb.broker
    assert isinstance(broker, MemoryBroker)
    await wait_until(lambda: controller.loop is not None and controller.loop.started)
    await broker.put(pod_key("web"), pod_json("web"))
    await wait_until(lambda: "config/test/v1/item/web" in device.owned())
    # An operator's external value for this node reaches the dataplane too (model from the descriptor).
    ops = Item(name="ops", data="x").model_dump_json().encode()
    await broker.put(f"/vnf-agent/{NODE}/config/test/v1/item/ops", ops)
    await wait_until(lambda: "config/test/v1/item/ops" in device.owned())
    # Blocking revert-on-failure event: the device refuses, the handler's state is reverted.
    device.fail("create", ITEM_PREFIX + "bad", retriable=False)
    bad = AddThing("bad")
    await controller.push_event(bad)
    with pytest.raises(Exception, match="bad"):
        await bad.wait()
    assert "config/test/v1/item/bad" not in device.owned()
    wiring = next(p for p in agent[0].plugins if p.name == "pod-wiring")
    assert isinstance(wiring, PodWiring) and wiring.things == set()
    good = AddThing("good")
    await controller.push_event(good)
    await good.wait()
    assert wiring.things == {"good"}
    await broker.delete(pod_key("web"))
    await wait_until(lambda: "config/test/v1/item/web" not in device.owned())
    assert set(device.owned()) == {"config/test/v1/item/ops", "config/test/v1/item/good"}


async def test_rest_metrics_and_health(agent: tuple[Agent, ControllerPlugin, MemoryDevice]) -> None:
    _, controller, _ = agent
    assert controller.http is not None
    await wait_until(lambda: controller.loop is not None and controller.loop.ready)
    base = controller.http.base_url
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        history = (await client.get("/controller/event-history")).json()
        assert history["ready"] is True
        first = history["events"][0]
        assert first["seq"] == 0 and first["name"] == "DB Resync"
        assert first["handlers"][0]["handler"] == "pod-wiring"
        assert first["txn"]["resync"] == "full"
        rsp = await client.post("/controller/resync")
        assert rsp.status_code == 202 and rsp.json()["resync"] == "db"
        await wait_until(lambda: controller.dbwatcher is not None and controller.dbwatcher.remote_resyncs == 2)
        await wait_until(lambda: len(controller.loop.history_records()) == 2)  # type: ignore[union-attr]
        limited = (await client.get("/controller/event-history", params={"since_seq": 1})).json()
        assert [e["seq"] for e in limited["events"]] == [1]
        state = (await client.get("/controller/internal-state")).json()
        assert state == {"pod-wiring": {"things": []}}
        metrics = (await client.get("/metrics")).text
        assert 'contiv_controller_events_total{event="DB Resync",method="full-resync"} 2.0' in metrics
        readiness = (await client.get("/readiness")).json()
        assert readiness["components"]["controller"]["ok"] is True


async def test_bad_resource_registration_is_refused(agent: tuple[Agent, ControllerPlugin, MemoryDevice]) -> None:
    _, controller, _ = agent
    with pytest.raises(ValueError, match="already registered"):
        controller.register_resource("pod", "k8s/other/", PodObj)
    with pytest.raises(ValueError, match="relative"):
        controller.register_resource("svc", KSR_PREFIX + "k8s/service/", PodObj)


async def test_stopping_the_agent_delivers_a_blocking_shutdown_event(tmp_path: Path) -> None:
    agent, controller, _ = build_agent(tmp_path)
    await agent.start()
    try:
        await wait_until(lambda: controller.loop is not None and controller.loop.started)
    finally:
        await agent.stop()
    wiring = next(p for p in agent.plugins if isinstance(p, PodWiring))
    assert wiring.seen == ["Shutdown"]
    assert controller.loop is not None and controller.loop.history_records()[-1].name == "Shutdown"


async def test_handler_order_from_the_yaml_is_exact() -> None:
    label = ServiceLabelPlugin(ServiceLabelConfig(label=NODE))
    calls: list[tuple[str, str, str]] = []
    a, b, c = (make_handler(n, calls) for n in ("a", "b", "c"))

    def controller(order: list[str]) -> ControllerPlugin:
        plugin = ControllerPlugin(
            ControllerConfig(handler_order=order), scheduler=RecordingScheduler(), service_label=label,
        )
        plugin.contiv_agent_starting([a, plugin, b, c])
        return plugin

    ordered = controller(["c", "a", "b"])
    await ordered.after_init()
    try:
        assert ordered.loop is not None
        assert [h.name for h in ordered.loop.processor.handlers] == ["c", "a", "b"]
    finally:
        await ordered.close()
    with pytest.raises(ValueError, match=r"does not list the registered handlers \['b'\]"):
        await controller(["c", "a"]).after_init()
    with pytest.raises(ValueError, match=r"names \['x'\]"):
        await controller(["c", "a", "b", "x"]).after_init()
    default = controller([])
    await default.after_init()
    try:
        assert default.loop is not None
        assert [h.name for h in default.loop.processor.handlers] == ["a", "b", "c"]
        with pytest.raises(RuntimeError, match="before the controller started"):
            ControllerPlugin(scheduler=RecordingScheduler(), service_label=label).push_event_nowait(
                KubeStateChange("pod", "x", None, None)
            )
    finally:
        await default.close()


class LateDataplane(Plugin):
    """A dataplane plugin listed after the controller (as ``vpp`` may be): its ``after_init``
    takes a while (connecting), giving a first resync that does not wait for it the time to run."""

    name = "late-dataplane"

    def __init__(self, wiring: PodWiring) -> None:
        super().__init__()
        self.wiring = wiring
        self.connected = False

    async def after_init(self) -> None:
        # Bounded: under the old start order the first resync ran during this wait.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wiring.first_resync.wait(), 2.0)
        self.connected = True


async def test_first_resync_waits_until_every_plugin_started(tmp_path: Path) -> None:
    agent, _, _ = build_agent(tmp_path)
    wiring = next(p for p in agent.plugins if isinstance(p, PodWiring))
    late = LateDataplane(wiring)
    seen: list[bool] = []
    wiring.on_resync = lambda: seen.append(late.connected)
    agent = Agent([*agent.plugins, late])
    await agent.start()
    try:
        await wiring.first_resync.wait()
        assert seen[0] is True, "the first resync ran before a plugin listed after the controller had started"
    finally:
        await agent.stop()
