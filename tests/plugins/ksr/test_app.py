"""The whole contiv-ksr app in-process: readiness per reflector, Prometheus, REST status."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from apps.ksr.main import SPEC
from core.etcdserver import EtcdServer
from core.http import HTTPPlugin
from core.kvdb.etcd import EtcdBroker
from core.testing import running_app
from plugins.ksr import keys as ks
from plugins.ksr.plugin import KSRPlugin
from tests.plugins.ksr import helpers as h


async def test_app_reports_readiness_metrics_and_status(
    etcd: EtcdServer, broker: EtcdBroker, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "c.yaml").write_text(yaml.safe_dump_all([h.node("node1"), h.pod("web-1"), h.namespace("default")]))
    config = {
        "plugins": ["http", "health", "metrics", "kvdb", "ksr"],
        "http": {"port": 0},
        "ksr": {
            "source": "dir", "source_dir": str(manifests),
            "monitor_interval_s": 0.2, "stats_interval_s": 0.3, "leader_ttl_s": 2,
        },
    }
    environ = etcd.client_env("ksr")
    async with running_app(SPEC, config, environ) as agent:
        ksr = agent.plugin("ksr")
        http = agent.plugin("http")
        assert isinstance(ksr, KSRPlugin) and isinstance(http, HTTPPlugin)
        await h.wait_stored(broker, ks.pod_key("web-1", "default"), lambda v: v is not None)
        async with httpx.AsyncClient(base_url=http.base_url) as client:

            async def ready() -> bool:
                return (await client.get("/readiness")).status_code == 200

            await h.wait_for(ready, what="readiness")
            components = (await client.get("/readiness")).json()["components"]
            for keyword in ("namespace", "pod", "policy", "service", "endpointslice", "node"):
                assert components[f"ksr/{keyword}"]["ok"] is True
                assert components[f"ksr/{keyword}"]["detail"] == "synced"
            metrics = (await client.get("/metrics")).text
            assert 'ksr_adds_total{reflector="pod"} 1.0' in metrics
            assert 'ksr_reflector_synced{reflector="node"} 1.0' in metrics
            assert "ksr_leader 1.0" in metrics
            status = (await client.get("/ksr/status")).json()
            assert status["leader"] is True and status["source"] == "dir"
            assert status["stats"]["node"]["adds"] == 1
            # A reflector that cannot write shows up as not ready.
            etcd.stop()
            try:

                async def not_ready() -> bool:
                    return (await client.get("/readiness")).status_code == 503

                await h.wait_for(not_ready, what="not ready while etcd is down")
                components = (await client.get("/readiness")).json()["components"]
                assert components["ksr/pod"]["ok"] is False
            finally:
                etcd.start()
            await h.wait_for(ready, 20, what="ready again")
