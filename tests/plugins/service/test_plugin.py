"""The service plugin picks its renderer through the one factory: on VPP, services become NAT44
mappings; a renderer that cannot be loaded stops the start, naming the dataplane."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from core.renderer import RendererUnavailable
from plugins.controller.events import DBResync
from plugins.controller.txn import EventTransaction
from plugins.ipam.api import NodeAddressPlan
from plugins.ipam.config import IPAMConfig
from plugins.ipam.plan import node_plan, resolve_plan
from plugins.linux.models import Route
from plugins.nodesync.api import Node
from plugins.service.config import ServiceConfig
from plugins.service.plugin import ServicePlugin
from plugins.vpp import nat
from plugins.vpp.cnat import CnatTranslation
from tests.plugins.service.test_processor import READY, eps, svc


class Deps:
    """nodesync, ipam, ipnet and the controller, as far as the service plugin uses them."""

    def __init__(self, dataplane: str) -> None:
        self._dataplane = dataplane
        self._plan = node_plan(resolve_plan(IPAMConfig()), 1)

    def node_name(self) -> str:
        return "node1"

    def nodes(self) -> Mapping[str, Node]:
        return {}

    def plan(self, node_id: int | None = None) -> NodeAddressPlan:
        return self._plan

    def dataplane(self) -> str:
        return self._dataplane

    def node_namespace(self) -> str:
        return ""

    def host_interface(self) -> str:
        return "vpp1" if self._dataplane == "vpp" else ""

    def register_resource(self, *args: Any) -> None:
        pass


class State:
    def __init__(self, **resources: dict[str, BaseModel]) -> None:
        self.data = resources

    def list(self, resource: str) -> Mapping[str, Any]:
        return self.data.get(resource, {})

    def get(self, resource: str, name: str) -> Any | None:
        return self.data.get(resource, {}).get(name)


def plugin_on(dataplane: str) -> ServicePlugin:
    deps = Deps(dataplane)
    return ServicePlugin(nodesync=deps, ipam=deps, ipnet=deps, controller=deps)  # type: ignore[arg-type]


async def test_on_vpp_services_are_nat44_mappings() -> None:
    plugin = plugin_on("vpp")
    await plugin.init()
    state = State(service={"ns/a": svc("a", [{"name": "http", "port": 80}])},
                  endpointslice={"ns/a-1": eps("a-1", "a", [("10.1.1.2", "node1", READY)],
                                                [{"name": "http", "port": 8080}])})
    txn = EventTransaction()
    plugin.resync(DBResync({}, {}), state, 1, txn)
    mappings = [v for v in txn.values().values() if isinstance(v, nat.Nat44Mapping)]
    assert [(str(m.external_ip), m.external_port, [str(loc.ip) for loc in m.locals]) for m in mappings] == [
        ("10.96.0.10", 80, ["10.1.1.2"])]
    # the node itself reaches the service network through VPP's end of the host interconnect
    routes = [v for v in txn.values().values() if isinstance(v, Route)]
    assert [(str(r.dst), str(r.gateway), r.dev) for r in routes] == [("10.96.0.0/12", "172.30.1.1", "vpp1")]


async def test_a_renderer_that_cannot_be_loaded_stops_the_start_naming_the_dataplane(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "plugins.service.renderer.nat44", None)  # importing it fails
    plugin = plugin_on("vpp")
    with pytest.raises(RendererUnavailable, match=r"service: the renderer for service\.renderer 'nat44'"):
        await plugin.init()
    with pytest.raises(RendererUnavailable, match="no renderer for dataplane 'ovs'"):
        await plugin_on("ovs").init()


async def test_service_renderer_picks_cnat_on_vpp_and_refuses_an_unknown_one_by_name() -> None:
    plugin = plugin_on("vpp")
    plugin.config = ServiceConfig(renderer="cnat")
    await plugin.init()
    assert plugin.renderer is not None and plugin.renderer.name == "vpp-cnat"
    state = State(service={"ns/a": svc("a", [{"name": "http", "port": 80}])},
                  endpointslice={"ns/a-1": eps("a-1", "a", [("10.1.1.2", "node1", READY)],
                                                [{"name": "http", "port": 8080}])})
    txn = EventTransaction()
    plugin.resync(DBResync({}, {}), state, 1, txn)
    found = [(str(v.vip), v.port, [str(b.ip) for b in v.backends]) for v in txn.values().values()
             if isinstance(v, CnatTranslation)]
    assert found == [("10.96.0.10", 80, ["10.1.1.2"])]
    with pytest.raises(ValidationError, match=r"service\.renderer 'nat' is not one of nat44, cnat"):
        ServiceConfig(renderer="nat")


def change(resource: str, key: str, new: BaseModel | None, prev: BaseModel | None = None) -> Any:
    from plugins.controller.events import KubeStateChange

    return KubeStateChange(resource, key, prev, new)


async def test_a_burst_of_service_changes_is_committed_in_batches() -> None:
    """40 Services and their slices queued at once (a `kubectl apply` of a big manifest) are a
    few scheduler transactions, not 80: each change still runs through the processor in order."""
    from plugins.controller.config import ControllerConfig
    from plugins.controller.eventloop import EventLoop
    from tests.plugins.controller.helpers import FullResync, RecordingScheduler, wait_until

    plugin = plugin_on("linux")
    await plugin.init()
    sched = RecordingScheduler()
    loop = EventLoop(sched, [plugin], ControllerConfig())
    loop.start()
    try:
        loop.push(FullResync())
        await wait_until(lambda: loop.started)
        before = len(sched.commits)
        events = []
        for i in range(40):
            name = f"s{i}"
            service = svc(name, [{"name": "http", "port": 80}], clusterIP=f"10.96.1.{i + 1}")
            events.append(change("service", f"{name}/namespace/ns", service))
            events.append(change("endpointslice", f"{name}-1/namespace/ns",
                                 eps(f"{name}-1", name, [(f"10.1.1.{i + 2}", "node1", READY)],
                                     [{"name": "http", "port": 8080}])))
        for event in events:  # queued together: the loop runs only when this task awaits
            loop.push(event)
        # The last slice's backend in a committed table: every change processed and committed.
        await wait_until(lambda: len(sched.commits) > before
                         and "10.1.1.41" in str(list(sched.commits[-1].changes.values())))
        commits = len(sched.commits) - before
        assert 1 < commits <= 80 // 32 + 2, commits
        assert all(intent.ports[0].backends for intent in plugin.processor.intents.values())
    finally:
        await loop.stop()


async def test_revert_undoes_exactly_one_batched_change() -> None:
    plugin = plugin_on("linux")
    await plugin.init()
    state = State(service={"a/namespace/ns": svc("a", [{"name": "http", "port": 80}])})
    plugin.resync(DBResync({}, {}), state, 1, EventTransaction())
    rendered = dict(plugin.renderer.values()) if plugin.renderer is not None else {}
    added = change("service", "b/namespace/ns", svc("b", [{"name": "http", "port": 81}], clusterIP="10.96.0.11"))
    updated = change("service", "a/namespace/ns", svc("a", [{"name": "http", "port": 82}]),
                     prev=svc("a", [{"name": "http", "port": 80}]))
    for event in (added, updated):
        plugin.update(event, EventTransaction())
    assert set(plugin.processor.services) == {"ns/a", "ns/b"}
    plugin.revert(updated)
    plugin.revert(added)
    assert set(plugin.processor.services) == {"ns/a"}
    assert plugin.processor.services["ns/a"].ports[0].port == 80
    assert plugin.renderer is not None and dict(plugin.renderer.values()) == rendered


async def test_gauges_count_the_rendered_services_when_scraped() -> None:
    """The gauges are read from the processor at scrape time (no per-event sum over every
    service), also after a resync has replaced the processor's state."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    deps = Deps("linux")
    plugin = ServicePlugin(nodesync=deps, ipam=deps, ipnet=deps, controller=deps,  # type: ignore[arg-type]
                           metrics=SimpleNamespace(registry=registry))  # type: ignore[arg-type]
    await plugin.init()
    state = State(service={"a/namespace/ns": svc("a", [{"name": "http", "port": 80}, {"name": "dns", "port": 53}])},
                  endpointslice={"a-1/namespace/ns": eps("a-1", "a", [("10.1.1.2", "node1", READY),
                                                                      ("10.1.1.3", "node1", READY)],
                                                         [{"name": "http", "port": 8080}])})
    plugin.resync(DBResync({}, {}), state, 1, EventTransaction())
    assert registry.get_sample_value("contiv_services") == 1
    assert registry.get_sample_value("contiv_service_frontends") == 2
    assert registry.get_sample_value("contiv_service_endpoints") == 2  # http's two; dns has none
    plugin.update(change("service", "b/namespace/ns", svc("b", [{"name": "http", "port": 81}],
                                                          clusterIP="10.96.0.11")), EventTransaction())
    assert registry.get_sample_value("contiv_services") == 2
    assert registry.get_sample_value("contiv_service_errors") == 0
