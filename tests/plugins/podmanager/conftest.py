"""Fixtures: a pod manager on a temporary socket with the memory KV store and a minimal controller."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from core.kvdb.plugin import KVDBConfig, KVDBPlugin
from core.servicelabel import ServiceLabelConfig, ServiceLabelPlugin
from plugins.podmanager.cni_pb2 import CNIReply, CNIRequest
from plugins.podmanager.config import PodManagerConfig
from plugins.podmanager.plugin import PodManagerPlugin
from tests.plugins.podmanager.consumer import MinimalController

NODE = "pmtest-node"


async def call(socket_path: str | Path, method: str, **fields: str) -> CNIReply:
    """One RemoteCNI call over the unix socket, as the binary makes it."""
    async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
        rpc = channel.unary_unary(
            f"/contiv.cni.RemoteCNI/{method}",
            request_serializer=CNIRequest.SerializeToString,
            response_deserializer=CNIReply.FromString,
        )
        reply: CNIReply = await rpc(CNIRequest(**fields), timeout=30)
        return reply


def pod_args(name: str, namespace: str = "default") -> str:
    return f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}"


@dataclass
class PodManagerEnv:
    """A running pod manager and what it was built from."""

    plugin: PodManagerPlugin
    controller: MinimalController
    kvdb: KVDBPlugin
    label: ServiceLabelPlugin
    config: PodManagerConfig

    @property
    def socket(self) -> str:
        return self.config.socket_path

    async def restart(self, controller: MinimalController | None = None) -> None:
        """Close the plugin and start a new one on the same files and KV store."""
        await self.plugin.close()
        if controller is not None:
            await self.controller.close()
            self.controller = controller
        self.plugin = PodManagerPlugin(
            self.config, controller=self.controller, kvdb=self.kvdb, service_label=self.label
        )
        await self.plugin.init()
        await self.plugin.after_init()


@pytest.fixture
async def podmanager(tmp_path: Path) -> AsyncIterator[PodManagerEnv]:
    kvdb = KVDBPlugin(KVDBConfig(backend="memory"))
    await kvdb.init()
    label = ServiceLabelPlugin(ServiceLabelConfig(label=NODE))
    config = PodManagerConfig(
        socket_path=str(tmp_path / "run" / "cni.sock"),
        records_file=str(tmp_path / "lib" / "pods.json"),
        event_timeout_s=1.0,
        etcd_retry_interval_s=0.05,
    )
    controller = MinimalController()
    plugin = PodManagerPlugin(config, controller=controller, kvdb=kvdb, service_label=label)
    await plugin.init()
    await plugin.after_init()
    env = PodManagerEnv(plugin, controller, kvdb, label, config)
    try:
        yield env
    finally:
        await env.plugin.close()
        await env.controller.close()
        await kvdb.close()


@pytest.fixture
def netns_path() -> str:
    """An existing network namespace path (this process's own; nothing is changed in it)."""
    return f"/proc/{os.getpid()}/ns/net"
