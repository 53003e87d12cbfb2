"""Test helpers: a recorded-pods source and nodesync + ipam of one node, started like the agent."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.health import HealthPlugin
from core.kvdb.plugin import KVDBPlugin
from core.servicelabel import ServiceLabelConfig, ServiceLabelPlugin
from plugins.ipam.config import IPAMConfig
from plugins.ipam.plugin import IPAMPlugin
from plugins.nodesync.plugin import NodeSyncPlugin
from plugins.podmanager.api import LocalPod, PodID


class RecordedPods:
    """A pod manager as IPAM sees it (``PodManagerAPI``): the pods wired on this node."""

    def __init__(self) -> None:
        self.pods: dict[PodID, LocalPod] = {}

    def add(self, pod: PodID) -> None:
        self.pods[pod] = LocalPod(
            name=pod.name, namespace=pod.namespace, container_id="c-" + pod.name, netns_path="/proc/1/ns/net"
        )

    def local_pods(self) -> Mapping[PodID, LocalPod]:
        return dict(self.pods)


class Node:
    """nodesync + ipam of one node, started like the agent does (init, after_init)."""

    def __init__(self, kvdb: KVDBPlugin, state_file: Path, name: str = "node-a",
                 health: HealthPlugin | None = None, **settings: Any) -> None:
        self.kvdb = kvdb
        self.nodesync = NodeSyncPlugin(
            kvdb=kvdb, service_label=ServiceLabelPlugin(ServiceLabelConfig(label=name))
        )
        self.pods = RecordedPods()
        self.ipam = IPAMPlugin(
            IPAMConfig(state_file=state_file, etcd_retry_initial_s=0.05, etcd_retry_max_s=0.5, **settings),
            kvdb=kvdb, nodesync=self.nodesync, podmanager=self.pods, health=health,
        )

    async def start(self) -> IPAMPlugin:
        await self.nodesync.init()
        await self.ipam.init()
        await self.nodesync.after_init()
        await self.ipam.after_init()
        return self.ipam

    async def stop(self) -> None:
        await self.ipam.close()
        await self.nodesync.close()
