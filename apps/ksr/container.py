"""contiv-ksr: its plugins and how they depend on each other."""

from __future__ import annotations

from dependency_injector import containers, providers

from core.di import optional, plugin_provider
from core.health import HealthPlugin
from core.http import HTTPPlugin
from core.kvdb.plugin import KVDBPlugin
from core.logs import LogsPlugin
from core.metrics import MetricsPlugin
from plugins.ksr.plugin import KSRPlugin


class KSRContainer(containers.DeclarativeContainer):
    """Every built-in plugin of contiv-ksr; the YAML's ``plugins:`` picks which run."""

    configs = providers.Dependency(instance_of=dict)

    http = plugin_provider(HTTPPlugin, configs, title="contiv-ksr")
    health = plugin_provider(HealthPlugin, configs, http=http)
    metrics = plugin_provider(MetricsPlugin, configs, http=http)
    logs = plugin_provider(LogsPlugin, configs, http=http)
    kvdb = plugin_provider(KVDBPlugin, configs, health=optional("health", configs, health))
    ksr = plugin_provider(
        KSRPlugin,
        configs,
        kvdb=kvdb,
        http=optional("http", configs, http),
        metrics=optional("metrics", configs, metrics),
        health=optional("health", configs, health),
    )
