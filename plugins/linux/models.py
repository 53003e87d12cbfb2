"""Value models of the Linux dataplane (one per descriptor) and their keys.

Every value names the network namespace it lives in (see :mod:`plugins.linux.netns` for the
reference forms). Keys are ``config/linux/v1/<type>/<name>`` where the name is built from the
value's identity fields, namespace label first.

Links (veth ends, VXLAN devices) derive a *link property* ``linux/link/<ns>/<ifname>`` that
addresses, routes and neighbours depend on, so they are created after their interface exists
and removed before it goes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plugins.kvscheduler.api import ModelSpec
from plugins.linux.netns import namespace_label, validate_namespace_ref

#: Interface alias prefix marking links we created: ``contiv:<value key>``.
ALIAS_PREFIX = "contiv:"
#: Route protocol number marking routes we created (rtnetlink ``rtm_protocol``).
ROUTE_PROTOCOL = 152

VETH_SPEC = ModelSpec("linux", "v1", "veth")
VXLAN_SPEC = ModelSpec("linux", "v1", "vxlan")
ADDRESS_SPEC = ModelSpec("linux", "v1", "address")
ROUTE_SPEC = ModelSpec("linux", "v1", "route")
NEIGHBOUR_SPEC = ModelSpec("linux", "v1", "neighbour")
FDB_SPEC = ModelSpec("linux", "v1", "fdb")
SYSCTL_SPEC = ModelSpec("linux", "v1", "sysctl")
SESSIONS_SPEC = ModelSpec("linux", "v1", "sessions")

_IFNAME = re.compile(r"^[^\s/:]{1,15}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def link_property_key(namespace: str, ifname: str) -> str:
    """Key of the property that exists while our link ``ifname`` in ``namespace`` exists."""
    return f"linux/link/{namespace_label(namespace)}/{ifname}"


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_ifname(value: str) -> str:
    if not _IFNAME.match(value):
        raise ValueError(f"bad interface name {value!r} (1-15 characters, no space, '/' or ':')")
    return value


def _check_mac(value: str) -> str:
    value = value.lower()
    if not _MAC.match(value):
        raise ValueError(f"bad MAC address {value!r} (expected aa:bb:cc:dd:ee:ff)")
    if int(value[:2], 16) & 1:
        raise ValueError(f"MAC address {value!r} is multicast")
    return value


def _check_ns(value: str) -> str:
    reason = validate_namespace_ref(value)
    if reason:
        raise ValueError(reason)
    return value


class LinkProperty(_Value):
    """The derived marker value of an existing link (no descriptor: a scheduler property)."""

    namespace: str
    ifname: str


class _Link(_Value):
    """Fields every link we manage has."""

    namespace: str = ""
    ifname: str
    #: Empty: keep what the kernel picked.
    mac: str = ""
    #: 0: the kernel default.
    mtu: int = Field(default=0, ge=0, le=65535)
    up: bool = True

    _ifname = field_validator("ifname")(_check_ifname)
    _ns = field_validator("namespace")(_check_ns)

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str) -> str:
        return _check_mac(value) if value else value


class VethEnd(_Link):
    """One end of a veth pair."""


class Veth(_Value):
    """A veth pair whose ends may live in different namespaces (pod <-> node)."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    end1: VethEnd
    end2: VethEnd


class Vxlan(_Link):
    """A VXLAN device (the node mesh endpoint); no learning, forwarding entries are static."""

    vni: int = Field(ge=1, lt=1 << 24)
    local: IPv4Address
    port: int = Field(default=4789, ge=1, le=65535)
    #: Underlay device; empty: let the kernel route to the remote ends.
    underlay: str = ""

    @property
    def name(self) -> str:
        return f"{namespace_label(self.namespace)}/{self.ifname}"


class OnLinkValue(_Value):
    """Base of the values that live on one of our links (address, neighbour, FDB entry)."""

    namespace: str = ""
    ifname: str

    _ifname = field_validator("ifname")(_check_ifname)
    _ns = field_validator("namespace")(_check_ns)


class InterfaceAddress(OnLinkValue):
    """An IPv4 address on one of our links."""

    address: IPv4Interface


class Route(_Value):
    """An IPv4 route, marked with :data:`ROUTE_PROTOCOL`."""

    namespace: str = ""
    dst: IPv4Network
    #: Next hop; None for a link-scope route (then ``dev`` is required).
    gateway: IPv4Address | None = None
    #: Outgoing device (one of ours, or any existing one with ``dev_is_ours=False``).
    dev: str = ""
    #: Whether ``dev`` is a link we manage (then the route waits for it).
    dev_is_ours: bool = True
    #: Use the gateway even when no route covers it (``onlink``).
    onlink: bool = False
    table: int = Field(default=254, ge=1, lt=1 << 31)
    metric: int = Field(default=0, ge=0)

    _ns = field_validator("namespace")(_check_ns)

    @field_validator("dev")
    @classmethod
    def _dev(cls, value: str) -> str:
        return _check_ifname(value) if value else value


