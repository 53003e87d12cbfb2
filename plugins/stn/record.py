"""What contiv-stn remembers about a stolen link, and the file that keeps it across restarts.

The record is written (atomically: temporary file, fsync, rename, fsync of the directory)
*before* the link is touched, so a daemon that dies in the middle of a steal still knows what
to give back. A corrupt file is never overwritten: the daemon refuses to start, naming it.
"""

from __future__ import annotations

import os
import tempfile
import time
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

RECORD_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordedAddress(_Model):
    """One address of the link, with what ``ip addr add`` needs to bring it back identically."""

    family: Literal[4, 6]
    address: str
    prefixlen: int = Field(ge=0, le=128)
    broadcast: str | None = None
    label: str | None = None
    scope: int = 0
    flags: int = 0
    """The configurable ``IFA_FLAGS`` (nodad, noprefixroute, ...), without state flags."""

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


class RecordedRoute(_Model):
    """One route through the link (any table but ``local``)."""

    family: Literal[4, 6]
    table: int
    dst: str
    """Destination network (``0.0.0.0/0`` for a default route)."""
    gateway: str | None = None
    prefsrc: str | None = None
    metric: int | None = None
    proto: int
    scope: int
    type: int = 1
    kernel: bool = False
    """Made by the kernel for an address (``proto kernel``): it returns with the address."""

    @property
    def next_hop(self) -> str:
        return self.gateway or ""


class StolenLink(_Model):
    """Everything recorded about one stolen link."""

    interface: str
    namespace: str = ""
    state: Literal["stealing", "stolen"] = "stealing"
    """``stealing`` while addresses and routes are being taken off (a crash there is harmless:
    release restores whatever is missing)."""
    ifindex: int
    mac: str = ""
    mtu: int = 0
    kind: str = ""
    """Link kind from netlink (``veth``, ``tun``, ...); "" for a physical device."""
    kernel_driver: str = ""
    pci_address: str = ""
    driver_unbound: bool = False
    detail: str = ""
    dhcp_enabled: bool = False
    addresses: list[RecordedAddress] = Field(default_factory=list)
    routes: list[RecordedRoute] = Field(default_factory=list)
    stolen_at: float = Field(default_factory=time.time)

    def ip_addresses(self) -> list[str]:
        return [a.cidr for a in self.addresses]


class RecordFile(_Model):
    version: int = RECORD_VERSION
    links: dict[str, StolenLink] = Field(default_factory=dict)


class RecordError(Exception):
    """The record file cannot be read or written."""


class RecordStore:
    """The stolen links, mirrored to ``path`` on every change."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.links: dict[str, StolenLink] = {}

    def load(self) -> None:
        """Read the file (a missing file is an empty record); a corrupt one raises RecordError."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.links = {}
            return
        except OSError as exc:
            raise RecordError(f"cannot read the STN record {self.path}: {exc}") from exc
        try:
            data = RecordFile.model_validate_json(text)
        except ValidationError as exc:
            raise RecordError(
                f"the STN record {self.path} is corrupt ({exc.error_count()} errors, first: "
                f"{exc.errors()[0]['msg']}); it may hold a stolen NIC's addresses: fix or move it by hand"
            ) from exc
        if data.version != RECORD_VERSION:
            raise RecordError(f"the STN record {self.path} has version {data.version}, expected {RECORD_VERSION}")
        self.links = dict(data.links)

    def save(self) -> None:
        """Write the record atomically and durably."""
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        payload = RecordFile(links=self.links).model_dump_json(indent=2)
        fd, tmp = tempfile.mkstemp(prefix=".stn-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def put(self, link: StolenLink) -> None:
        self.links[link.interface] = link
        self.save()

    def remove(self, interface: str) -> None:
        self.links.pop(interface, None)
        self.save()


def route_dst(family: int, dst: str | None, dst_len: int) -> str:
    """``0.0.0.0/0`` / ``::/0`` for a default route, else ``dst/len``."""
    if dst is None:
        return "0.0.0.0/0" if family == 4 else "::/0"
    return str(ip_network(f"{dst}/{dst_len}", strict=False))


def is_link_local_v6(address: str) -> bool:
    return ip_address(address).is_link_local
