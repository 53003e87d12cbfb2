"""contiv-agent (the vswitch): its plugins and how they depend on each other."""

from __future__ import annotations

from dependency_injector import containers, providers

from core.di import optional, plugin_provider
from core.health import HealthPlugin
from core.http import HTTPPlugin
from core.kvdb.plugin import KVDBPlugin
from core.logs import LogsPlugin
from core.metrics import MetricsPlugin
from core.servicelabel import ServiceLabelPlugin


class VSwitchContainer(containers.DeclarativeContainer):
    """Every built-in plugin of the agent; the YAML's ``plugins:`` picks which run."""

    configs = providers.Dependency(instance_of=dict)

    service_label = plugin_provider(ServiceLabelPlugin, configs)
    http = plugin_provider(HTTPPlugin, configs, title="contiv-agent")
    health = plugin_provider(HealthPlugin, configs, http=http)
    metrics = plugin_provider(MetricsPlugin, configs, http=http)
    logs = plugin_provider(LogsPlugin, configs, http=http)
    kvdb = plugin_provider(KVDBPlugin, configs, health=optional("health", configs, health))
