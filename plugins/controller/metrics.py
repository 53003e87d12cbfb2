"""Prometheus metrics of the event loop (created in the app's registry, never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ControllerMetrics:
    """Events by kind, processing duration, failures, healing and queue depth."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.events = Counter(
            "contiv_controller_events",
            "Events processed by the controller, by event name and method.",
            ["event", "method"],
            registry=registry,
        )
        self.duration = Histogram(
            "contiv_controller_event_duration_seconds",
            "Time to process one event (handlers plus the scheduler transaction).",
            ["method"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.failures = Counter(
            "contiv_controller_event_failures",
            "Events that ended with an error, by event name.",
            ["event"],
            registry=registry,
        )
        self.healing = Counter(
            "contiv_controller_healing_resyncs",
            "Healing resyncs run, by kind (after-error, periodic) and outcome (ok, failed).",
            ["kind", "outcome"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "contiv_controller_queue_depth",
            "Events waiting in the main queue.",
            registry=registry,
        )
        self.rejected = Counter(
            "contiv_controller_rejected_events",
            "Events refused because a queue was full.",
            registry=registry,
        )
