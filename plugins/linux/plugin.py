"""The Linux dataplane plugin: registers the Linux descriptors with the KV scheduler."""

from __future__ import annotations

from typing import Any, cast

from core.plugin import Plugin, PluginConfig
from plugins.kvscheduler.api import Descriptor, KVSchedulerAPI
from plugins.linux.config import LinuxConfig
from plugins.linux.descriptors.address import AddressDescriptor
from plugins.linux.descriptors.neighbour import FdbDescriptor, NeighbourDescriptor
from plugins.linux.descriptors.route import RouteDescriptor
from plugins.linux.descriptors.sysctl import SysctlDescriptor
from plugins.linux.descriptors.veth import VethDescriptor
from plugins.linux.descriptors.vxlan import VxlanDescriptor


def linux_descriptors(scan_namespaces: list[str] | None = None) -> list[Descriptor[Any]]:
    """One instance of every Linux descriptor, links first."""
    extra = list(scan_namespaces or [])
    return [
        VethDescriptor(extra),
        VxlanDescriptor(extra),
        AddressDescriptor(extra),
        RouteDescriptor(extra),
        NeighbourDescriptor(extra),
        FdbDescriptor(extra),
        SysctlDescriptor(extra),
    ]


class LinuxDataplanePlugin(Plugin):
    """Name ``linux``: veth pairs, VXLAN, addresses, routes, neighbours, FDB and sysctls.

    Depends on the KV scheduler (``scheduler``) only; it imports no other contiv plugin.
    """

    name = "linux"
    Config = LinuxConfig

    def __init__(self, config: PluginConfig | None = None, *, scheduler: KVSchedulerAPI) -> None:
        super().__init__(config)
        self.scheduler = scheduler
        self.descriptors: list[Descriptor[Any]] = []

    async def init(self) -> None:
        config = cast(LinuxConfig, self.config)
        self.descriptors = linux_descriptors(config.scan_namespaces)
        for descriptor in self.descriptors:
            self.scheduler.register_descriptor(descriptor)
        self.log.info("registered %d Linux descriptors", len(self.descriptors))
