"""KSR statistics on Prometheus: per-reflector counters, sync state, leadership, write latency."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plugins.ksr.model import ReflectorStats

_HELP = {
    "adds": "Objects added to the datastore",
    "updates": "Objects updated in the datastore",
    "deletes": "Objects deleted from the datastore",
    "resyncs": "Mark-and-sweep resyncs started",
    "add_errors": "Failed adds",
    "upd_errors": "Failed updates",
    "del_errors": "Failed deletes",
    "arg_errors": "Objects skipped because their fields did not parse",
    "res_errors": "Failed resyncs",
}


class KSRCollector(Collector):
    """Reads the live counters at scrape time (no copy to keep in step)."""

    def __init__(
        self,
        stats: Mapping[str, ReflectorStats],
        synced: Callable[[], Mapping[str, bool]],
        is_leader: Callable[[], bool],
    ) -> None:
        self._stats = stats
        self._synced = synced
        self._is_leader = is_leader

    def collect(self) -> Iterator[Metric]:
        for field in ReflectorStats.model_fields:
            family = CounterMetricFamily(f"ksr_{field}", _HELP[field], labels=["reflector"])
            for keyword, stats in sorted(self._stats.items()):
                family.add_metric([keyword], float(getattr(stats, field)))
            yield family
        synced = GaugeMetricFamily(
            "ksr_reflector_synced", "1 when the reflector's data is in etcd", labels=["reflector"]
        )
        for keyword, value in sorted(self._synced().items()):
            synced.add_metric([keyword], 1.0 if value else 0.0)
        yield synced
        yield GaugeMetricFamily(
            "ksr_leader", "1 when this replica is the elected writer", value=1.0 if self._is_leader() else 0.0
        )


def write_latency_histogram(registry: CollectorRegistry) -> Histogram:
    """Seconds from a watch event's arrival to its etcd write being committed."""
    return Histogram(
        "ksr_event_write_seconds",
        "Time from a Kubernetes watch event to its etcd write",
        registry=registry,
        buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    )
