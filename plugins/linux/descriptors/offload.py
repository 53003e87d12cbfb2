"""Offload features of a link (``ethtool -K <if> tx off``, ``tso off gso off``), set through the
SIOCETHTOOL ioctl.

Why: on a veth whose other end VPP reads through af_packet, the kernel hands over TCP and UDP
packets with *partial* checksums (transmit checksum offload: the checksum is left for the
"hardware" to finish) and, with segmentation offload, TCP frames of up to 64 KiB. Without the
virtio-net header VPP forwards partial checksums unfixed and the receiver drops them, so ping
works and TCP does not: transmit checksum offload off makes the kernel compute them. With the
header VPP completes checksums itself, but cannot carry GSO frames into a VXLAN tunnel:
segmentation off (TSO and GSO) makes the kernel send MTU-sized segments. The previous settings
are remembered (metadata) and restored on delete.
"""

from __future__ import annotations

import array
import fcntl
import socket
import struct
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import field_validator

from plugins.kvscheduler.api import Dependency, ModelSpec, Origin, RetrievedValue, ValueWithMetadata
from plugins.linux.descriptors.base import LinuxDescriptor
from plugins.linux.models import _check_ifname, _check_ns, _Value, link_property_key, register_key
from plugins.linux.models import value_name as model_value_name
from plugins.linux.netns import NamespaceNotFoundError, call_in_namespace, namespace_label

OFFLOAD_SPEC = ModelSpec("linux", "v1", "offload")

SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x00000016
ETHTOOL_STXCSUM = 0x00000017
ETHTOOL_GTSO = 0x0000001E
ETHTOOL_STSO = 0x0000001F
ETHTOOL_GGSO = 0x00000023
ETHTOOL_SGSO = 0x00000024
_IFREQ = struct.Struct("16sP")  # struct ifreq: name, then a pointer (ifr_data)


class LinkOffload(_Value):
    """Offload features of link ``ifname`` in ``namespace``: transmit checksumming, segmentation."""

    namespace: str = ""
    ifname: str
    tx_checksum: bool = False
    """Transmit checksum offload (``ethtool -K <if> tx``); off = the kernel computes checksums."""
    segmentation: bool | None = None
    """TCP and generic segmentation offload together (``ethtool -K <if> tso gso``); off = the
    kernel hands the link MTU-sized segments; ``None`` = left as it is."""

    _ifname = field_validator("ifname")(_check_ifname)
    _ns = field_validator("namespace")(_check_ns)


register_key(LinkOffload, OFFLOAD_SPEC, lambda v: f"{namespace_label(v.namespace)}/{v.ifname}")


def offload_key(namespace: str, ifname: str) -> str:
    return OFFLOAD_SPEC.key_prefix + f"{namespace_label(namespace)}/{ifname}"


def _ethtool(ifname: str, command: int, data: int = 0) -> int:
    """One ``struct ethtool_value`` SIOCETHTOOL request in the calling thread's namespace."""
    buffer = array.array("I", [command, data])
    address, _length = buffer.buffer_info()
    request = _IFREQ.pack(ifname.encode(), address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)
    return int(buffer[1])


async def get_tx_checksum(namespace: str, ifname: str) -> bool:
    return bool(await call_in_namespace(namespace, lambda: _ethtool(ifname, ETHTOOL_GTXCSUM)))


async def set_tx_checksum(namespace: str, ifname: str, on: bool) -> None:
    await call_in_namespace(namespace, lambda: _ethtool(ifname, ETHTOOL_STXCSUM, int(on)))


async def get_segmentation(namespace: str, ifname: str) -> bool:
    """TSO and GSO both on (either off counts as off)."""
    tso = await call_in_namespace(namespace, lambda: _ethtool(ifname, ETHTOOL_GTSO))
    gso = await call_in_namespace(namespace, lambda: _ethtool(ifname, ETHTOOL_GGSO))
    return bool(tso) and bool(gso)


async def set_segmentation(namespace: str, ifname: str, on: bool) -> None:
    await call_in_namespace(namespace, lambda: _ethtool(ifname, ETHTOOL_STSO, int(on)))
    await call_in_namespace(namespace, lambda: _ethtool(ifname, ETHTOOL_SGSO, int(on)))


def _previous(metadata: Any) -> tuple[bool, bool | None] | None:
    """The settings found before the first change (metadata; a bare bool from older agents:
    transmit checksumming only); ``None`` when unknown."""
    if isinstance(metadata, bool):
        return (metadata, None)
    if isinstance(metadata, (tuple, list)) and len(metadata) == 2:
        return (bool(metadata[0]), None if metadata[1] is None else bool(metadata[1]))
    return None


async def _read(value: LinkOffload) -> tuple[bool, bool | None]:
    tx = await get_tx_checksum(value.namespace, value.ifname)
    seg = await get_segmentation(value.namespace, value.ifname) if value.segmentation is not None else None
    return tx, seg


async def _apply(value: LinkOffload, current: tuple[bool, bool | None]) -> None:
    if current[0] != value.tx_checksum:
        await set_tx_checksum(value.namespace, value.ifname, value.tx_checksum)
    if value.segmentation is not None and current[1] != value.segmentation:
        await set_segmentation(value.namespace, value.ifname, value.segmentation)


class OffloadDescriptor(LinuxDescriptor[LinkOffload]):
    """``config/linux/v1/offload/<ns>/<ifname>``; waits for its link; metadata: the setting found."""

    name = "linux-offload"
    spec = OFFLOAD_SPEC
    model = LinkOffload
    with_metadata = True
    retrieve_after: ClassVar[tuple[str, ...]] = ("linux-veth", "linux-vxlan")

    def value_name(self, value: LinkOffload) -> str:
        return model_value_name(value)

    def dependencies(self, key: str, value: LinkOffload) -> Sequence[Dependency]:
        return [Dependency("interface", key=link_property_key(value.namespace, value.ifname))]

    def update_needs_recreate(self, key: str, old: LinkOffload, new: LinkOffload) -> bool:
        return (old.namespace, old.ifname) != (new.namespace, new.ifname)

    async def create(self, key: str, value: LinkOffload) -> tuple[bool, bool | None]:
        previous = await _read(value)
        await _apply(value, previous)
        return previous

    async def update(self, key: str, old: LinkOffload, new: LinkOffload, metadata: Any) -> Any:
        current = await _read(new)
        await _apply(new, current)
        previous = _previous(metadata)
        if previous is not None and previous[1] is None and current[1] is not None:
            return (previous[0], current[1])  # first time segmentation is managed
        return metadata

    async def delete(self, key: str, value: LinkOffload, metadata: Any) -> None:
        previous = _previous(metadata)
        if previous is None:
            return  # nothing known to restore
        try:
            if previous[0] != value.tx_checksum:
                await set_tx_checksum(value.namespace, value.ifname, previous[0])
            if value.segmentation is not None and previous[1] is not None and previous[1] != value.segmentation:
                await set_segmentation(value.namespace, value.ifname, previous[1])
        except (NamespaceNotFoundError, OSError):
            return  # the link (or its namespace) is gone with its setting

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        # A feature flag carries no mark: only settings we believe applied are read back.
        result = []
        for item in correlate:
            if not isinstance(item.value, LinkOffload):
                continue
            try:
                tx, seg = await _read(item.value)
            except (NamespaceNotFoundError, OSError):
                continue
            value = item.value.model_copy(update={"tx_checksum": tx, "segmentation": seg})
            result.append(RetrievedValue(item.key, value, item.metadata, Origin.FROM_NB))
        return result
