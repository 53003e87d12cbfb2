"""The ``service`` plugin: Kubernetes Services on the node's dataplane (a kube-proxy replacement).

Contiv's split (reference: skeleton -> processor -> renderer): this event handler feeds the
reflected Services, EndpointSlices and nodes to the :class:`ServiceProcessor`, which keeps a
dataplane-neutral :class:`ServiceIntent` per service; the renderer of ``ipnet.dataplane`` turns
intents into KV-scheduler values. On the Linux dataplane that is ONE value, the agent-owned
nftables table, so each event is one atomic nftables transaction that rewrites only the
elements of the services it changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from pydantic import BaseModel

from core.http import HTTPPlugin
from core.metrics import MetricsPlugin
from core.plugin import Plugin
from plugins.controller.api import ControllerAPI, Event, EventHandler, EventMethod, KubeStateReader, Transaction
from plugins.controller.events import KubeStateChange
from plugins.ipam.api import IPAMAPI
from plugins.ipnet.api import IPNetAPI
from plugins.ksr.keys import RESOURCES
from plugins.ksr.model import EndpointSlice, Service
from plugins.nodesync.api import NodeSyncAPI, NodeUpdate
from plugins.service.config import ServiceConfig
from plugins.service.intent import ServicePortIntent
from plugins.service.processor import NodeAddresses, ServiceProcessor, node_addresses
from plugins.service.renderer import Renderer, make_renderer
from plugins.service.rest import build_router

RESOURCE_NAMES = ("service", "endpointslice")


class ServiceMetrics:
    """kube-proxy-like gauges (same names where kube-proxy has one).

    The counts are computed when the registry is scraped, not per event: summing over every
    intent on each change made a burst of N Service changes cost O(N^2)."""

    def __init__(self, registry: CollectorRegistry, processor: ServiceProcessor) -> None:
        def ports() -> Iterator[ServicePortIntent]:  # the processor's resync replaces its dict
            return (p for i in processor.intents.values() for p in i.ports)

        Gauge("contiv_services", "Services with at least one frontend rendered.", registry=registry).set_function(
            lambda: sum(1 for i in processor.intents.values() if any(p.frontends for p in i.ports)))
        Gauge("contiv_service_frontends", "Service frontends (address, protocol, port).",
              registry=registry).set_function(lambda: sum(len(p.frontends) for p in ports()))
        Gauge("contiv_service_endpoints", "Backends over all service ports.", registry=registry).set_function(
            lambda: sum(len(p.backends) for p in ports()))
        Gauge("contiv_service_errors", "Services skipped or trimmed for bad input.", registry=registry).set_function(
            lambda: len(processor.errors))
        self.duration = Histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "Time to compute the rules of one event (processor + renderer; the kernel write is in "
            "kvscheduler_txn_duration_seconds).",
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=registry)
        self.last_sync = Gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                               "When the rules were last computed.", registry=registry)


class ServicePlugin(Plugin, EventHandler):
    """Name ``service``; deps ``nodesync``, ``ipam``, ``ipnet`` (its dataplane and node namespace),
    ``controller`` (to reflect services and slices); optional ``http`` (``/contiv/v1/services``)
    and ``metrics``."""

    name = "service"
    Config = ServiceConfig
    config: ServiceConfig
    #: A burst of Service and EndpointSlice changes is committed in batches (``revert`` below).
    batched_resources = frozenset(RESOURCE_NAMES)

    def __init__(
        self,
        config: ServiceConfig | None = None,
        *,
        nodesync: NodeSyncAPI,
        ipam: IPAMAPI,
        ipnet: IPNetAPI,
        controller: ControllerAPI,
        http: HTTPPlugin | None = None,
        metrics: MetricsPlugin | None = None,
    ) -> None:
        super().__init__(config)
        self.nodesync = nodesync
        self.ipam = ipam
        self.ipnet = ipnet
        self.controller = controller
        self.http = http
        self.processor = ServiceProcessor(NodeAddresses(""))
        self.metrics = ServiceMetrics(metrics.registry, self.processor) if metrics is not None else None
        self.renderer: Renderer | None = None

    async def init(self) -> None:
        for keyword in RESOURCE_NAMES:
            self.controller.register_resource(keyword, *RESOURCES[keyword])
        if self.http is not None:
            self.http.add_router(build_router(self))
        # The dataplane's renderer now: none, or one that cannot load, stops the start here.
        self.renderer = self._make_renderer()
        self.log.info("renderer %s (dataplane %s)", self.renderer.name, self.ipnet.dataplane())

    def _make_renderer(self) -> Renderer:
        dataplane = self.ipnet.dataplane()
        host_ifname = self.ipnet.host_interface() if dataplane == "vpp" else ""
        return make_renderer(dataplane, self.config, self.ipam.plan(), self.ipnet.node_namespace(), host_ifname)

    def _nodes(self) -> NodeAddresses:
        return node_addresses(self.nodesync.node_name(), {
            name: ([str(a.ip) for a in node.ip_addresses], list(node.mgmt_addresses))
            for name, node in self.nodesync.nodes().items()})

    # ------------------------------------------------------------------ EventHandler

    def handles_event(self, event: Event) -> bool:
        if event.method is not EventMethod.UPDATE:
            return True
        if isinstance(event, KubeStateChange):
            return event.resource in RESOURCE_NAMES
        return isinstance(event, NodeUpdate)

    def resync(self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction) -> None:
        started = time.perf_counter()
        services = [s for s in kube_state.list("service").values() if isinstance(s, Service)]
        slices = [s for s in kube_state.list("endpointslice").values() if isinstance(s, EndpointSlice)]
        self.processor.resync(services, slices, self._nodes())
        self._log_errors(set(self.processor.services))
        self.renderer = self._make_renderer()  # a resync starts from nothing
        for key, intent in sorted(self.processor.intents.items()):
            self.renderer.set_service(key, intent)
        self._put(txn, started)

    def update(self, event: Event, txn: Transaction) -> str | None:
        started = time.perf_counter()
        if isinstance(event, KubeStateChange):
            if event.resource == "service":
                changed = self.processor.set_service(_as(event.new_value, Service), _as(event.prev_value, Service))
            else:
                changed = self.processor.set_slice(_as(event.new_value, EndpointSlice),
                                                   _as(event.prev_value, EndpointSlice))
        elif isinstance(event, NodeUpdate):
            changed = self.processor.set_nodes(self._nodes())
        else:
            return None
        self._log_errors(changed)
        if not changed or self.renderer is None:
            return None
        for key in sorted(changed):
            self.renderer.set_service(key, self.processor.intents.get(key))
        self._put(txn, started)
        return f"services {', '.join(sorted(changed))} re-rendered"

    def revert(self, event: Event) -> None:
        """Undo one batched Service or EndpointSlice change (the scheduler reverted the values)."""
        if not isinstance(event, KubeStateChange) or self.renderer is None:
            return
        if event.resource == "service":
            changed = self.processor.set_service(_as(event.prev_value, Service), _as(event.new_value, Service))
        elif event.resource == "endpointslice":
            changed = self.processor.set_slice(_as(event.prev_value, EndpointSlice),
                                               _as(event.new_value, EndpointSlice))
        else:
            return
        for key in sorted(changed):
            self.renderer.set_service(key, self.processor.intents.get(key))

    def describe_internal_state(self) -> dict[str, object]:
        intents = self.processor.intents
        return {
            "services": len(intents),
            "frontends": sum(len(p.frontends) for i in intents.values() for p in i.ports),
            "errors": dict(sorted(self.processor.errors.items())),
        }

    # ------------------------------------------------------------------ helpers

    def _put(self, txn: Transaction, started: float) -> None:
        assert self.renderer is not None
        for key, value in self.renderer.values().items():
            txn.put(key, value)
        for key in self.renderer.take_removed():
            txn.delete(key)
        if self.metrics is not None:
            self.metrics.duration.observe(time.perf_counter() - started)
            self.metrics.last_sync.set(time.time())

    def _log_errors(self, keys: set[str]) -> None:
        for key in sorted(keys):
            error = self.processor.errors.get(key)
            if error:
                self.log.warning("service %s: %s", key, error)

    def service_view(self, key: str | None = None) -> dict[str, Any]:
        """``/contiv/v1/services``: the intent of every (or one) service with its backends."""
        keys = [key] if key is not None else sorted(self.processor.intents)
        out: dict[str, Any] = {}
        for k in keys:
            intent = self.processor.intents.get(k)
            if intent is None:
                continue
            body = intent.to_json()
            if k in self.processor.errors:
                body["error"] = self.processor.errors[k]
            out[k] = body
        return out


def _as(value: BaseModel | None, model: type[Any]) -> Any:
    return value if isinstance(value, model) else None
