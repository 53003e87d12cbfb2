"""The agent side of STN (``ipnet.stn: true``): ask contiv-stn for the stolen NIC at start.

:func:`fetch_stolen_nic` asks ``StolenInterfaceInfo`` first (an agent restart finds the NIC
already stolen) and ``StealInterface`` when nothing is stolen yet; while the daemon is not
reachable it retries until ``stn_timeout_s``. The reply becomes a :class:`StolenNic`, which
the VPP renderer turns into the node's STN configuration (``renderer/vpp_stn.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_interface, ip_network

from pydantic import BaseModel, ConfigDict

from plugins.stn.client import STNClient, STNClientError
from plugins.stn.stn_pb2 import STNReply


class StolenRoute(BaseModel):
    """One IPv4 route the NIC had: ``gateway`` None for an on-link route."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dst: IPv4Network
    gateway: IPv4Address | None = None
    table: int = 254
    metric: int = 0


class StolenNic(BaseModel):
    """What contiv-stn recorded about the NIC (IPv4 part; the node runs IPv4)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interface: str
    addresses: tuple[IPv4Interface, ...]
    routes: tuple[StolenRoute, ...] = ()
    pci_address: str = ""
    kernel_driver: str = ""

    @property
    def node_ip(self) -> IPv4Interface:
        """The node's address: the NIC's first IPv4 address."""
        return self.addresses[0]

    @property
    def gateway(self) -> IPv4Address | None:
        """The default route's next hop, if the NIC had one."""
        for route in self.routes:
            if route.dst.prefixlen == 0 and route.gateway is not None:
                return route.gateway
        return None


class STNUnavailableError(Exception):
    """contiv-stn could not provide the NIC (unreachable, refused, or the NIC has no IPv4)."""


def stolen_nic(interface: str, reply: STNReply) -> StolenNic:
    """The IPv4 part of an STN reply; raises :class:`STNUnavailableError` without an IPv4 address."""
    addresses = tuple(a for a in (ip_interface(x) for x in reply.ip_addresses) if isinstance(a, IPv4Interface))
    if not addresses:
        raise STNUnavailableError(f"contiv-stn: {interface} had no IPv4 address ({list(reply.ip_addresses)})")
    routes = []
    if reply.record_json:  # the full record: tables and metrics too; the kernel's own routes left out
        for r in json.loads(reply.record_json).get("routes", []):
            if r["family"] == 4 and not r["kernel"]:
                gateway = IPv4Address(r["gateway"]) if r.get("gateway") else None
                routes.append(StolenRoute(dst=IPv4Network(r["dst"]), gateway=gateway, table=r["table"],
                                          metric=r.get("metric") or 0))
    else:
        for route in reply.routes:
            dst = ip_network(route.destination_subnet)
            if isinstance(dst, IPv4Network) and not any(dst == a.network for a in addresses):
                gateway = IPv4Address(route.next_hop_ip) if route.next_hop_ip else None
                routes.append(StolenRoute(dst=dst, gateway=gateway))
    return StolenNic(interface=interface, addresses=addresses, routes=tuple(routes),
                     pci_address=reply.pci_address, kernel_driver=reply.kernel_driver)


async def fetch_stolen_nic(socket_path: str, interface: str, timeout_s: float, log: logging.Logger) -> StolenNic:
    """The stolen NIC: already stolen (agent restart) or stolen now (first start)."""
    deadline = time.monotonic() + timeout_s
    async with STNClient(socket_path, timeout_s=timeout_s) as client:
        while True:
            try:
                try:
                    reply = await client.info(interface)
                    log.info("STN: %s was stolen before (agent restart): %s", interface, ", ".join(reply.ip_addresses))
                except STNClientError as err:
                    if not err.refused:
                        raise
                    reply = await client.steal(interface)
                    log.info("STN: stole %s: %s", interface, ", ".join(reply.ip_addresses))
                return stolen_nic(interface, reply)
            except STNClientError as err:
                if err.refused or time.monotonic() >= deadline:
                    raise STNUnavailableError(f"ipnet.stn: {err}") from None
                log.info("STN: waiting for contiv-stn (%s)", err)
                await asyncio.sleep(0.5)
