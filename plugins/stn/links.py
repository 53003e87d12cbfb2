"""Netlink work on the NIC: read what it has, take it off, put it back (pyroute2, any namespace).

Only what the kernel would not re-create by itself is taken off and restored: IPv4 addresses
and IPv6 addresses of global scope (the kernel keeps the IPv6 link-local one while the link is
up), and every route through the link in any table but ``local``. Routes the kernel makes for
an address (``proto kernel``) are recorded too (they are part of the reply) and come back with
their address.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from plugins.linux.netns import NamespaceNotFoundError, namespace_exists, netlink
from plugins.stn.record import RecordedAddress, RecordedRoute, StolenLink, is_link_local_v6, route_dst

RT_TABLE_LOCAL = 255
RTPROT_KERNEL = 2
RTN_UNICAST = 1
IFF_UP = 0x1
#: IFA_F_NODAD | IFA_F_HOMEADDRESS | IFA_F_MANAGETEMPADDR | IFA_F_NOPREFIXROUTE | IFA_F_MCAUTOJOIN
CONFIG_ADDRESS_FLAGS = 0x02 | 0x10 | 0x100 | 0x200 | 0x400
_FAMILY: dict[int, int] = {int(socket.AF_INET): 4, int(socket.AF_INET6): 6}


class LinkNotFoundError(LookupError):
    """The link (or its namespace) does not exist."""


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


async def _link(ipr: AsyncIPRoute, ifname: str, namespace: str) -> Any:
    try:
        (msg,) = await ipr.link("get", ifname=ifname)
    except NetlinkError as exc:
        if exc.code in (errno.ENODEV, errno.ENOENT):
            where = f"namespace {namespace!r}" if namespace else "the daemon's namespace"
            raise LinkNotFoundError(f"no link {ifname!r} in {where}") from None
        raise
    return msg


def _driver(ifname: str, namespace: str, kind: str) -> tuple[str, str, str]:
    """(kernel driver, PCI address, remark) of a link."""
    if kind:
        return kind, "", f"virtual link ({kind}): no PCI device, no driver to unbind"
    if namespace:
        # /sys shows the devices of the namespace sysfs was mounted in; a NIC in another one
        # cannot be resolved from here.
        return "", "", f"link in namespace {namespace!r}: its device is not visible in /sys here; driver not unbound"
    device = Path("/sys/class/net") / ifname / "device"
    if not device.exists():
        return "", "", "no device behind the link: no driver to unbind"
    driver = device / "driver"
    name = os.path.basename(os.readlink(driver)) if driver.exists() else ""
    real = device.resolve()
    pci = real.name if "/pci" in str(real) else ""
    if not pci:
        return name, "", f"device {real.name} is not on a PCI bus: driver not unbound"
    return name, pci, ""


async def read_link(ifname: str, namespace: str) -> StolenLink:
    """Record the link's identity, addresses and routes (nothing is changed)."""
    if not namespace_exists(namespace):
        raise LinkNotFoundError(f"network namespace {namespace!r} does not exist")
    try:
        async with netlink(namespace) as ipr:
            msg = await _link(ipr, ifname, namespace)
            index = int(msg["index"])
            info = _attr(msg, "IFLA_LINKINFO")
            kind = str(info.get_attr("IFLA_INFO_KIND") or "") if info is not None else ""
            addresses = [a async for a in await ipr.addr("dump", index=index)]
            routes = []
            for family in (socket.AF_INET, socket.AF_INET6):
                routes.extend([r async for r in await ipr.route("dump", family=family)])
    except NamespaceNotFoundError as exc:
        raise LinkNotFoundError(str(exc)) from None
    driver, pci, detail = _driver(ifname, namespace, kind)
    return StolenLink(
        interface=ifname,
        namespace=namespace,
        ifindex=index,
        mac=str(_attr(msg, "IFLA_ADDRESS") or ""),
        mtu=int(_attr(msg, "IFLA_MTU") or 0),
        kind=kind,
        kernel_driver=driver,
        pci_address=pci,
        detail=detail,
        addresses=[a for a in (_address(m) for m in addresses) if a is not None],
        routes=[r for r in (_route(m, index) for m in routes) if r is not None],
    )


def _address(msg: Any) -> RecordedAddress | None:
    family = _FAMILY.get(int(msg["family"]))
    if family is None:
        return None
    address = str(_attr(msg, "IFA_LOCAL") or _attr(msg, "IFA_ADDRESS"))
    if family == 6 and (int(msg["scope"]) != 0 or is_link_local_v6(address)):
        return None
    return RecordedAddress(
        family=family,
        address=address,
        prefixlen=int(msg["prefixlen"]),
        broadcast=_attr(msg, "IFA_BROADCAST"),
        label=_attr(msg, "IFA_LABEL"),
        scope=int(msg["scope"]),
        flags=int(_attr(msg, "IFA_FLAGS") or msg["flags"]) & CONFIG_ADDRESS_FLAGS,
    )


