"""Prometheus metrics of the scheduler, fed by a transaction listener."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from plugins.kvscheduler.api import TxnResult, ValueState
from plugins.kvscheduler.scheduler import KVScheduler


class SchedulerMetrics:
    """Transactions, operations, failures, pending values and transaction duration."""

    def __init__(self, scheduler: KVScheduler, registry: CollectorRegistry) -> None:
        self._scheduler = scheduler
        self.transactions = Counter(
            "kvscheduler_transactions",
            "Finished scheduler transactions",
            ["kind"],
            registry=registry,
        )
        self.operations = Counter(
            "kvscheduler_operations",
            "Dataplane operations executed by the scheduler",
            ["operation"],
            registry=registry,
        )
        self.failures = Counter(
            "kvscheduler_failures",
            "Failed dataplane operations (including verification errors)",
            registry=registry,
        )
        self.pending = Gauge(
            "kvscheduler_pending_values",
            "Values waiting for their dependencies",
            registry=registry,
        )
        self.failed = Gauge(
            "kvscheduler_failed_values",
            "Values whose last operation failed (FAILED or RETRYING)",
            registry=registry,
        )
        self.duration = Histogram(
            "kvscheduler_txn_duration_seconds",
            "Duration of scheduler transactions",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=registry,
        )
        scheduler.add_listener(self.observe)

    def observe(self, result: TxnResult) -> None:
        self.transactions.labels(result.kind.value).inc()
        failures = 0
        for op in result.operations:
            self.operations.labels(op.operation.value).inc()
            if op.error is not None:
                failures += 1
        failures += sum(1 for e in result.errors.values() if e.startswith("verification failed"))
        if failures:
            self.failures.inc(failures)
        self.duration.observe(result.duration_s)
        counts = self._scheduler.count_by_state()
        self.pending.set(counts.get(ValueState.PENDING, 0))
        self.failed.set(counts.get(ValueState.FAILED, 0) + counts.get(ValueState.RETRYING, 0))
