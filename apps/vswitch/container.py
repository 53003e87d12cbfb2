"""contiv-agent (the vswitch): its plugins and how they depend on each other.

Event handlers (nodesync, ipam, podmanager, ipnet, ...) are not passed to the controller: it
adopts every enabled plugin implementing its hooks when the agent starts, in the order of
``controller.handler_order``. That keeps the graph acyclic although handlers push events to it.
"""

from __future__ import annotations

from dependency_injector import containers, providers

from apps.vswitch.process import ProcessPlugin
from core.di import optional, plugin_provider
from core.health import HealthPlugin
from core.http import HTTPPlugin
from core.kvdb.plugin import KVDBPlugin
from core.logs import LogsPlugin
from core.metrics import MetricsPlugin
from core.servicelabel import ServiceLabelPlugin
from plugins.controller.plugin import ControllerPlugin
from plugins.ipam.plugin import IPAMPlugin
from plugins.ipnet.plugin import IPNetPlugin
from plugins.kvscheduler.plugin import KVSchedulerPlugin
from plugins.linux.plugin import LinuxDataplanePlugin
from plugins.nodesync.plugin import NodeSyncPlugin
from plugins.podmanager.plugin import PodManagerPlugin
from plugins.policy.plugin import PolicyPlugin
from plugins.service.plugin import ServicePlugin
from plugins.vpp.plugin import VPPDataplanePlugin


class VSwitchContainer(containers.DeclarativeContainer):
    """Every built-in plugin of the agent; the YAML's ``plugins:`` picks which run."""

    configs = providers.Dependency(instance_of=dict)

    process = plugin_provider(ProcessPlugin, configs)  # the process-wide policy (process.py)
    service_label = plugin_provider(ServiceLabelPlugin, configs)
    http = plugin_provider(HTTPPlugin, configs, title="contiv-agent")
    health = plugin_provider(HealthPlugin, configs, http=http)
    metrics = plugin_provider(MetricsPlugin, configs, http=http)
    logs = plugin_provider(LogsPlugin, configs, http=http)
    kvdb = plugin_provider(KVDBPlugin, configs, health=optional("health", configs, health))

    kvscheduler = plugin_provider(
        KVSchedulerPlugin, configs,
        http=optional("http", configs, http), metrics=optional("metrics", configs, metrics),
    )
    controller = plugin_provider(
        ControllerPlugin, configs,
        scheduler=kvscheduler, service_label=service_label, kvdb=optional("kvdb", configs, kvdb),
        http=optional("http", configs, http), metrics=optional("metrics", configs, metrics),
        health=optional("health", configs, health),
    )
    linux = plugin_provider(LinuxDataplanePlugin, configs, scheduler=kvscheduler)
    vpp = plugin_provider(
        VPPDataplanePlugin, configs, scheduler=kvscheduler, http=optional("http", configs, http),
        metrics=optional("metrics", configs, metrics), health=optional("health", configs, health),
    )

    nodesync = plugin_provider(
        NodeSyncPlugin, configs, kvdb=kvdb, service_label=service_label, controller=controller,
    )
    podmanager = plugin_provider(
        PodManagerPlugin, configs, controller=controller, kvdb=kvdb, service_label=service_label,
        http=optional("http", configs, http), metrics=optional("metrics", configs, metrics),
    )
    ipam = plugin_provider(
        IPAMPlugin, configs, kvdb=kvdb, nodesync=nodesync, http=optional("http", configs, http),
        controller=controller, podmanager=optional("podmanager", configs, podmanager),
        health=optional("health", configs, health),
    )
    ipnet = plugin_provider(IPNetPlugin, configs, ipam=ipam, nodesync=nodesync, podmanager=podmanager)
    service = plugin_provider(
        ServicePlugin, configs, nodesync=nodesync, ipam=ipam, ipnet=ipnet, controller=controller,
        http=optional("http", configs, http), metrics=optional("metrics", configs, metrics),
    )
    policy = plugin_provider(
        PolicyPlugin, configs, ipam=ipam, podmanager=podmanager, controller=controller, ipnet=ipnet,
        http=optional("http", configs, http), metrics=optional("metrics", configs, metrics),
    )
