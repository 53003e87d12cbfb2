"""contiv-stn: its plugins and how they depend on each other."""

from __future__ import annotations

from dependency_injector import containers, providers

from core.di import optional, plugin_provider
from core.health import HealthPlugin
from core.http import HTTPPlugin
from core.logs import LogsPlugin
from core.metrics import MetricsPlugin
from plugins.stn.plugin import STNPlugin


class STNContainer(containers.DeclarativeContainer):
    """Every built-in plugin of contiv-stn; the YAML's ``plugins:`` picks which run."""

    configs = providers.Dependency(instance_of=dict)

    http = plugin_provider(HTTPPlugin, configs, title="contiv-stn")
    health = plugin_provider(HealthPlugin, configs, http=http)
    metrics = plugin_provider(MetricsPlugin, configs, http=http)
    logs = plugin_provider(LogsPlugin, configs, http=http)
    stn = plugin_provider(
        STNPlugin,
        configs,
        http=optional("http", configs, http),
        health=optional("health", configs, health),
        metrics=optional("metrics", configs, metrics),
    )
