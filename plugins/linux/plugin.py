"""The Linux dataplane plugin: registers the Linux descriptors with the KV scheduler."""

from __future__ import annotations

from typing import Any, cast

from core.plugin import Plugin, PluginConfig
from plugins.kvscheduler.api import Descriptor, KVSchedulerAPI
from plugins.linux.config import LinuxConfig
from plugins.linux.descriptors.address import AddressDescriptor
from plugins.linux.descriptors.neighbour import FdbDescriptor, NeighbourDescriptor
from plugins.linux.descriptors.nfttable import NftTableDescriptor
from plugins.linux.descriptors.offload import OffloadDescriptor
from plugins.linux.descriptors.route import RouteDescriptor
from plugins.linux.descriptors.sessions import SessionsDescriptor
from plugins.linux.descriptors.sysctl import PROC_SYS, SysctlDescriptor
from plugins.linux.descriptors.veth import VethDescriptor
from plugins.linux.descriptors.vxlan import VxlanDescriptor
from plugins.linux.netns import NetlinkPool


def linux_descriptors(
    scan_namespaces: list[str] | None = None, pool: NetlinkPool | None = None, nft_backend: str = "lib",
    sysctl_dir: str = PROC_SYS,
) -> list[Descriptor[Any]]:
    """One instance of every Linux descriptor, links first, sharing ``pool``; agent-owned
    nftables tables through ``nft_backend`` (see :class:`plugins.linux.nft.driver.Nft`);
    sysctls under ``sysctl_dir``."""
    extra = list(scan_namespaces or [])
    return [
        VethDescriptor(extra, pool),
        VxlanDescriptor(extra, pool),
        AddressDescriptor(extra, pool),
        RouteDescriptor(extra, pool),
        NeighbourDescriptor(extra, pool),
        FdbDescriptor(extra, pool),
        SysctlDescriptor(extra, pool, sysctl_dir),
        NftTableDescriptor(nft_backend),
        SessionsDescriptor(),
        OffloadDescriptor(extra, pool),
    ]


class LinuxDataplanePlugin(Plugin):
    """Name ``linux``: veth pairs, VXLAN, addresses, routes, neighbours, FDB, sysctls and
    agent-owned nftables tables.

    Depends on the KV scheduler (``scheduler``) only; it imports no other contiv plugin.
    """

    name = "linux"
    Config = LinuxConfig

    def __init__(self, config: PluginConfig | None = None, *, scheduler: KVSchedulerAPI) -> None:
        super().__init__(config)
        self.scheduler = scheduler
        self.descriptors: list[Descriptor[Any]] = []
        config = cast(LinuxConfig, self.config)
        # The agent's own and the configured namespaces live as long as the agent: keep their
        # netlink handles open. Pod namespaces get a handle per operation.
        self.pool = NetlinkPool(sticky=["", *config.scan_namespaces])

    async def init(self) -> None:
        config = cast(LinuxConfig, self.config)
        self.descriptors = linux_descriptors(config.scan_namespaces, self.pool, config.nft_backend,
                                             config.sysctl_dir)
        for descriptor in self.descriptors:
            self.scheduler.register_descriptor(descriptor)
        self.log.info("registered %d Linux descriptors", len(self.descriptors))

    async def close(self) -> None:
        self.pool.close()
