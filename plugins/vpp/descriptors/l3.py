"""L3 descriptors: VRF tables, routes (normal, inter-VRF, drop) and static IP neighbours.

Routes carry no tag in VPP. A dumped route is ours when it lives in one of our VRF tables, goes
out one of our interfaces or points into one of our tables, and is neither a route VPP adds by
itself (connected, local, the special drop routes of every table) nor multi-path.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from plugins.kvscheduler.api import Dependency, RetrievedValue, ValueWithMetadata
from plugins.vpp.descriptors.base import EMPTY_LABEL_STACK, VPPDescriptor
from plugins.vpp.model import (
    NEIGHBOUR_SPEC,
    NO_INDEX,
    ROUTE_SPEC,
    TAG_PREFIX,
    VRF_SPEC,
    Neighbour,
    Route,
    RouteType,
    VrfTable,
    interface_key,
    neighbour_key,
    route_key,
    vrf_key,
)

PATH_NORMAL, PATH_LOCAL, PATH_DROP = 0, 1, 2
NEIGHBOUR_STATIC = 1
SPECIAL_PREFIXES = frozenset(
    IPv4Network(p) for p in ("0.0.0.0/0", "0.0.0.0/32", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32")
)
ANY = IPv4Address("0.0.0.0")


class VrfTableDescriptor(VPPDescriptor[VrfTable]):
    """IPv4 tables named ``cv:<label>`` (``ip_table_add_del``)."""

    name = "vpp-vrf-table"
    spec = VRF_SPEC
    model = VrfTable

    def value_name(self, value: VrfTable) -> str:
        return str(value.id)

    async def create(self, key: str, value: VrfTable) -> None:
        await self._add_del(value, True)

    async def update(self, key: str, old: VrfTable, new: VrfTable, metadata: Any) -> None:
        await self._add_del(new, True)  # re-adding renames the table in place

    async def delete(self, key: str, value: VrfTable, metadata: Any) -> None:
        await self._add_del(value, False)

    async def _add_del(self, value: VrfTable, is_add: bool) -> None:
        table = {"table_id": value.id, "is_ip6": False, "name": TAG_PREFIX + value.label}
        await self.api.call("ip_table_add_del", is_add=is_add, table=table)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        out = []
        for details in await self.api.dump("ip_table_dump"):
            table = details.table
            if table.is_ip6 or not table.name.startswith(TAG_PREFIX) or int(table.table_id) == 0:
                continue
            value = VrfTable(id=int(table.table_id), label=table.name[len(TAG_PREFIX) :])
            out.append(RetrievedValue(key=vrf_key(value.id), value=value))
        return out


def route_name(vrf: int, dst: IPv4Network) -> str:
    return f"{vrf}/{dst}"


class RouteDescriptor(VPPDescriptor[Route]):
    """One single-path IPv4 route per (VRF, destination) (``ip_route_add_del``)."""

    name = "vpp-route"
    spec = ROUTE_SPEC
    model = Route
    retrieve_after = ("vpp-interface", "vpp-vrf-table")

    def value_name(self, value: Route) -> str:
        return route_name(value.vrf, value.dst)

    def dependencies(self, key: str, value: Route) -> Sequence[Dependency]:
        deps = []
        if value.vrf:
            deps.append(Dependency(label="VRF table", key=vrf_key(value.vrf)))
        if value.via_vrf:
            deps.append(Dependency(label="via VRF table", key=vrf_key(value.via_vrf)))
        if value.outgoing_interface:
            deps.append(Dependency(label="outgoing interface", key=interface_key(value.outgoing_interface)))
        return deps

    def _path(self, value: Route) -> dict[str, Any]:
        path: dict[str, Any] = {
            "sw_if_index": NO_INDEX,
            "table_id": value.vrf,
            "weight": 1,
            "preference": 0,
            "type": PATH_NORMAL,
            "flags": 0,
            "proto": 0,
            "n_labels": 0,
            "label_stack": EMPTY_LABEL_STACK,
        }
        if value.type == RouteType.DROP:
            path["type"] = PATH_DROP
        elif value.type == RouteType.INTER_VRF:
            path["table_id"] = value.via_vrf
        else:
            if value.outgoing_interface:
                path["sw_if_index"] = self.sw_if_index(value.outgoing_interface)
            if value.next_hop is not None:
                path["nh"] = {"address": {"ip4": str(value.next_hop)}}
        return path

    async def _add_del(self, value: Route, is_add: bool) -> None:
        route = {"table_id": value.vrf, "prefix": str(value.dst), "n_paths": 1, "paths": [self._path(value)]}
        await self.api.call("ip_route_add_del", is_add=is_add, is_multipath=False, route=route)

    async def create(self, key: str, value: Route) -> None:
        await self._add_del(value, True)

    async def update(self, key: str, old: Route, new: Route, metadata: Any) -> None:
        await self._add_del(new, True)  # without is_multipath the new path replaces the old

    async def delete(self, key: str, value: Route, metadata: Any) -> None:
        if value.outgoing_interface and self.indexes.interfaces.index(value.outgoing_interface) is None:
            return  # VPP removed it with the interface
        await self._add_del(value, False)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        expected = {c.key for c in correlate}
        tables = await self.api.dump("ip_table_dump")
        our_tables = {int(d.table.table_id) for d in tables if d.table.name.startswith(TAG_PREFIX)}
        connected = await self._connected_prefixes()
        out = []
        for table_id in sorted({0} | our_tables):
            for details in await self.api.dump("ip_route_dump", table={"table_id": table_id, "is_ip6": False}):
                value = self._from_details(details.route, connected, expected)
                if value is None:
                    continue
                key = route_key(value.vrf, value.dst)
                ours = (
                    key in expected
                    or value.vrf in our_tables
                    or value.via_vrf in our_tables
                    or bool(value.outgoing_interface)
                )
                if ours:
                    out.append(RetrievedValue(key=key, value=value))
        return out

    async def _connected_prefixes(self) -> set[tuple[int, IPv4Network, IPv4Address]]:
        """(sw_if_index, prefix, next hop) of the routes VPP adds by itself for our interfaces.

        An address adds its subnet (attached), itself (local) and, below /31, drop entries for
        the subnet's network and broadcast addresses; a neighbour adds an attached /32.
        """
        found: set[tuple[int, IPv4Network, IPv4Address]] = set()
        for _name, index in self.indexes.interfaces.items():
            for details in await self.api.dump("ip_address_dump", sw_if_index=index, is_ipv6=False):
                address = IPv4Interface(str(details.prefix))
                net = address.network
                found.add((index, net, ANY))
                if net.prefixlen < 31:
                    found.add((NO_INDEX, IPv4Network(f"{net.network_address}/32"), ANY))
                    found.add((NO_INDEX, IPv4Network(f"{net.broadcast_address}/32"), ANY))
        for details in await self.api.dump("ip_neighbor_dump", sw_if_index=NO_INDEX, af=0):
            nbr = details.neighbor
            if self.indexes.interfaces.name(int(nbr.sw_if_index)) is not None:
                ip = IPv4Address(str(nbr.ip_address))
                found.add((int(nbr.sw_if_index), IPv4Network(f"{ip}/32"), ip))
        return found

    def _from_details(
        self, route: Any, connected: set[tuple[int, IPv4Network, IPv4Address]], expected: set[str]
    ) -> Route | None:
        if int(route.n_paths) != 1:
            return None
        path = route.paths[0]
        dst = IPv4Network(str(route.prefix))
        kind, index = int(path.type), int(path.sw_if_index)
        vrf = int(route.table_id)
        next_hop = IPv4Address(str(path.nh.address.ip4))
        if kind == PATH_DROP:
            if dst in SPECIAL_PREFIXES or (NO_INDEX, dst, ANY) in connected:
                return None
            return Route(vrf=vrf, dst=dst, type=RouteType.DROP)
        if kind != PATH_NORMAL:
            return None
        if index != NO_INDEX and dst.prefixlen == 32 and next_hop == dst.network_address:
            # An attached host route: VPP reports our "/32 via <if>" with the host as next hop,
            # exactly as the /32 a neighbour adds by itself; ours when wanted or without neighbour.
            if (index, dst, next_hop) in connected and route_key(vrf, dst) not in expected:
                return None
            next_hop = ANY
        elif (index, dst, next_hop) in connected:
            return None
        if index == NO_INDEX:
            if next_hop == ANY and int(path.table_id) != vrf:
                return Route(vrf=vrf, dst=dst, type=RouteType.INTER_VRF, via_vrf=int(path.table_id))
            if next_hop == ANY:
                return None
            return Route(vrf=vrf, dst=dst, next_hop=next_hop)
        name = self.indexes.interfaces.name(index)
        if name is None:
            return None  # via an interface that is not ours
        return Route(vrf=vrf, dst=dst, outgoing_interface=name, next_hop=None if next_hop == ANY else next_hop)


class NeighbourDescriptor(VPPDescriptor[Neighbour]):
    """Static IP neighbours on our interfaces (``ip_neighbor_add_del``)."""

    name = "vpp-neighbour"
    spec = NEIGHBOUR_SPEC
    model = Neighbour
    retrieve_after = ("vpp-interface",)

    def value_name(self, value: Neighbour) -> str:
        return f"{value.interface}/{value.ip}"

    def dependencies(self, key: str, value: Neighbour) -> Sequence[Dependency]:
        return [Dependency(label="interface", key=interface_key(value.interface))]

    async def _add_del(self, value: Neighbour, is_add: bool) -> None:
        neighbor = {
            "sw_if_index": self.sw_if_index(value.interface),
            "flags": NEIGHBOUR_STATIC,
            "mac_address": value.mac,
            "ip_address": str(value.ip),
        }
        await self.api.call("ip_neighbor_add_del", is_add=is_add, neighbor=neighbor)

    async def create(self, key: str, value: Neighbour) -> None:
        await self._add_del(value, True)

    async def update(self, key: str, old: Neighbour, new: Neighbour, metadata: Any) -> None:
        await self._add_del(new, True)  # adding again replaces the MAC

    async def delete(self, key: str, value: Neighbour, metadata: Any) -> None:
        if self.indexes.interfaces.index(value.interface) is not None:
            await self._add_del(value, False)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        out = []
        for details in await self.api.dump("ip_neighbor_dump", sw_if_index=NO_INDEX, af=0):
            nbr = details.neighbor
            name = self.indexes.interfaces.name(int(nbr.sw_if_index))
            if name is None or not int(nbr.flags) & NEIGHBOUR_STATIC:
                continue
            value = Neighbour(interface=name, ip=str(nbr.ip_address), mac=str(nbr.mac_address))
            out.append(RetrievedValue(key=neighbour_key(name, value.ip), value=value))
        return out
