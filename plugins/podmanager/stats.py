"""How long the agent takes to serve CNI requests: recent durations and a Prometheus histogram."""

from __future__ import annotations

from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def _quantile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class RequestStats:
    """Agent-side duration of each CNI request (from receipt to reply), per operation."""

    def __init__(self, registry: CollectorRegistry | None = None, keep: int = 1000) -> None:
        self._recent: dict[str, deque[float]] = {}
        self._keep = keep
        self._histogram = (
            Histogram(
                "contiv_podmanager_cni_request_seconds",
                "Time the agent took to serve a CNI request (op: add/del/check; code: 0 = ok)",
                ["op", "code"],
                buckets=_BUCKETS,
                registry=registry,
            )
            if registry is not None
            else None
        )

    def observe(self, op: str, code: int, seconds: float) -> None:
        self._recent.setdefault(op, deque(maxlen=self._keep)).append(seconds)
        if self._histogram is not None:
            self._histogram.labels(op=op, code=str(code)).observe(seconds)

    def summary(self) -> dict[str, Any]:
        """Per operation: how many recent requests, and their p50/p99/max in milliseconds."""
        out: dict[str, Any] = {}
        for op, values in self._recent.items():
            ordered = sorted(values)
            out[op] = {
                "count": len(ordered),
                "p50_ms": round(_quantile(ordered, 0.5) * 1000, 3),
                "p99_ms": round(_quantile(ordered, 0.99) * 1000, 3),
                "max_ms": round(ordered[-1] * 1000, 3),
            }
        return out
