"""Addresses this node released while Kubernetes may still list their pods.

A CNI DEL releases a pod's address at once, but KSR's delete of the pod record reaches etcd
later (never while etcd is down). A resync from a snapshot older than that delete lists the pod
with its address, and adopting it (Contiv's resync rule) would resurrect the allocation for
good: the delete event that follows has nothing to release. The released pods are remembered
here, bounded by count and age, until Kubernetes' delete arrives.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from ipaddress import IPv4Address

from plugins.podmanager.api import PodID


class ReleasedPods:
    """Pod -> (released address, when), oldest first; at most ``max_entries`` for ``max_age_s``."""

    def __init__(self, max_entries: int = 1000, max_age_s: float = 3600.0) -> None:
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._entries: OrderedDict[PodID, tuple[IPv4Address, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, pod: PodID, ip: IPv4Address, now: float | None = None) -> None:
        self._entries.pop(pod, None)
        self._entries[pod] = (ip, time.monotonic() if now is None else now)
        self._trim(now)

    def forget(self, pod: PodID) -> None:
        self._entries.pop(pod, None)

    def blocks(self, pod: PodID, ip: IPv4Address, now: float | None = None) -> bool:
        """True when ``ip`` of ``pod`` is one this node released (not to be adopted back)."""
        self._trim(now)
        entry = self._entries.get(pod)
        return entry is not None and entry[0] == ip

    def _trim(self, now: float | None) -> None:
        now = time.monotonic() if now is None else now
        while self._entries:
            pod, (_, since) = next(iter(self._entries.items()))
            if len(self._entries) <= self.max_entries and now - since < self.max_age_s:
                break
            del self._entries[pod]
