"""VPPDataplanePlugin: registration, REST, metrics, health, resync after a VPP restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from pydantic import ValidationError

from core.health import HealthPlugin
from core.http import HTTPPlugin
from core.metrics import MetricsPlugin
from plugins.kvscheduler.scheduler import KVScheduler, RetryPolicy
from plugins.vpp.config import VPPConfig
from plugins.vpp.errors import VPPConnectionError
from plugins.vpp.plugin import VPPDataplanePlugin
from plugins.vpp.rest import vpp_router
from tests.plugins.vpp import values as plan
from tests.plugins.vpp.snapshot import expected, snapshot
from tests.vppstub import VPPStub


@pytest.fixture
async def plugin(stub: VPPStub) -> AsyncIterator[VPPDataplanePlugin]:
    http = HTTPPlugin()
    config = VPPConfig(
        api_socket=stub.socket_path, health_interval_s=0.1, reconnect_interval_s=0.05, connect_timeout_s=5
    )
    scheduler = KVScheduler(verify=True, retry=RetryPolicy(period_s=0.05))
    vpp = VPPDataplanePlugin(
        config, scheduler=scheduler, http=http, metrics=MetricsPlugin(http=http), health=HealthPlugin(http=http)
    )
    await vpp.init()
    await vpp.after_init()
    try:
        yield vpp
    finally:
        await vpp.close()
        await scheduler.close()


async def test_plugin_registers_serves_and_counts(plugin: VPPDataplanePlugin, stub: VPPStub) -> None:
    assert {d.name for d in plugin.descriptors} >= {"vpp-interface", "vpp-route", "vpp-bridge-domain", "vpp-l2-fib"}
    base = plan.node_base(1)
    result = await plugin.scheduler.commit(base)
    assert result.ok, result.errors
    app = FastAPI()
    app.include_router(vpp_router(plugin.connection, plugin.indexes))
    state = TestClient(app).get("/contiv/v1/vpp").json()
    assert state["connected"] is True
    assert state["version"] == "26.10-rc0~stub"
    assert state["vpe_pid"] == stub.pid
    assert state["interfaces"]["podGwLoop"] > 0
    assert state["calls_by_message"]["ip_route_add_del"] == 6
    assert plugin.metrics is not None
    text = generate_latest(plugin.metrics.registry).decode()
    assert 'vpp_api_calls{result="all"}' in text and 'vpp_api_calls{result="failed"} 0.0' in text
    assert "vpp_connected 1.0" in text
    assert plugin.health is not None and plugin.health.components["vpp"].ok


async def test_vpp_restart_triggers_downstream_resync(plugin: VPPDataplanePlugin, stub: VPPStub) -> None:
    base = plan.node_base(2)
    assert (await plugin.scheduler.commit(base)).ok
    stub.restart()
    for _ in range(200):
        if plugin.resyncs and snapshot(stub) == expected(base):
            break
        await asyncio.sleep(0.05)
    assert plugin.resyncs == 1
    assert snapshot(stub) == expected(base)
    assert plugin.health is not None and plugin.health.components["vpp"].ok


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="api_sockett"):
        VPPConfig.model_validate({"api_sockett": "/x"})
    with pytest.raises(ValidationError, match="reply_timeout_s"):
        VPPConfig.model_validate({"reply_timeout_s": 0})


async def test_start_fails_clearly_without_vpp(socket_path: object) -> None:
    config = VPPConfig(api_socket=str(socket_path), connect_timeout_s=0.3, reconnect_interval_s=0.05)
    scheduler = KVScheduler()
    vpp = VPPDataplanePlugin(config, scheduler=scheduler)
    await vpp.init()
    try:
        with pytest.raises(VPPConnectionError, match=f"cannot connect to VPP at {socket_path}"):
            await vpp.after_init()
    finally:
        await vpp.close()
        await scheduler.close()
