"""The pod manager's REST views and Prometheus histogram through the real http/metrics plugins."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from core.http import HTTPConfig, HTTPPlugin
from core.kvdb.plugin import KVDBConfig, KVDBPlugin
from core.metrics import MetricsPlugin
from core.servicelabel import ServiceLabelConfig, ServiceLabelPlugin
from plugins.podmanager.config import PodManagerConfig
from plugins.podmanager.plugin import PodManagerPlugin
from tests.plugins.podmanager.conftest import call, pod_args
from tests.plugins.podmanager.consumer import MinimalController


async def test_pods_and_cni_stats_served(tmp_path: Path) -> None:
    http = HTTPPlugin(HTTPConfig(port=0))
    metrics = MetricsPlugin(http=http)
    kvdb = KVDBPlugin(KVDBConfig(backend="memory"))
    controller = MinimalController()
    config = PodManagerConfig(socket_path=str(tmp_path / "cni.sock"),
                              records_file=str(tmp_path / "pods.json"))
    pm = PodManagerPlugin(
        config, controller=controller, kvdb=kvdb,
        service_label=ServiceLabelPlugin(ServiceLabelConfig(label="n1")),
        http=http, metrics=metrics,
    )
    started = []
    try:
        for plugin in (http, metrics, kvdb, pm):
            await plugin.init()
            started.append(plugin)
        for plugin in started:
            await plugin.after_init()
        netns = f"/proc/{os.getpid()}/ns/net"
        reply = await call(
            config.socket_path, "Add", container_id="c1", network_namespace=netns,
            interface_name="eth0", extra_arguments=pod_args("web"),
            extra_nw_config=json.dumps({"cniVersion": "1.0.0", "name": "n"}),
        )
        assert reply.result == 0
        await call(config.socket_path, "Check", container_id="nope")
        async with httpx.AsyncClient(base_url=http.base_url) as client:
            pods = (await client.get("/contiv/v1/pods")).json()
            assert [(p["namespace"], p["name"], p["container_id"]) for p in pods] == [
                ("default", "web", "c1")
            ]
            assert pods[0]["result"]["ip_addresses"][0]["address"] == "10.99.0.2/24"
            stats = (await client.get("/contiv/v1/pods/cni-stats")).json()
            assert stats["add"]["count"] == 1 and stats["check"]["count"] == 1
            assert 0 < stats["add"]["p50_ms"] <= stats["add"]["max_ms"]
            text = (await client.get("/metrics")).text
            assert 'contiv_podmanager_cni_request_seconds_count{code="0",op="add"} 1.0' in text
            assert 'contiv_podmanager_cni_request_seconds_count{code="3",op="check"} 1.0' in text
    finally:
        for plugin in reversed(started):
            await plugin.close()
        await controller.close()
