"""Offload features of a link (``ethtool -K <if> tx off``), set through the SIOCETHTOOL ioctl.

Why: on a veth whose other end VPP reads through af_packet, the kernel hands over TCP and UDP
packets with *partial* checksums (transmit checksum offload: the checksum is left for the
"hardware" to finish). VPP forwards them unfixed and the receiver drops them, so ping works and
TCP does not. With transmit checksum offload off on the sending end the kernel computes full
checksums. The previous setting is remembered (metadata) and restored on delete.
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
_IFREQ = struct.Struct("16sP")  # struct ifreq: name, then a pointer (ifr_data)


class LinkOffload(_Value):
    """Offload features of link ``ifname`` in ``namespace`` (today: transmit checksumming)."""

    namespace: str = ""
    ifname: str
    tx_checksum: bool = False
    """Transmit checksum offload (``ethtool -K <if> tx``); off = the kernel computes checksums."""

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

    async def create(self, key: str, value: LinkOffload) -> bool:
        previous = await get_tx_checksum(value.namespace, value.ifname)
        if previous != value.tx_checksum:
            await set_tx_checksum(value.namespace, value.ifname, value.tx_checksum)
        return previous

    async def update(self, key: str, old: LinkOffload, new: LinkOffload, metadata: Any) -> Any:
        await set_tx_checksum(new.namespace, new.ifname, new.tx_checksum)
        return metadata

    async def delete(self, key: str, value: LinkOffload, metadata: Any) -> None:
        if not isinstance(metadata, bool) or metadata == value.tx_checksum:
            return  # nothing known to restore, or nothing changed
        try:
            await set_tx_checksum(value.namespace, value.ifname, metadata)
        except (NamespaceNotFoundError, OSError):
            return  # the link (or its namespace) is gone with its setting

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        # A feature flag carries no mark: only settings we believe applied are read back.
        result = []
        for item in correlate:
            if not isinstance(item.value, LinkOffload):
                continue
            try:
                current = await get_tx_checksum(item.value.namespace, item.value.ifname)
            except (NamespaceNotFoundError, OSError):
                continue
            value = item.value.model_copy(update={"tx_checksum": current})
            result.append(RetrievedValue(item.key, value, item.metadata, Origin.FROM_NB))
        return result
