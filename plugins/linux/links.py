"""Shared netlink helpers for links: lookup, ownership marks, attributes, read-back."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from plugins.linux.models import ALIAS_PREFIX


@dataclass(frozen=True, slots=True)
class Mark:
    """Our ownership mark on a link: the value key and, for veth ends, where the peer lives."""

    key: str
    peer_namespace: str = ""
    peer_ifname: str = ""

    def alias(self) -> str:
        if not self.peer_ifname:
            return ALIAS_PREFIX + self.key
        return f"{ALIAS_PREFIX}{self.key}@{quote(self.peer_namespace, safe='')}/{self.peer_ifname}"

    @staticmethod
    def parse(alias: str | None) -> Mark | None:
        """The mark in an interface alias, or None when the link is not ours."""
        if not alias or not alias.startswith(ALIAS_PREFIX):
            return None
        body = alias[len(ALIAS_PREFIX) :]
        key, sep, peer = body.partition("@")
        if not sep:
            return Mark(key)
        ns, _, ifname = peer.rpartition("/")
        return Mark(key, unquote(ns), ifname)


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What read-back needs of one link."""

    index: int
    ifname: str
    kind: str
    mac: str
    mtu: int
    up: bool
    mark: Mark | None
    msg: Any


def link_info(msg: Any) -> LinkInfo:
    return LinkInfo(
        index=int(msg["index"]),
        ifname=str(msg.get("ifname")),
        kind=str(msg.get(("linkinfo", "kind")) or ""),
        mac=str(msg.get("address") or ""),
        mtu=int(msg.get("mtu") or 0),
        up=bool(int(msg["flags"]) & 1),
        mark=Mark.parse(msg.get("ifalias")),
        msg=msg,
    )


async def dump_links(ipr: AsyncIPRoute) -> list[LinkInfo]:
    return [link_info(msg) async for msg in await ipr.link("dump")]


async def find_link(ipr: AsyncIPRoute, ifname: str) -> LinkInfo | None:
    """The link named ``ifname`` (one netlink get, not a dump), or None."""
    try:
        found = await ipr.link("get", ifname=ifname)
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise
    for msg in found:
        return link_info(msg)
    return None


async def owned_link(ipr: AsyncIPRoute, ifname: str) -> LinkInfo | None:
    """The link ``ifname`` if it exists and carries our mark."""
    info = await find_link(ipr, ifname)
    return info if info is not None and info.mark is not None else None


async def set_link(
    ipr: AsyncIPRoute,
    index: int | None,
    *,
    mac: str,
    mtu: int,
    up: bool,
    alias: str | None = None,
    ifname: str = "",
) -> None:
    """Apply MAC, MTU, alias and the admin state in one request (to ``index`` or ``ifname``)."""
    attrs: dict[str, Any] = {"state": "up" if up else "down"}
    if index is None:
        attrs["ifname"] = ifname
    else:
        attrs["index"] = index
    if alias is not None:
        attrs["ifalias"] = alias
    if mac:
        attrs["address"] = mac
    if mtu:
        attrs["mtu"] = mtu
    await ipr.link("set", **attrs)
