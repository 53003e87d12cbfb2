"""Publishing this node's dataplane address in its ID record (a background task of ipam)."""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv4Interface

from plugins.ipam.api import IPAMError, NodeAddressPlan
from plugins.ipam.config import IPAMConfig
from plugins.ipam.hostif import interface_holding, interface_ipv4
from plugins.ipam.pusher import PUSH_ERRORS
from plugins.nodesync.api import NodeAddressPublisher


async def dataplane_address(config: IPAMConfig, plan: NodeAddressPlan) -> IPv4Interface:
    """This node's dataplane address: its interface's (``node_interface``), the one it holds
    (``node_ip``), or the plan's."""
    # pyroute2's sync API runs its own event loop: keep it off ours.
    if config.node_interface:
        return await asyncio.to_thread(interface_ipv4, config.node_interface)
    if config.node_ip is not None:
        return await asyncio.to_thread(interface_holding, config.node_ip)
    return plan.node_ip


async def publish_node_address(
    publisher: NodeAddressPublisher, config: IPAMConfig, plan: NodeAddressPlan, log: logging.Logger
) -> None:
    """Record this node's dataplane address in its ID record, retrying while etcd is down."""
    delay = config.etcd_retry_initial_s
    while True:
        try:
            await publisher.publish_node_ips([await dataplane_address(config, plan)])
            return
        except IPAMError as exc:  # the interface may get its address later
            log.warning("%s; retrying", exc)
        except PUSH_ERRORS as exc:
            log.warning("cannot publish this node's address yet (%s); retrying", exc)
        except Exception as exc:  # noqa: BLE001 -- any other failure is permanent: report it
            log.error("cannot publish this node's address: %s", exc)
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, config.etcd_retry_max_s)
