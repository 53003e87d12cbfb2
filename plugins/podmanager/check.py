"""CNI CHECK: compare a pod's network namespace with the result it was given."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from plugins.linux.netns import netlink
from plugins.podmanager.cnicodes import CNICode, CNIError
from plugins.podmanager.records import PodResult

_IFF_UP = 0x1
_MAIN_TABLE = 254


def _attr(msg: Any, name: str) -> Any:
    return msg.get(name)


async def verify_pod_network(netns_path: str, ifname: str, expected: PodResult) -> None:
    """Raise a CHECK_FAILED :class:`CNIError` naming the first difference found.

    Checks that the namespace exists, that the pod interface ``ifname`` is there and up, that
    every address of the pod's interfaces is assigned to it, and that every route of the result
    is in the namespace's main routing table (with the same next hop when one is given).
    """
    if not os.path.exists(netns_path):
        raise CNIError(CNICode.CHECK_FAILED, f"network namespace {netns_path} does not exist")
    # pyroute2's own netns support forks a helper, which crashes next to gRPC's threads;
    # plugins.linux.netns opens the netlink socket inside the namespace with setns instead (the
    # loop's own thread, three system calls, no helper thread).
    async with netlink(netns_path) as ipr:
        links = {_attr(link, "ifname"): link async for link in await ipr.link("dump")}
        link = links.get(ifname)
        if link is None:
            raise CNIError(
                CNICode.CHECK_FAILED, f"interface {ifname} is missing in {netns_path}"
            )
        if not link["flags"] & _IFF_UP:
            raise CNIError(CNICode.CHECK_FAILED, f"interface {ifname} in {netns_path} is down")
        index = link["index"]
        assigned = {
            ipaddress.ip_interface(f"{_attr(addr, 'address')}/{addr['prefixlen']}")
            async for addr in await ipr.addr("dump", index=index)
        }
        routes = []
        for family in (2, 10):
            async for route in await ipr.route("dump", family=family):
                if _attr(route, "table") not in (None, _MAIN_TABLE):
                    continue
                dst = _attr(route, "dst")
                if dst is None:
                    dst = "0.0.0.0" if family == 2 else "::"
                net = ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False)
                gw = _attr(route, "gateway")
                routes.append((net, ipaddress.ip_address(gw) if gw else None))

    pod_ifaces = {
        i for i, iface in enumerate(expected.interfaces)
        if iface.sandbox == netns_path or (iface.name == ifname and iface.sandbox)
    }
    for ip in expected.ip_addresses:
        if pod_ifaces and ip.interface not in pod_ifaces:
            continue
        want = ipaddress.ip_interface(ip.address)
        if want not in assigned:
            raise CNIError(
                CNICode.CHECK_FAILED,
                f"address {ip.address} is missing on {ifname} in {netns_path}",
            )
    for route in expected.routes:
        dst = ipaddress.ip_network(route.dst, strict=False)
        gw = ipaddress.ip_address(route.gw) if route.gw else None
        if not any(net == dst and (gw is None or have_gw == gw) for net, have_gw in routes):
            via = f" via {route.gw}" if route.gw else ""
            raise CNIError(
                CNICode.CHECK_FAILED, f"route {route.dst}{via} is missing in {netns_path}"
            )