def _route(msg: Any, index: int) -> RecordedRoute | None:
    family = _FAMILY.get(int(msg["family"]))
    table = int(_attr(msg, "RTA_TABLE") or msg["table"])
    if family is None or table == RT_TABLE_LOCAL or _attr(msg, "RTA_OIF") != index:
        return None
    dst = route_dst(family, _attr(msg, "RTA_DST"), int(msg["dst_len"]))
    if family == 6 and (dst.startswith("fe80:") or dst.startswith("ff00:")):
        return None
    metric = _attr(msg, "RTA_PRIORITY")
    return RecordedRoute(
        family=family,
        table=table,
        dst=dst,
        gateway=_attr(msg, "RTA_GATEWAY"),
        prefsrc=_attr(msg, "RTA_PREFSRC"),
        metric=None if metric is None else int(metric),
        proto=int(msg["proto"]),
        scope=int(msg["scope"]),
        type=int(msg["type"]),
        kernel=int(msg["proto"]) == RTPROT_KERNEL,
    )


def _route_request(route: RecordedRoute, index: int) -> dict[str, Any]:
    req: dict[str, Any] = {
        "dst": route.dst,
        "table": route.table,
        "proto": route.proto,
        "scope": route.scope,
        "type": route.type,
        "oif": index,
        "family": socket.AF_INET if route.family == 4 else socket.AF_INET6,
    }
    if route.gateway:
        req["gateway"] = route.gateway
    if route.prefsrc:
        req["prefsrc"] = route.prefsrc
    if route.metric is not None:
        req["priority"] = route.metric
    return req


async def _tolerate(call: Any, *codes: int) -> None:
    try:
        await call
    except NetlinkError as exc:
        if exc.code not in codes:
            raise


async def take_off(link: StolenLink) -> None:
    """Delete the recorded routes (gateway routes first), then the addresses."""
    async with netlink(link.namespace) as ipr:
        msg = await _link(ipr, link.interface, link.namespace)
        index = int(msg["index"])
        for route in sorted(link.routes, key=lambda r: r.gateway is None):
            if not route.kernel:
                await _tolerate(ipr.route("del", **_route_request(route, index)), errno.ESRCH, errno.ENOENT)
        for address in link.addresses:
            await _tolerate(
                ipr.addr("del", index=index, address=address.address, prefixlen=address.prefixlen),
                errno.EADDRNOTAVAIL, errno.ENOENT,
            )


async def restore(link: StolenLink) -> None:
    """Bring the link up and put back the recorded addresses, then routes (on-link ones first).

    Idempotent: what is already there is left alone, so a half-done steal or restore is
    completed by running this again.
    """
    async with netlink(link.namespace) as ipr:
        msg = await _link(ipr, link.interface, link.namespace)
        index = int(msg["index"])
        if not int(msg["flags"]) & IFF_UP:
            await ipr.link("set", index=index, state="up")
        for address in link.addresses:
            attrs: dict[str, Any] = {"index": index, "address": address.address, "prefixlen": address.prefixlen,
                                     "scope": address.scope, "flags": address.flags}
            if address.broadcast:
                attrs["broadcast"] = address.broadcast
            if address.label and address.family == 4:
                attrs["label"] = address.label
            await _tolerate(ipr.addr("add", **attrs), errno.EEXIST)
        for route in sorted(link.routes, key=lambda r: r.gateway is not None):
            if not route.kernel:
                await _tolerate(ipr.route("add", **_route_request(route, index)), errno.EEXIST)


async def link_up(ifname: str, namespace: str) -> bool | None:
    """Whether ``ifname`` is administratively and operationally up; None when it is missing."""
    try:
        async with netlink(namespace) as ipr:
            msg = await _link(ipr, ifname, namespace)
    except (LinkNotFoundError, NamespaceNotFoundError):
        return None
    state = str(_attr(msg, "IFLA_OPERSTATE") or "")
    return bool(int(msg["flags"]) & IFF_UP) and state in ("UP", "UNKNOWN")


def unbind_driver(link: StolenLink) -> None:
    """Unbind a PCI NIC from its kernel driver (so a userspace driver can take it)."""
    path = Path("/sys/bus/pci/drivers") / link.kernel_driver / "unbind"
    path.write_text(link.pci_address, encoding="ascii")


def bind_driver(link: StolenLink) -> None:
    """Bind a PCI NIC back to its recorded kernel driver (already bound: nothing to do)."""
    if (Path("/sys/bus/pci/devices") / link.pci_address / "driver").exists():
        return
    path = Path("/sys/bus/pci/drivers") / link.kernel_driver / "bind"
    path.write_text(link.pci_address, encoding="ascii")
