"""The STN operations (steal, release, info) on top of the record and netlink; no gRPC here."""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import Callable

from plugins.stn import links
from plugins.stn.config import STNConfig
from plugins.stn.record import RecordStore, StolenLink

#: Linux's dev_valid_name: 1..15 bytes, not "." or "..", no "/", ":" or whitespace.
_IFNAME = re.compile(r"^[^/:\s\x00]{1,15}$")


class ErrorKind(enum.StrEnum):
    INVALID = "invalid argument"
    NOT_FOUND = "not found"
    ALREADY = "already stolen"
    NOT_STOLEN = "not stolen"
    LIMIT = "limit reached"
    FAILED = "failed"


class STNError(Exception):
    """A request that could not be served; ``kind`` says why (the gRPC layer maps it)."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_interface_name(name: str) -> None:
    """Raise :class:`STNError` (INVALID) naming what is wrong with ``name``."""
    if not name:
        raise STNError(ErrorKind.INVALID, "interface_name is empty")
    if len(name.encode()) > 15:
        shown = name if len(name) <= 40 else name[:20] + "..."
        raise STNError(
            ErrorKind.INVALID,
            f"interface_name {shown!r} is {len(name.encode())} bytes long; a Linux interface name has at most 15",
        )
    if name in (".", "..") or not _IFNAME.match(name):
        raise STNError(ErrorKind.INVALID, f"interface_name {name!r} is not a valid Linux interface name")


class STNService:
    """Steals and releases links, keeping :class:`RecordStore` ahead of every change.

    One operation at a time (an asyncio lock). ``on_change`` is called after every steal and
    release (the watchdog resets its clocks there).
    """

    def __init__(self, config: STNConfig, log: logging.Logger) -> None:
        self.config = config
        self.log = log
        self.store = RecordStore(config.state_file)
        self.lock = asyncio.Lock()
        self.on_change: list[Callable[[], None]] = []
        self.steals = 0
        self.releases = 0

    def load(self) -> None:
        self.store.load()
        for link in self.store.links.values():
            self.log.info("recorded as stolen: %s (%s) with %s", link.interface, link.state,
                          ", ".join(link.ip_addresses()) or "no addresses")

    @property
    def stolen(self) -> dict[str, StolenLink]:
        return dict(self.store.links)

    async def steal(self, interface: str, dhcp_enabled: bool = False) -> StolenLink:
        check_interface_name(interface)
        async with self.lock:
            if interface in self.store.links:
                raise STNError(ErrorKind.ALREADY, f"{interface} is already stolen (release it first)")
            if len(self.store.links) >= self.config.max_stolen:
                raise STNError(
                    ErrorKind.LIMIT,
                    f"{len(self.store.links)} link(s) already stolen ({', '.join(self.store.links)}); "
                    f"stn.max_stolen is {self.config.max_stolen}",
                )
            try:
                link = await links.read_link(interface, self.config.namespace)
            except links.LinkNotFoundError as exc:
                raise STNError(ErrorKind.NOT_FOUND, str(exc)) from None
            link = link.model_copy(update={"dhcp_enabled": dhcp_enabled})
            self.store.put(link)  # before anything is touched
            try:
                await links.take_off(link)
                if link.pci_address and link.kernel_driver:
                    await asyncio.to_thread(links.unbind_driver, link)
                    link = link.model_copy(update={"driver_unbound": True})
            except Exception as exc:
                self.log.error("steal of %s failed (%s): putting it back", interface, exc)
                await self._restore(link)
                self.store.remove(interface)
                raise STNError(ErrorKind.FAILED, f"steal of {interface} failed: {exc}; the link was restored") from exc
            link = link.model_copy(update={"state": "stolen"})
            self.store.put(link)
            self.steals += 1
        self.log.info("stole %s: addresses %s, %d routes, %s", interface, ", ".join(link.ip_addresses()) or "none",
                      len(link.routes), link.detail or f"driver {link.kernel_driver} unbound")
        self._changed()
        return link

    def info(self, interface: str) -> StolenLink:
        check_interface_name(interface)
        link = self.store.links.get(interface)
        if link is None:
            raise STNError(ErrorKind.NOT_STOLEN, f"{interface} is not stolen")
        return link

    async def release(self, interface: str, reason: str = "release requested") -> StolenLink:
        check_interface_name(interface)
        async with self.lock:
            link = self.store.links.get(interface)
            if link is None:
                raise STNError(ErrorKind.NOT_STOLEN, f"{interface} is not stolen")
            try:
                await self._restore(link)
            except links.LinkNotFoundError as exc:
                raise STNError(ErrorKind.NOT_FOUND, f"cannot restore {interface}: {exc}; the record is kept") from None
            except Exception as exc:
                raise STNError(ErrorKind.FAILED, f"restore of {interface} failed: {exc}; the record is kept") from exc
            self.store.remove(interface)
            self.releases += 1
        self.log.info("released %s (%s): restored %s and %d routes", interface, reason,
                      ", ".join(link.ip_addresses()) or "no addresses", len(link.routes))
        self._changed()
        return link

    async def _restore(self, link: StolenLink) -> None:
        if link.driver_unbound:
            await asyncio.to_thread(links.bind_driver, link)
        await links.restore(link)

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()
