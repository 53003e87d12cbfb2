"""health, metrics and logs through a real HTTP server, in an app run in-process."""

from __future__ import annotations

import logging

import httpx

from apps.vswitch.main import SPEC
from core.health import HealthPlugin
from core.http import HTTPPlugin
from core.testing import running_app

CONFIG = {"plugins": ["service-label", "http", "health", "metrics", "logs", "kvdb"], "http": {"port": 0},
          "logs": {"loggers": {"kvdb": "debug"}}}


async def test_readiness_follows_reported_components() -> None:
    async with running_app(SPEC, CONFIG) as agent:
        http = agent.plugin("http")
        health = agent.plugin("health")
        assert isinstance(http, HTTPPlugin) and isinstance(health, HealthPlugin)
        async with httpx.AsyncClient(base_url=http.base_url) as client:
            rsp = await client.get("/readiness")
            assert rsp.status_code == 200 and rsp.json()["ready"] is True
            assert set(rsp.json()["components"]) >= {"http", "health", "metrics", "logs", "kvdb"}
            health.report("dataplane", ok=False, detail="VPP not connected")
            rsp = await client.get("/readiness")
            assert rsp.status_code == 503
            assert rsp.json()["components"]["dataplane"]["detail"] == "VPP not connected"
            assert (await client.get("/liveness")).json() == {"alive": True}
            health.report("dataplane", ok=True)
            assert (await client.get("/readiness")).status_code == 200


async def test_log_levels_at_start_and_at_run_time() -> None:
    async with running_app(SPEC, CONFIG) as agent:
        http = agent.plugin("http")
        assert isinstance(http, HTTPPlugin)
        async with httpx.AsyncClient(base_url=http.base_url) as client:
            assert (await client.get("/log/list")).json()["kvdb"] == "debug"
            rsp = await client.put("/log/kvdb/warning")
            assert rsp.status_code == 200
            assert logging.getLogger("contiv.kvdb").level == logging.WARNING
            assert (await client.get("/log/list")).json()["kvdb"] == "warning"
            bad = await client.put("/log/kvdb/loud")
            assert bad.status_code == 400 and "unknown log level 'loud'" in bad.text


async def test_metrics_and_openapi() -> None:
    async with running_app(SPEC, CONFIG) as agent:
        http = agent.plugin("http")
        assert isinstance(http, HTTPPlugin)
        async with httpx.AsyncClient(base_url=http.base_url) as client:
            text = (await client.get("/metrics")).text
            assert 'contiv_build_info{version="' in text
            paths = (await client.get("/openapi.json")).json()["paths"]
            assert {"/readiness", "/liveness", "/metrics", "/log/list"} <= set(paths)
