"""The vpp plugin inside a real agent (lifecycle, config, HTTP server, metrics) on the stand-in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from dependency_injector import containers, providers

from core.app import AppSpec
from core.di import optional, plugin_provider
from core.health import HealthPlugin
from core.http import HTTPPlugin
from core.metrics import MetricsPlugin
from core.testing import running_app
from plugins.kvscheduler.plugin import KVSchedulerPlugin
from plugins.vpp.plugin import VPPDataplanePlugin
from tests.plugins.vpp import values as plan
from tests.plugins.vpp.snapshot import expected, snapshot
from tests.vppstub import VPPStub


class VPPAgentContainer(containers.DeclarativeContainer):
    """The part of contiv-agent the VPP dataplane needs."""

    configs = providers.Dependency(instance_of=dict)
    http = plugin_provider(HTTPPlugin, configs, title="vpp-test")
    health = plugin_provider(HealthPlugin, configs, http=http)
    metrics = plugin_provider(MetricsPlugin, configs, http=http)
    kvscheduler = plugin_provider(
        KVSchedulerPlugin, configs, http=optional("http", configs, http), metrics=optional("metrics", configs, metrics)
    )
    vpp = plugin_provider(
        VPPDataplanePlugin,
        configs,
        scheduler=kvscheduler,
        http=optional("http", configs, http),
        metrics=optional("metrics", configs, metrics),
        health=optional("health", configs, health),
    )


SPEC = AppSpec(name="vpp-test", container=VPPAgentContainer, default_config=Path("/nonexistent.yaml"))


async def test_agent_serves_vpp_state_and_resyncs_after_vpp_restart(stub: VPPStub) -> None:
    config = {
        "plugins": ["http", "health", "metrics", "kvscheduler", "vpp"],
        "http": {"port": 0},
        "vpp": {"api_socket": stub.socket_path, "health_interval_s": 0.1, "reconnect_interval_s": 0.05},
    }
    async with running_app(SPEC, config) as agent:
        vpp = next(p for p in agent.plugins if isinstance(p, VPPDataplanePlugin))
        http = next(p for p in agent.plugins if isinstance(p, HTTPPlugin))
        base = plan.node_base(3)
        result = await vpp.scheduler.commit(base)
        assert result.ok, result.errors
        async with httpx.AsyncClient(base_url=http.base_url) as client:
            state = (await client.get("/contiv/v1/vpp")).json()
            assert (state["connected"], state["vpe_pid"], state["api_failures"]) == (True, stub.pid, 0)
            assert set(state["interfaces"]) == {"loopbackNIC", "podGwLoop", "tap-vpp2", "vxlanBVI"}
            metrics = (await client.get("/metrics")).text
            assert "vpp_connected 1.0" in metrics
            stub.restart()
            for _ in range(200):
                if vpp.resyncs and snapshot(stub) == expected(base):
                    break
                await asyncio.sleep(0.05)
            assert snapshot(stub) == expected(base)
            state = (await client.get("/contiv/v1/vpp")).json()
            assert state["reconnects"] == 1 and state["vpe_pid"] == stub.pid
            readiness = await client.get("/readiness")
            assert readiness.status_code == 200, readiness.text
            assert readiness.json()["components"]["vpp"]["ok"] is True
