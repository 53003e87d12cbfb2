"""Shared netlink helpers for links: lookup, ownership marks, attributes, read-back."""

from __future__ import annotations

import errno
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from plugins.linux.models import ALIAS_PREFIX
from plugins.linux.netns import NetlinkPool

T = TypeVar("T")

#: How long a looked-up link (name -> index, mark) is reused by :func:`on_link`.
LINK_MEMO_S = 1.0
_MEMO_KEY = "links"


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


class LinkMissingError(LookupError):
    """:func:`on_link` found no such link (or, with ``owned``, one without our mark)."""

    def __init__(self, ifname: str, owned: bool) -> None:
        what = "missing or not ours" if owned else "missing"
        super().__init__(f"interface {ifname} is {what}")
        self.ifname = ifname


def _link_memo(pool: NetlinkPool, ipr: AsyncIPRoute) -> dict[str, tuple[float, LinkInfo]] | None:
    memo = pool.memo(ipr)
    if memo is None:
        return None
    links: dict[str, tuple[float, LinkInfo]] = memo.setdefault(_MEMO_KEY, {})
    return links


def forget_links(pool: NetlinkPool, ref: str, *ifnames: str) -> None:
    """Drop memoised lookups of ``ifnames`` in namespace ``ref`` (after we changed them)."""
    for memo in pool.memos(ref):
        links = memo.get(_MEMO_KEY)
        if links is not None:
            for ifname in ifnames:
                links.pop(ifname, None)


async def on_link(
    pool: NetlinkPool,
    ipr: AsyncIPRoute,
    ifname: str,
    op: Callable[[LinkInfo], Awaitable[T]],
    *,
    owned: bool = True,
) -> T:
    """Run ``op`` on the link ``ifname`` (with ``owned``: only if it carries our mark).

    The lookup is memoised on ``ipr``'s pool handle for :data:`LINK_MEMO_S`, so the several
    values of one transaction on the same link (addresses, routes, neighbours) share a single
    netlink get. A memoised entry is only a hint: when ``op`` fails with ENODEV (the index
    is gone: the kernel does not reuse indexes soon) the link is looked up again and ``op``
    retried once. Raises :class:`LinkMissingError` when there is no such link.
    """
    links = _link_memo(pool, ipr)
    now = time.monotonic()
    hit = links.get(ifname) if links is not None else None
    if hit is not None and now - hit[0] <= LINK_MEMO_S and not (owned and hit[1].mark is None):
        try:
            return await op(hit[1])
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise
    if links is not None:
        links.pop(ifname, None)
    info = await find_link(ipr, ifname)
    if info is None or (owned and info.mark is None):
        raise LinkMissingError(ifname, owned)
    if links is not None:
        for name in [n for n, (t, _) in links.items() if now - t > LINK_MEMO_S]:
            del links[name]
        links[ifname] = (now, info)
    return await op(info)
