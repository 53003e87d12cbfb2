"""The kvscheduler plugin in a real agent: HTTP server on loopback, Prometheus metrics, config."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from core.agent import Agent
from core.http import HTTPConfig, HTTPPlugin
from core.metrics import MetricsPlugin
from plugins.kvscheduler.api import KVSchedulerAPI, SchedulerError, ValueState
from plugins.kvscheduler.config import KVSchedulerConfig
from plugins.kvscheduler.plugin import KVSchedulerPlugin
from plugins.kvscheduler.testing import Item, ItemDescriptor, MemoryDevice, item_key

A, B = item_key("a"), item_key("b")


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not exposed")


async def test_plugin_serves_rest_and_metrics_in_an_agent() -> None:
    http = HTTPPlugin(HTTPConfig(port=0))
    metrics = MetricsPlugin(http=http)
    plugin = KVSchedulerPlugin(KVSchedulerConfig(verify=True, retry_period_s=0.01), http=http, metrics=metrics)
    api: KVSchedulerAPI = plugin  # the plugin is what other plugins use
    device = MemoryDevice()
    agent = Agent([http, metrics, plugin])
    await agent.start()
    try:
        api.register_descriptor(ItemDescriptor(device))
        device.fail("create", A, retriable=True)
        await api.commit({A: Item(name="a"), B: Item(name="b", depends_on=(A,))})
        await plugin.settled(timeout=10)
        assert api.value_status(B).state is ValueState.CONFIGURED
        assert dict(api.metadata("test-item")) == {"a": 1, "b": 2}
        assert set(api.desired()) == {A, B}

        async with httpx.AsyncClient(base_url=http.base_url) as client:
            status = (await client.get("/scheduler/status", params={"key": B})).json()
            assert status["state"] == "configured"
            resync = await client.post("/scheduler/downstream-resync")
            assert resync.status_code == 200 and resync.json()["ok"]
            text = (await client.get("/metrics")).text
        assert metric(text, 'kvscheduler_transactions_total{kind="nb"}') == 1
        assert metric(text, 'kvscheduler_transactions_total{kind="retry"}') == 1
        assert metric(text, 'kvscheduler_transactions_total{kind="resync"}') == 1
        assert metric(text, 'kvscheduler_operations_total{operation="create"}') == 3
        assert metric(text, "kvscheduler_failures_total") == 1
        assert metric(text, "kvscheduler_pending_values") == 0
        assert metric(text, "kvscheduler_txn_duration_seconds_count") == 3
    finally:
        await agent.stop()
    with pytest.raises(SchedulerError, match="closed"):
        await plugin.commit({A: None})


async def test_plugin_without_http_or_metrics_still_schedules() -> None:
    plugin = KVSchedulerPlugin()
    await plugin.init()
    device = MemoryDevice()
    plugin.register_descriptor(ItemDescriptor(device))
    result = await plugin.commit({A: Item(name="a")})
    assert result.ok and A in device.objects
    await plugin.close()


def test_config_defaults_and_bad_values_are_named() -> None:
    cfg = KVSchedulerConfig()
    assert (cfg.retry_period_s, cfg.retry_max_attempts, cfg.retry_backoff) == (1.0, 3, 2.0)
    assert cfg.verify is False and cfg.record_history is True
    with pytest.raises(ValidationError, match="retry_backoff"):
        KVSchedulerConfig(retry_backoff=0.5)
    with pytest.raises(ValidationError, match="unknown_key"):
        KVSchedulerConfig.model_validate({"unknown_key": 1})
    with pytest.raises(ValidationError, match="history_size"):
        KVSchedulerConfig(history_size=0)
