"""Allocations whose pod is gone: neither wired here (pod manager) nor placed on this node by
Kubernetes for ``release_grace_s``."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from plugins.podmanager.api import PodID


class StalePods:
    """The pods Kubernetes places on this node, and since when (monotonic) each allocation's
    pod has been seen missing."""

    def __init__(self, grace_s: float, log: logging.Logger) -> None:
        self.grace_s = grace_s
        self._log = log
        #: Pods Kubernetes places on this node (None until the first resync).
        self.kube_pods: set[PodID] | None = None
        self._missing_since: dict[PodID, float] = {}

    def present(self, pod: PodID) -> None:
        """``pod`` exists (allocated, wired or placed here): not missing."""
        self._missing_since.pop(pod, None)

    def placed(self, pod: PodID, here: bool) -> None:
        """A reflected pod record: on this node (``here``) or not (any longer)."""
        if self.kube_pods is None:
            self.kube_pods = set()
        if here:
            self.kube_pods.add(pod)
            self._missing_since.pop(pod, None)
        else:
            self.kube_pods.discard(pod)

    def due(self, allocated: Iterable[PodID], wired: Iterable[PodID], now: float) -> list[PodID]:
        """The allocated pods missing for the grace period (they are to be released)."""
        existing = set(self.kube_pods or ())
        existing.update(wired)
        due: list[PodID] = []
        for pod in allocated:
            if pod in existing:
                self._missing_since.pop(pod, None)
                continue
            since = self._missing_since.setdefault(pod, now)
            if now - since >= self.grace_s:
                self._log.warning("pod %s no longer exists (missing for %.0fs): releasing its address",
                                  pod, now - since)
                due.append(pod)
        return due

    def prune(self, allocated: Iterable[PodID]) -> None:
        """Forget pods that hold no address any more."""
        keep = set(allocated)
        for pod in list(self._missing_since):
            if pod not in keep:
                del self._missing_since[pod]
