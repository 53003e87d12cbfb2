"""IPv4 routes marked with our route protocol number; foreign routes are never touched."""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pydantic import BaseModel
from pyroute2 import AsyncIPRoute

from plugins.kvscheduler.api import (
    Dependency,
    InvalidValueError,
    Origin,
    RetrievedValue,
    ValueWithMetadata,
)
from plugins.linux.descriptors.base import LinuxDescriptor, tolerating
from plugins.linux.links import LinkInfo, LinkMissingError, dump_links, on_link
from plugins.linux.models import (
    ADDRESS_SPEC,
    ROUTE_PROTOCOL,
    ROUTE_SPEC,
    Route,
    link_property_key,
)
from plugins.linux.models import value_name as model_value_name
from plugins.linux.netns import NamespaceNotFoundError, namespace_label

_RTNH_F_ONLINK = 4
_SCOPE_LINK = 253
_SCOPE_UNIVERSE = 0


class RouteDescriptor(LinuxDescriptor[Route]):
    """``config/linux/v1/route/<ns>/<table>/<dst>/<prefixlen>[/<metric>]``."""

    name = "linux-route"
    spec = ROUTE_SPEC
    model = Route
    retrieve_after = ("linux-veth", "linux-vxlan")

    def value_name(self, value: Route) -> str:
        return model_value_name(value)

    def validate(self, key: str, value: Route) -> None:
        if value.gateway is None and not value.dev:
            raise InvalidValueError(key, "a route without gateway needs a dev")

    def equivalent(self, key: str, old: Route, new: Route) -> bool:
        # A route given without a device gets one from the kernel: any device is as desired.
        if not old.dev or not new.dev:
            ignore = {"dev", "dev_is_ours"}
            return old.model_dump(exclude=ignore) == new.model_dump(exclude=ignore)
        return old == new

    def dependencies(self, key: str, value: Route) -> Sequence[Dependency]:
        if not (value.dev and value.dev_is_ours):
            return []
        # The kernel drops the routes through a link with the link.
        deps = [Dependency("interface", key=link_property_key(value.namespace, value.dev),
                           removed_with=True)]
        if value.gateway is not None:
            # The kernel refuses a gateway (even onlink) in a namespace with no address at all:
            # wait until the device has one of our addresses.
            prefix = f"{ADDRESS_SPEC.key_prefix}{namespace_label(value.namespace)}/{value.dev}/"
            deps.append(Dependency("interface-address", any_of=(prefix,)))
        return deps

    def _request(self, value: Route) -> dict[str, Any]:
        req: dict[str, Any] = {
            "dst": str(value.dst),
            "table": value.table,
            "proto": ROUTE_PROTOCOL,
            "scope": _SCOPE_LINK if value.gateway is None else _SCOPE_UNIVERSE,
        }
        if value.gateway is not None:
            req["gateway"] = str(value.gateway)
        if value.metric:
            req["priority"] = value.metric
        if value.onlink:
            req["flags"] = _RTNH_F_ONLINK
        return req

    async def create(self, key: str, value: Route) -> None:
        async with self.pool.connect(value.namespace) as ipr:
            req = self._request(value)
            if not value.dev:
                await ipr.route("add", **req)
                return

            async def add(link: LinkInfo) -> None:
                await ipr.route("add", **req, oif=link.index)

            try:
                await on_link(self.pool, ipr, value.dev, add, owned=False)
            except LinkMissingError:
                raise OSError(f"route {value.dst}: device {value.dev} does not exist") from None

    async def delete(self, key: str, value: Route, metadata: Any) -> None:
        req = {k: v for k, v in self._request(value).items() if k != "flags"}
        try:
            async with self.pool.connect(value.namespace) as ipr:
                # The kernel matches the protocol, so a foreign route with the same
                # destination is never removed.
                await tolerating(ipr.route("del", **req), errno.ESRCH)
        except NamespaceNotFoundError:
            return

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        wanted = {item.key: item.value for item in correlate if isinstance(item.value, Route)}

        async def read(ns: str, ipr: AsyncIPRoute) -> list[RetrievedValue]:
            routes = [
                r async for r in await ipr.route("dump", family=socket.AF_INET)
                if int(r["proto"]) == ROUTE_PROTOCOL
            ]
            links = {i.index: i for i in await dump_links(ipr)} if routes else {}
            return [self._read(ns, msg, links, wanted) for msg in routes]

        return await self.for_each_namespace(correlate, read)

    def _read(
        self, ns: str, msg: Any, links: dict[int, LinkInfo], wanted: Mapping[str, BaseModel]
    ) -> RetrievedValue:
        oif = msg.get("oif")
        dev_link = links.get(int(oif)) if oif is not None else None
        gateway = msg.get("gateway")
        value = Route(
            namespace=ns,
            dst=IPv4Network(f"{msg.get('dst') or '0.0.0.0'}/{msg['dst_len']}"),
            gateway=IPv4Address(gateway) if gateway else None,
            dev=dev_link.ifname if dev_link else "",
            dev_is_ours=bool(dev_link and dev_link.mark),
            onlink=bool(int(msg["flags"]) & _RTNH_F_ONLINK),
            table=int(msg.get("table") or msg["table"]),
            metric=int(msg.get("priority") or 0),
        )
        key = self.key_of(value)
        desired = wanted.get(key)
        if isinstance(desired, Route) and desired.dev in ("", value.dev):
            # Whether the device is ours is the caller's statement, not kernel state; a device
            # the kernel picked for a route given without one is not reported.
            value = value.model_copy(update={"dev": desired.dev, "dev_is_ours": desired.dev_is_ours})
        return RetrievedValue(key, value, origin=Origin.FROM_NB)
