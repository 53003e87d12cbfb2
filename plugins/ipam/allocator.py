"""Next-fit pod IP allocation inside one node subnet (pure, in memory)."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network

from plugins.ipam.api import PoolExhaustedError
from plugins.ipam.plan import (
    pod_capacity,
    pod_index_of,
    pod_index_range,
    pod_ip_for_index,
)
from plugins.podmanager.api import PodID


class PodSubnetAllocator:
    """Hands out the pod addresses of one node subnet, round-robin (next-fit), like Contiv.

    The search starts after the last address handed out, runs to the end of the subnet and
    wraps to its start, skipping addresses in use, so a released address is reused as late as
    possible. The gateway (index 1) and the last unicast address are never handed out.
    """

    def __init__(self, subnet: IPv4Network) -> None:
        self.subnet = subnet
        self._range = pod_index_range(subnet)
        self._by_pod: dict[PodID, int] = {}
        self._by_index: dict[int, PodID] = {}
        self.last_index = self._range.start - 1

    @property
    def capacity(self) -> int:
        """How many pods the subnet holds."""
        return pod_capacity(self.subnet)

    def __len__(self) -> int:
        return len(self._by_pod)

    def ip_of(self, pod: PodID) -> IPv4Address | None:
        """The pod's address, if it has one."""
        index = self._by_pod.get(pod)
        return None if index is None else pod_ip_for_index(self.subnet, index)

    def holder_of(self, ip: IPv4Address) -> PodID | None:
        """The pod holding ``ip``, if any."""
        index = pod_index_of(self.subnet, ip)
        return None if index is None else self._by_index.get(index)

    def allocations(self) -> dict[PodID, IPv4Address]:
        """A copy of every allocation."""
        return {pod: pod_ip_for_index(self.subnet, index) for pod, index in self._by_pod.items()}

    def allocate(self, pod: PodID) -> tuple[IPv4Address, bool]:
        """The pod's address (existing or new) and whether it was newly allocated.

        Raises :class:`PoolExhaustedError` when every address is taken.
        """
        existing = self._by_pod.get(pod)
        if existing is not None:
            return pod_ip_for_index(self.subnet, existing), False
        if len(self._by_pod) >= len(self._range):
            raise PoolExhaustedError(self.subnet, self.capacity)
        start, stop = self._range.start, self._range.stop
        first = self.last_index + 1 if start <= self.last_index + 1 < stop else start
        for index in (*range(first, stop), *range(start, first)):
            if index not in self._by_index:
                self._take(pod, index)
                self.last_index = index
                return pod_ip_for_index(self.subnet, index), True
        raise PoolExhaustedError(self.subnet, self.capacity)  # unreachable: counted above

    def release(self, pod: PodID) -> IPv4Address | None:
        """Free the pod's address; returns it (None when the pod had none)."""
        index = self._by_pod.pop(pod, None)
        if index is None:
            return None
        del self._by_index[index]
        return pod_ip_for_index(self.subnet, index)

    def restore(self, pod: PodID, ip: IPv4Address) -> str | None:
        """Record an allocation made earlier; returns why it was refused, or None when kept.

        Refused: ``ip`` is not a pod address of this subnet, another pod holds it, or the pod
        already has a different address.
        """
        index = pod_index_of(self.subnet, ip)
        if index is None:
            return f"{ip} is not a pod address of {self.subnet}"
        holder = self._by_index.get(index)
        if holder is not None and holder != pod:
            return f"{ip} is already held by {holder}"
        current = self._by_pod.get(pod)
        if current is not None and current != index:
            return f"{pod} already holds {pod_ip_for_index(self.subnet, current)}"
        self._take(pod, index)
        return None

    def restore_all(self, allocations: Mapping[PodID, IPv4Address]) -> dict[PodID, str]:
        """:meth:`restore` each allocation; returns the refused ones with the reason."""
        refused: dict[PodID, str] = {}
        for pod, ip in sorted(allocations.items()):
            reason = self.restore(pod, ip)
            if reason is not None:
                refused[pod] = reason
        return refused

    def set_last_index(self, index: int) -> None:
        """Continue next-fit after ``index`` (ignored when it is not a pod index)."""
        if index in self._range:
            self.last_index = index

    def _take(self, pod: PodID, index: int) -> None:
        self._by_pod[pod] = index
        self._by_index[index] = pod