class Neighbour(OnLinkValue):
    """A permanent (static) neighbour entry on one of our links."""

    ip: IPv4Address
    mac: str

    _mac = field_validator("mac")(_check_mac)


class FdbEntry(OnLinkValue):
    """A static forwarding entry on one of our VXLAN devices: ``mac`` lives behind ``dst``."""

    mac: str
    dst: IPv4Address

    _mac = field_validator("mac")(_check_mac)


class Sysctl(_Value):
    """A kernel setting under ``/proc/sys`` of one namespace (e.g. ``net.ipv4.ip_forward``).

    The previous value is remembered (metadata) and restored when the value is deleted.
    """

    namespace: str = ""
    name: str = Field(pattern=r"^net(\.[A-Za-z0-9_-]+)+$")
    value: str = Field(min_length=1, max_length=64)

    _ns = field_validator("namespace")(_check_ns)


class Sessions(_Value):
    """The connection-tracking sessions of one DNAT frontend (UDP or SCTP) and its backends.

    NAT is decided on a flow's first packet, and a UDP or SCTP flow's conntrack entry outlives
    the backend it was sent to (and entries made before the frontend was served bypass it):
    entries to a backend the frontend no longer has are deleted, and a frontend that appears,
    gets its first backend, or goes has all its entries deleted (kube-proxy does the same).
    TCP needs none of this: a connection to a gone backend is reset. ``backends`` are
    ``ip:port``.
    """

    namespace: str = ""
    protocol: str = Field(pattern=r"^(udp|sctp)$")
    ip: IPv4Address
    port: int = Field(ge=1, le=65535)
    backends: tuple[str, ...] = ()

    _ns = field_validator("namespace")(_check_ns)

    @field_validator("backends")
    @classmethod
    def _backends(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            host, _, port = item.rpartition(":")
            try:
                IPv4Address(host)
                ok = port.isdigit() and 0 < int(port) < 65536
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"backend {item!r} is not <IPv4 address>:<port>")
        return value


# ---- keys, from the models alone (as vpp-agent derives them): no descriptor needed ---------

_KEYS: dict[type[BaseModel], tuple[ModelSpec, Callable[[Any], str]]] = {}


def register_key(model: type[BaseModel], spec: ModelSpec, name: Callable[[Any], str]) -> None:
    """Declare how ``model``'s values are named (``spec.key_prefix + name(value)``)."""
    _KEYS[model] = (spec, name)


def value_name(value: BaseModel) -> str:
    """The name of a Linux value (the part of its key after the type's prefix)."""
    entry = _KEYS.get(type(value))
    if entry is None:
        raise TypeError(f"{type(value).__name__} is not a Linux value model")
    return entry[1](value)


def value_key(value: BaseModel) -> str:
    """The scheduler key of a Linux value; its descriptor's ``key_of`` gives the same."""
    entry = _KEYS.get(type(value))
    if entry is None:
        raise TypeError(f"{type(value).__name__} is not a Linux value model")
    return entry[0].key_prefix + entry[1](value)


def _on_link(item: Callable[[Any], object]) -> Callable[[Any], str]:
    return lambda v: f"{namespace_label(v.namespace)}/{v.ifname}/{item(v)}"


def _route_name(value: Route) -> str:
    name = f"{namespace_label(value.namespace)}/{value.table}/{value.dst}"
    return f"{name}/{value.metric}" if value.metric else name


register_key(Veth, VETH_SPEC, lambda v: v.name)
register_key(Vxlan, VXLAN_SPEC, lambda v: v.name)
register_key(InterfaceAddress, ADDRESS_SPEC, _on_link(lambda v: v.address))
register_key(Route, ROUTE_SPEC, _route_name)
register_key(Neighbour, NEIGHBOUR_SPEC, _on_link(lambda v: v.ip))
register_key(FdbEntry, FDB_SPEC, _on_link(lambda v: v.mac))
register_key(Sysctl, SYSCTL_SPEC, lambda v: f"{namespace_label(v.namespace)}/{v.name}")
register_key(Sessions, SESSIONS_SPEC, lambda v: f"{namespace_label(v.namespace)}/{v.protocol}/{v.ip}/{v.port}")
